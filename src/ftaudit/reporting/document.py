"""The neutral document every renderer reads: sections of items, each item with its value, citation and where it
came from. JSON is a dump of it (the source of truth); Markdown and HTML are renderings of the same object, so they
never disagree, and completeness is computed from the items, so every document can say what awaits a human.

An item is filled from evidence (the RunRecord or a file of the run), from a human answer, or it says what it
awaits. Nothing in between: a value is never guessed.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ftaudit.regulation.figures import flops2
from ftaudit.strict import Strict

Status = Literal["evidence", "answered", "awaiting_human", "awaiting_evidence", "not_applicable"]
FILLED = ("evidence", "answered", "not_applicable")



class Item(Strict):
    id: str = Field(description="Stable id within the document, e.g. '1.1.d.parameters'.")
    label: str
    citation: str = Field(description="The provision that asks for this item.")
    status: Status
    value: Any = Field(None, description="Exact value (numbers unrounded).")
    display: str = Field(description="What a reader sees: numbers to two significant figures.")
    source: str | None = Field(None, description="record.<path>, a run file, or answers.<key>.")
    question: str | None = Field(None, description="Key in answers.yaml that can fill this item (never over evidence).")
    note: str | None = None


class Table(Strict):
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str | None = None


class Section(Strict):
    id: str
    title: str
    citation: str = ""
    note: str | None = None
    items: list[Item] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    show_items: bool = Field(True, description="False when a table shows the items (they still count).")


class Completeness(Strict):
    filled_from_evidence: list[str] = Field(default_factory=list)
    answered_by_human: list[str] = Field(default_factory=list)
    not_applicable: list[str] = Field(default_factory=list)
    awaiting_human: list[str] = Field(default_factory=list)
    awaiting_evidence: list[str] = Field(default_factory=list)
    total: int = 0
    filled: int = 0
    fraction_filled: float = 0.0


class Document(Strict):
    document: str = Field(description="Machine name, also the file stem.")
    title: str
    citation: str
    run_id: str
    record_updated_at: datetime
    ftaudit_version: str
    scope: str = Field(description="What the document covers and why (e.g. the modification only, recital 109).")
    sections: list[Section] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict, description="Structured content beyond the items "
                                  "(the risk register, the classification).")
    completeness: Completeness = Field(default_factory=Completeness)

    def items(self) -> list[Item]:
        return [i for s in self.sections for i in s.items]


# ------------------------------------------------------------------------------------------------ formatting
def sig2(x: float) -> str:
    """Two significant figures for a number shown to a regulator (docs/design.md); exact values stay in `value`."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"  # a count is exact; two significant figures are for measured quantities
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e6:
        digits = max(0, 1 - math.floor(math.log10(abs(x))))
        text = f"{round(x, digits):.{digits}f}"
        # 1234 -> '1200': round to two significant figures left of the point as well
        if digits == 0:
            text = f"{int(float(f'{x:.2g}')):,}"
        return text
    return flops2(x)


def show(value: Any) -> str:
    """Plain text for any JSON-like value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return sig2(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "; ".join(show(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {show(v)}" for k, v in value.items())
    return str(value)


def pct(fraction: float) -> str:
    return sig2(100 * fraction) + " %"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


# ------------------------------------------------------------------------------------------------ filling
class Filler:
    """Builds items for one document from evidence and answers; records which answer keys it consulted."""

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers
        self.used: set[str] = set()

    def item(self, id: str, label: str, citation: str, *, value: Any = None, source: str | None = None,
             display: str | None = None, question: str | None = None, awaiting: str | None = None,
             need: Literal["evidence", "human"] = "evidence", note: str | None = None) -> Item:
        """Evidence wins; else a human answer (`question`); else the item says what it awaits (`awaiting`)."""
        if question:
            self.used.add(question)
        if not _empty(value):
            return Item(id=id, label=label, citation=citation, status="evidence", value=_jsonable(value),
                        display=display if display is not None else show(value), source=source, question=question,
                        note=note)
        if question and not _empty(self.answers.get(question)):
            ans = self.answers[question]
            return Item(id=id, label=label, citation=citation, status="answered", value=_jsonable(ans),
                        display=show(ans), source=f"answers.{question}", question=question, note=note)
        if need == "human" or (question and awaiting is None):
            text = f"awaiting a human answer ({awaiting})" if awaiting else \
                f"awaiting a human answer (`{question}` in answers.yaml)" if question else "awaiting a human answer"
            status: Status = "awaiting_human"
        else:
            text = f"awaiting evidence: {awaiting or 'not in the run record'}"
            if question:
                text += f"; or answer `{question}` in answers.yaml"
            status = "awaiting_evidence"
        return Item(id=id, label=label, citation=citation, status=status, display=text, source=source,
                    question=question, note=note)

    def ask(self, id: str, label: str, citation: str, question: str, *, note: str | None = None) -> Item:
        """An item only a person can fill."""
        return self.item(id, label, citation, question=question, need="human", note=note)

    def na(self, id: str, label: str, citation: str, why: str) -> Item:
        return Item(id=id, label=label, citation=citation, status="not_applicable", display=f"not applicable: {why}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
