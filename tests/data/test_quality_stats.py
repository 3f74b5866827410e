from collections import Counter

import numpy as np
import pytest

from ftaudit.data.stats import TextStats, TokenCounter, detect_language, distribution, regex_token_count


@pytest.mark.parametrize("text,lang", [
    ("The weather is fine and the children are playing in the park with their dog.", "en"),
    ("Der Hund ist nicht mit dem Ball auf der Wiese, aber die Katze ist es auch nicht.", "de"),
    ("Le chat est sur la table et il est content pour les enfants qui sont dans le jardin.", "fr"),
    ("El perro está en la casa y no es malo con los niños que juegan en el jardín.", "es"),
    ("Het is een mooie dag en de kinderen spelen in het park met de hond.", "nl"),
    ("Это не то, что он сказал, но все так и было в его доме.", "ru"),
    ("Καλημέρα σας, τι κάνετε σήμερα;", "el"),
    ("こんにちは、元気ですか", "ja"),
    ("今天天气很好", "zh"),
    ("hello", "und"),  # one word is not evidence
    ("12345 67890", "und"),
])
def test_language(text, lang):
    assert detect_language(text) == lang


def test_token_counts_and_distribution():
    assert regex_token_count("Hello, world! It's 2026.") == 9
    counter = TokenCounter()
    assert counter.method == "tokens (regex: words + punctuation marks)" and counter("a b, c") == 4
    d = distribution(Counter([0, 1, 3, 10, 100, 1000]), "characters")
    assert (d.count, d.min, d.max, d.total, d.unit) == (6, 0, 1000, 1114, "characters")
    assert sum(b.count for b in d.histogram) == 6 and (d.histogram[0].low, d.histogram[0].high) == (0, 0)
    assert all(b.low <= b.high for b in d.histogram)
    stats = TextStats()
    stats.add(10, 3, "en")
    stats.add(30, 7, "de")
    assert stats.char_distribution().mean == 20.0 and stats.languages == {"en": 1, "de": 1}


@pytest.mark.parametrize("seed", range(40))
def test_the_distribution_from_length_counts_is_numpys_on_every_length(seed):
    """Lengths kept as {length: records}: the same figures as numpy on the array of every record's length."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, rng.choice([2, 50, 10**6, 10**12]), size=int(rng.integers(1, 3000)))
    if seed % 3 == 0:
        values = np.repeat(values[:5], rng.integers(1, 400, size=len(values[:5])))
    d = distribution(Counter(values.tolist()), "characters")
    edges = [0, 1] + [1 << k for k in range(1, max(1, int(values.max()).bit_length()) + 1)]
    edges += [edges[-1] * 2] if edges[-1] <= values.max() else []
    counts, _ = np.histogram(values, bins=edges)
    assert [(b.low, b.count) for b in d.histogram] == [(edges[i], int(k)) for i, k in enumerate(counts) if k]
    assert (d.count, d.total, d.min, d.max, d.mean) == (values.size, int(values.sum()), int(values.min()),
                                                        int(values.max()), round(float(values.mean()), 3))
    assert [d.p50, d.p90, d.p99] == np.percentile(values, [50, 90, 99]).tolist()


def test_hf_tokenizer_is_used_when_given(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["hello world again"], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path)
    counter = TokenCounter(str(tmp_path))
    assert counter("hello world again and more") == 5 and "hf-tokenizer" in counter.method


def test_unloadable_tokenizer_is_bad_input(tmp_path):
    from ftaudit.errors import BadInput

    with pytest.raises(BadInput, match="cannot load tokenizer"):
        TokenCounter(str(tmp_path / "nope"))
