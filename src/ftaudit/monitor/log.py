"""The event log: events appended to hash chains in the ledger's database, one chain per writer (a gateway
process), so replicas never wait on one row; each chain is anchored by signed checkpoints in the ledger itself.

  monitor_events(writer_id, seq, ...)   one row per event; event_hash = sha256 of its header (writer, seq, time,
                                        kind, request id, content hash, previous hash): a chain per writer
  ledger event "monitor.writer"         a writer started (its chain begins at the genesis hash)
  ledger event "monitor.checkpoint"     signed: writer W's event `seq` has hash H (every CHECKPOINT_S, and at stop)
  ledger event "monitor.retention"      signed: W's events up to `seq` (hash H) were deleted as older than the
                                        retention period; the chain now starts after them

Events are built and written by a child process, in batches every `flush_ms` (default 200 ms; a committed batch is
never half-written). The gateway hands each exchange over synchronously, into a pipe the writer drains at once, before
the client sees the end of its answer: a kill -9 of the gateway loses no answered request (the writer drains the
pipe, writes, checkpoints and exits); a kill -9 of the writer as well loses what it had received and not committed:
the batch it was collecting (one flush interval while it keeps up; it runs niced, so on a busy host its backlog,
which `queue_max` bounds and /healthz's events_written shows). A full queue is refused up front (the gateway
answers 503 and counts it), so nothing is dropped silently. Art. 12(1) and 19(1)/26(6): logs kept at least six months.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import signal
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
_COLUMNS_SQL = """
         writer_id TEXT NOT NULL,
         seq BIGINT NOT NULL,
         time TEXT NOT NULL,
         deployment TEXT NOT NULL,
         kind TEXT NOT NULL,
         request_id TEXT NOT NULL,
         content TEXT NOT NULL,
         content_sha256 TEXT NOT NULL,
         prev_hash TEXT NOT NULL,
         event_hash TEXT NOT NULL"""
INDEXES = ["CREATE INDEX IF NOT EXISTS monitor_events_by_time ON monitor_events (deployment, time)",
           "CREATE INDEX IF NOT EXISTS monitor_events_by_request ON monitor_events (request_id)"]
# PostgreSQL: one partition per UTC day (times are ISO strings in UTC, so they sort as they read), created by the
# writer before it inserts a day's first event, and a default partition for anything else. Old days can then be
# dropped or archived whole; the chains do not care which partition holds an event.
PARTITIONED = [f"CREATE TABLE IF NOT EXISTS monitor_events ({_COLUMNS_SQL},\n PRIMARY KEY (writer_id, seq, time))"
               " PARTITION BY RANGE (time)",
               "CREATE TABLE IF NOT EXISTS monitor_events_default PARTITION OF monitor_events DEFAULT"]
PLAIN = [f"CREATE TABLE IF NOT EXISTS monitor_events ({_COLUMNS_SQL},\n PRIMARY KEY (writer_id, seq))"]
WRITER, CHECKPOINT, RETENTION = "monitor.writer", "monitor.checkpoint", "monitor.retention"
CHECKPOINT_S = 10.0


def event_header(writer_id: str, seq: int, time_: str, kind: str, request_id: str, content_sha256: str,
                 prev_hash: str) -> dict[str, Any]:
    return {"writer_id": writer_id, "seq": seq, "time": time_, "kind": kind, "request_id": request_id,
            "content_sha256": content_sha256, "prev_hash": prev_hash}


@dataclass
class WriterRecord:
    """What the signed ledger says of one writer's chain: its checkpoints and what retention deleted."""

    run_id: str
    deployment: str
    checkpoints: list[tuple[int, str]] = field(default_factory=list)  # (seq, event hash)
    through: int = 0  # events up to this seq were deleted by retention
    through_hash: str = chain.GENESIS_HASH  # the hash of event `through`: where the remaining chain starts
    deleted: int = 0


