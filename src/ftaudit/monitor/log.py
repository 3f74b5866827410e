"""The event log: events appended to hash chains in the ledger's database, one chain per writer (a gateway
process), so replicas never wait on one row; each chain is anchored by signed checkpoints in the ledger itself.

  monitor_events(writer_id, seq, ...)   one row per event; event_hash = sha256 of its header (writer, seq, time,
                                        kind, request id, content hash, previous hash): a chain per writer
  ledger event "monitor.writer"         a writer started (its chain begins at the genesis hash)
  ledger event "monitor.checkpoint"     signed: writer W's event `seq` has hash H (every CHECKPOINT_S, and at stop)
  ledger event "monitor.retention"      signed: W's events up to `seq` (hash H) were deleted as older than the
                                        retention period; the chain now starts after them

Events are written in batches from a queue, every `flush_ms` (default 200 ms: a kill -9 loses at most the events
of one interval; a committed batch is never half-written). A full queue is refused up front (the gateway answers
503 and counts it), so nothing is dropped silently. Art. 12(1) and 19(1)/26(6): logs kept at least six months.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from ftaudit.ledger import chain
from ftaudit.ledger.core import Ledger, open_ledger

EVENT_COLUMNS = ("writer_id", "seq", "time", "deployment", "kind", "request_id", "content", "content_sha256",
                 "prev_hash", "event_hash")
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS monitor_events (
         writer_id TEXT NOT NULL,
         seq BIGINT NOT NULL,
         time TEXT NOT NULL,
         deployment TEXT NOT NULL,
         kind TEXT NOT NULL,
         request_id TEXT NOT NULL,
         content TEXT NOT NULL,
         content_sha256 TEXT NOT NULL,
         prev_hash TEXT NOT NULL,
         event_hash TEXT NOT NULL,
         PRIMARY KEY (writer_id, seq))""",
    "CREATE INDEX IF NOT EXISTS monitor_events_by_time ON monitor_events (deployment, time)",
    "CREATE INDEX IF NOT EXISTS monitor_events_by_request ON monitor_events (request_id)",
]
WRITER, CHECKPOINT, RETENTION = "monitor.writer", "monitor.checkpoint", "monitor.retention"
CHECKPOINT_S = 10.0


def event_header(writer_id: str, seq: int, time_: str, kind: str, request_id: str, content_sha256: str,
                 prev_hash: str) -> dict[str, Any]:
    return {"writer_id": writer_id, "seq": seq, "time": time_, "kind": kind, "request_id": request_id,
            "content_sha256": content_sha256, "prev_hash": prev_hash}


def create_tables(ledger: Ledger) -> None:
    with ledger.store.transaction(write=True, ledger_lock=False):
        for stmt in SCHEMA:
            ledger.store.execute(stmt)


def has_tables(ledger: Ledger) -> bool:
    try:
        ledger.store.query("SELECT 1 FROM monitor_events LIMIT 1")
    except Exception:  # noqa: BLE001 — any backend's "no such table"
        return False
    return True


@dataclass
class Stats:
    written: int = 0
    rejected: int = 0  # refused with 503 because the queue was full
    failed_batches: int = 0
    last_error: str | None = None
    checkpoints: int = 0


@dataclass
class _Chain:
    writer_id: str
    seq: int = 0
    head: str = chain.GENESIS_HASH
    checkpointed_seq: int = 0
    pending: list[tuple] = field(default_factory=list)


