"""Resumable scans: the scan's state after its last folded shard, saved atomically, so that a scan stopped by
Ctrl-C, a lost machine or kill -9 continues where it was (`ftaudit data scan --resume`) and ends with the report
an uninterrupted scan writes.

The state is the aggregate (every count, the duplicate index, the record digests), how many jobs it holds, and how
far the findings file had been written. It is a pickle, read back only by the scan that wrote it, and only when
the inputs and the options are the same as then (size and modification time of every input)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftaudit.errors import BadInput
from ftaudit.io import atomic_open

VERSION = 2  # 2: Parquet files cut into row-group shards (the job list changed)
FILENAME = "scan.checkpoint"


def fingerprint(paths: list[Path]) -> list[tuple[str, int, int]]:
    """What must not change between the interrupted scan and its resumption."""
    out = []
    for p in paths:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for f in files:
            st = f.stat()
            out.append((str(f), st.st_size, st.st_mtime_ns))
    return out


@dataclass
class State:
    version: int
    options: Any
    inputs: list[tuple[str, int, int]]
    jobs_done: int
    bytes_done: int
    aggregate: Any
    per_file: Any
    errors: dict[int, list]
    findings_tmp: str | None
    findings_bytes: int


def save(path: Path, state: State) -> None:
    with atomic_open(path, "wb") as fh:
        pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)


def load(path: Path, *, options: Any, inputs: list[tuple[str, int, int]]) -> State:
    if not path.is_file():
        raise BadInput(f"nothing to resume: no checkpoint at {path}; run the scan without --resume")
    try:
        with open(path, "rb") as fh:
            state = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise BadInput(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it and scan again") from None
    if not isinstance(state, State) or state.version != VERSION:
        raise BadInput(f"{path}: a checkpoint of another ftaudit version; delete it and scan again")
    if state.options != options:
        raise BadInput(f"{path}: the checkpoint was written with other scan options; resume with the same "
                       "arguments, or delete it and scan again")
    if state.inputs != inputs:
        raise BadInput(f"{path}: the data changed since the interrupted scan (size or modification time); delete "
                       "the checkpoint and scan again")
    if state.findings_tmp and not Path(state.findings_tmp).is_file():
        raise BadInput(f"{path}: the partial findings file {state.findings_tmp} is gone; delete the checkpoint and "
                       "scan again")
    return state


def discard(path: Path | None, state_tmp: str | None = None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
    if state_tmp:
        Path(state_tmp).unlink(missing_ok=True)


def discard_stale(path: Path) -> None:
    """A fresh scan replaces an old checkpoint, and the partial findings file it points to."""
    if not path.is_file():
        return
    try:
        with open(path, "rb") as fh:
            tmp = getattr(pickle.load(fh), "findings_tmp", None)
    except Exception:  # noqa: BLE001 - a damaged checkpoint is simply replaced
        tmp = None
    discard(path, tmp)


def reopen(tmp: str, length: int):
    """The interrupted scan's partial findings file, cut back to what the checkpoint had folded."""
    fh = open(tmp, "r+b")
    fh.truncate(length)
    fh.seek(length)
    os.fsync(fh.fileno())
    return fh