def writer_records(ledger: Ledger) -> dict[str, WriterRecord]:
    """Every writer the ledger registered, replayed from its monitor.writer/checkpoint/retention events."""
    writers: dict[str, WriterRecord] = {}
    for c in ledger.events(prefix="monitor."):
        data = c["data"]
        if c["event"] == WRITER:
            writers[data["writer_id"]] = WriterRecord(run_id=c["run_id"], deployment=data["deployment"])
        elif c["event"] == CHECKPOINT:
            writers[data["writer_id"]].checkpoints.append((data["seq"], data["event_hash"]))
        elif c["event"] == RETENTION:
            w = writers[data["writer_id"]]
            w.through, w.through_hash, w.deleted = data["seq"], data["event_hash"], w.deleted + data["deleted"]
    return writers


def create_tables(ledger: Ledger) -> None:
    with ledger.store.transaction(write=True):  # the ledger lock: two gateways starting at once create them once
        for stmt in (PARTITIONED if ledger.store.partitions else PLAIN) + INDEXES:
            ledger.store.execute(stmt)


def ensure_day_partitions(ledger: Ledger, days: set[str], made: set[str]) -> None:
    """Create the daily partitions `days` (YYYY-MM-DD) that this writer has not made yet."""
    from datetime import date

    for day in sorted(days - made):
        start = date.fromisoformat(day)
        end = (start + timedelta(days=1)).isoformat()
        name = f"monitor_events_{start:%Y%m%d}"
        with ledger.store.transaction(write=True):  # serialised with the other writers by the ledger lock
            if not ledger.store.one("SELECT 1 FROM pg_class WHERE relname = ?", (name,)):
                ledger.store.execute(f"CREATE TABLE {name} PARTITION OF monitor_events "
                                     f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end}')")
        made.add(day)


def has_tables(ledger: Ledger) -> bool:
    try:
        ledger.store.query("SELECT 1 FROM monitor_events LIMIT 1")
    except Exception:  # noqa: BLE001 — any backend's "no such table"
        return False
    return True


@dataclass
class Stats:
    """What the gateway reports on /healthz; the writer process keeps the counters it owns in shared memory."""

    rejected: int = 0  # refused with 503 because the queue was full or the writer is gone
    counters: Any = None  # multiprocessing.Array: done, written, failed batches, checkpoints

    @property
    def done(self) -> int:
        return self.counters[0]

    @property
    def written(self) -> int:
        return self.counters[1]

    @property
    def failed_batches(self) -> int:
        return self.counters[2]

    @property
    def checkpoints(self) -> int:
        return self.counters[3]


