"""What live traffic is compared with from the run's training data: prompt lengths and languages (for drift), and
hashed word runs of what the model was trained to say (for regurgitation). Streamed from the run's datasets with
bounds, so a terabyte of training data costs a sample, not the machine:

  REFERENCE_RECORDS   records read at most (the first ones of each file in order; the figures say how many)
  RUN_WORDS           a regurgitated run is 16 consecutive words of one training record's answer side
                      (completion, assistant turns, or text), lower-cased, that the prompt does not hold
                      (a reading: Carlini et al. 2021 count 50-token extractions; 16 words are about 20 tokens)
  MAX_RUNS            hashed runs kept at most (8 bytes each: 40 MB)
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

REFERENCE_RECORDS = 100_000
RUN_WORDS = 16
MAX_RUNS = 5_000_000
_WORDS = re.compile(r"\w+", re.UNICODE)


def word_runs(text: str, n: int = RUN_WORDS) -> list[int]:
    """64-bit hashes of every run of n consecutive words."""
    words = _WORDS.findall(text.casefold())
    return [int.from_bytes(hashlib.blake2b(" ".join(words[i:i + n]).encode(), digest_size=8).digest(), "big")
            for i in range(len(words) - n + 1)]


@dataclass
class TrainingReference:
    prompt_chars: list[int] = field(default_factory=list)
    languages: Counter = field(default_factory=Counter)
    runs: set[int] = field(default_factory=set)
    records: int = 0
    complete: bool = True  # False: more records than REFERENCE_RECORDS, or more runs than MAX_RUNS

    @classmethod
    def for_run(cls, record) -> "TrainingReference":
        from ftaudit.data.loading import iter_records
        from ftaudit.data.stats import detect_language
        from ftaudit.errors import BadInput
        from ftaudit.evaluation.memorisation import segments

        ref = cls()
        for spec in (record.config or {}).get("datasets") or []:
            for rec in iter_records(spec["path"], on_error="skip"):
                if ref.records >= REFERENCE_RECORDS:
                    ref.complete = False
                    return ref
                try:
                    segs = segments(rec.data)
                except BadInput:  # a record of another shape: not part of the reference
                    continue
                ref.records += 1
                prompt = "\n".join(t for role, t in segs if role in ("user", "system"))
                answer = "\n".join(t for role, t in segs if role in ("assistant", "text"))
                if prompt:
                    ref.prompt_chars.append(len(prompt))
                    ref.languages[detect_language(prompt)] += 1
                if len(ref.runs) < MAX_RUNS:
                    ref.runs.update(word_runs(answer))
                else:
                    ref.complete = False
        return ref

    def regurgitated(self, prompt: str, answer: str) -> bool:
        if not self.runs:
            return False
        seen = set(word_runs(prompt))
        return any(h in self.runs and h not in seen for h in word_runs(answer))


def held_out_rows(record) -> list[dict]:
    """The run's held-out task rows exactly as its evaluate stage read them (same files, same field mapping)."""
    from ftaudit.errors import BadInput
    from ftaudit.evaluation.probesets import read_jsonl, task_rows

    specs = (record.config or {}).get("eval_datasets") or []
    if not specs:
        raise BadInput("the run's config names no eval_datasets: there is no held-out task set")
    rows = [r for spec in specs for r in read_jsonl(spec["path"], what="held-out task data")[0]]
    return task_rows(rows, specs[0].get("prompt_field") or "prompt", specs[0].get("completion_field") or "completion")
