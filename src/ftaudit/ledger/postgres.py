"""The PostgreSQL ledger, for teams: `postgresql://user@host/db` (psycopg 3, `pip install ftaudit[postgres]`)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ftaudit.errors import BadInput, RuntimeFailure, first_line
from ftaudit.ledger.store import TABLES, LedgerCorrupt, Store, redact_url

# One lock id for "the ledger in this database": every writer takes it before reading the head.
ADVISORY_LOCK_ID = 0x66746175_6C656467 & 0x7FFFFFFFFFFFFFFF  # "ftauledg"


class PostgresStore(Store):
    partitions = True
    def __init__(self, url: str):
        self.display = redact_url(url)
        self._depth = 0
        try:
            import psycopg
        except ImportError:
            raise BadInput("a postgresql:// ledger needs psycopg: pip install 'ftaudit[postgres]'") from None
        self._psycopg = psycopg
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["no answer"])[-1]
            raise RuntimeFailure(f"cannot reach the ledger database {self.display}: {first}") from None
        except psycopg.ProgrammingError as exc:
            raise BadInput(f"bad database URL {self.display}: {first_line(exc)}") from None

    def _translate(self, exc: Exception) -> Exception:
        first = first_line(exc)
        if isinstance(exc, self._psycopg.OperationalError):
            return RuntimeFailure(f"ledger database {self.display} failed: {first}")
        return LedgerCorrupt(f"ledger database {self.display}: {first}")

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def has_schema(self) -> bool:
        rows = self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        names = {r[0] for r in rows}
        present = names & set(TABLES)
        if not present:
            return False
        if present != set(TABLES):
            missing = ", ".join(sorted(set(TABLES) - present))
            raise BadInput(f"{self.display}: some ftaudit ledger tables are missing ({missing})")
        return True

    @contextmanager
    def transaction(self, *, write: bool, ledger_lock: bool = True) -> Iterator[None]:
        if self._depth:  # nested: the outer transaction already holds the snapshot or the lock
            yield
            return
        self._depth += 1
        try:
            with self.conn.transaction():
                if write and ledger_lock:
                    self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
                elif not write:  # one snapshot for the whole read: head and entries seen at the same point in time
                    self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None
        finally:
            self._depth -= 1

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self.conn.execute(self._sql(sql), tuple(params))
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self.conn.execute(self._sql(sql), tuple(params)).fetchall()
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        try:
            with self.conn.transaction():
                with self.conn.cursor(name="ftaudit_stream") as cur:  # server-side: rows arrive in batches
                    cur.itersize = 2000
                    cur.execute(self._sql(sql), tuple(params))
                    yield from cur
        except self._psycopg.Error as exc:
            raise self._translate(exc) from None

    def close(self) -> None:
        self.conn.close()
