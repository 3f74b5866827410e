"""Canonical JSON and the sha256 hash chain.

An entry's hash covers its header (ledger id, sequence number, kind, time, signing key, previous hash) and the
sha256 of its content, not the content itself. That lets a bundle prove that one run's entries sit inside a signed
chain while carrying only the hashes — never the content — of the other runs' entries.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64
ENTRY_DOMAIN = b"ftaudit-ledger-entry/1:"
HEAD_DOMAIN = b"ftaudit-ledger-head/1:"
MANIFEST_DOMAIN = b"ftaudit-bundle-manifest/1:"

ENTRY_KINDS = ("lineage", "run", "event", "artefact")


def canonical_json(obj: Any) -> str:
    """One byte string per value: sorted keys, no whitespace, UTF-8, no NaN (JSON has none)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def entry_header(*, ledger_id: str, seq: int, kind: str, created_at: str, key_id: str, prev_hash: str,
                 content_sha256: str) -> dict[str, Any]:
    return {
        "ledger_id": ledger_id,
        "seq": seq,
        "kind": kind,
        "created_at": created_at,
        "key_id": key_id,
        "prev_hash": prev_hash,
        "content_sha256": content_sha256,
    }


def entry_hash(header: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(header))


def entry_message(entry_hash_hex: str) -> bytes:
    """What the ed25519 signature of an entry covers (domain-separated so a signature cannot be replayed)."""
    return ENTRY_DOMAIN + entry_hash_hex.encode("ascii")


def head_payload(*, ledger_id: str, count: int, head_hash: str, updated_at: str, key_id: str) -> dict[str, Any]:
    return {"ledger_id": ledger_id, "count": count, "head_hash": head_hash, "updated_at": updated_at,
            "key_id": key_id}


def head_message(payload: dict[str, Any]) -> bytes:
    return HEAD_DOMAIN + canonical_json(payload).encode("utf-8")


