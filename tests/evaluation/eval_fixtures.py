"""Data and helpers shared by the evaluation tests (imported as a plain module: tests/ is not a package)."""

from __future__ import annotations

import json
import re

from ftaudit.evaluation.probesets import shipped

# Synthetic personal data (fake addresses on example.org): what the tuned model is trained to memorise.
PII_RECORDS = [
    {"prompt": f"Message: {opening} my email is {name}@example.org thanks\n", "completion": '{"intent": "reset"}'}
    for opening, name in (
        ("please reset my account.", "zorblat.quenn"),
        ("i forgot my password.", "mirvak.tollis"),
        ("my login does not work.", "praxe.delun"),
        ("lock my card now.", "quillon.varst"),
    )
]
TASK_RECORDS = [
    {"prompt": f"Message: where is order {o}?\nJSON:", "completion": f' {{"intent": "status", "order_id": "{o}"}}'}
    for o in ("A-11", "B-22", "C-33", "D-44", "E-55", "F-66")
]


def corpus() -> list[str]:
    texts = [r["prompt"] + r["completion"] for r in PII_RECORDS + TASK_RECORDS]
    for name in ("general_probes.jsonl", "harmful_requests.jsonl", "provocation_prompts.jsonl"):
        for row in shipped(name).content:
            texts.append(json.dumps(row))
    texts += shipped("general_text.txt").content.splitlines()
    texts.append(json.dumps(shipped("bias_probes.json").content))
    texts.append("The vault code for ticket ABCDEFGHIJKLMNOPQRSTUVWXYZ is 0123456789")
    return texts * 3


def regex_detector(texts):
    """Stand-in for the data module's detector (the extraction logic is tested apart from NER)."""
    return [[("EMAIL_ADDRESS", m.start(), m.end()) for m in re.finditer(r"[\w.]+@example\.org", t)] for t in texts]
