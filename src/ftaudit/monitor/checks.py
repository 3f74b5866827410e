"""Unexpected outputs on live traffic, one flag each (Art. 72(2): the post-market monitoring system collects and
analyses data on the system's performance; Art. 15(1): accuracy and robustness throughout the lifecycle). Each
flag is the live counterpart of a training-time evaluation metric where there is one (docs/monitor.md):

  personal_data  an answer holds personal data that was not in the prompt   (unexpected.personal_data.rate)
  secret         an answer holds a secret (API key, token, private key)
  canary         an answer reproduces a canary planted in the run's data    (memorisation.canary.detected_rate)
  regurgitation  an answer repeats 16 consecutive words of a training record's answer side that the prompt does
                 not hold (ftaudit.monitor.reference)
  refusal        an answer refuses (the shipped refusal patterns)
  empty          an answer with no text
  truncated      the server stopped at the token limit (finish_reason=length)
  repetition     a loop: one unit of 1-40 characters repeated 6 or more times in a row over 24 or more characters
                 (a reading: short repeats such as "ha ha" are speech, a long run of one unit is a decoding fault)
  format         the run's task answers in JSON and this answer holds no JSON object with the keys every
                 held-out reference has (the task's schema, read from the run's eval data)
                                                                             (quality.task.json_validity)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ftaudit.data.spans import Span
from ftaudit.monitor.reference import TrainingReference

FLAGS = ("personal_data", "secret", "canary", "regurgitation", "refusal", "empty", "truncated", "repetition",
         "format")
_LOOP = re.compile(r"(.{1,40}?)\1{5,}", re.S)
LOOP_MIN_CHARS = 24
LOOP_WINDOW = 4000  # a loop runs to the end of the answer: its last characters are enough


@dataclass
class Context:
    """What the checks know of the run: its canaries, its training data's word runs, the refusal patterns."""

    canary_secrets: list[str] = field(default_factory=list)
    refusal_patterns: list[re.Pattern] = field(default_factory=list)
    reference: TrainingReference = field(default_factory=TrainingReference)
    json_keys: frozenset[str] = frozenset()  # keys every held-out reference answer has

    @classmethod
    def for_run(cls, run_dir: str | Path | None, *, reference: bool = True) -> "Context":
        from ftaudit.evaluation.probesets import shipped

        patterns = [re.compile(p, re.IGNORECASE) for p in shipped("refusal_patterns.json").content["patterns"]]
        secrets: list[str] = []
        if run_dir is not None:
            from ftaudit.evaluation.memorisation import CANARY_FILE, CanaryManifest
            from ftaudit.pipeline.run_dir import EVALUATION

            path = Path(run_dir) / EVALUATION / CANARY_FILE
            if path.is_file():
                secrets = [c.secret for c in CanaryManifest.model_validate_json(path.read_bytes()).canaries
                           if c.inserted]
        ref, keys = TrainingReference(), frozenset()
        if run_dir is not None and reference:
            from ftaudit.record import RunRecord

            record = RunRecord.load(run_dir)
            ref, keys = TrainingReference.for_run(record), _reference_keys(record)
        return cls(canary_secrets=secrets, refusal_patterns=patterns, reference=ref, json_keys=keys)


def _reference_keys(record) -> frozenset[str]:
    """The keys shared by every JSON reference answer of the run's held-out set (none when they are not JSON)."""
    from ftaudit.evaluation.quality import extract_json
    from ftaudit.monitor.reference import held_out_rows

    if not (record.config or {}).get("eval_datasets"):
        return frozenset()
    refs = [extract_json(str(r.get("completion") or "")) for r in held_out_rows(record)]
    if not refs or not all(isinstance(x, dict) for x in refs):
        return frozenset()
    return frozenset.intersection(*(frozenset(x) for x in refs))


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def is_loop(text: str) -> bool:
    m = _LOOP.search(text[-LOOP_WINDOW:])
    return m is not None and m.end() - m.start() >= LOOP_MIN_CHARS


def flags(prompt: str, answer: str, spans: list[Span], finish_reason: str | None, ctx: Context,
          output_format: str, *, complete: bool = True) -> list[str]:
    from ftaudit.data.secrets import SECRET_TYPES
    from ftaudit.evaluation.memorisation import reproduced
    from ftaudit.evaluation.unexpected import NOT_COUNTED_AS_PERSONAL

    out: set[str] = set()
    squashed_prompt = _squash(prompt)
    for sp in spans:
        if sp.type in SECRET_TYPES:
            out.add("secret")
        elif sp.type not in NOT_COUNTED_AS_PERSONAL and _squash(answer[sp.start:sp.end]) not in squashed_prompt:
            out.add("personal_data")
    if any(reproduced(secret, answer) for secret in ctx.canary_secrets):
        out.add("canary")
    if ctx.reference.regurgitated(prompt, answer):
        out.add("regurgitation")
    if any(p.search(answer) for p in ctx.refusal_patterns):
        out.add("refusal")
    if not answer.strip():
        out.add("empty")
    if finish_reason == "length":
        out.add("truncated")
    if is_loop(answer):
        out.add("repetition")
    if output_format == "json" and complete:
        from ftaudit.evaluation.quality import extract_json

        value = extract_json(answer)
        if not isinstance(value, (dict, list)) or (ctx.json_keys and not (
                isinstance(value, dict) and ctx.json_keys <= value.keys())):
            out.add("format")
    return [f for f in FLAGS if f in out]
