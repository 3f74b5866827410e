"""Streaming loaders for training data: JSONL, JSON, CSV/TSV, Parquet, plain text, Hugging Face datasets on disk.

Every loader yields `Record`s one at a time and never reads a whole JSONL/CSV/text file into memory, so a file
larger than memory can be scanned. Bad input becomes one `BadInput` line that names the file and the line; it never
quotes the offending content (it may hold personal data).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ftaudit.data.storage import ObjectPath, location
from ftaudit.errors import BadInput

OnError = Literal["stop", "skip"]

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".jsonlines"}
JSON_SUFFIXES = {".json"}
CSV_SUFFIXES = {".csv", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
TEXT_SUFFIXES = {".txt", ".text", ".md"}
SUPPORTED = sorted(JSONL_SUFFIXES | JSON_SUFFIXES | CSV_SUFFIXES | PARQUET_SUFFIXES | TEXT_SUFFIXES)

_SNIFF_BYTES = 8192
_JSON_CHUNK = 1 << 16  # grows by doubling while one value is larger


@dataclass(frozen=True)
class Record:
    """One training example. `index` is the 0-based line (JSONL, text), row (CSV, Parquet, datasets) or array
    element (JSON) in its file; blank lines are skipped but still counted, so `index` matches the line number."""

    index: int
    source: str
    data: dict


@dataclass(frozen=True)
class ByteRange:
    """A shard of a line-oriented file (JSONL, text): the whole lines that start in [start, end); `first_line` is
    the 0-based number of the line at `start`, so records keep their file-wide index."""

    start: int
    end: int
    first_line: int

    @property
    def bytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class RowGroups:
    """A shard of a Parquet file: row groups [first, stop); `first_row` is the file-wide index of its first row,
    `bytes` their compressed size (what reading them costs)."""

    first: int
    stop: int
    first_row: int
    bytes: int


LINE_FORMATS = ("jsonl", "text")  # the formats that shard by byte range
SHARDED = (*LINE_FORMATS, "parquet")  # the formats a worker reads a shard of itself


def shards(path: str | os.PathLike, fmt: str, shard_bytes: int) -> Iterator[ByteRange | RowGroups]:
    """The shards of a JSONL, text or Parquet file (`fmt` in SHARDED), each about `shard_bytes`."""
    return byte_ranges(path, shard_bytes) if fmt in LINE_FORMATS else row_groups(path, shard_bytes)


def row_groups(path: str | os.PathLike, shard_bytes: int) -> Iterator[RowGroups]:
    """Consecutive row groups of a Parquet file, about `shard_bytes` compressed each (at least one group): read
    from the footer alone."""
    p = location(path)
    _check_file(p, text=False)
    with _parquet_file(p) as pf:
        meta = pf.metadata
    first = first_row = size = rows = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        size += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        rows += group.num_rows
        if size >= shard_bytes or i == meta.num_row_groups - 1:
            yield RowGroups(first, i + 1, first_row, size)
            first, first_row, size, rows = i + 1, first_row + rows, 0, 0


def byte_ranges(path: str | os.PathLike, shard_bytes: int) -> Iterator[ByteRange]:
    """Cut a line-oriented file into shards of about `shard_bytes`, each ending just after a newline (or at the end
    of the file). One sequential read that only counts newlines, in bounded memory, so that every shard knows the
    number of its first line. A missing, empty, binary or UTF-16 file fails first, as `iter_records` does."""
    p = location(path)
    _check_file(p, text=True)
    size = p.stat().st_size
    start = first_line = 0
    with p.open("rb") as fh:
        while start < size:
            end = min(size, start + shard_bytes)
            fh.seek(start)
            lines, left = 0, end - start
            while left:
                chunk = fh.read(min(1 << 20, left))
                lines += chunk.count(b"\n")
                left -= len(chunk)
            if end < size:
                fh.seek(end - 1)
                if fh.read(1) != b"\n":  # the target cuts a line: run on to its end
                    pos = end
                    while chunk := fh.read(1 << 16):
                        cut = chunk.find(b"\n")
                        if cut >= 0:
                            pos, lines = pos + cut + 1, lines + 1
                            break
                        pos += len(chunk)
                    end = min(pos, size)
            yield ByteRange(start, end, first_line)
            first_line += lines
            start = end


@dataclass(frozen=True)
class LoadError:
    """A record that could not be read (collected when on_error="skip"). Never carries the record's content."""

    source: str
    index: int
    message: str


