"""The documents' open questions as a web form: each answer is validated by the same typed model as
`ftaudit docs --answers`, stored as a signed ledger event with who and when, and merged into the answers the
documents are rendered with (latest answer per question wins; an empty one withdraws it)."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from ftaudit.errors import BadInput
from ftaudit.ledger.core import Ledger
from ftaudit.reporting.answers import QUESTIONS, Answers, parse_answers

ANSWER = "dashboard.answer"
MAX_TEXT = 5000


@dataclass(frozen=True)
class Field:
    name: str
    question: str
    citation: str
    kind: str  # text | integer | number | boolean | date | lines | choice
    choices: tuple[str, ...] = ()


def _kind(annotation: Any) -> tuple[str, tuple[str, ...]] | None:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    inner = args[0] if len(args) == 1 else annotation
    if typing.get_origin(inner) is Literal:
        return "choice", tuple(typing.get_args(inner))
    if typing.get_origin(inner) is list and typing.get_args(inner) == (str,):
        return "lines", ()
    simple = {str: "text", int: "integer", float: "number", bool: "boolean", date: "date"}
    if isinstance(inner, type) and inner in simple:
        return simple[inner], ()
    return None  # the risk register's nested answers: answers.yaml and `ftaudit docs --answers`


FIELDS: dict[str, Field] = {}
for _name, _f in QUESTIONS.items():
    _k = _kind(_f.annotation)
    if _k:
        FIELDS[_name] = Field(_name, _f.description or _name, (_f.json_schema_extra or {}).get("citation", ""), *_k)


def parse_value(field: Field, raw: str) -> Any:
    """A form string as the typed value (None: the answer withdrawn); BadInput names the question."""
    raw = raw.strip()
    if len(raw) > MAX_TEXT:
        raise BadInput(f"{field.name}: at most {MAX_TEXT:,} characters")
    if not raw:
        return None
    if field.kind == "boolean":
        if raw not in ("yes", "no"):
            raise BadInput(f"{field.name}: answer yes or no")
        value: Any = raw == "yes"
    elif field.kind == "lines":
        value = [line.strip() for line in raw.splitlines() if line.strip()]
    elif field.kind == "choice" and raw not in field.choices:
        raise BadInput(f"{field.name}: choose one of {', '.join(field.choices)}")
    else:
        value = raw
    parse_answers({field.name: value}, source=field.name)  # the answers model's own types and messages
    return value


def answered(ledger: Ledger, run_id: str) -> dict[str, dict]:
    """question -> {value, by, at} of the latest answer per question (withdrawn ones left out)."""
    latest: dict[str, dict] = {}
    for c in ledger.events(run_id=run_id, prefix=ANSWER):
        latest[c["data"]["question"]] = c["data"]
    return {q: a for q, a in latest.items() if a["value"] is not None}


def answers_for(ledger: Ledger, run_id: str) -> Answers:
    return parse_answers({q: a["value"] for q, a in answered(ledger, run_id).items()}, source="dashboard answers")


def record_answers(ledger: Ledger, run_id: str, form: dict[str, str], *, by: str, at: str) -> list[str]:
    """Validate every submitted answer first, then record the changed ones (nothing half-written)."""
    unknown = sorted(set(form) - set(FIELDS))
    if unknown:
        raise BadInput(f"unknown question {unknown[0]!r}")
    before = answered(ledger, run_id)
    changes = []
    for name, raw in form.items():
        value = parse_value(FIELDS[name], raw)
        if value != (before.get(name) or {}).get("value"):
            changes.append((name, value))
    if not changes:
        return []
    with ledger.store.transaction(write=True):
        for name, value in changes:
            ledger.record_event(run_id, ANSWER, {"question": name, "value": _jsonable(value), "by": by, "at": at})
    return [n for n, _ in changes]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
