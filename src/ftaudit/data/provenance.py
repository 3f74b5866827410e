"""Provenance: file fingerprints, a digest over the records, and source domains ranked by content size.

- sha256 per input file: identifies exactly which bytes were used (Annex XI §1 2(c) provenance).
- record digest: sha256 over the ordered sha256 of each record's canonical JSON (keys sorted, UTF-8, no spaces).
  Unlike the file hash it survives re-serialisation (JSONL → Parquet, different key order or whitespace) and
  changes when one record changes, is added, removed or moved.
- domains: the AI Office training-content summary §2.3 asks for "the most relevant domain names" of scraped
  content: the top 10 % of domains by content size, for SMEs the top 5 % or 1,000 domains, whichever is lower.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`\)\]\}]+", re.IGNORECASE)
_BARE_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# Metadata fields that name a record's origin (crawl exports, HF datasets); first one present wins.
URL_FIELDS = ("url", "source_url", "link", "uri", "source", "meta.url", "metadata.url", "metadata.source")
# Second-level public suffixes common enough to matter; without them "bbc.co.uk" would collapse to "co.uk".
# (A reading: the full Public Suffix List is not shipped; unknown multi-part suffixes keep three labels.)
_SECOND_LEVEL = frozenset(
    "co.uk org.uk ac.uk gov.uk ltd.uk me.uk net.uk co.jp ne.jp or.jp ac.jp go.jp com.au net.au org.au edu.au "
    "gov.au co.nz org.nz com.br net.br org.br gov.br com.cn net.cn org.cn gov.cn com.mx org.mx co.in org.in "
    "gov.in ac.in co.za org.za com.tr gov.tr com.ar co.kr or.kr com.sg com.hk com.tw co.il gouv.fr".split()
)




_CANONICAL = {"sort_keys": True, "ensure_ascii": False, "separators": (",", ":"), "default": str}
_HASH_PIECE = 1 << 18  # characters of a long string escaped and hashed at a time


def canonical_json(data) -> bytes:
    return json.dumps(data, **_CANONICAL).encode("utf-8")


def record_hash(data, *, large: bool = False) -> bytes:
    """sha256 of the record's canonical JSON. `large` (a record of megabytes): the same digest from the JSON in
    pieces, so a 200 MB line is not copied twice more (its JSON, then its UTF-8) to be hashed."""
    if not large:
        return hashlib.sha256(canonical_json(data)).digest()
    h = hashlib.sha256()
    for chunk in canonical_chunks(data):
        h.update(chunk.encode("utf-8"))
    return h.digest()


def canonical_chunks(value):
    """`json.dumps(value, **_CANONICAL)` in consecutive parts. A string's escaping is per character, so a long one
    is escaped a piece at a time; dicts with keys other than strings (which JSON converts) are dumped whole."""
    if isinstance(value, str) and len(value) > _HASH_PIECE:
        yield '"'
        for i in range(0, len(value), _HASH_PIECE):
            yield json.dumps(value[i : i + _HASH_PIECE], **_CANONICAL)[1:-1]
        yield '"'
    elif isinstance(value, dict) and all(isinstance(k, str) for k in value):
        yield "{"
        for n, key in enumerate(sorted(value)):
            yield ("," if n else "") + json.dumps(key, **_CANONICAL) + ":"
            yield from canonical_chunks(value[key])
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for n, item in enumerate(value):
            if n:
                yield ","
            yield from canonical_chunks(item)
        yield "]"
    else:
        yield json.dumps(value, **_CANONICAL)


class RecordDigest:
    """Order-sensitive digest over records: feed `record_hash` values in order. A chain over fixed blocks of
    records, so its state is at most one block whatever the dataset's size, and a scan checkpoint can hold it."""

    BLOCK = 4096  # records
    algorithm = (f"h = sha256(h || concat(sha256(canonical_json(record)) for the next {BLOCK} records in order)) "
                 "from h = 32 zero bytes, over every block, the last one partial")

    def __init__(self):
        self._chain = bytes(32)
        self._block = bytearray()
        self.records = 0

    def update(self, rec_hash: bytes) -> None:
        self._block += rec_hash
        self.records += 1
        if self.records % self.BLOCK == 0:
            self._fold()

    def _fold(self) -> None:
        self._chain = hashlib.sha256(self._chain + self._block).digest()
        self._block = bytearray()

    def hexdigest(self) -> str:
        return (hashlib.sha256(self._chain + self._block).digest() if self._block else self._chain).hex()