@dataclass
class _Sink:
    on_error: OnError
    errors: list | None = field(default=None)

    def bad(self, source: str, index: int, message: str) -> None:
        if self.on_error == "stop":
            raise BadInput(f"{source}: {message} (use --on-error skip to skip bad records)")
        if self.errors is not None:
            self.errors.append(LoadError(source, index, message))


def detect_format(path: str | os.PathLike) -> str:
    """'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet' | 'text' | 'hf_dataset' from the path; BadInput otherwise."""
    p = location(path)
    if p.is_dir():
        if _saved_dataset(p):
            return "hf_dataset"
        raise BadInput(f"{p}: is a directory but not a Hugging Face dataset saved with save_to_disk "
                       "(no dataset_dict.json or state.json)")
    suffix = p.suffix.lower()
    if suffix == ".gz":
        raise BadInput(f"{p}: compressed files are not read directly; decompress it first")
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in TEXT_SUFFIXES:
        return "text"
    raise BadInput(f"{p}: unsupported file type {suffix or '(no extension)'!r}; supported: "
                   f"{', '.join(SUPPORTED)} or a directory written by datasets' save_to_disk")


def _saved_dataset(p: Path | ObjectPath) -> bool:
    return (p / "dataset_dict.json").is_file() or (p / "state.json").is_file()


def data_files(path: str | os.PathLike) -> list[Path | ObjectPath]:
    """The files a path names: itself; for a prefix (a folder) in object storage, the data files under it
    (supported types, in name order), so that `s3://bucket/corpus/` scans every shard of the corpus."""
    p = location(path)
    if not isinstance(p, ObjectPath) or not p.is_dir() or _saved_dataset(p):
        return [p]
    files = [q for q in p.rglob("*") if q.suffix.lower() in SUPPORTED]
    if not files:
        raise BadInput(f"{p}: no data files under this prefix (looked for {', '.join(SUPPORTED)})")
    return files


