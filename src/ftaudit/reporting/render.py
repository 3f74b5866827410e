"""Render every document of a run into RUN_DIR/docs/: build all in memory first, then write each file atomically,
so a failure (bad answers, a renderer error) leaves the previous documents untouched and nothing half-written.

    render_all(run_dir, answers="answers.yaml")            -> [Path, ...]
    render_record(record, run_dir, answers=Answers(), formats={"json", "md"})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from ftaudit.errors import BadInput
from ftaudit.io import atomic_write_bytes
from ftaudit.record import RunRecord
from ftaudit.reporting.annex import annex_xi, annex_xii
from ftaudit.reporting.answers import Answers, load_answers
from ftaudit.reporting.bom import build_bom, validate_bom
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.copyright_policy import copyright_policy_doc
from ftaudit.reporting.document import Document
from ftaudit.reporting.instructions import instructions_for_use
from ftaudit.reporting.markdown import render_markdown
from ftaudit.reporting.model_card import model_card_doc, render_model_card
from ftaudit.reporting.monitoring_plan import post_market_monitoring_plan
from ftaudit.reporting.risk import risk_assessment
from ftaudit.reporting.training_summary import training_content_summary_doc

DOCS_DIR = "docs"
FORMATS = ("json", "md", "html", "pdf")
# Documents with a JSON twin (the source of truth); the model card and the instructions are Markdown by nature.
JSON_DOCS = ("annex_xi", "annex_xii", "training_content_summary", "copyright_policy", "risk_assessment",
             "post_market_monitoring_plan")


# Every document's machine name, in the order build_documents returns them (the Markdown files' stems).
DOCUMENTS = ("model_card", "annex_xi", "annex_xii", "training_content_summary", "copyright_policy", "risk_assessment",
             "instructions_for_use", "post_market_monitoring_plan")
# Every file render_files can write, with the format that writes it.
FILES: dict[str, str] = {**{f"{n}.json": "json" for n in JSON_DOCS}, "ml_bom.cdx.json": "json",
                         "completeness.json": "json", **{f"{n}.md": "md" for n in DOCUMENTS},
                         "report.html": "html", "report.pdf": "pdf"}


def _dump(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def build_documents(ctx: Ctx) -> list[Document]:
    return [model_card_doc(ctx), annex_xi(ctx), annex_xii(ctx), training_content_summary_doc(ctx),
            copyright_policy_doc(ctx), risk_assessment(ctx), instructions_for_use(ctx),
            post_market_monitoring_plan(ctx)]


def render_files(ctx: Ctx, formats: Iterable[str] = FORMATS) -> dict[str, bytes]:
    """{relative path: bytes} for the requested formats; writes nothing."""
    formats = set(formats)
    unknown = formats - set(FORMATS)
    if unknown or not formats:
        raise BadInput(f"--format: unknown format {sorted(unknown)[0]!r} (choose from {', '.join(FORMATS)})"
                       if unknown else "--format: give at least one of " + ", ".join(FORMATS))
    docs = build_documents(ctx)
    by_name = {d.document: d for d in docs}
    out: dict[str, bytes] = {}
    if "json" in formats:
        for name in JSON_DOCS:
            out[f"{name}.json"] = _dump(by_name[name].model_dump(mode="json"))
        bom = _dump(build_bom(ctx))
        validate_bom(bom.decode("utf-8"))
        out["ml_bom.cdx.json"] = bom
        out["completeness.json"] = _dump({d.document: d.completeness.model_dump(mode="json") for d in docs})
    if "md" in formats:
        out["model_card.md"] = render_model_card(ctx, by_name["model_card"]).encode("utf-8")
        for d in docs[1:]:
            out[f"{d.document}.md"] = render_markdown(d).encode("utf-8")
    if "html" in formats or "pdf" in formats:
        from ftaudit.reporting.html import render_html

        page = render_html(ctx, docs)
        if "html" in formats:
            out["report.html"] = page.encode("utf-8")
        if "pdf" in formats:
            from ftaudit.reporting.pdf import render_pdf

            out["report.pdf"] = render_pdf(page)
    return out


def render_record(record: RunRecord, run_dir: str | Path, *, answers: Answers | None = None,
                  formats: Iterable[str] = FORMATS, monitor_plan=None) -> list[Path]:
    run_dir = Path(run_dir)
    ctx = Ctx(record=record, run_dir=run_dir, answers=answers or Answers(), monitor_plan=monitor_plan)
    files = render_files(ctx, formats)
    target = run_dir / DOCS_DIR
    return [atomic_write_bytes(target / rel, data) for rel, data in files.items()]


def render_all(run_dir: str | Path, *, answers: str | Path | Answers | None = None,
               formats: Iterable[str] = FORMATS, monitor: str | Path | None = None) -> list[Path]:
    """Render the documents of the run in `run_dir` (its run_record.json) into `run_dir/docs/`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: no such run directory")
    record = RunRecord.load(run_dir)
    parsed = answers if isinstance(answers, Answers) else load_answers(answers)
    plan = None
    if monitor is not None:
        from ftaudit.monitor.plan import load_plan

        plan = load_plan(monitor)
    return render_record(record, run_dir, answers=parsed, formats=formats, monitor_plan=plan)