def registrable_domain(host: str) -> str | None:
    """'www.news.bbc.co.uk' → 'bbc.co.uk'; None for IP addresses, localhost and malformed hosts."""
    host = host.strip().strip(".").lower()
    if not _BARE_HOST.match(host):
        return None  # IP literals, single labels (localhost), junk
    labels = host.split(".")
    keep = 3 if ".".join(labels[-2:]) in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def domain_of_url(url: str) -> str | None:
    url = url.strip()
    if "://" not in url:
        # A bare host in a metadata field ('example.org/page').
        url = "http://" + url
    try:
        # .hostname drops the userinfo ('user:password@') and the port: credentials never enter the report.
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return registrable_domain(host) if host else None


def urls_in_text(text: str) -> list[str]:
    # Sentence punctuation after a URL is not part of it ("see http://c.net, then ...").
    return [u.rstrip(".,;:!?") for u in _URL.findall(text)]


def _lookup(data, dotted: str):
    cur = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def record_domains(data, texts: list[str]) -> tuple[list[str], str]:
    """Domains a record's content comes from, and how they were found ('metadata' or 'text').

    A reading: a record's origin is the URL in its metadata when it has one (crawled corpora); otherwise the
    domains of URLs cited in its text share its content size equally.
    """
    if isinstance(data, dict):
        for name in URL_FIELDS:
            value = _lookup(data, name)
            if isinstance(value, str) and value:
                dom = domain_of_url(value)
                if dom:
                    return [dom], "metadata"
    found: list[str] = []
    for text in texts:
        for url in urls_in_text(text):
            dom = domain_of_url(url)
            if dom and dom not in found:
                found.append(dom)
    return found, "text"


@dataclass
class DomainRow:
    domain: str
    bytes: float
    records: int
    share: float


class DomainTally:
    def __init__(self):
        self.bytes: Counter = Counter()
        self.records: Counter = Counter()
        self.by_method: Counter = Counter()

    def add(self, domains: list[str], content_bytes: int, method: str) -> None:
        if not domains:
            return
        self.by_method[method] += 1
        for d in domains:
            self.bytes[d] += content_bytes / len(domains)
            self.records[d] += 1

    def merge(self, other: "DomainTally") -> None:
        self.bytes.update(other.bytes)
        self.records.update(other.records)
        self.by_method.update(other.by_method)

    def ranked(self) -> list[DomainRow]:
        total = sum(self.bytes.values()) or 1.0
        rows = sorted(self.bytes.items(), key=lambda kv: (-kv[1], kv[0]))
        return [DomainRow(d, round(b, 1), self.records[d], round(b / total, 6)) for d, b in rows]


def top_domain_count(n_domains: int, *, sme: bool = False) -> int:
    """How many domains the AI Office template asks to list (§2.3).

    Top 10 % by content size; for SMEs the top 5 % or 1,000 domains, whichever is lower (a reading of the
    template's SME relief). Rounded up, so any non-empty list names at least one domain.
    """
    if n_domains <= 0:
        return 0
    if sme:
        return min(math.ceil(0.05 * n_domains), 1000)
    return math.ceil(0.10 * n_domains)


def top_domain_rule(sme: bool) -> str:
    return (
        "AI Office training-content summary template §2.3: "
        + ("SME: top 5 % of domains by content size or 1,000 domains, whichever is lower (reading)" if sme
           else "top 10 % of domains by content size")
    )
