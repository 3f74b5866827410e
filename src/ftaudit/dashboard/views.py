"""What each page shows, read from the ledger: plain data for the templates and the JSON API alike (counts and
figures only — never a finding's value, a prompt or an answer's text from live traffic)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftaudit.dashboard import accounts, questions, signoff
from ftaudit.ledger.core import Ledger
from ftaudit.record import RunRecord

PAGE = 25


def load_record(ledger: Ledger, run_id: str) -> RunRecord | None:
    """The run's latest record from the ledger, validated whole."""
    raw = ledger.run_record(run_id)
    return RunRecord.model_validate(raw) if raw else None


def _summary(ledger: Ledger, run_id: str) -> RunRecord | None:
    """The parts of a run's record the overview shows (identity, status, decision), validated without the data
    and evaluation evidence, which the overview does not read."""
    raw = ledger.run_record(run_id)
    if not raw:
        return None
    return RunRecord.model_validate({k: raw[k] for k in ("run_id", "status", "model", "decision", "created_at",
                                                         "updated_at") if k in raw})


def documents(ledger: Ledger, run_id: str, record: RunRecord):
    """The run's documents as rendered now: its ledger record with the answers given in the dashboard."""
    from ftaudit.reporting.context import Ctx
    from ftaudit.reporting.render import build_documents

    ctx = Ctx(record=record, run_dir=Path("/nonexistent-run-dir"), answers=questions.answers_for(ledger, run_id),
              monitor_plan=None)
    return ctx, build_documents(ctx)


def completeness(ledger: Ledger, run_id: str) -> dict[str, int]:
    """Fields filled, in all, and awaiting a human answer over all documents; kept per evidence state (an answer
    or a new record of the run changes it), so the overview renders no document twice."""
    ev = signoff.evidence(ledger, run_id)
    key = (ledger.ledger_id, run_id, ev.seq)
    hit = _CACHE.get(key)
    if hit is None:
        _, docs = documents(ledger, run_id, load_record(ledger, run_id))
        hit = {"filled": sum(d.completeness.filled for d in docs), "total": sum(d.completeness.total for d in docs),
               "awaiting_human": sum(len(d.completeness.awaiting_human) for d in docs)}
        if len(_CACHE) > 20_000:
            _CACHE.clear()
        _CACHE[key] = hit
    return hit


_CACHE: dict[tuple, dict[str, int]] = {}


def compute_bar(record: RunRecord) -> dict[str, Any] | None:
    """Positions (0–100 %) on a log axis from 1e12 FLOP to 10× the threshold: the lineage's compute with its ±30 %
    band, and the threshold."""
    d = record.decision
    if d is None or not d.threshold_flops:
        return None
    flops = d.cumulative_model_flops if d.base_is_gpai is False and d.cumulative_model_flops else d.modification_flops
    lo, hi = 12.0, math.log10(d.threshold_flops) + 1

    def pos(x: float | None) -> float:
        if not x or x <= 0:
            return 0.0
        return max(0.0, min(100.0, (math.log10(x) - lo) / (hi - lo) * 100))

    return {"flops": flops, "threshold": d.threshold_flops, "at": pos(flops),
            "band_low": pos(flops * (1 - d.margin_fraction)), "band_high": pos(flops * (1 + d.margin_fraction)),
            "threshold_at": pos(d.threshold_flops), "exceeds": d.exceeds_threshold,
            "headroom": d.display.get("headroom_fraction") if d.display else None}


def overview(ledger: Ledger, *, page: int, query: str | None) -> dict[str, Any]:
    """One page of model versions, newest first, filtered by name (a bound parameter, never SQL text)."""
    from ftaudit.monitor import incidents as inc

    where, params = "", []
    if query:
        where = " WHERE output_name LIKE ? OR base_model LIKE ? OR run_id LIKE ?"
        like = f"%{query}%"
        params = [like, like, like]
    (total,) = ledger.store.one("SELECT COUNT(*) FROM runs" + where, params)
    rows = ledger.store.query("SELECT run_id FROM runs" + where + " ORDER BY last_seq DESC LIMIT ? OFFSET ?",
                              [*params, PAGE, (page - 1) * PAGE])
    from datetime import timedelta

    from ftaudit.monitor import switch
    from ftaudit.monitor.log import has_tables

    now = datetime.now(timezone.utc)
    day_ago = (now - timedelta(days=1)).isoformat()
    monitored = has_tables(ledger)
    keys = accounts.anchored_keys(ledger)
    items = []
    for (run_id,) in rows:
        record = _summary(ledger, run_id)
        if record is None:
            continue
        ok, why, _ = signoff.release_state(ledger, run_id, keys=keys)
        open_incidents = [i for i in inc.register(ledger, run_id) if i.status != "closed"]
        dues = [i.due_in(now) for i in open_incidents if i.due_in(now) is not None]
        d = record.decision
        name = record.model.output_name or run_id
        health = None
        if monitored:
            (events,) = ledger.store.one("SELECT COUNT(*) FROM monitor_events WHERE deployment = ? AND time >= ?",
                                         (name, day_ago))
            health = {"events_24h": int(events), "suspended": switch.state(ledger, run_id, name) is not None}
        items.append({"monitoring": health, "run_id": run_id, "name": record.model.output_name or run_id[:12],
                      "base": record.model.base_model, "status": record.status,
                      "role": d.role if d else None, "bar": compute_bar(record),
                      "obligations": len(d.obligations) if d else 0,
                      "documents": completeness(ledger, run_id), "approved": ok, "approval": why,
                      "incidents": len(open_incidents), "nearest_due": min(dues) if dues else None})
    return {"items": items, "total": int(total), "page": page, "pages": max(1, math.ceil(int(total) / PAGE)),
            "query": query or ""}


