"""Where scanned data lives: a local path, or an object in storage that Apache Arrow's filesystems read —
`s3://bucket/key` (AWS S3 and S3-compatible stores: MinIO, Ceph, R2 …), `gs://bucket/key` (Google Cloud Storage),
`abfs://container@account.dfs.core.windows.net/path` (Azure), `hdfs://host:port/path`.

`location(text)` gives a `pathlib.Path` for a local path and an `ObjectPath` for a URL; both answer the same few
questions (name, suffix, exists, is_file, is_dir, stat, open), so the loaders and shards read either the same way.
Credentials and endpoints come from each store's usual environment (AWS_ACCESS_KEY_ID / AWS_PROFILE /
AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCOUNT_KEY …), as Arrow, Ray and the clouds' own
tools read them. Objects are read, and written only where a data-subject erasure puts the new version of a
dataset beside the old one (`upload`, then `replace` on confirmation); every other output goes to a local path.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

from ftaudit.errors import BadInput

SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs")
_URL = re.compile(r"([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
READ_BUFFER = 8 << 20  # one ranged GET per 8 MiB read, not one per line


def location(path: str | os.PathLike) -> Path | ObjectPath:
    if isinstance(path, (Path, ObjectPath)):
        return path
    text = os.fspath(path)
    m = _URL.match(text)
    if m is None:
        return Path(text)
    scheme = m.group(1).lower()
    if scheme not in SCHEMES:
        raise BadInput(f"{text}: unsupported storage scheme {scheme}://; supported: a local path or "
                       + ", ".join(f"{s}://" for s in SCHEMES))
    return ObjectPath(text.rstrip("/"))


@dataclass(frozen=True)
class ObjectPath:
    """An object (or a prefix, the "directory") in object storage, by URL."""

    url: str

    def __str__(self) -> str:
        return self.url

    def __truediv__(self, name: str) -> ObjectPath:
        return ObjectPath(f"{self.url}/{name}")

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    def with_name(self, name: str) -> ObjectPath:
        return ObjectPath(f"{self.url.rsplit('/', 1)[0]}/{name}")

    def upload(self, local: Path) -> None:
        """Writes a local file's bytes as this (new) object. The stores commit an upload when it ends, so readers
        never see part of it; an upload that fails is deleted, not left half-written."""
        fs, key = _filesystem(self.url)
        try:
            with local.open("rb") as src, fs.open_output_stream(key) as dst:
                shutil.copyfileobj(src, dst, READ_BUFFER)
        except OSError as exc:
            with suppress(OSError):
                fs.delete_file(key)
            raise unwritable(self, exc) from None

    def replace(self, target: ObjectPath) -> None:
        """`Path.replace` for objects: `target` becomes this object (a server-side copy, which readers see whole,
        then a delete)."""
        fs, key = _filesystem(self.url)
        try:
            fs.move(key, _filesystem(target.url)[1])
        except OSError as exc:
            raise unwritable(target, exc) from None

    def _info(self):
        fs, key = _filesystem(self.url)
        try:
            return fs.get_file_info(key)
        except OSError as exc:
            raise unreadable(self, exc) from None

    def exists(self) -> bool:
        return self._info().type.name != "NotFound"

    def is_file(self) -> bool:
        return self._info().type.name == "File"

    def is_dir(self) -> bool:
        return self._info().type.name == "Directory"

    def stat(self) -> SimpleNamespace:
        info = self._info()
        if info.type.name == "NotFound":
            raise FileNotFoundError(self.url)
        mtime = info.mtime_ns if info.mtime_ns is not None else 0
        return SimpleNamespace(st_size=info.size or 0, st_mtime_ns=mtime)

    def open(self, mode: str = "rb") -> io.BufferedReader:
        if mode != "rb":
            raise BadInput(f"{self.url}: objects in storage are read, not written; write to a local path")
        fs, key = _filesystem(self.url)
        try:
            return io.BufferedReader(fs.open_input_file(key), READ_BUFFER)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise unreadable(self, exc) from None

    def rglob(self, pattern: str):
        """The objects under this prefix, in name order (`pattern` must be "*": only what `Path.rglob("*")` is
        used for here)."""
        import pyarrow.fs as pafs

        if pattern != "*":
            raise ValueError("ObjectPath.rglob supports only '*'")
        fs, key = _filesystem(self.url)
        try:
            infos = fs.get_file_info(pafs.FileSelector(key, recursive=True))
        except OSError as exc:
            raise unreadable(self, exc) from None
        root = self.url[: len(self.url) - len(key)]
        return [ObjectPath(root + path) for path in sorted(i.path for i in infos if i.type == pafs.FileType.File)]


def _first_line(exc: OSError) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


def unreadable(p: ObjectPath, exc: OSError) -> BadInput:
    return BadInput(f"{p}: cannot read it from object storage: {_first_line(exc)}; check the URL, the credentials "
                    "and, for an S3-compatible store, AWS_ENDPOINT_URL")


def unwritable(p: ObjectPath, exc: OSError) -> BadInput:
    return BadInput(f"{p}: cannot write it to object storage: {_first_line(exc)}; check the credentials' write "
                    "permission and, for an S3-compatible store, AWS_ENDPOINT_URL")


def _filesystem(url: str):
    """(filesystem, key) for a URL, made each time (about 8 ms): credentials and endpoints are read as they are now,
    not as they were when the process first asked."""
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(url)
    except (OSError, ValueError) as exc:
        raise unreadable(ObjectPath(url), exc if isinstance(exc, OSError) else OSError(str(exc))) from None