class EventLog:
    """One writer. `build` turns a queued item into an event model (a pydantic model with kind, request_id, time,
    deployment) on the writer thread; the caller's thread only queues."""

    def __init__(self, location: str | None, *, run_id: str, deployment: str, build: Callable[[Any], Any],
                 flush_ms: int = 200, queue_max: int = 10_000, checkpoint_s: float = CHECKPOINT_S,
                 key_path: str | None = None):
        self.location, self.run_id, self.deployment = location, run_id, deployment
        self.build, self.flush_s, self.checkpoint_s = build, flush_ms / 1000, checkpoint_s
        self.key_path = key_path
        self.queue: queue.Queue = queue.Queue()
        self.queue_max = queue_max
        self._reserved = 0
        self._lock = threading.Lock()
        self.stats = Stats()
        self.chain = _Chain(writer_id=uuid.uuid4().hex)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._known_ids: set[str] = set()  # request ids queued but maybe not yet written (for feedback)

    # -- the caller's side ---------------------------------------------------------------------------------
    def reserve(self) -> bool:
        """A place in the queue for one event, taken before the request goes upstream; False when full."""
        with self._lock:
            if self._reserved >= self.queue_max:
                self.stats.rejected += 1
                return False
            self._reserved += 1
            return True

    def submit(self, item: Any, request_id: str) -> None:
        """Queue an item whose place was reserved."""
        self._known_ids.add(request_id)  # until it is written: feedback may name it before then
        self.queue.put(item)

    def release(self) -> None:
        with self._lock:
            self._reserved -= 1

    def knows(self, request_id: str) -> bool:
        if request_id in self._known_ids:
            return True
        with open_ledger(self.location, key_path=self.key_path, create=False) as ledger:
            return bool(ledger.store.one("SELECT 1 FROM monitor_events WHERE request_id = ? LIMIT 1",
                                         (request_id,)))

    # -- the writer thread ---------------------------------------------------------------------------------
    def start(self) -> None:
        with open_ledger(self.location, key_path=self.key_path) as ledger:
            create_tables(ledger)
            ledger.record_event(self.run_id, WRITER, {"writer_id": self.chain.writer_id,
                                                      "deployment": self.deployment})
        self._thread = threading.Thread(target=self._run, name="ftaudit-event-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        ledger = open_ledger(self.location, key_path=self.key_path, create=False)
        last_checkpoint = time.monotonic()
        try:
            while True:
                stopping = self._stop.is_set()
                items = self._take(self.flush_s)
                if items:
                    self._write(ledger, items)
                due = time.monotonic() - last_checkpoint >= self.checkpoint_s
                if (due or stopping) and self.chain.seq > self.chain.checkpointed_seq:
                    self._checkpoint(ledger)
                    last_checkpoint = time.monotonic()
                if stopping and self.queue.empty():
                    return
        finally:
            ledger.close()

    def _take(self, wait: float) -> list[Any]:
        deadline = time.monotonic() + wait
        items: list[Any] = []
        while True:
            left = deadline - time.monotonic()
            try:
                items.append(self.queue.get(timeout=max(left, 0)) if left > 0 else self.queue.get_nowait())
            except queue.Empty:
                return items

    def _write(self, ledger: Ledger, items: list[Any]) -> None:
        rows, c = [], self.chain
        seq, head = c.seq, c.head
        for item in items:
            try:
                event = self.build(item)
            except Exception as exc:  # noqa: BLE001 — one unreadable exchange must not stop the log
                self.stats.last_error = f"event not built: {type(exc).__name__}"
                continue
            content = chain.canonical_json(event.model_dump(mode="json"))
            content_sha = chain.sha256_hex(content)
            seq += 1
            when = event.time.isoformat()
            header = event_header(c.writer_id, seq, when, event.kind, event.request_id, content_sha, head)
            h = chain.entry_hash(header)
            rows.append((c.writer_id, seq, when, event.deployment, event.kind, event.request_id, content,
                         content_sha, head, h))
            head = h
        try:
            if rows:
                with ledger.store.transaction(write=True, ledger_lock=False):
                    ledger.store.execute_many(
                        f"INSERT INTO monitor_events ({', '.join(EVENT_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})", rows)
                c.seq, c.head = seq, head
                self.stats.written += len(rows)
                self._known_ids.difference_update(r[5] for r in rows)
        except Exception as exc:  # noqa: BLE001 — the database is down: keep the items for the next flush
            self.stats.failed_batches += 1
            self.stats.last_error = str(exc).splitlines()[0][:200]
            for item in items:
                self.queue.put(item)
            time.sleep(self.flush_s)
            return
        for _ in items:
            self.release()

    def _checkpoint(self, ledger: Ledger) -> None:
        c = self.chain
        ledger.record_event(self.run_id, CHECKPOINT, {"writer_id": c.writer_id, "deployment": self.deployment,
                                                      "seq": c.seq, "event_hash": c.head})
        c.checkpointed_seq = c.seq
        self.stats.checkpoints += 1


def read_events(ledger: Ledger, *, deployment: str | None = None, since: str | None = None,
                kind: str | None = None):
    """Events in time order as dicts (their stored JSON)."""
    where, params = [], []
    if deployment:
        where.append("deployment = ?")
        params.append(deployment)
    if since:
        where.append("time >= ?")
        params.append(since)
    if kind:
        where.append("kind = ?")
        params.append(kind)
    sql = "SELECT content FROM monitor_events" + (" WHERE " + " AND ".join(where) if where else "")
    for (content,) in ledger.store.stream(sql + " ORDER BY time, writer_id, seq", params):
        yield json.loads(content)


def apply_retention(ledger: Ledger, *, days: int, force: bool = False, now: datetime | None = None) -> list[dict]:
    """Delete events older than `days`, per writer up to its last checkpoint before the cut-off, and record each
    deletion as a signed ledger event in the same transaction, so the remaining chain still verifies.
    Below the legal minimum only with `force` (LOG_RETENTION_MIN_DAYS; citations.LOG_RETENTION)."""
    from ftaudit.errors import BadInput
    from ftaudit.regulation.citations import LOG_RETENTION, LOG_RETENTION_MIN_DAYS

    if days < 1:
        raise BadInput("--days must be at least 1")
    if days < LOG_RETENTION_MIN_DAYS and not force:
        raise BadInput(f"--days {days} is below the legal minimum of {LOG_RETENTION_MIN_DAYS} days ({LOG_RETENTION}: "
                       "logs kept at least six months); pass --force if another law or a shorter purpose applies")
    if not has_tables(ledger):
        return []
    cutoff = ((now or datetime.now(timezone.utc)) - timedelta(days=days)).isoformat()
    writers: dict[str, dict] = {}
    for (content,) in ledger.store.stream("SELECT content FROM entries WHERE kind = 'event' ORDER BY seq"):
        c = json.loads(content)
        data = c.get("data") or {}
        if c.get("event") == WRITER:
            writers[data["writer_id"]] = {"run_id": c["run_id"], "deployment": data["deployment"], "cps": [],
                                          "through": 0}
        elif c.get("event") == CHECKPOINT:
            writers[data["writer_id"]]["cps"].append((data["seq"], data["event_hash"]))
        elif c.get("event") == RETENTION:
            writers[data["writer_id"]]["through"] = data["seq"]
    done = []
    for writer_id, w in writers.items():
        for seq, event_hash in sorted(w["cps"], reverse=True):
            if seq <= w["through"]:
                break
            row = ledger.store.one("SELECT time FROM monitor_events WHERE writer_id = ? AND seq = ?",
                                   (writer_id, seq))
            if row is None or row[0] >= cutoff:
                continue
            with ledger.store.transaction(write=True):
                (deleted,) = ledger.store.one("SELECT COUNT(*) FROM monitor_events WHERE writer_id = ? AND seq <= ?",
                                              (writer_id, seq))
                data = {"writer_id": writer_id, "deployment": w["deployment"], "seq": seq, "event_hash": event_hash,
                        "deleted": int(deleted), "cutoff": cutoff, "days": days}
                ledger.record_event(w["run_id"], RETENTION, data)
                ledger.store.execute("DELETE FROM monitor_events WHERE writer_id = ? AND seq <= ?", (writer_id, seq))
            done.append(data)
            break
    return done
