"""The SQLite ledger: one file, the default for a single machine."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ftaudit.errors import BadInput, RuntimeFailure
from ftaudit.ledger.store import TABLES, LedgerCorrupt, Store

SQLITE_MAGIC = b"SQLite format 3\x00"
APPLICATION_ID = 0x66746175  # "ftau", in the database header of every ledger file ftaudit creates


def _create_in_wal_mode(path: Path) -> None:
    """A new, empty ledger file that is in WAL mode (readers do not block the writer) from the moment it exists.
    Switching a visible file to WAL needs it to itself, and jobs opening a new ledger together, or a reviewer
    polling it, could starve the switch; so the file is made beside the target and linked into place (if another
    job won the race, its file is used)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise BadInput(f"cannot create {path.parent}: {exc.strerror}") from None
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # writes the header, which keeps the WAL mode
        conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


class SqliteStore(Store):
    seq_type = "INTEGER"  # INTEGER PRIMARY KEY is SQLite's rowid: the cheapest ordered key
    float_type = "REAL"

    def __init__(self, path: Path, *, create: bool):
        self.path = path
        self.display = str(path)
        if path.is_dir():
            raise BadInput(f"{path}: is a directory; pass the ledger file (e.g. {path / 'ledger.sqlite'})")
        if path.exists():
            with open(path, "rb") as fh:
                magic = fh.read(len(SQLITE_MAGIC))
            if magic and magic != SQLITE_MAGIC:
                raise BadInput(f"{path}: not a SQLite database, so not an ftaudit ledger; check --ledger")
        elif not create:
            raise BadInput(f"{path}: no ledger here; pass --ledger PATH or set FTAUDIT_LEDGER")
        else:
            _create_in_wal_mode(path)
        try:
            # isolation_level=None: we issue BEGIN ourselves, so BEGIN IMMEDIATE means what it says.
            self.conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 60000")
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: sqlite3.Error) -> Exception:
        msg = str(exc)
        if "not a database" in msg:
            return BadInput(f"{self.path}: not a SQLite database, so not an ftaudit ledger; check --ledger")
        if "malformed" in msg or "corrupt" in msg:
            return LedgerCorrupt(f"{self.path}: ledger file is damaged ({msg})")
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg):
            return RuntimeFailure(f"{self.path}: ledger is locked by another writer for too long ({msg})")
        if isinstance(exc, sqlite3.OperationalError) and "readonly" in msg:
            return BadInput(f"{self.path}: ledger is read-only; check the file permissions")
        return LedgerCorrupt(f"{self.path}: ledger cannot be read ({msg})")

    def has_schema(self) -> bool:
        rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        names = {r[0] for r in rows}
        if not names:
            return False
        if not set(TABLES) <= names:
            raise BadInput(f"{self.path}: a SQLite database, but not an ftaudit ledger (tables missing)")
        return True

    @contextmanager
    def transaction(self, *, write: bool, ledger_lock: bool = True) -> Iterator[None]:
        if self.conn.in_transaction:  # nested: the outer transaction already holds the snapshot or the lock
            yield
            return
        try:
            # A read transaction is one WAL snapshot: head and entries are read at the same point in time.
            self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self.conn.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        try:
            cur = self.conn.execute(sql, tuple(params))
            while True:
                rows = cur.fetchmany(2000)
                if not rows:
                    return
                yield from rows
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    def integrity_problem(self) -> str | None:
        try:
            rows = self.conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        lines = [ln.strip() for r in rows if r[0] != "ok" for ln in str(r[0]).splitlines()]
        problems = [ln for ln in lines if ln and not ln.startswith("***")]
        return f"{problems[0]}; {len(problems) - 1} more problem(s)" if problems else None

    def close(self) -> None:
        self.conn.close()
