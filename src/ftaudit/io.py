"""Atomic file output: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import yaml

from ftaudit.errors import BadInput


def _default_mode() -> int:
    # mkstemp makes 0600 files; outputs should get the permissions a plain open() would give them.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_DEFAULT_MODE = _default_mode()


@contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror}; choose a writable output directory") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _DEFAULT_MODE if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """`open()` for writing, atomically: the file appears at `path` complete, or not at all."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=str) + "\n")


def load_yaml(text: str):
    """Parse YAML shipped with ftaudit (registry, GPU table, lexicons) with libyaml when PyYAML has it: the
    registry alone takes 0.1 s with the pure-Python parser, a third of `ftaudit estimate`'s budget."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read_yaml(path: str | os.PathLike, what: str, *, hint: str = ""):
    """Parse a YAML file the user gave; any problem is one BadInput line naming the file (and the line in it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: {what} not found{hint}") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory; pass the {what}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: the {what} is not UTF-8 text") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise BadInput(f"{path}: malformed YAML{where} in the {what}: {problem}") from None


def sha256_file(path: str | os.PathLike) -> tuple[str, int]:
    """(sha256 hex digest, size in bytes) of a file, read in 1 MiB blocks."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def sha256_stream(fh) -> tuple[str, int]:
    """(sha256 hex digest, size in bytes) of what is left to read in a binary stream."""
    h = hashlib.sha256()
    size = 0
    while block := fh.read(1 << 20):
        h.update(block)
        size += len(block)
    return h.hexdigest(), size
