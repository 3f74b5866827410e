"""Resumable scans: the scan's state after its last folded shard, saved atomically, so that a scan stopped by
Ctrl-C, a lost machine or kill -9 continues where it was (`ftaudit data scan --resume`) and ends with the report
an uninterrupted scan writes.

The state is the aggregate (every count, the duplicate index, the record digests), how many jobs it holds, and how
far the findings file had been written. It is a pickle, read back only by the scan that wrote it, and only when
the inputs and the options are the same as then (size and modification time of every input).

The duplicate index is most of it (hundreds of bytes a record) and grows with the scan, so a checkpoint that
pickled it whole would cost more with every save. Its large arrays are immutable once made (marked read-only:
the sorted runs, the full signature blocks), so each is written once, as a `.npy` file in a directory beside the
pickle, and the pickle refers to it by name: a save writes what is new since the last one. Files no checkpoint
refers to any more are deleted after the new pickle is in place, so the previous checkpoint stays whole until
then."""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftaudit.errors import BadInput
from ftaudit.io import atomic_open

VERSION = 2  # 2: Parquet files cut into row-group shards (the job list changed)
FILENAME = "scan.checkpoint"
SPILL_BYTES = 1 << 20  # read-only arrays at least this large are written once, beside the pickle
_written: dict[tuple[Path, int], tuple[weakref.ref, str]] = {}  # (directory, id(array)) → (the array, its file)


def arrays_dir(path: Path) -> Path:
    return path.with_name(path.name + ".arrays")


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


class _Pickler(pickle.Pickler):
    def __init__(self, fh, folder: Path):
        super().__init__(fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.folder, self.used = folder, set()

    def persistent_id(self, obj):
        if type(obj) is not np.ndarray or obj.flags.writeable or obj.nbytes < SPILL_BYTES:
            return None
        known = _written.get((self.folder, id(obj)))
        if known is None or known[0]() is not obj:
            name = secrets.token_hex(8)
            with atomic_open(self.folder / f"{name}.npy", "wb") as fh:
                np.save(fh, obj, allow_pickle=False)
            known = _written[self.folder, id(obj)] = (weakref.ref(obj), name)
        self.used.add(known[1])
        return known[1]


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, folder: Path | None):
        super().__init__(fh)
        self.folder = folder

    def persistent_load(self, name: str):
        if self.folder is None:  # only looking for the partial findings file
            return None
        arr = np.load(self.folder / f"{name}.npy", allow_pickle=False)
        arr.flags.writeable = False
        _written[self.folder, id(arr)] = (weakref.ref(arr), name)
        return arr


def save(path: Path, state: State) -> None:
    folder = arrays_dir(path)
    with atomic_open(path, "wb") as fh:
        pickler = _Pickler(fh, folder)
        pickler.dump(state)
    for f in folder.glob("*.npy"):
        if f.stem not in pickler.used:
            f.unlink()
    for key in [k for k, (_, name) in _written.items() if k[0] == folder and name not in pickler.used]:
        del _written[key]


def load(path: Path, *, options: Any, inputs: list[tuple[str, int, int]]) -> State:
    if not path.is_file():
        raise BadInput(f"nothing to resume: no checkpoint at {path}; run the scan without --resume")
    try:
        with open(path, "rb") as fh:
            state = _Unpickler(fh, arrays_dir(path)).load()
    except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
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
        shutil.rmtree(arrays_dir(path), ignore_errors=True)
    if state_tmp:
        Path(state_tmp).unlink(missing_ok=True)


def discard_stale(path: Path) -> None:
    """A fresh scan replaces an old checkpoint, and the partial findings file it points to."""
    if not path.is_file():
        return
    try:
        with open(path, "rb") as fh:
            tmp = getattr(_Unpickler(fh, None).load(), "findings_tmp", None)
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
