"""Language, length and token-count statistics.

The AI Office training-content summary (§1) asks for the linguistic characteristics of the training content and
a size band in tokens; Art. 10(3) asks whether the data is representative for the intended use. These numbers are
the factual part of both answers.

Language identification is a small, dependency-free method: the script of the letters (Latin, Cyrillic, Greek,
Arabic, Hebrew, Devanagari, Thai, Hangul, Kana, Han) and, for Latin and Cyrillic scripts, a profile of each
language's most frequent function words. It is reliable on sentences and longer texts and says "und"
(undetermined) when the evidence is too thin; it is not a classifier for single words.

Token counts: a regular-expression word/punctuation count by default (no tokenizer needed), or the exact count
of a Hugging Face tokenizer when the caller passes one (`tokenizer=` name or path, loaded offline).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ftaudit.data.evidence import HistogramBin, LengthDistribution
from ftaudit.data.pieces import pieces

# Function-word profiles: very frequent, short, language-specific words (a reading of "linguistic characteristics").
_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to is in that it was for on are with as this be at have from not by they you he she but or",
        "de": "der die das und ist nicht ein eine zu mit den von sich auf für dem des auch es ich sie wir aber oder",
        "fr": "le la les et est un une des du que qui dans pour pas sur au avec ce il elle nous vous sont mais ou",
        "es": "el la los las y es un una que de en por para con no se del al lo como pero su sus está son",
        "it": "il lo la gli le e è un una che di in per con non si del della sono ma come anche questo",
        "pt": "o a os as e é um uma que de em por para com não se do da dos das mas como são está",
        "nl": "de het een en is van in dat op te met voor niet zijn er aan ook als maar om wat",
        "sv": "och att det som en är på för med har inte av till den jag om men ett var",
        "da": "og at det som en er på for med har ikke af til den jeg om men et var",
        "pl": "i w nie na się że to jest z do jak po ale co tak od za przez jego",
        "cs": "a v se na je že to s z do jako ale o by jsem pro tak jeho ve",
        "ro": "și în de la cu este un o că nu pe pentru care mai din sunt",
        "fi": "ja on ei se että oli hän mutta kun tai niin ovat myös joka",
        "ru": "и в не на что он она с как это по но из за то все так его",
        "uk": "і в не на що він вона з як це по але із за та все так його",
        "bg": "и в не на че той тя с как това по но от за се да са",
    }.items()
}
# Unicode blocks per script; counted with one C-speed regex pass each (unicodedata.name per character is ~50× slower).
_SCRIPTS = {
    "LATIN": re.compile(r"[A-Za-z\u00C0-\u024F\u1E00-\u1EFF]"),
    "CYRILLIC": re.compile(r"[\u0400-\u04FF]"),
    "GREEK": re.compile(r"[\u0370-\u03FF\u1F00-\u1FFF]"),
    "ARABIC": re.compile(r"[\u0600-\u06FF\u0750-\u077F]"),
    "HEBREW": re.compile(r"[\u0590-\u05FF]"),
    "DEVANAGARI": re.compile(r"[\u0900-\u097F]"),
    "THAI": re.compile(r"[\u0E00-\u0E7F]"),
    "HANGUL": re.compile(r"[\uAC00-\uD7AF\u1100-\u11FF]"),
    "KANA": re.compile(r"[\u3040-\u30FF]"),
    "HAN": re.compile(r"[\u4E00-\u9FFF\u3400-\u4DBF]"),
}
_OTHER_SCRIPT = re.compile("[" + "".join(rx.pattern[1:-1] for name, rx in _SCRIPTS.items() if name != "LATIN") + "]")
_SCRIPT_LANG = {"GREEK": "el", "ARABIC": "ar", "HEBREW": "he", "DEVANAGARI": "hi", "THAI": "th", "HANGUL": "ko"}
_WORD = re.compile(r"\w+", re.UNICODE)
_WORDCHAR = re.compile(r"\w")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_CYRILLIC_LANGS = ("ru", "uk", "bg")
_LATIN_LANGS = tuple(k for k in _STOPWORDS if k not in _CYRILLIC_LANGS)
_WORD_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOPWORDS.items():
    for _w in _words:
        _WORD_LANGS[_w] = _WORD_LANGS.get(_w, ()) + (_lang,)


def detect_language(text: str, *, sample_chars: int = 2000) -> str:
    """ISO 639-1 code, or 'und' when undetermined."""
    sample = text[:sample_chars]
    if not _OTHER_SCRIPT.search(sample):  # Latin or no script: the counts need not be made
        if not _SCRIPTS["LATIN"].search(sample):
            return "und"
        return _by_function_words(_WORD.findall(sample.casefold()), _LATIN_LANGS)
    scripts = {name: len(rx.findall(sample)) for name, rx in _SCRIPTS.items()}
    script = max(scripts, key=scripts.get)
    if scripts[script] == 0:
        return "und"
    if script == "KANA" or (script == "HAN" and scripts["KANA"] > 0):
        return "ja"
    if script == "HAN":
        return "zh"
    if script in _SCRIPT_LANG:
        return _SCRIPT_LANG[script]
    return _by_function_words(_WORD.findall(sample.casefold()),
                              _CYRILLIC_LANGS if script == "CYRILLIC" else _LATIN_LANGS)


def _by_function_words(words: list[str], langs: tuple[str, ...]) -> str:
    if not words:
        return "und"
    hits = dict.fromkeys(langs, 0)
    langs_of = _WORD_LANGS.get
    for w in words:  # most words are no function word: one lookup each beats counting them first
        for lang in langs_of(w, ()):
            if lang in hits:
                hits[lang] += 1
    best = max(hits, key=hits.get)
    ranked = sorted(hits.values(), reverse=True)
    # Need a minimum of evidence, and a margin over the runner-up (fr/es/it/pt share many function words).
    if hits[best] < 2 or hits[best] < 0.05 * len(words) or (len(ranked) > 1 and ranked[0] == ranked[1]):
        return "und"
    return best


# Each ASCII byte as what _TOKEN sees in it: w (word character), s (space) or p (a punctuation token alone).
_ASCII_CLASSES = bytes(b"w"[0] if _WORDCHAR.match(chr(c)) else b"s"[0] if chr(c).isspace() else b"p"[0]
                       for c in range(128)) + b"p" * 128


def _tokens_in(piece: str) -> int:
    """len(_TOKEN.findall(piece)); on ASCII by counting word starts and punctuation bytes, without match objects."""
    if not piece.isascii():
        return len(_TOKEN.findall(piece))
    classes = b"s" + piece.encode("ascii").translate(_ASCII_CLASSES)
    return classes.count(b"p") + classes.count(b"sw") + classes.count(b"pw")


def regex_token_count(text: str) -> int:
    n, word_open = 0, False
    for _, piece in pieces(text):
        n += _tokens_in(piece) - (word_open and bool(_WORDCHAR.match(piece)))  # a blob cut mid-word
        word_open = bool(_WORDCHAR.match(piece[-1:]))
    return n


class TokenCounter:
    """Counts tokens with a HF tokenizer when given one, else words and punctuation marks."""

    def __init__(self, tokenizer: str | None = None):
        self.name = tokenizer
        self._tok = None
        if tokenizer:
            from ftaudit.errors import BadInput

            try:
                from transformers import AutoTokenizer

                self._tok = AutoTokenizer.from_pretrained(tokenizer)
            except Exception as exc:  # noqa: BLE001 - any loading failure is the user's argument
                raise BadInput(
                    f"cannot load tokenizer {tokenizer!r} ({type(exc).__name__}); pass a local tokenizer "
                    "directory or omit --tokenizer to count words and punctuation"
                ) from None

    @property
    def method(self) -> str:
        return self.method_name(self.name)

    @staticmethod
    def method_name(tokenizer: str | None) -> str:
        return f"tokens (hf-tokenizer:{tokenizer})" if tokenizer else "tokens (regex: words + punctuation marks)"

    def __call__(self, text: str) -> int:
        if self._tok is not None:
            # Piece by piece (cut at whitespace) so a huge record never becomes one huge encoding.
            return sum(len(self._tok(piece, add_special_tokens=False)["input_ids"]) for _, piece in pieces(text))
        return regex_token_count(text)


def distribution(lengths: Counter, unit: str) -> LengthDistribution:
    """The distribution of record lengths given as {length: records}; percentiles are numpy's default ('linear')
    on the lengths themselves, found by rank instead of from a sorted copy of every record's length."""
    if not lengths:
        return LengthDistribution(unit=unit, count=0, total=0, min=0, max=0, mean=0.0, p50=0.0, p90=0.0, p99=0.0)
    v, c = (np.array(column, dtype=np.int64) for column in zip(*sorted(lengths.items()), strict=True))
    n, top = int(c.sum()), int(v[-1])
    total = int((v * c).sum())
    # Powers of two: record lengths span orders of magnitude, linear bins would hide everything but one.
    edges = [0, 1] + [1 << k for k in range(1, max(1, top.bit_length()) + 1)]
    if edges[-1] <= top:
        edges.append(edges[-1] * 2)
    counts, _ = np.histogram(v, bins=edges, weights=c)
    hist = [HistogramBin(low=edges[i], high=edges[i + 1] - 1, count=int(k)) for i, k in enumerate(counts) if k]
    ends = np.cumsum(c)  # records with a length up to v[i]

    def at(rank: int) -> int:  # the length of the rank-th record in length order, 0-based
        return int(v[np.searchsorted(ends, rank, side="right")])

    def percentile(q: float) -> float:
        pos = (n - 1) * (q / 100)  # numpy's virtual index and interpolation, operation for operation
        below = int(pos)
        a, b, t = at(below), at(min(below + 1, n - 1)), pos - below
        return float(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)

    return LengthDistribution(
        unit=unit, count=n, total=total, min=int(v[0]), max=top, mean=round(total / n, 3),
        p50=percentile(50), p90=percentile(90), p99=percentile(99), histogram=hist,
    )


@dataclass
class TextStats:
    """Streaming accumulator over records: how many records have each length, so memory grows with the distinct
    lengths, not with the records."""

    chars: Counter = field(default_factory=Counter)
    tokens: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)  # records per language
    language_chars: Counter = field(default_factory=Counter)  # characters per language

    def add(self, n_chars: int, n_tokens: int, language: str) -> None:
        self.chars[n_chars] += 1
        self.tokens[n_tokens] += 1
        self.languages[language] += 1
        self.language_chars[language] += n_chars

    def char_distribution(self) -> LengthDistribution:
        return distribution(self.chars, "characters")

    def token_distribution(self, unit: str) -> LengthDistribution:
        return distribution(self.tokens, unit)
