"""The probe sets and lexicons shipped in `ftaudit/evaluation/data/`, each loaded with its sha256 fingerprint.

How they were built and their limits: `data/README.md`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ftaudit.errors import BadInput

DATA_PACKAGE = "ftaudit.evaluation.data"


@dataclass(frozen=True)
class ProbeFile:
    name: str
    source: str
    sha256: str
    content: Any  # parsed JSON, list of JSONL rows, or text


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj: Any) -> str:
    """Fingerprint of data given in memory (held-out records, canaries): canonical JSON, sorted keys."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())


def _parse(name: str, raw: bytes) -> Any:
    text = raw.decode("utf-8")
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if name.endswith(".json"):
        return json.loads(text)
    return text


def shipped(name: str) -> ProbeFile:
    raw = resources.files(DATA_PACKAGE).joinpath(name).read_bytes()
    return ProbeFile(
        name=name, source=f"shipped:ftaudit/evaluation/data/{name}", sha256=sha256_bytes(raw), content=_parse(name, raw)
    )


def read_jsonl(path: str | Path, *, what: str) -> tuple[list[dict], str]:
    """Rows of a user's JSONL file and the file's sha256; bad input is one clear line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise BadInput(f"{what} {path}: cannot read ({exc.strerror})") from None
    rows = []
    for lineno, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"{what} {path}:{lineno}: not valid JSON ({exc.msg}); expected one JSON object per line"
            ) from None
        if not isinstance(row, dict):
            raise BadInput(f"{what} {path}:{lineno}: expected a JSON object per line")
        rows.append(row)
    if not rows:
        raise BadInput(f"{what} {path}: the file holds no records")
    return rows, sha256_bytes(raw)


def task_rows(rows: list[dict], prompt_field: str, completion_field: str) -> list[dict]:
    """Rename a dataset's prompt/completion fields to the names the suites read (rows kept whole when they already
    use them, so their fingerprint is the file's)."""
    if (prompt_field, completion_field) == ("prompt", "completion"):
        return rows
    return [{"prompt": r.get(prompt_field), "completion": r.get(completion_field)} if prompt_field in r else r
            for r in rows]
