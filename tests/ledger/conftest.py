"""Fixtures for the ledger tests: a signing key and a ledger per test (PostgreSQL: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def key_path(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "keys" / "ledger_ed25519.pem"
    monkeypatch.setenv("FTAUDIT_KEY", str(path))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def location(request, tmp_path, key_path, monkeypatch) -> str:
    """A ledger location on each backend; also exported as $FTAUDIT_LEDGER for CLI calls."""
    loc = str(tmp_path / "ledger.sqlite") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    monkeypatch.setenv("FTAUDIT_LEDGER", loc)
    return loc


@pytest.fixture
def sqlite_location(tmp_path, key_path, monkeypatch) -> str:
    loc = str(tmp_path / "ledger.sqlite")
    monkeypatch.setenv("FTAUDIT_LEDGER", loc)
    return loc
