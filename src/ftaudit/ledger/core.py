"""The Ledger: append signed, hash-chained entries (runs, lineages, events, artefacts) and query them.

Entry kinds and their content (canonical JSON, signed through the entry hash):
  lineage   {lineage_id, base_model, first_run_id}              — written once, the first time a lineage is seen
  run       {run_id, status, lineage_id, ..., record: {...}}     — every time a run is recorded (status changes)
  event     {run_id, event, data}                               — e.g. a gate that stopped the job
  artefact  {run_id, path, sha256, kind, bytes}                 — a file of the run directory, by hash
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict

from ftaudit.errors import BadInput
from ftaudit.io import sha256_file
from ftaudit.ledger import chain
from ftaudit.ledger.keys import SigningKey, load_or_create_signing_key
from ftaudit.ledger.store import ENTRY_COLUMNS, RUN_COLUMNS, Store, open_store

if TYPE_CHECKING:
    from ftaudit.record import RunRecord

LEDGER_FORMAT = "ftaudit-ledger/1"

# Reading (guidelines Annex A.1; docs/regulation.md §1 "successive modifications add up"): compute counts once it was
# executed. A `planned` or `refused` run executed nothing (its compute section holds an estimate), so it is left
# out of a lineage's cumulative compute; running, completed, failed and stopped runs count (a stopped job's
# checkpoint is what a resume starts from, and a failed job in a lineage is not an exploratory experiment).
COUNTED_STATUSES = ("running", "completed", "failed", "stopped")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Entry(_Model):
    seq: int
    kind: str
    created_at: str
    key_id: str
    prev_hash: str
    content: dict[str, Any]
    content_sha256: str
    entry_hash: str
    signature: str


class RunSummary(_Model):
    run_id: str
    lineage_id: str | None
    status: str
    regulatory_flops: float | None
    base_model: str | None
    output_name: str | None
    parent_run_id: str | None
    record_created_at: str | None
    first_seq: int
    last_seq: int


class LineageReport(_Model):
    lineage_id: str
    base_model: str | None
    runs: list[RunSummary]
    cumulative_flops: float
    counted_statuses: list[str]
    runs_without_flops: list[str]  # counted runs with no compute figure: the total understates by their compute
    note: str


class ArtefactEntry(_Model):
    run_id: str
    path: str
    sha256: str
    kind: str
    bytes: int | None
    seq: int


class SignedHead(_Model):
    format: Literal["ftaudit-ledger-head/1"] = "ftaudit-ledger-head/1"
    ledger_id: str
    count: int
    head_hash: str
    updated_at: str
    key_id: str
    signature: str

    def payload(self) -> dict[str, Any]:
        return chain.head_payload(ledger_id=self.ledger_id, count=self.count, head_hash=self.head_hash,
                                  updated_at=self.updated_at, key_id=self.key_id)


EVENT_NAME_LIKE = "content LIKE ? ESCAPE '!'"


def event_name_pattern(prefix: str, *, whole: bool = False) -> str:
    """The LIKE pattern of an event entry whose name starts with `prefix` (or is it, `whole`): entry content is
    canonical JSON, so the name is stored as "event":"NAME"."""
    escaped = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return '%"event":"' + escaped + ('"%' if whole else "%")


def run_content(record: RunRecord) -> dict[str, Any]:
    """The content of a `run` entry: a summary (what queries use) and the whole record, as its JSON file holds it."""
    rec = json.loads(record.model_dump_json())
    return {
        "run_id": record.run_id,
        "status": record.status,
        "lineage_id": record.lineage.lineage_id if record.lineage else None,
        "parent_run_id": record.lineage.parent_run_id if record.lineage else None,
        "base_model": record.model.base_model,
        "output_name": record.model.output_name,
        "regulatory_flops": record.compute.regulatory_flops if record.compute else None,
        "record_created_at": rec.get("created_at"),
        "record": rec,
    }


class Ledger:
    """Open with `open_ledger()`. Writers sign with the local ed25519 key (created on first write)."""

    def __init__(self, store: Store, *, key_path: str | os.PathLike | None = None, key: SigningKey | None = None):
        self.store = store
        self._key_path = key_path
        self._key = key
        self._key_registered = False

    # -- identity ------------------------------------------------------------------------------------------
    @property
    def key(self) -> SigningKey:
        if self._key is None:
            self._key = load_or_create_signing_key(self._key_path)
        return self._key

    @property
    def location(self) -> str:
        return self.store.display

    @property
    def ledger_id(self) -> str:
        row = self.store.one("SELECT value FROM meta WHERE key = 'ledger_id'")
        if not row:
            raise BadInput(f"{self.location}: ledger has no id (meta table emptied?)")
        return row[0]

    def initialise(self) -> None:
        """Create the tables, the ledger id and the signed empty head; a no-op on an existing ledger."""
        _ = self.key  # load or create the key before taking the lock
        with self.store.transaction(write=True):
            self.store.create_schema()
            if self.store.one("SELECT value FROM meta WHERE key = 'ledger_id'"):
                return
            ledger_id = uuid.uuid4().hex
            self.store.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("ledger_id", ledger_id))
            self.store.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("format", LEDGER_FORMAT))
            self._register_key()
            self._write_head(ledger_id, 0, chain.GENESIS_HASH, insert=True)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------------
    def _register_key(self) -> None:
        if self._key_registered:
            return
        row = self.store.one("SELECT public_key FROM keys WHERE key_id = ?", (self.key.key_id,))
        if row is None:
            self.store.execute("INSERT INTO keys (key_id, public_key) VALUES (?, ?)",
                               (self.key.key_id, self.key.public_raw.hex()))
        elif row[0] != self.key.public_raw.hex():
            raise BadInput(f"{self.location}: another key with id {self.key.key_id} is registered; use a fresh key")
        self._key_registered = True

    def _write_head(self, ledger_id: str, count: int, head_hash: str, *, insert: bool = False) -> None:
        updated_at = _now_iso()
        payload = chain.head_payload(ledger_id=ledger_id, count=count, head_hash=head_hash, updated_at=updated_at,
                                     key_id=self.key.key_id)
        signature = self.key.sign(chain.head_message(payload))
        if insert:
            self.store.execute(
                "INSERT INTO head (id, count, head_hash, updated_at, key_id, signature) VALUES (1, ?, ?, ?, ?, ?)",
                (count, head_hash, updated_at, self.key.key_id, signature))
        else:
            self.store.execute(
                "UPDATE head SET count = ?, head_hash = ?, updated_at = ?, key_id = ?, signature = ? WHERE id = 1",
                (count, head_hash, updated_at, self.key.key_id, signature))

    def _append_locked(self, ledger_id: str, kind: str, content: dict[str, Any]) -> Entry:
        """Append one entry; the caller holds the writer lock."""
        row = self.store.one("SELECT count, head_hash FROM head WHERE id = 1")
        if row is None:
            raise BadInput(f"{self.location}: ledger head is missing; run `ftaudit verify` to see why")
        count, prev_hash = int(row[0]), row[1]
        try:
            text = chain.canonical_json(content)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"a {kind} entry must be plain JSON (no NaN, dates or objects): {exc}") from None
        content_sha = chain.sha256_hex(text)
        seq = count + 1
        created_at = _now_iso()
        header = chain.entry_header(ledger_id=ledger_id, seq=seq, kind=kind, created_at=created_at,
                                    key_id=self.key.key_id, prev_hash=prev_hash, content_sha256=content_sha)
        h = chain.entry_hash(header)
        sig = self.key.sign(chain.entry_message(h))
        self._register_key()
        self.store.execute(
            f"INSERT INTO entries ({', '.join(ENTRY_COLUMNS)}) VALUES ({', '.join('?' * len(ENTRY_COLUMNS))})",
            (seq, kind, created_at, self.key.key_id, prev_hash, text, content_sha, h, sig,
             content.get("run_id"), content.get("lineage_id")))
        project(self.store, seq, kind, content)
        self._write_head(ledger_id, seq, h)
        return Entry(seq=seq, kind=kind, created_at=created_at, key_id=self.key.key_id, prev_hash=prev_hash,
                     content=content, content_sha256=content_sha, entry_hash=h, signature=sig)

    def _append(self, items: list[tuple[str, dict[str, Any]]]) -> list[Entry]:
        _ = self.key  # load or create the key before taking the lock
        with self.store.transaction(write=True):
            ledger_id = self.ledger_id
            return [self._append_locked(ledger_id, kind, content) for kind, content in items]

    def record_run(self, record: RunRecord) -> Entry:
        """Append the run (a `RunRecord`, after `record.save()`: `ftaudit verify RUN_DIR` compares the file with
        this entry). Registers its lineage the first time the lineage is seen, in the same transaction."""
        content = run_content(record)
        _ = self.key  # load or create the key before taking the lock
        with self.store.transaction(write=True):
            ledger_id = self.ledger_id
            lineage_id = content["lineage_id"]
            if lineage_id and not self.store.one("SELECT 1 FROM lineages WHERE lineage_id = ?", (lineage_id,)):
                self._append_locked(ledger_id, "lineage", {"lineage_id": lineage_id,
                                                           "base_model": content["base_model"],
                                                           "first_run_id": content["run_id"]})
            return self._append_locked(ledger_id, "run", content)

    def record_event(self, run_id: str, event: str, data: dict[str, Any] | None = None) -> Entry:
        if not event:
            raise BadInput("an event needs a name")
        return self._append([("event", {"run_id": run_id, "event": event, "data": data or {}})])[0]

    def register_artefact(self, run_id: str, path: str, sha256: str, kind: str, size: int | None = None) -> Entry:
        """Register a file of a run by hash; `path` is relative to the run directory (POSIX separators)."""
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise BadInput(f"artefact path {path!r} must be relative to the run directory")
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise BadInput(f"artefact {path}: sha256 must be 64 lowercase hex digits")
        content = {"run_id": run_id, "path": Path(path).as_posix(), "sha256": sha256, "kind": kind, "bytes": size}
        return self._append([("artefact", content)])[0]

    def register_file(self, run_id: str, run_dir: str | os.PathLike, relpath: str, kind: str) -> Entry:
        """Hash a file of the run directory and register it."""
        full = Path(run_dir) / relpath
        if not full.is_file():
            raise BadInput(f"{full}: no such file to register")
        digest, size = sha256_file(full)
        return self.register_artefact(run_id, relpath, digest, kind, size)

    # -- reading -------------------------------------------------------------------------------------------
    def head(self) -> SignedHead:
        row = self.store.one("SELECT count, head_hash, updated_at, key_id, signature FROM head WHERE id = 1")
        if row is None:
            raise BadInput(f"{self.location}: ledger head is missing")
        return SignedHead(ledger_id=self.ledger_id, count=int(row[0]), head_hash=row[1], updated_at=row[2],
                          key_id=row[3], signature=row[4])

    def public_keys(self) -> dict[str, bytes]:
        return {k: bytes.fromhex(v) for k, v in self.store.query("SELECT key_id, public_key FROM keys")}

    def entries(self, *, run_id: str | None = None, start: int = 1, limit: int | None = None) -> Iterator[Entry]:
        cols = ", ".join(ENTRY_COLUMNS[:-2])
        if limit is not None:
            rows = iter(self.store.query(f"SELECT {cols} FROM entries WHERE seq >= ? ORDER BY seq LIMIT ?",
                                         (start, limit)))
        elif run_id is None:
            rows = self.store.stream(f"SELECT {cols} FROM entries WHERE seq >= ? ORDER BY seq", (start,))
        else:
            rows = iter(self.store.query(
                f"SELECT {cols} FROM entries WHERE run_id = ? AND seq >= ? ORDER BY seq", (run_id, start)))
        for r in rows:
            yield Entry(seq=int(r[0]), kind=r[1], created_at=r[2], key_id=r[3], prev_hash=r[4],
                        content=json.loads(r[5]), content_sha256=r[6], entry_hash=r[7], signature=r[8])

    def events(self, *, run_id: str | None = None, prefix: str = "", after: int = 0) -> Iterator[dict[str, Any]]:
        """The content of the `event` entries (of one run, or all) whose name starts with `prefix`, in chain
        order, from entry `after` + 1 on: {run_id, event, data, seq}."""
        sql, params = "SELECT seq, content FROM entries WHERE kind = 'event' AND seq > ?", [after]
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        if prefix:  # a prefilter in the database; the name is checked again below
            sql += " AND " + EVENT_NAME_LIKE
            params.append(event_name_pattern(prefix))
        for seq, content in self.store.stream(sql + " ORDER BY seq", params):
            event = json.loads(content)
            if event["event"].startswith(prefix):
                yield {**event, "seq": seq}

    def entry(self, seq: int) -> Entry:
        for e in self.entries(start=seq, limit=1):
            if e.seq == seq:
                return e
        raise BadInput(f"{self.location}: no entry {seq}")

    def run(self, run_id: str) -> RunSummary | None:
        row = self.store.one(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,))
        return _run_summary(row) if row else None

    def run_record(self, run_id: str) -> dict[str, Any] | None:
        """The record of the run's latest `run` entry."""
        summary = self.run(run_id)
        if summary is None:
            return None
        row = self.store.one("SELECT content FROM entries WHERE seq = ?", (summary.last_seq,))
        return json.loads(row[0])["record"] if row else None

    def runs_by_status(self, status: str) -> list[RunSummary]:
        rows = self.store.query(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE status = ? ORDER BY first_seq", (status,))
        return [_run_summary(r) for r in rows]

    def runs_by_lineage(self, lineage_id: str) -> LineageReport:
        rows = self.store.query(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE lineage_id = ? ORDER BY first_seq", (lineage_id,))
        if not rows:
            raise BadInput(f"no runs of lineage {lineage_id!r} in {self.location}")
        runs = [_run_summary(r) for r in rows]
        base = self.store.one("SELECT base_model FROM lineages WHERE lineage_id = ?", (lineage_id,))
        counted = [r for r in runs if r.status in COUNTED_STATUSES]
        return LineageReport(
            lineage_id=lineage_id,
            base_model=base[0] if base else None,
            runs=runs,
            cumulative_flops=sum(r.regulatory_flops or 0.0 for r in counted),
            counted_statuses=list(COUNTED_STATUSES),
            runs_without_flops=[r.run_id for r in counted if r.regulatory_flops is None],
            note="Reading (guidelines Annex A.1): successive modifications of one lineage add up; planned and "
                 "refused runs executed no compute and are not counted.",
        )

    def artefacts(self, run_id: str) -> list[ArtefactEntry]:
        """The latest registration of each path of the run."""
        latest: dict[str, ArtefactEntry] = {}
        for e in self.entries(run_id=run_id):
            if e.kind == "artefact":
                c = e.content
                latest[c["path"]] = ArtefactEntry(run_id=run_id, path=c["path"], sha256=c["sha256"],
                                                  kind=c["kind"], bytes=c.get("bytes"), seq=e.seq)
        return list(latest.values())


def _run_summary(row: tuple) -> RunSummary:
    d = dict(zip(RUN_COLUMNS, row, strict=True))
    d["first_seq"], d["last_seq"] = int(d["first_seq"]), int(d["last_seq"])
    return RunSummary(**d)


def project(store: Store, seq: int, kind: str, content: dict[str, Any]) -> None:
    """Update the query tables for one appended entry (also used by verify to rebuild them)."""
    if kind == "run":
        store.execute(
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))}) "
            "ON CONFLICT (run_id) DO UPDATE SET lineage_id = excluded.lineage_id, status = excluded.status, "
            "regulatory_flops = excluded.regulatory_flops, base_model = excluded.base_model, "
            "output_name = excluded.output_name, parent_run_id = excluded.parent_run_id, "
            "record_created_at = excluded.record_created_at, last_seq = excluded.last_seq",
            (content["run_id"], content["lineage_id"], content["status"], content["regulatory_flops"],
             content["base_model"], content["output_name"], content["parent_run_id"], content["record_created_at"],
             seq, seq))
    elif kind == "lineage":
        store.execute("INSERT INTO lineages (lineage_id, base_model, first_run_id, seq) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (lineage_id) DO NOTHING",
                      (content["lineage_id"], content["base_model"], content["first_run_id"], seq))


def open_ledger(location: str | os.PathLike | None = None, *, key_path: str | os.PathLike | None = None,
                create: bool = True) -> Ledger:
    """Open the ledger at a file path or `postgresql://` URL (default: `$FTAUDIT_LEDGER`, else a file in the user
    data directory). `create=False` for readers: a missing ledger is bad input, never an empty new file."""
    store = open_store(location, create=create)
    try:
        ledger = Ledger(store, key_path=key_path)
        if not store.has_schema():
            if not create:
                raise BadInput(f"{store.display}: empty database, no ftaudit ledger in it")
            ledger.initialise()
        return ledger
    except BaseException:
        store.close()
        raise
