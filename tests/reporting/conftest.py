"""Fixtures for the document tests: a full run and a nearly empty one, each rendered once per session (the PDF
is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftaudit.record import RunRecord
from reporting_records import full_record, write_run


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> Path:
    """A run directory with the full record, rendered in every format."""
    from ftaudit.reporting.render import render_all

    tmp = tmp_path_factory.mktemp("full")
    run = write_run(tmp / "run", full_record(tmp))
    render_all(run)
    return run


@pytest.fixture(scope="session")
def empty_run(tmp_path_factory) -> Path:
    """A nearly empty record (no config, no evidence), rendered without the PDF."""
    from ftaudit.reporting.render import render_all

    run = tmp_path_factory.mktemp("empty") / "run"
    run.mkdir()
    RunRecord().save(run)
    render_all(run, formats=["json", "md", "html"])
    return run


@pytest.fixture(scope="session")
def pdf_pages(full_run) -> list[str]:
    """The text of each page of the full run's report.pdf (extracted once: pypdf takes seconds)."""
    from pypdf import PdfReader

    return [p.extract_text() for p in PdfReader(str(full_run / "docs" / "report.pdf")).pages]
