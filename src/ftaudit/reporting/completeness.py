"""Which fields of a document came from evidence, which from a person, and which still await one or the other.

Every document carries this (`completeness` in the JSON, a checklist in the Markdown), so a reviewer sees at a
glance what the tool filled and what a human must still supply; nothing is counted as filled unless it was.
"""

from __future__ import annotations

from ftaudit.reporting.document import Completeness, Document, Item

_MARK = {
    "evidence": "[x]",
    "answered": "[x]",
    "not_applicable": "[x]",
    "awaiting_human": "[ ]",
    "awaiting_evidence": "[ ]",
}
_WORDS = {
    "evidence": "from evidence",
    "answered": "answered by a person",
    "not_applicable": "not applicable",
    "awaiting_human": "awaits a human answer",
    "awaiting_evidence": "awaits evidence",
}


def all_items(doc: Document) -> list[Item]:
    return doc.items()


def completeness(items: list[Item]) -> Completeness:
    c = Completeness()
    buckets = {
        "evidence": c.filled_from_evidence,
        "answered": c.answered_by_human,
        "not_applicable": c.not_applicable,
        "awaiting_human": c.awaiting_human,
        "awaiting_evidence": c.awaiting_evidence,
    }
    for it in items:
        buckets[it.status].append(it.id)
    c.total = len(items)
    c.filled = len(c.filled_from_evidence) + len(c.answered_by_human) + len(c.not_applicable)
    c.fraction_filled = c.filled / c.total if c.total else 1.0
    return c


def finalise(doc: Document) -> Document:
    """Compute the completeness block of `doc` from its items (call once the document is built)."""
    doc.completeness = completeness(all_items(doc))
    return doc


def checklist_lines(doc: Document) -> list[str]:
    """Markdown checklist: filled items ticked, open items first so the to-do list leads."""
    items = all_items(doc)
    open_items = [i for i in items if i.status in ("awaiting_human", "awaiting_evidence")]
    done = [i for i in items if i.status not in ("awaiting_human", "awaiting_evidence")]
    c = doc.completeness
    lines = [f"{c.filled} of {c.total} fields filled ({len(c.filled_from_evidence)} from evidence, "
             f"{len(c.answered_by_human)} answered by a person, {len(c.not_applicable)} not applicable); "
             f"{len(c.awaiting_human)} await a human answer, {len(c.awaiting_evidence)} await evidence.", ""]
    for it in open_items + done:
        how = _WORDS[it.status]
        if it.status == "awaiting_human" and it.question:
            how += f" (`{it.question}`)"
        elif it.source and it.status in ("evidence", "answered"):
            how += f" ({it.source})"
        lines.append(f"- {_MARK[it.status]} {it.label} — {how}")
    return lines
