from importlib import resources

from ftaudit.data.bias import default_lexicon, summarise, tally_record
from ftaudit.data.evidence import BiasEvidence


def _group(summary, dim, group):
    d = next(x for x in summary["dimensions"] if x["dimension"] == dim)
    return next(g for g in d["groups"] if g["group"] == group)


def test_representation_and_cooccurrence():
    t = None
    texts = [
        ["The woman was a brilliant engineer. She is kind.", "A man walked by."],
        ["The old man was lazy and rude.", "My grandmother is a nurse."],
        ["A wheelchair user became a police officer. Muslims and Christians met at the mosque."],
        ["Nothing about people here at all."],
    ]
    for rec in texts:
        t = tally_record(rec, tally=t)
    s = summarise(t)
    BiasEvidence.model_validate(s)  # the shape the evidence expects
    female = _group(s, "gender", "female")
    assert female["mentions"] == 3 and female["records"] == 2  # woman, she, grandmother
    assert female["positive_rate"] == 0.6667 and female["negative_rate"] == 0.0
    assert {o["occupation"] for o in female["top_occupations"]} == {"engineer", "nurse"}
    older = _group(s, "age", "older_people")  # "old man" is a phrase: counted once, for age
    assert older["mentions"] == 1 and older["negative_rate"] == 1.0
    assert _group(s, "gender", "male")["mentions"] == 1  # "A man walked by"; "old man" went to age
    disabled = _group(s, "disability", "physical")
    assert disabled["mentions"] == 1 and disabled["top_occupations"][0]["occupation"] == "police officer"
    assert _group(s, "religion", "muslim")["mentions"] == 2  # muslims, mosque
    assert s["records"] == 4 and s["sentences"] == 8
    assert "not a verdict" in s["disclaimer"]


def test_lexicon_is_documented_and_versioned():
    text = resources.files("ftaudit.data").joinpath("lexicons/bias_lexicon.yaml").read_text()
    assert "Art. 10(2)(f)" in text and "limitations" in text.lower()
    lex = default_lexicon()
    assert lex.version and set(lex.dimensions) == {"gender", "age", "ethnicity_nationality", "religion",
                                                   "disability"}


def test_words_of_a_sentence_are_its_words_case_folded_one_by_one():
    import sys

    from ftaudit.data.bias import _CASED_LIMIT, _WORD, _words

    # The fast path folds the sentence once; it must give what folding each word does, on every character that
    # folding changes (and none above the limit the fast path's character table stops at).
    changed = [chr(i) for i in range(sys.maxunicode + 1) if chr(i).casefold() != chr(i)]
    assert max(map(ord, changed)) < _CASED_LIMIT
    for c in changed:
        for sentence in (f"a{c}b x", f"{c}-{c}'s {c}", f"the {c}{c}"):
            assert _words(sentence) == [w.casefold() for w in _WORD.findall(sentence)], repr(sentence)