def run_page(ledger: Ledger, run_id: str) -> dict[str, Any] | None:
    record = load_record(ledger, run_id)
    if record is None:
        return None
    from ftaudit.monitor import incidents as inc

    _, docs = documents(ledger, run_id, record)
    ok, why, latest = signoff.release_state(ledger, run_id)
    data = record.data
    findings = []
    if data and data.findings:
        findings = [{"type": t.type, "category": t.category, "count": t.count, "records": t.records}
                    for t in data.findings.by_type]
    return {"record": record, "bar": compute_bar(record), "documents": docs, "findings": findings,
            "answered": questions.answered(ledger, run_id), "approved": ok, "approval": why, "latest": latest,
            "decisions": signoff.decisions(ledger, run_id), "artefacts": ledger.artefacts(run_id),
            "incidents": inc.register(ledger, run_id)}


def open_questions(ledger: Ledger, run_id: str, record: RunRecord) -> list[dict[str, Any]]:
    """The questions the documents still await (and those already answered here), once each, in form order."""
    _, docs = documents(ledger, run_id, record)
    asked: dict[str, list[str]] = {}
    for d in docs:
        for item in d.items():
            if item.question and item.status in ("awaiting_human", "answered"):
                asked.setdefault(item.question, []).append(d.title)
    given = questions.answered(ledger, run_id)
    out = []
    for name, f in questions.FIELDS.items():
        if name in asked or name in given:
            out.append({"field": f, "documents": sorted(set(asked.get(name, []))), "answer": given.get(name)})
    return out


def deployments(ledger: Ledger) -> list[tuple[str, str]]:
    """(run id, deployment name) of every deployment a gateway or the Python API registered, sorted."""
    from ftaudit.monitor.log import has_tables, writer_records

    return sorted({(w.run_id, w.deployment) for w in writer_records(ledger).values()}) if has_tables(ledger) else []


MONITOR_PAGE = 10
LIVE_MAX = 2000


def monitoring(ledger: Ledger, *, page: int = 1, days: int = 30, window_h: int = 24) -> dict[str, Any]:
    """The monitored deployments (from `ftaudit monitor`), ten a page: events per day, the live figures of the last
    `window_h` hours (at most the latest LIVE_MAX requests) against the run's evaluation, alerts, probes, the
    switch; and the incident register. Before anything was monitored the page says so."""
    from datetime import timedelta

    from ftaudit.monitor import incidents as inc
    from ftaudit.monitor import switch
    from ftaudit.monitor.alerts import ALERT
    from ftaudit.monitor.log import has_tables, read_events
    from ftaudit.monitor.probe import latest_probes
    from ftaudit.monitor.status import live_status

    if not has_tables(ledger):
        return {"deployments": [], "incidents": inc.register(ledger), "monitored": False}
    now = datetime.now(timezone.utc)
    every = deployments(ledger)
    pairs = every[(page - 1) * MONITOR_PAGE:page * MONITOR_PAGE]
    out = []
    for run_id, name in pairs:
        per_day = ledger.store.query(
            "SELECT substr(time, 1, 10), COUNT(*) FROM monitor_events WHERE deployment = ? AND time >= ? "
            "GROUP BY substr(time, 1, 10) ORDER BY 1", (name, (now - timedelta(days=days)).date().isoformat()))
        top = max([n for _, n in per_day] or [1])
        since = (now - timedelta(hours=window_h)).isoformat()
        nth = ledger.store.one("SELECT time FROM monitor_events WHERE deployment = ? AND time >= ? "
                               "ORDER BY time DESC LIMIT 1 OFFSET ?", (name, since, LIVE_MAX - 1))
        events = read_events(ledger, deployment=name, since=max(since, nth[0]) if nth else since)
        live = live_status(events, deployment=name, run_id=run_id, record=load_record(ledger, run_id))
        live.probes = latest_probes(ledger, run_id)
        out.append({"run_id": run_id, "name": name, "live": live, "suspended": switch.state(ledger, run_id, name),
                    "per_day": [{"day": d, "events": int(n), "height": int(n) / top * 100} for d, n in per_day],
                    "alerts": [c["data"] for c in ledger.events(run_id=run_id, prefix=ALERT)][-10:]})
    return {"deployments": out, "incidents": inc.register(ledger), "monitored": True, "window_h": window_h,
            "live_max": LIVE_MAX, "page": page, "pages": max(1, math.ceil(len(every) / MONITOR_PAGE))}
