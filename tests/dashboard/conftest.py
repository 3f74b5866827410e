"""A ledger holding one full run (the document tests' record, with its data scan and evaluation), four users of
the four roles, and the app over it; `client_as(name)` is a signed-in browser-like client (cookies, CSRF)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from reporting_records import full_record, write_run

PASSWORD = "correct horse battery staple"
ROLES = {"ada": "admin", "rita": "reviewer", "erik": "engineer", "vic": "viewer"}


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def dash(location, tmp_path, monkeypatch):
    from ftaudit.dashboard import accounts
    from ftaudit.ledger.core import open_ledger

    key = tmp_path / "keys" / "signing_key.pem"
    monkeypatch.setenv("FTAUDIT_KEY", str(key))
    record = full_record(tmp_path)
    run_dir = write_run(tmp_path / "run", record)
    with open_ledger(location, key_path=key) as ledger:
        ledger.record_run(record)
        for name, role in ROLES.items():
            accounts.add_user(ledger, name, role, PASSWORD, by="test")
    return Dash(location=location, key=str(key), run_id=record.run_id, run_dir=run_dir)


class Dash:
    def __init__(self, *, location: str, key: str, run_id: str, run_dir: Path):
        self.location, self.key, self.run_id, self.run_dir = location, key, run_id, run_dir
        self._app = None

    def app(self, **settings):
        from ftaudit.dashboard.app import Settings, create_app

        if self._app is None or settings:
            self._app = create_app(Settings(ledger=self.location, key_path=self.key, **settings))
        return self._app

    def client(self, **settings):
        from fastapi.testclient import TestClient

        return TestClient(self.app(**settings), follow_redirects=False)

    def client_as(self, name: str, **settings):
        c = self.client(**settings)
        r = c.post("/login", data={"username": name, "password": PASSWORD, "next": "/"})
        assert r.status_code == 303, r.text
        return c

    def ledger(self):
        from ftaudit.ledger.core import open_ledger

        return open_ledger(self.location, key_path=self.key, create=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def ftaudit(*args: str, env=None):
    import os
    import subprocess

    return subprocess.run([sys.executable, "-m", "ftaudit.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)
