"""Text-and-data-mining reservations of the dataset's source domains, checked offline (Art. 4(3) Directive (EU)
2019/790; Art. 53(1)(c) AI Act: a provider's copyright policy must identify and honour them).

Nothing is fetched: the user saves what each domain publishes into one folder per domain,

    TDM_DIR/example.org/robots.txt          Robots Exclusion Protocol (RFC 9309), the protocol the Code of Practice
    TDM_DIR/example.org/tdmrep.json         W3C TDMRep (/.well-known/tdmrep.json)
    TDM_DIR/example.org/ai.txt              ai.txt (robots syntax)
    TDM_DIR/example.org/*.html              pages: <meta name="tdm-reservation" content="1">, robots "noai"

or gives a JSON file (alone, or as TDM_DIR/declarations.json)
{"example.org": {"reserved": true, "method": "licence terms", "note": "..."}} for what was found otherwise
(licence terms, a written opt-out; a licence that permits the use: reserved false); a declaration decides over
the saved files. Each domain of the data gets one status: reserved (for the whole site), partial (some paths),
not_reserved (files present, no reservation), no_information (nothing saved).

Reading: a robots.txt group that disallows the whole site to an AI-training crawler (GPTBot, CCBot,
Google-Extended, ...) or to every crawler (`*`) is a machine-readable reservation for TDM; a partial disallow is
reported as `partial`, for a person to judge.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Literal

from pydantic import Field, ValidationError

from ftaudit.errors import BadInput, first_line
from ftaudit.strict import Strict

TdmStatus = Literal["reserved", "partial", "not_reserved", "no_information"]
# Crawlers that collect content for AI training, as their operators document them (lower case, RFC 9309 matching).
AI_CRAWLERS = ("gptbot", "ccbot", "google-extended", "claudebot", "anthropic-ai", "applebot-extended",
               "bytespider", "meta-externalagent", "cohere-ai", "cohere-training-data-crawler", "perplexitybot",
               "omgilibot", "diffbot", "amazonbot", "ai2bot", "*")
_META = re.compile(r"<meta\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""(name|content)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
DECLARATIONS = "declarations.json"  # beside the domain folders, or given alone
_RANK = {"no_information": 0, "not_reserved": 1, "partial": 2, "reserved": 3}



class TdmDomain(Strict):
    domain: str
    status: TdmStatus
    signals: list[str] = Field(default_factory=list, description="What was found, e.g. 'robots.txt: GPTBot "
                               "disallowed from /'.")
    records: int = Field(0, description="Training records from this domain.")


class TdmEvidence(Strict):
    checked_at: datetime
    source: str = Field(description="The directory or JSON file the reservations were read from.")
    method: str
    domains: list[TdmDomain] = Field(default_factory=list, description="Every domain of the training data.")
    reserved: int = 0
    partial: int = 0
    not_reserved: int = 0
    no_information: int = 0
    records_from_reserved_domains: int = 0

    @property
    def reserved_domains(self) -> list[str]:
        return [d.domain for d in self.domains if d.status == "reserved"]


class _Declared(Strict):
    reserved: bool | Literal["partial"]
    method: str = Field(min_length=1)
    note: str = ""


METHOD = ("offline check of saved robots.txt (RFC 9309 groups for AI-training crawlers and '*'), TDMRep "
          "tdmrep.json, ai.txt and HTML meta tags (tdm-reservation, robots noai), plus user declarations; a "
          "whole-site disallow counts as a reservation (reading)")


def robots_signals(text: str, filename: str = "robots.txt") -> tuple[TdmStatus, list[str]]:
    """The strongest reservation a robots.txt (or ai.txt) expresses towards AI-training crawlers."""
    groups: list[tuple[list[str], list[str]]] = []
    agents: list[str] = []
    rules: list[str] = []
    in_rules = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:
                groups.append((agents, rules))
                agents, rules, in_rules = [], [], False
            agents.append(value.lower())
        elif key in ("disallow", "allow") and agents:
            in_rules = True
            rules.append(f"{key}:{value}")
    if agents:
        groups.append((agents, rules))
    status: TdmStatus = "not_reserved"
    signals: list[str] = []
    for names, group_rules in groups:
        hit = [n for n in names if n in AI_CRAWLERS]
        if not hit:
            continue
        disallowed = [r.split(":", 1)[1] for r in group_rules if r.startswith("disallow:") and r != "disallow:"]
        allowed_root = any(r in ("allow:/", "allow:/*") for r in group_rules)
        if any(p in ("/", "/*") for p in disallowed) and not allowed_root:
            status = "reserved"
            signals.append(f"{filename}: {', '.join(hit)} disallowed from /")
        elif disallowed:
            if status != "reserved":
                status = "partial"
            signals.append(f"{filename}: {', '.join(hit)} disallowed from {len(disallowed)} path(s)")
    return status, signals


def tdmrep_signals(text: str) -> tuple[TdmStatus, list[str]]:
    """W3C TDMRep: a list of {location, tdm-reservation: 1|0, tdm-policy}; a reservation at / covers the site."""
    try:
        rules = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"tdmrep.json is not JSON ({first_line(exc)}); save the file the domain publishes at "
                       "/.well-known/tdmrep.json") from None
    if not isinstance(rules, list):
        raise BadInput("tdmrep.json must be a JSON list of rules ({location, tdm-reservation, tdm-policy})")
    status: TdmStatus = "not_reserved"
    signals = []
    for rule in rules:
        if not isinstance(rule, dict) or int(rule.get("tdm-reservation", 0) or 0) != 1:
            continue
        location = str(rule.get("location", "/"))
        policy = f" (policy {rule['tdm-policy']})" if rule.get("tdm-policy") else ""
        if location in ("/", "/*", "*", ""):
            status = "reserved"
            signals.append(f"tdmrep.json: tdm-reservation 1 for the whole site{policy}")
        else:
            status = "partial" if status != "reserved" else status
            signals.append(f"tdmrep.json: tdm-reservation 1 for {location}{policy}")
    return status, signals


def meta_signals(html: str, filename: str) -> tuple[TdmStatus, list[str]]:
    """<meta name="tdm-reservation" content="1"> (TDMRep in HTML) or <meta name="robots" content="noai">."""
    for tag in _META.findall(html):
        attrs = {k.lower(): v.strip().lower() for k, v in _ATTR.findall(tag)}
        name, content = attrs.get("name"), attrs.get("content", "")
        if name == "tdm-reservation" and content == "1":
            return "reserved", [f"{filename}: meta tdm-reservation=1"]
        if name == "robots" and {"noai", "noimageai"} & {c.strip() for c in content.split(",")}:
            return "reserved", [f"{filename}: meta robots {content}"]
    return "not_reserved", []


def _merge(parts: Iterable[tuple[TdmStatus, list[str]]]) -> tuple[TdmStatus, list[str]]:
    status: TdmStatus = "no_information"
    signals: list[str] = []
    for s, sig in parts:
        if _RANK[s] > _RANK[status]:
            status = s
        signals += sig
    return status, signals


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read ({exc.strerror})") from None


def _domain_dir(folder: Path) -> tuple[TdmStatus, list[str]]:
    parts = []
    for name, parse in (("robots.txt", robots_signals), ("ai.txt", robots_signals)):
        if (folder / name).is_file():
            parts.append(parse(_read(folder / name), name))
    for name in ("tdmrep.json", ".well-known/tdmrep.json"):
        if (folder / name).is_file():
            parts.append(tdmrep_signals(_read(folder / name)))
    for page in sorted(folder.glob("*.html")):
        parts.append(meta_signals(_read(page), page.name))
    return _merge(parts)


def _declared(path: Path) -> dict[str, _Declared]:
    try:
        raw = json.loads(_read(path))
    except ValueError as exc:
        raise BadInput(f"{path}: not JSON ({first_line(exc)}); expected {{domain: {{reserved, method, note}}}}") \
            from None
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: expected a JSON object {{domain: {{reserved, method, note}}}}")
    out = {}
    for domain, value in raw.items():
        try:
            out[domain.strip().lower()] = _Declared.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "entry"
            raise BadInput(f"{path}: domain #{list(raw).index(domain) + 1}: {where}: {err['msg']}") from None
    return out


def check_source(source: str | Path) -> Path:
    """The TDM source must exist before a scan starts (one line, exit 1)."""
    path = Path(source)
    if not path.exists():
        raise BadInput(f"{path}: no such TDM reservation directory or JSON file; give a folder with one "
                       "sub-folder per domain (robots.txt, tdmrep.json, ai.txt) or a JSON of declarations")
    return path


def check(domains: Iterable[tuple[str, int]], source: str | Path) -> TdmEvidence:
    """The reservation status of each (domain, records) of the training data, from `source`."""
    path = check_source(source)
    sheet = path if path.is_file() else path / DECLARATIONS
    declared = _declared(sheet) if sheet.is_file() else {}
    folders = ({p.name.lower(): p for p in path.iterdir() if p.is_dir()} if path.is_dir() else {})
    rows = []
    for domain, records in domains:
        status, signals = _domain_dir(folders[domain]) if domain in folders else ("no_information", [])
        if domain in declared:  # a declaration (a licence, a written opt-out) is the user's word over the files
            d = declared[domain]
            status = "partial" if d.reserved == "partial" else "reserved" if d.reserved else "not_reserved"
            signals = [*signals, f"declared: {d.method}" + (f" ({d.note})" if d.note else "")]
        rows.append(TdmDomain(domain=domain, status=status, signals=signals, records=records))
    counts = {s: sum(1 for r in rows if r.status == s) for s in _RANK}
    return TdmEvidence(checked_at=datetime.now(timezone.utc), source=str(path), method=METHOD, domains=rows,
                       records_from_reserved_domains=sum(r.records for r in rows if r.status == "reserved"),
                       **counts)
