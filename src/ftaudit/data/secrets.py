"""Secrets in training data: cloud keys, API tokens, private keys, passwords in URLs, high-entropy assignments.

A secret in fine-tuning data can be memorised and regurgitated by the model (EDPB Opinion 28/2024 makes the same
point for personal data); the data policy can block training on them. Each pattern follows the issuer's published
token format; a literal prefix check skips a pattern cheaply when its prefix is absent from the text.
"""

from __future__ import annotations

import base64
import json
import math
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate

from ftaudit.data.spans import Span, lowered


@dataclass(frozen=True)
class SecretPattern:
    type: str
    regex: re.Pattern
    score: float
    prefixes: tuple[str, ...]  # one of these must occur in the text for the regex to run ("" = always)
    group: int = 0


def _rx(p: str, flags: int = 0) -> re.Pattern:
    return re.compile(p, flags)


PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern("AWS_ACCESS_KEY", _rx(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), 0.95,
                  ("AKIA", "ASIA", "ABIA", "ACCA")),
    SecretPattern("AWS_SECRET_KEY",
                  _rx(r"(?i)aws_?secret_?(?:access_?)?key[\"']?[ \t]*[:=][ \t]*[\"']?([A-Za-z0-9/+]{40})"
                      r"(?![A-Za-z0-9/+])"), 0.9, ("ecret",), group=1),
    SecretPattern("GITHUB_TOKEN", _rx(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b"), 0.95,
                  ("gh", "github_pat_")),
    # GitLab's token prefixes (docs.gitlab.com, "Token prefixes"): personal/project/group access, OAuth application
    # secret, deploy, runner, runner registration, CI job, trigger, feed, incoming mail, agent, SCIM, feature flags.
    SecretPattern("GITLAB_TOKEN", _rx(r"\b(?:gl(?:pat|oas|dt|rt|cbt|ptt|ft|imt|agent|soat|ffct)-[A-Za-z0-9_\-]{20,}"
                                      r"|GR1348941[A-Za-z0-9_\-]{20,})"), 0.95, ("gl", "GR1348941")),
    # Slack (api.slack.com/authentication/token-types): bot, user, workspace, legacy, refresh and session tokens,
    # app-level tokens (xapp-), configuration tokens and their refresh tokens (xoxe.xoxp-, xoxe-).
    SecretPattern("SLACK_TOKEN", _rx(r"\b(?:xox[abposre]|xapp|xoxe\.xox[bp])-[A-Za-z0-9\-]{10,250}"), 0.95,
                  ("xox", "xapp-")),
    SecretPattern("SLACK_WEBHOOK", _rx(r"https://hooks\.slack\.com/(?:services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/"
                                       r"[A-Za-z0-9_]+|(?:workflows|triggers)/T[A-Za-z0-9_]+/[A-Za-z0-9_/]+)"),
                  0.95, ("hooks.slack.com",)),
    # Stripe: secret and restricted keys, webhook signing secrets. Publishable keys (pk_) are public by design.
    SecretPattern("STRIPE_KEY", _rx(r"\b(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}|whsec_[A-Za-z0-9]{24,})\b"), 0.9,
                  ("_live_", "_test_", "whsec_")),
    SecretPattern("ANTHROPIC_API_KEY", _rx(r"\bsk-ant-[A-Za-z0-9_\-]{20,}"), 0.95, ("sk-ant-",)),
    SecretPattern("OPENAI_API_KEY", _rx(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"), 0.85, ("sk-",)),
    # Hugging Face user access tokens (hf_) and organisation API tokens (api_org_).
    SecretPattern("HUGGINGFACE_TOKEN", _rx(r"\b(?:hf_|api_org_)[A-Za-z0-9]{30,}\b"), 0.9, ("hf_", "api_org_")),
    SecretPattern("GOOGLE_API_KEY", _rx(r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])"), 0.9, ("AIza",)),
    # Azure: a storage account key in a connection string (88 base64 characters), a shared access signature's
    # `sig=`, and an Entra ID client secret (a digit, then "Q~", in 40 characters).
    SecretPattern("AZURE_STORAGE_KEY", _rx(r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)"), 0.95, ("ccountKey=",), group=1),
    SecretPattern("AZURE_SAS_TOKEN", _rx(r"[?&]sv=\d{4}-\d{2}-\d{2}[^\s\"'<>]*?[?&]sig=([A-Za-z0-9%+/=]{40,})"), 0.9,
                  ("sig=",), group=1),
    SecretPattern("AZURE_CLIENT_SECRET", _rx(r"(?<![A-Za-z0-9_~.\-])[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"
                                             r"(?![A-Za-z0-9_~.\-])"), 0.85, ("Q~",)),
    SecretPattern("JWT", _rx(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}"), 0.85, ("eyJ",)),
    SecretPattern("PRIVATE_KEY",
                  _rx(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{0,16384}?"
                      r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?"), 1.0, ("PRIVATE KEY",)),
    # scheme://user:password@host — the span is the password only, so anonymisation keeps the rest of the URL.
    SecretPattern("PASSWORD_IN_URL", _rx(r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@\"'<>]{1,128}:([^\s@/\"'<>]{1,128})@"
                                         r"[A-Za-z0-9.\-\[\]]"), 0.9, ("://",), group=1),
)

# Documentation and templates show keys that are not live: AWS's own examples end in EXAMPLE, placeholders repeat
# one character (xxxx, 0000), and a dummy PEM body is an ellipsis or a few characters.
_PLACEHOLDER_TOKEN = _rx(r"(?i)example|x{4}|\*{4}|0{8}|your[_\-]?(?:key|token|secret)|redacted"
                         r"|placeholder|dummy|fake|sample")


def _placeholder(kind: str, value: str) -> bool:
    if kind == "PRIVATE_KEY":
        parts = value.split("-----")  # "", BEGIN …, body, END …, ""
        if len(parts) < 5:
            return False  # a key cut off after its header: the rest may be anywhere
        b64 = re.sub(r"[^A-Za-z0-9+/=]", "", parts[2])
        return len(b64) < 64 or len(set(b64)) < 16 or bool(_PLACEHOLDER_TOKEN.search(parts[2]))
    core = value.split("_", 1)[-1] if kind != "AZURE_CLIENT_SECRET" else value
    return bool(_PLACEHOLDER_TOKEN.search(value)) or len(set(core)) <= 4


# key = "value" assignments whose key names a credential; scored by the value's entropy (low confidence).
# Found in two steps: str.find for the keyword stems, then an anchored match around each hit.
_KEY_STEMS = ("key", "secret", "token", "pass", "pwd")
_KEY_NAME = _rx(r"(?i)(?:api[_\-]?key|apikey|secret|token|passw(?:or)?d|pwd|access[_\-]?key|auth[_\-]?key"
                r"|private[_\-]?key)")
_ASSIGNMENT = _rx(r"[\w.\-]*[\"']?[ \t]*(?:=|:|=>)[ \t]*[\"']?([^\s\"',;]{8,200})")  # one line: never across
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_PLACEHOLDER = _rx(r"(?i)^(?:\$\{?.*\}?|<.*>|\{\{.*\}\}|x+|\*+|\.+|changeme|password\d*|secret|your[_\-].*|example.*"
                   r"|none|null|true|false|redacted|os\.environ.*|env\(.*)$")
_URL_PASSWORD_PLACEHOLDER = _rx(r"(?i)^(?:password|pass|pwd|\*+|x+|\$\{?.*\}?|<.*>|\{\{.*\}\}|secret|changeme)$")


def shannon_entropy(s: str) -> float:
    counts = Counter(s)
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _jwt_ok(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


JOIN_LIMIT = 1 << 22  # characters: batches up to this size are also looked at joined


@dataclass(frozen=True)
class Candidates:
    """The patterns and key-name stems whose literals occur in a text: the others need not be tried on it."""

    patterns: tuple[SecretPattern, ...] = PATTERNS
    stems: tuple[str, ...] = _KEY_STEMS

    @classmethod
    def each(cls, texts: list[str]) -> list["Candidates"]:
        """Each text's candidates, found by one search of the texts joined per literal: a pass over the whole
        batch in C, where asking each text for each literal costs a Python step per pair."""
        if len(texts) < 2 or sum(map(len, texts)) > JOIN_LIMIT:  # one text gains nothing; huge ones: no copy
            return [EVERY] * len(texts)
        joined = "\0".join(texts)
        starts = list(accumulate((len(t) + 1 for t in texts[:-1]), initial=0))
        patterns: list[list[SecretPattern]] = [[] for _ in texts]
        for p in PATTERNS:
            for i in _holding(joined, starts, p.prefixes):
                patterns[i].append(p)
        lower = joined.lower()
        if len(lower) == len(joined):  # every text's lower case keeps its offsets: it is the slice of this one
            stems: list[list[str]] = [[] for _ in texts]
            for stem in _KEY_STEMS:
                for i in _holding(lower, starts, (stem,)):
                    stems[i].append(stem)
        else:  # some text is matched case-sensitively (spans.lowered): the stems anywhere in the batch
            stems = [[stem for stem in _KEY_STEMS if stem in lower]] * len(texts)
        return [cls(tuple(ps), tuple(ss)) for ps, ss in zip(patterns, stems, strict=True)]


def _holding(joined: str, starts: list[int], literals: tuple[str, ...]) -> list[int]:
    """The indices, in order, of the texts joined by NULs (starting at `starts`) that hold one of the literals;
    a text found is left at its first hit."""
    found: set[int] = set()
    for lit in literals:
        i = joined.find(lit)
        while i >= 0:
            t = bisect_right(starts, i) - 1
            found.add(t)
            i = joined.find(lit, starts[t + 1]) if t + 1 < len(starts) else -1
    return sorted(found)


EVERY = Candidates()


def detect_secrets(text: str, candidates: Candidates = EVERY, fold: bool | None = None) -> list[Span]:
    spans: list[Span] = []
    for p in candidates.patterns:
        if not any(pre in text for pre in p.prefixes):
            continue
        for m in p.regex.finditer(text):
            value = m.group(p.group)
            if p.type == "JWT" and not _jwt_ok(value):
                continue
            if p.type == "PASSWORD_IN_URL":
                if _URL_PASSWORD_PLACEHOLDER.match(value):
                    continue
            elif _placeholder(p.type, m.group(0) if p.type == "PRIVATE_KEY" else value):
                continue
            s, e = m.span(p.group)
            spans.append(Span(s, e, p.type, p.score, "secret"))
    if candidates.stems and ("=" in text or ":" in text):
        spans += _assignments(text, candidates.stems, fold)
    return spans


def _assignments(text: str, stems: tuple[str, ...], fold: bool | None) -> list[Span]:
    lower = lowered(text, fold)
    starts: set[int] = set()
    for stem in stems:
        i = lower.find(stem)
        while i >= 0:
            j = i
            while j > 0 and text[j - 1] in _IDENT_CHARS:
                j -= 1
            starts.add(j)
            i = lower.find(stem, i + 1)
    spans: list[Span] = []
    seen_values: set[int] = set()
    for j in sorted(starts):
        if j > 0 and text[j - 1].isalnum():
            continue
        name = _KEY_NAME.search(text, j, j + 64)
        if name is None:
            continue
        m = _ASSIGNMENT.match(text, name.end())
        if m is None or m.start(1) in seen_values:
            continue
        value = m.group(1)
        if _PLACEHOLDER.match(value):
            continue
        h = shannon_entropy(value)
        # Random 20+ character tokens have entropy >= ~4 bits/char; words and paths stay lower.
        if h < 3.0 or (h < 3.5 and len(value) < 20):
            continue
        seen_values.add(m.start(1))
        score = 0.5 if h >= 4.0 and len(value) >= 20 else 0.3
        spans.append(Span(m.start(1), m.end(1), "GENERIC_SECRET", score, "secret"))
    return spans


SECRET_TYPES = tuple(sorted({p.type for p in PATTERNS} | {"GENERIC_SECRET"}))
