"""Reports that read as a flow of paragraphs, tables and bar charts (the data-governance report), rendered to
Markdown and self-contained HTML by the same table and chart code as every other document of a run.

A paragraph may use two inline marks, **bold** and `code`; everything else is escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from ftaudit.reporting.charts import bar_chart
from ftaudit.reporting.document import Table
from ftaudit.reporting.markdown import md_text, table_lines

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}
h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}figure{margin:.5em 0 1.5em}
figcaption{font-weight:600;margin-bottom:.3em}"""


@dataclass
class BarChart:
    title: str
    labels: list[str]
    values: list[float]
    unit: str = ""


@dataclass
class FlowSection:
    title: str
    parts: list[str | Table | BarChart] = field(default_factory=list)


def _inline_html(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def flow_markdown(title: str, intro: str, sections: list[FlowSection]) -> str:
    lines = [f"# {title}", "", md_text(intro), ""]
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        for part in sec.parts:
            if isinstance(part, str):
                lines += [md_text(part), ""]
            elif isinstance(part, Table) and part.rows:
                lines += table_lines(part)
            # Charts are HTML-only; their numbers are in the neighbouring tables.
    return "\n".join(lines).rstrip() + "\n"


def flow_html(title: str, intro: str, sections: list[FlowSection]) -> str:
    from ftaudit.reporting.html import table_html

    body = [f"<h1>{html.escape(title)}</h1><p>{_inline_html(intro)}</p>"]
    for sec in sections:
        body.append(f"<h2>{html.escape(sec.title)}</h2>")
        for part in sec.parts:
            if isinstance(part, str):
                body.append(f"<p>{_inline_html(part)}</p>")
            elif isinstance(part, Table) and part.rows:
                body.append(table_html(part))
            elif isinstance(part, BarChart) and part.values:
                unit = f" {part.unit}" if part.unit else ""
                body.append(f"<figure>{bar_chart(part.title, part.labels, [('', part.values)], unit=unit)}</figure>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
