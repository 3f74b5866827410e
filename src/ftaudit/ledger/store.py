"""Storage behind the ledger: one small interface, a SQLite and a PostgreSQL implementation.

The chain lives in `entries`; `head` is one signed row (count and last hash) updated in the same transaction as
every append, so that truncating the tail is detectable. `runs` and `lineages` are projections for fast queries:
they are not trusted — `ftaudit verify` rebuilds them from the chain and compares.

Writers serialise on a lock taken before reading the head (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
transaction-scoped advisory lock), so two jobs appending at once still leave one valid chain.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from ftaudit.errors import BadInput, RuntimeFailure

LEDGER_ENV = "FTAUDIT_LEDGER"
SQLITE_FILENAME = "ledger.sqlite"
TABLES = ("meta", "keys", "entries", "head", "runs", "lineages")


class LedgerCorrupt(RuntimeFailure):
    """The store answered, but its content cannot be read (a damaged file or table)."""


def schema_sql(seq_type: str, float_type: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, public_key TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS entries (
              seq {seq_type} PRIMARY KEY,
              kind TEXT NOT NULL,
              created_at TEXT NOT NULL,
              key_id TEXT NOT NULL,
              prev_hash TEXT NOT NULL,
              content TEXT NOT NULL,
              content_sha256 TEXT NOT NULL,
              entry_hash TEXT NOT NULL,
              signature TEXT NOT NULL,
              run_id TEXT,
              lineage_id TEXT)""",
        "CREATE INDEX IF NOT EXISTS entries_by_run ON entries (run_id, seq)",
        f"""CREATE TABLE IF NOT EXISTS head (
              id INTEGER PRIMARY KEY CHECK (id = 1),
              count {seq_type} NOT NULL,
              head_hash TEXT NOT NULL,
              updated_at TEXT NOT NULL,
              key_id TEXT NOT NULL,
              signature TEXT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS runs (
              run_id TEXT PRIMARY KEY,
              lineage_id TEXT,
              status TEXT NOT NULL,
              regulatory_flops {float_type},
              base_model TEXT,
              output_name TEXT,
              parent_run_id TEXT,
              record_created_at TEXT,
              first_seq {seq_type} NOT NULL,
              last_seq {seq_type} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS runs_by_lineage ON runs (lineage_id, first_seq)",
        "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, first_seq)",
        f"""CREATE TABLE IF NOT EXISTS lineages (
              lineage_id TEXT PRIMARY KEY,
              base_model TEXT,
              first_run_id TEXT,
              seq {seq_type} NOT NULL)""",
    ]


RUN_COLUMNS = ("run_id", "lineage_id", "status", "regulatory_flops", "base_model", "output_name",
               "parent_run_id", "record_created_at", "first_seq", "last_seq")
ENTRY_COLUMNS = ("seq", "kind", "created_at", "key_id", "prev_hash", "content", "content_sha256", "entry_hash",
                 "signature", "run_id", "lineage_id")


class Store(ABC):
    """SQL with `?` placeholders; a backend translates them. Rows come back as tuples."""

    display: str  # where the ledger is, safe to print (no password)

    @abstractmethod
    def has_schema(self) -> bool: ...

    @abstractmethod
    @contextmanager
    def transaction(self, *, write: bool, ledger_lock: bool = True) -> Iterator[None]:
        """A transaction; `write=True` holds the ledger's writer lock until it ends, unless `ledger_lock=False`
        (the monitor's event chains: one per writer, so writers need not wait for each other)."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    @abstractmethod
    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        """Rows one by one, without loading a large ledger into memory."""

    @abstractmethod
    def close(self) -> None: ...

    def integrity_problem(self) -> str | None:
        """A storage-level check (page checksums and b-trees) where the backend has one; None when sound."""
        return None

    seq_type = "BIGINT"
    float_type = "DOUBLE PRECISION"
    partitions = False  # True where tables can be partitioned by range (PostgreSQL)

    def create_schema(self) -> None:
        for stmt in schema_sql(self.seq_type, self.float_type):
            self.execute(stmt)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


def default_location() -> str:
    env = os.environ.get(LEDGER_ENV)
    if env:
        return env
    import platformdirs

    return str(Path(platformdirs.user_data_dir("ftaudit")) / SQLITE_FILENAME)


def is_database_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | os.PathLike | None, *, create: bool) -> Store:
    location = str(location) if location else default_location()
    if is_database_url(location):
        from ftaudit.ledger.postgres import PostgresStore

        return PostgresStore(location)
    if "://" in location:
        raise BadInput(f"{location.split('://')[0]}:// ledgers are not supported; use a file path or postgresql://")
    from ftaudit.ledger.sqlite import SqliteStore

    return SqliteStore(Path(location).expanduser(), create=create)