class EventLog:
    """One writer: a child process that builds events (`build`, picklable: parsing, content policy, checks) and
    writes them into its chain, so that none of that work competes with the gateway's event loop for the
    interpreter. The caller only reserves a place and queues bytes. If the caller is killed, the writer drains
    what reached it, writes it, checkpoints and exits."""

    def __init__(self, location: str | None, *, run_id: str, deployment: str, build: Callable[[Any], Any],
                 flush_ms: int = 200, queue_max: int = 10_000, checkpoint_s: float = CHECKPOINT_S,
                 key_path: str | None = None):
        self.location, self.run_id, self.deployment = location, run_id, deployment
        self.build, self.flush_s, self.checkpoint_s = build, flush_ms / 1000, checkpoint_s
        self.key_path = key_path
        self.queue_max = queue_max
        self.writer_id = uuid.uuid4().hex
        self._ctx = multiprocessing.get_context("spawn")
        # A SimpleQueue writes in the caller's thread (no feeder thread to lose items at a kill, or to take the
        # interpreter from the gateway's event loop); a large pipe keeps a write from waiting on the reader.
        self.queue = self._ctx.SimpleQueue()
        _widen(self.queue._writer)
        self.stats = Stats(counters=self._ctx.Array("q", 4, lock=False))
        self._reserved = 0
        self._lock = threading.Lock()
        self._recent: dict[str, float] = {}  # request ids queued lately: feedback may name one not yet written
        self._proc = None

    # -- the caller's side ---------------------------------------------------------------------------------
    def reserve(self) -> bool:
        """A place in the queue for one event, taken before the request goes upstream; False when full (or the
        writer process is gone: nothing would be written)."""
        with self._lock:
            if self._reserved - self.stats.done >= self.queue_max or not self._proc.is_alive():
                self.stats.rejected += 1
                return False
            self._reserved += 1
            return True

    def release(self, n: int = 1) -> None:
        """Give back places reserved for items that will not be queued."""
        with self._lock:
            self._reserved -= n

    def submit(self, item: Any, request_id: str) -> None:
        """Hand over an item whose place was reserved; once this returns, a kill of the caller does not lose it."""
        now = time.monotonic()
        self._recent[request_id] = now
        if len(self._recent) > 2 * self.queue_max:
            self._recent = {k: t for k, t in self._recent.items() if now - t < RECENT_S}
        self.queue.put(item)

    def knows(self, request_id: str) -> bool:
        if request_id in self._recent:
            return True
        with open_ledger(self.location, key_path=self.key_path, create=False) as ledger:
            return bool(ledger.store.one("SELECT 1 FROM monitor_events WHERE request_id = ? LIMIT 1",
                                         (request_id,)))

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        with open_ledger(self.location, key_path=self.key_path) as ledger:
            create_tables(ledger)
            ledger.record_event(self.run_id, WRITER, {"writer_id": self.writer_id, "deployment": self.deployment})
        spec = _WriterSpec(location=self.location, key_path=self.key_path, run_id=self.run_id,
                           deployment=self.deployment, writer_id=self.writer_id, build=self.build,
                           flush_s=self.flush_s, checkpoint_s=self.checkpoint_s, parent_pid=os.getpid())
        self._proc = self._ctx.Process(target=_writer_main, args=(spec, self.queue, self.stats.counters),
                                       name="ftaudit-event-log", daemon=False)
        self._proc.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, checkpoint, and end the writer."""
        if self._proc is None:
            return
        self.queue.put(_STOP)
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()


RECENT_S = 600.0
_STOP = "ftaudit-event-log-stop"
PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged process (/proc/sys/fs/pipe-max-size)


def _widen(conn) -> None:
    import fcntl

    try:
        fcntl.fcntl(conn.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:  # a lower ceiling on this host: the default 64 kB pipe still works, a write may wait briefly
        pass


def _pump(q, into: queue.Queue) -> None:
    """The writer's reader thread: empty the pipe as fast as the gateway fills it, whatever the batch is doing."""
    while True:
        item = q.get()
        into.put(item)
        if isinstance(item, str) and item == _STOP:
            return


@dataclass
class _WriterSpec:
    location: str | None
    key_path: str | None
    run_id: str
    deployment: str
    writer_id: str
    build: Callable[[Any], Any]
    flush_s: float
    checkpoint_s: float
    parent_pid: int


@dataclass
class _Chain:
    writer_id: str
    seq: int = 0
    head: str = chain.GENESIS_HASH
    checkpointed_seq: int = 0
    partitions: set = field(default_factory=set)  # the days whose partition this writer made or saw


NICE = 5  # the writer is batch work whose lag the queue bounds: the gateway's requests go first on a busy host


