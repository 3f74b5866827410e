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
from collections import Counter
from pathlib import Path

from ftaudit.data.spans import Span
from ftaudit.errors import BadInput
from ftaudit.monitor.terms import ContentPolicy as Policy

SALT_ENV = "FTAUDIT_MONITOR_SALT"


def findings(text: str) -> list[Span]:
    """Personal data and secrets in a text, as offset spans; values are never returned."""
    from ftaudit.data.pii import detect_text

    return detect_text(text, ner=False, special=False)


def load_salt(path: str | os.PathLike | None = None) -> bytes:
    """The deployment's salt: $FTAUDIT_MONITOR_SALT (hex, for replicas on several machines), else a key file beside
    the ledger's signing key, made on first use like `ftaudit data anonymize --new-key` makes one (32 random bytes,
    mode 0600)."""
    from ftaudit.data.anonymize import MIN_KEY_BYTES, read_key, write_new_key

    env = os.environ.get(SALT_ENV)
    if env:
        try:
            salt = bytes.fromhex(env)
        except ValueError:
            raise BadInput(f"{SALT_ENV}: give the salt as hex digits (e.g. `openssl rand -hex 32`)") from None
        if len(salt) < MIN_KEY_BYTES:
            raise BadInput(f"{SALT_ENV}: a salt needs at least {MIN_KEY_BYTES} bytes ({2 * MIN_KEY_BYTES} hex digits)")
        return salt
    if path is None:
        from ftaudit.ledger.keys import default_key_path

        path = default_key_path().parent / "monitor_salt"
    path = Path(path).expanduser()
    if not path.exists():
        try:
            return write_new_key(path)
        except BadInput:
            if not path.exists():  # not the race with another replica making it: a real failure
                raise
    return read_key(path)


class ContentPolicy:
    def __init__(self, policy: Policy, salt: bytes):
        self.policy = policy
        self._salt = salt

    def digest(self, text: str) -> str:
        return "hmac-sha256:" + hmac.new(self._salt, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def keep(self, text: str | None, spans: list[Span]) -> str | None:
        if text is None:
            return None
        if self.policy == "full":
            return text
        if self.policy == "redacted":
            from ftaudit.data.anonymize import anonymize_text

            return anonymize_text(text, spans, "redact")[0]
        return self.digest(text)


def count_types(spans: list[Span]) -> dict[str, int]:
    return dict(Counter(sp.type for sp in spans))