def _check_file(p: Path | ObjectPath, *, text: bool) -> None:
    """Missing, empty, binary or UTF-16 files fail early with one clear line."""
    if not p.exists():
        raise BadInput(f"{p}: no such file")
    if not p.is_file():
        raise BadInput(f"{p}: not a regular file")
    try:
        with p.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise BadInput(f"{p}: cannot read: {exc.strerror}") from None
    if not head:
        raise BadInput(f"{p}: file is empty")
    if not text:
        return
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or head.startswith(
            (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise BadInput(f"{p}: file is UTF-16/UTF-32 encoded; convert it to UTF-8 "
                       "(e.g. iconv -f UTF-16 -t UTF-8)")
    if b"\x00" in head:
        raise BadInput(f"{p}: looks like a binary file (contains NUL bytes), not UTF-8 text")


def _decode(raw: bytes, p: Path, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{p}: line {lineno + 1} is not valid UTF-8 (byte {exc.start} of the line); "
                       "convert the file to UTF-8 (e.g. iconv -f latin1 -t UTF-8)") from None


class _Lines:
    """(0-based line number, raw line) of a binary file, BOM and NUL checked. An iterator object, not a generator:
    it keeps no reference to the line it handed out, so a 50 MB line is not held once more while it is parsed."""

    def __init__(self, fh, p: Path, span: ByteRange | None = None):
        self.fh, self.p = fh, p
        self.lineno, self.end = -1, None
        if span is not None:  # a shard: whole lines from span.start (a line start) up to span.end
            fh.seek(span.start)
            self.lineno, self.end = span.first_line - 1, span.end

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> tuple[int, bytes]:
        if self.end is not None and self.fh.tell() >= self.end:
            raise StopIteration
        raw = self.fh.readline()
        if not raw:
            raise StopIteration
        self.lineno += 1
        if self.lineno == 0 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        if b"\x00" in raw:
            raise BadInput(f"{self.p}: line {self.lineno + 1} contains NUL bytes; this looks like a binary file")
        return self.lineno, raw


def _as_record_data(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        return {"text": value}  # a JSONL file of bare strings: each string is the text
    return None


def _jsonl(p: Path, sink: _Sink, span: ByteRange | None = None) -> Iterator[Record]:
    src = str(p)
    with p.open("rb") as fh:
        for lineno, raw in _Lines(fh, p, span):
            if raw.isspace():
                continue
            line = _decode(raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw, p, lineno)
            del raw  # the bytes go before the parse: a 200 MB line is held twice while parsed, not three times
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                sink.bad(src, lineno, f"line {lineno + 1}: invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            del line
            data = _as_record_data(value)
            if data is None:
                sink.bad(src, lineno, f"line {lineno + 1}: expected a JSON object, got {type(value).__name__}")
                continue
            yield Record(lineno, src, data)


class _ChunkedText:
    """A growing text buffer over a binary file, decoded incrementally as UTF-8."""

    def __init__(self, fh, p: Path):
        self.fh, self.p = fh, p
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.consumed = 0  # characters dropped from the front of buf (for error positions)

    def more(self, size: int = _JSON_CHUNK) -> bool:
        if self.eof:
            return False
        raw = self.fh.read(size)
        try:
            if not raw:
                self.eof = True
                self.buf += self.decoder.decode(b"", final=True)
                return False
            self.buf += self.decoder.decode(raw)
        except UnicodeDecodeError:
            raise BadInput(f"{self.p}: not valid UTF-8 near character {self.consumed + len(self.buf)}; "
                           "convert the file to UTF-8") from None
        return True

    def compact(self) -> None:
        if self.pos > _JSON_CHUNK:
            self.consumed += self.pos
            self.buf = self.buf[self.pos:]
            self.pos = 0

    def skip_ws(self) -> str:
        """Skips whitespace; returns the next character ('' at end of file)."""
        while True:
            m = _WS.match(self.buf, self.pos)
            self.pos = m.end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""


_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")


def _json(p: Path, sink: _Sink) -> Iterator[Record]:
    """A top-level JSON array, streamed element by element; a top-level object is one record, and a '.json' file
    that holds several objects one after another is read as JSON Lines."""
    src = str(p)
    with p.open("rb") as fh:
        t = _ChunkedText(fh, p)
        t.more()
        if t.buf.startswith("\ufeff"):
            t.pos = 1
        first = t.skip_ws()
        if first == "":
            raise BadInput(f"{p}: file is empty")
        if first != "[":
            # A single object, or JSON Lines saved as .json: parse values one after another.
            index = 0
            while t.skip_ws():
                value = _decode_value(t, p, index)
                data = _as_record_data(value)
                if data is None:
                    sink.bad(src, index, f"value {index}: expected a JSON object, got {type(value).__name__}")
                else:
                    yield Record(index, src, data)
                index += 1
            return
        t.pos += 1
        index = 0
        while True:
            c = t.skip_ws()
            if c == "]":
                t.pos += 1
                break
            if c == "":
                raise BadInput(f"{p}: JSON array is not closed (file ends after element {index})")
            if index > 0:
                if c != ",":
                    raise BadInput(f"{p}: invalid JSON after array element {index - 1} (expected ',' or ']')")
                t.pos += 1
                t.skip_ws()
            value = _decode_value(t, p, index)
            data = _as_record_data(value)
            if data is None:
                sink.bad(src, index, f"array element {index}: expected a JSON object, got {type(value).__name__}")
            else:
                yield Record(index, src, data)
            index += 1
            t.compact()
        if t.skip_ws():
            raise BadInput(f"{p}: unexpected content after the top-level JSON array")


def _decode_value(t: _ChunkedText, p: Path, index: int):
    """Decodes one JSON value at t.pos, reading more of the file while the value is incomplete."""
    chunk = _JSON_CHUNK
    while True:
        try:
            value, end = _DECODER.raw_decode(t.buf, t.pos)
        except json.JSONDecodeError as exc:
            # An incomplete value (the buffer ends inside it) → read more; otherwise it is really invalid.
            incomplete = exc.msg.startswith("Unterminated string") or exc.pos >= len(t.buf) - 16
            if incomplete and not t.eof and t.more(chunk):
                chunk *= 2  # doubling keeps re-parsing of one huge value O(n log n)
                continue
            if t.eof and exc.pos >= len(t.buf) - 16:
                raise BadInput(f"{p}: file ends inside element {index}; the JSON is truncated (not closed)") from None
            raise BadInput(f"{p}: invalid JSON in element {index} ({exc.msg} at character "
                           f"{t.consumed + exc.pos})") from None
        # A number at the very end of the buffer may continue in the next chunk.
        if end == len(t.buf) and not t.eof and t.more(chunk):
            continue
        t.pos = end
        return value


def _csv(p: Path, sink: _Sink, delimiter: str) -> Iterator[Record]:
    src = str(p)
    csv.field_size_limit(sys.maxsize)  # a single 50 MB cell is data, not an error
    with p.open("rb") as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.reader(stream, delimiter=delimiter)
        try:
            try:
                header = next(reader)
            except StopIteration:
                raise BadInput(f"{p}: file is empty") from None
            if not any(h.strip() for h in header):
                raise BadInput(f"{p}: the first row must be a header with column names")
            names = [h.strip() or f"column_{i}" for i, h in enumerate(header)]
            index = 0
            for row in reader:
                if not row:
                    index += 1
                    continue
                if len(row) != len(names):
                    sink.bad(src, index, f"row {index + 1} (line {reader.line_num}): {len(row)} fields, "
                                         f"header has {len(names)}")
                else:
                    yield Record(index, src, dict(zip(names, row, strict=True)))
                index += 1
        except UnicodeDecodeError:
            raise BadInput(f"{p}: not valid UTF-8 (near line {reader.line_num + 1}); convert the file to UTF-8 "
                           "(e.g. iconv -f latin1 -t UTF-8)") from None
        except csv.Error as exc:
            raise BadInput(f"{p}: malformed CSV at line {reader.line_num}: {exc}") from None


def _text(p: Path, span: ByteRange | None = None) -> Iterator[Record]:
    src = str(p)
    with p.open("rb") as fh:
        for lineno, raw in _Lines(fh, p, span):
            line = _decode(raw, p, lineno).rstrip("\r\n")
            del raw
            if line and not line.isspace():
                yield Record(lineno, src, {"text": line})


@contextlib.contextmanager
def _parquet_file(p: Path | ObjectPath) -> Iterator:
    """A pyarrow ParquetFile over the file or object, closed after; an unreadable file is one line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with p.open("rb") if isinstance(p, ObjectPath) else contextlib.nullcontext(p) as source:
        try:
            pf = pq.ParquetFile(source)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInput(f"{p}: not a readable Parquet file ({type(exc).__name__})") from None
        yield pf


def _parquet(p: Path | ObjectPath, span: RowGroups | None = None) -> Iterator[Record]:
    src = str(p)
    with _parquet_file(p) as pf:
        groups = range(span.first, span.stop) if span is not None else range(pf.metadata.num_row_groups)
        index = span.first_row if span is not None else 0
        for batch in pf.iter_batches(batch_size=1024, row_groups=list(groups)):
            for row in batch.to_pylist():
                yield Record(index, src, row)
                index += 1


def _hf_dataset(p: Path | ObjectPath) -> Iterator[Record]:
    """The rows of a `save_to_disk` directory, local or in object storage, read from its Arrow files as stored
    (every column, whatever format view was set; rows numbered per split), with no `datasets` import."""
    if (p / "dataset_dict.json").is_file():
        for split in _json_file(p / "dataset_dict.json", "splits"):
            yield from _arrow_split(p / split, f"{p}[{split}]")
    else:
        yield from _arrow_split(p, str(p))


def _arrow_split(p: Path | ObjectPath, src: str) -> Iterator[Record]:
    import pyarrow as pa

    index = 0
    for data_file in _json_file(p / "state.json", "_data_files"):
        f = p / data_file["filename"]
        try:
            with f.open("rb") as fh:
                for batch in pa.ipc.open_stream(fh):
                    for row in batch.to_pylist():
                        yield Record(index, src, row)
                        index += 1
        except FileNotFoundError:
            raise BadInput(f"{f}: listed in {p / 'state.json'} but missing; save the dataset again") from None
        except pa.ArrowInvalid as exc:
            raise BadInput(f"{f}: not a readable Arrow file of a saved dataset ({exc})") from None


def _json_file(p: Path | ObjectPath, key: str) -> Any:
    try:
        with p.open("rb") as fh:
            return json.load(fh)[key]
    except FileNotFoundError:
        raise BadInput(f"{p}: missing, so this is not a complete save_to_disk directory; save the dataset "
                       "again") from None
    except (ValueError, KeyError, TypeError):
        raise BadInput(f"{p}: not the {p.name} that datasets' save_to_disk writes (no {key!r}); save the dataset "
                       "again") from None


def iter_records(path: str | os.PathLike, *, on_error: OnError = "stop", errors: list | None = None,
                 span: ByteRange | RowGroups | None = None) -> Iterator[Record]:
    """Streams the records of one file (or saved dataset directory), or of one shard (`span`, from `shards`) of a
    JSONL, text or Parquet file.

    on_error="stop": the first bad record raises BadInput naming the file and line. on_error="skip": bad records
    are skipped and, if `errors` is a list, a LoadError is appended for each. Problems with the file as a whole
    (missing, empty, binary, wrong encoding) always raise.
    """
    if on_error not in ("stop", "skip"):
        raise BadInput(f"on_error must be 'stop' or 'skip', not {on_error!r}")
    p = location(path)
    if not p.exists():
        raise BadInput(f"{p}: no such file or directory")
    fmt = detect_format(p)
    sink = _Sink(on_error, errors)
    if span is not None:
        if fmt not in SHARDED:
            raise BadInput(f"{p}: only JSONL, text and Parquet files are read by shard, not {fmt}")
        yield from (_jsonl(p, sink, span) if fmt == "jsonl" else _text(p, span) if fmt == "text" else
                    _parquet(p, span))
        return
    if fmt == "hf_dataset":
        yield from _hf_dataset(p)
        return
    _check_file(p, text=fmt != "parquet")
    count = 0
    if fmt == "jsonl":
        gen = _jsonl(p, sink)
    elif fmt == "json":
        gen = _json(p, sink)
    elif fmt in ("csv", "tsv"):
        gen = _csv(p, sink, "," if fmt == "csv" else "\t")
    elif fmt == "parquet":
        gen = _parquet(p)
    else:
        gen = _text(p)
    for rec in gen:
        count += 1
        yield rec
    if count == 0 and not (errors and any(e.source == str(p) for e in errors)):
        raise BadInput(f"{p}: contains no records")


def count_records(path: str | os.PathLike) -> int:
    """About how many records a file holds, cheaply: the lines of a JSONL or text file (one pass that only counts
    newlines; blank lines included), the rows of a Parquet file (its footer), the records of other formats."""
    p = location(path)
    fmt = detect_format(p)
    if fmt == "parquet":
        with _parquet_file(p) as pf:
            return pf.metadata.num_rows
    if fmt not in LINE_FORMATS:
        return sum(1 for _ in iter_records(p, on_error="skip", errors=[]))
    total, last = 0, b"\n"
    with p.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            total += chunk.count(b"\n")
            last = chunk[-1:]
    return total + (last != b"\n")


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")


def _key_path(prefix: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key, ensure_ascii=False)}]"


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, _key_path(path, str(k)))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


# Keys shown in an error message: lowercase schema names only ("prompt", "source_url"). Any other key may be data
# (an e-mail address, a name used as a key) and is counted, never echoed.
_SCHEMA_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")


def describe_fields(data: Any) -> str:
    """The top-level keys of a record for a message: schema-like names, the others as a count."""
    if not isinstance(data, dict):
        return f"the record is a {type(data).__name__}, not an object"
    keys = sorted(map(str, data))
    shown = [k for k in keys if _SCHEMA_KEY.match(k)]
    hidden = len(keys) - len(shown)
    text = ", ".join(shown) or "none"
    return text + (f" and {hidden} other key(s), not shown (they are not plain field names and may be data)"
                   if hidden else "")


def iter_texts(record: Record, fields: Sequence[str] | None = None) -> Iterator[tuple[str, str]]:
    """Every string leaf of the record as (field_path, text): `text`, `prompt`, `messages[2].content`,
    `meta.author`; a key that is not a plain identifier is quoted: `["first name"]`.

    With `fields`, only leaves under those top-level paths; a field missing from the record raises BadInput
    naming the file and record (never the content)."""
    if fields is None:
        yield from _walk(record.data, "")
        return
    for name in fields:
        if name not in record.data:
            raise BadInput(f"{record.source}: record {record.index} has no field {name!r} "
                           f"(fields present: {describe_fields(record.data)})")
        yield from _walk(record.data[name], _key_path("", name))


def map_texts(value: Any, fn, path: str = "") -> Any:
    """A copy of `value` with every string leaf replaced by fn(path, text); paths as in iter_texts."""
    if isinstance(value, str):
        return fn(path, value)
    if isinstance(value, dict):
        return {k: map_texts(v, fn, _key_path(path, str(k))) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_texts(v, fn, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
