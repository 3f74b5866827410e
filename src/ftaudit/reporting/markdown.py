"""Markdown rendering of a Document: sections of items (label, value, citation, source), tables, and the
completeness checklist at the end."""

from __future__ import annotations

from ftaudit.reporting.completeness import checklist_lines
from ftaudit.reporting.document import Document, Item, Table

_FLAG = {"awaiting_human": "⚠ ", "awaiting_evidence": "⚠ "}


def md_text(text: str) -> str:
    """Angle brackets escaped: a placeholder such as <PERSON> would be swallowed as an HTML tag by renderers."""
    return str(text).replace("<", "&lt;").replace(">", "&gt;")


def cell(text: str) -> str:
    return md_text(text).replace("|", "\\|").replace("\n", " ")


def table_lines(t: Table) -> list[str]:
    out = [f"**{t.title}**", ""] if t.title else []
    out.append("| " + " | ".join(cell(h) for h in t.headers) + " |")
    out.append("|" + "---|" * len(t.headers))
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    if not t.rows:
        out.append("| " + " | ".join(["—"] * len(t.headers)) + " |")
    if t.note:
        out += ["", f"*{t.note}*"]
    return out + [""]


def item_line(it: Item) -> str:
    src = f" — *{it.source}*" if it.source and it.status in ("evidence", "answered") else ""
    note = f" ({it.note})" if it.note else ""
    value = it.display.replace("\n", "\n  ")
    return f"- **{it.label}** [{it.citation}]: {_FLAG.get(it.status, '')}{value}{note}{src}"


def header_lines(doc: Document) -> list[str]:
    return [
        f"# {doc.title}",
        "",
        f"*{doc.citation}* · run `{doc.run_id}` · record of {doc.record_updated_at.isoformat()} · "
        f"ftaudit {doc.ftaudit_version}",
        "",
        f"**Scope.** {doc.scope}",
        "",
    ]


def body_lines(doc: Document, level: int = 2) -> list[str]:
    out: list[str] = []
    h = "#" * level
    for s in doc.sections:
        out += [f"{h} {s.title}", ""]
        if s.citation:
            out += [f"*{s.citation}*", ""]
        if s.note:
            out += [s.note, ""]
        if s.show_items and s.items:
            out += [item_line(i) for i in s.items] + [""]
        for t in s.tables:
            out += table_lines(t)
    return out


def render_markdown(doc: Document) -> str:
    lines = header_lines(doc) + body_lines(doc)
    lines += ["## Completeness", ""] + checklist_lines(doc) + [""]
    return "\n".join(lines)