def _writer_main(spec: _WriterSpec, q, counters) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the gateway says when to stop
    os.nice(NICE)
    pipe, q = q, queue.Queue()
    threading.Thread(target=_pump, args=(pipe, q), name="ftaudit-event-pipe", daemon=True).start()
    ledger = open_ledger(spec.location, key_path=spec.key_path, create=False)
    c = _Chain(writer_id=spec.writer_id)
    last_checkpoint = time.monotonic()
    stopping = False
    try:
        while True:
            items = []
            deadline = time.monotonic() + spec.flush_s
            while not stopping:
                try:
                    item = q.get(timeout=max(deadline - time.monotonic(), 0.001))
                except queue.Empty:
                    if time.monotonic() >= deadline:
                        break
                    continue
                if isinstance(item, str) and item == _STOP:
                    stopping = True
                else:
                    items.append(item)
            if os.getppid() != spec.parent_pid and not stopping:  # the gateway was killed: drain and end
                stopping = True
                items += _drain(q)
            if items:
                _write(ledger, spec, c, items, counters)
            due = time.monotonic() - last_checkpoint >= spec.checkpoint_s
            if (due or stopping) and c.seq > c.checkpointed_seq:
                ledger.record_event(spec.run_id, CHECKPOINT, {"writer_id": c.writer_id,
                                                              "deployment": spec.deployment, "seq": c.seq,
                                                              "event_hash": c.head})
                c.checkpointed_seq = c.seq
                counters[3] += 1
                last_checkpoint = time.monotonic()
            if stopping:
                rest = _drain(q)
                if not rest:
                    return
                _write(ledger, spec, c, rest, counters)
    finally:
        ledger.close()


def _drain(q) -> list[Any]:
    items = []
    while True:
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            return items
        if not (isinstance(item, str) and item == _STOP):
            items.append(item)


def _write(ledger: Ledger, spec: _WriterSpec, c: _Chain, items: list[Any], counters) -> None:
    """Build and insert one batch in one transaction; on a database error keep trying (nothing is dropped: the
    gateway refuses new requests once its reserved places are used up)."""
    rows = []
    seq, head = c.seq, c.head
    for item in items:
        try:
            event = spec.build(item)
        except Exception:  # noqa: BLE001 — one unreadable exchange must not stop the log
            continue
        content = chain.canonical_json(event.model_dump(mode="json"))
        content_sha = chain.sha256_hex(content)
        seq += 1
        when = event.time.isoformat()
        h = chain.entry_hash(event_header(c.writer_id, seq, when, event.kind, event.request_id, content_sha, head))
        rows.append((c.writer_id, seq, when, event.deployment, event.kind, event.request_id, content, content_sha,
                     head, h))
        head = h
    while rows:
        try:
            if ledger.store.partitions:
                ensure_day_partitions(ledger, {r[2][:10] for r in rows}, c.partitions)
            with ledger.store.transaction(write=True, ledger_lock=False):
                ledger.store.execute_many(f"INSERT INTO monitor_events ({', '.join(EVENT_COLUMNS)}) "
                                          f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})", rows)
            break
        except Exception:  # noqa: BLE001 — the database is down or locked: retry the same batch
            counters[2] += 1
            time.sleep(spec.flush_s)
    c.seq, c.head = seq, head
    counters[1] += len(rows)
    counters[0] += len(items)


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
    writers = writer_records(ledger)
    done = []
    for writer_id, w in writers.items():
        for seq, event_hash in sorted(w.checkpoints, reverse=True):
            if seq <= w.through:
                break
            row = ledger.store.one("SELECT time FROM monitor_events WHERE writer_id = ? AND seq = ?",
                                   (writer_id, seq))
            if row is None or row[0] >= cutoff:
                continue
            with ledger.store.transaction(write=True):
                (deleted,) = ledger.store.one("SELECT COUNT(*) FROM monitor_events WHERE writer_id = ? AND seq <= ?",
                                              (writer_id, seq))
                data = {"writer_id": writer_id, "deployment": w.deployment, "seq": seq, "event_hash": event_hash,
                        "deleted": int(deleted), "cutoff": cutoff, "days": days}
                ledger.record_event(w.run_id, RETENTION, data)
                ledger.store.execute("DELETE FROM monitor_events WHERE writer_id = ? AND seq <= ?", (writer_id, seq))
            done.append(data)
            break
    return done
