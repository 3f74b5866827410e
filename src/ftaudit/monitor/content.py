"""What an event keeps of a prompt and an answer, under the deployment's content policy:

  hash      (default) a keyed digest only: equal texts give equal digests (repeats and duplicates stay countable),
            and nobody without the deployment's salt can test a guess against it;
  redacted  the text with every finding of ftaudit's personal-data and secrets detectors replaced by its type
            (patterns and checksums; NER is off on live traffic, so names without a cue are not caught — a
            reading of proportionality for per-request latency, docs/monitor.md);
  full      the text as sent (opt-in; the gateway warns at start).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import Counter
from pathlib import Path
from typing import Literal

from ftaudit.errors import BadInput

Policy = Literal["hash", "redacted", "full"]
SALT_ENV = "FTAUDIT_MONITOR_SALT"


def findings(text: str) -> list[tuple[str, int, int]]:
    """(type, start, end) of personal data and secrets in a text; values are never returned."""
    from ftaudit.data.pii import detect_text

    return [(s.type, s.start, s.end) for s in detect_text(text, ner=False, special=False)]


def redact(text: str, spans: list[tuple[str, int, int]]) -> str:
    out, last = [], 0
    for kind, start, end in sorted(spans, key=lambda s: s[1]):
        out += [text[last:start], f"<{kind}>"]
        last = end
    return "".join(out) + text[last:]


def load_salt(path: str | os.PathLike | None = None) -> bytes:
    """The deployment's salt: $FTAUDIT_MONITOR_SALT (hex, for replicas on several machines), else a file (created
    with 32 random bytes, mode 0600, on first use) beside the ledger's signing key."""
    env = os.environ.get(SALT_ENV)
    if env:
        try:
            salt = bytes.fromhex(env)
        except ValueError:
            raise BadInput(f"{SALT_ENV}: give the salt as hex digits (e.g. `openssl rand -hex 32`)") from None
        if len(salt) < 16:
            raise BadInput(f"{SALT_ENV}: a salt needs at least 16 bytes (32 hex digits)")
        return salt
    if path is None:
        from ftaudit.ledger.keys import default_key_path

        path = default_key_path().parent / "monitor_salt"
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_bytes(32).hex())
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise BadInput(f"{path}: not a monitor salt (hex digits); remove it to make a new one") from None


class ContentPolicy:
    def __init__(self, policy: Policy, salt: bytes):
        self.policy = policy
        self._salt = salt

    def digest(self, text: str) -> str:
        return "hmac-sha256:" + hmac.new(self._salt, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def keep(self, text: str | None, spans: list[tuple[str, int, int]]) -> str | None:
        if text is None:
            return None
        if self.policy == "full":
            return text
        if self.policy == "redacted":
            return redact(text, spans)
        return self.digest(text)


def count_types(spans: list[tuple[str, int, int]]) -> dict[str, int]:
    return dict(Counter(kind for kind, _, _ in spans))
