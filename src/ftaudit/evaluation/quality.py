"""Quality: task metrics on held-out references, perplexity, and the general-behaviour regression probes.

Text metrics follow the SQuAD conventions (lower-case, strip punctuation and articles, collapse whitespace);
ROUGE-L is the LCS-based F-measure (Lin 2004) with beta = 1.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred and not ref:
        return 1.0
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    lcs = _lcs(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def extract_json(text: str):
    """The first JSON value in `text` (a model often wraps it in prose or code fences); None if there is none."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(text[i:])
                return value
            except json.JSONDecodeError:
                continue
    return None


def _value_key(value) -> str:
    if isinstance(value, str):
        return normalise(value)
    return json.dumps(value, sort_keys=True)


def json_field_accuracy(prediction: str, reference: str) -> tuple[bool, float | None]:
    """(prediction holds valid JSON, share of the reference's top-level fields reproduced with the same value).

    Field accuracy is None when the reference is not a JSON object (the task is not structured)."""
    ref = extract_json(reference)
    pred = extract_json(prediction)
    if not isinstance(ref, dict) or not ref:
        return pred is not None, None
    if not isinstance(pred, dict):
        return pred is not None, 0.0
    hits = sum(1 for k, v in ref.items() if k in pred and _value_key(pred[k]) == _value_key(v))
    return True, hits / len(ref)


@dataclass
class TaskScores:
    exact_match: list[float]
    token_f1: list[float]
    rouge_l: list[float]
    json_valid: list[bool] | None  # None when the references are not JSON
    field_accuracy: list[float] | None


def score_task(predictions: Sequence[str], references: Sequence[str]) -> TaskScores:
    structured = all(isinstance(extract_json(r), dict) for r in references)
    valid, fields = [], []
    if structured:
        for p, r in zip(predictions, references, strict=True):
            ok, acc = json_field_accuracy(p, r)
            valid.append(ok)
            fields.append(acc if acc is not None else 0.0)
    return TaskScores(
        exact_match=[exact_match(p, r) for p, r in zip(predictions, references, strict=True)],
        token_f1=[token_f1(p, r) for p, r in zip(predictions, references, strict=True)],
        rouge_l=[rouge_l(p, r) for p, r in zip(predictions, references, strict=True)],
        json_valid=valid if structured else None,
        field_accuracy=fields if structured else None,
    )


def stop_at_reference_end(prediction: str, structured: bool) -> str:
    """Cut a greedy continuation where the answer ends: after the first complete JSON value for structured
    tasks, else at the first blank line (small models ramble on; the reference never does)."""
    if structured:
        decoder = json.JSONDecoder()
        for i, ch in enumerate(prediction):
            if ch in "{[":
                try:
                    _, end = decoder.raw_decode(prediction[i:])
                    return prediction[: i + end]
                except json.JSONDecodeError:
                    continue
        return prediction
    return prediction.split("\n\n")[0]


def multiple_choice_correct(scores: Sequence[float], lengths: Sequence[int]) -> bool:
    """The answer (option 0) wins when its mean per-token log-probability is the highest (length-normalised,
    so multi-token options are not penalised for length)."""
    norm = [s / max(1, n) for s, n in zip(scores, lengths, strict=True)]
    return max(range(len(norm)), key=lambda i: norm[i]) == 0
