"""`ftaudit monitor ...`: the logging gateway, live status against the run's evaluation, export, and the stop
switch (docs/monitor.md)."""

from __future__ import annotations

from typing import get_args

from ftaudit.cli.ledger import _common
from ftaudit.monitor.terms import Category, ContentPolicy, OutputFormat, Severity, Status


def _run_option(p, required: bool = True) -> None:
    p.add_argument("--run", dest="run_dir", required=required, metavar="RUN_DIR",
                   help="the run directory of the served model (holds run_record.json)")
    p.add_argument("--deployment", metavar="NAME", help="deployment name (default: the run's output name)")


def register(sub) -> None:
    mon = sub.add_parser("monitor", help="after deployment: logging gateway, live status, export, stop switch")
    msub = mon.add_subparsers(dest="monitor_command", metavar="ACTION")

    p = msub.add_parser("gateway", help="OpenAI-compatible logging proxy in front of an inference server")
    p.add_argument("--upstream", required=True, metavar="URL",
                   help="the OpenAI-compatible server, e.g. http://127.0.0.1:8000 (with or without /v1)")
    _run_option(p)
    p.add_argument("--listen", default="127.0.0.1:8800", metavar="HOST:PORT", help="default: 127.0.0.1:8800")
    p.add_argument("--content", choices=get_args(ContentPolicy), default="hash",
                   help="what events keep of prompts and answers: keyed digests (default), text with personal data "
                        "and secrets replaced by their type, or the full text (opt-in)")
    p.add_argument("--output-format", choices=get_args(OutputFormat),
                   help="the answers' format for the format check (default: json when the run's task is JSON)")
    p.add_argument("--flush-ms", type=int, default=200, help="write events every N ms (default 200)")
    p.add_argument("--queue-max", type=int, default=10_000,
                   help="events waiting to be written before requests are refused with 503 (default 10000)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the upstream (default 300)")
    p.add_argument("--api-key-env", metavar="NAME",
                   help="require `Authorization: Bearer $NAME` on every route (that key is never sent upstream)")
    p.add_argument("--upstream-api-key-env", metavar="NAME",
                   help="send `Authorization: Bearer $NAME` to the upstream (default: with --api-key-env none, "
                        "without it the client's own header)")
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout: one when listening, one with the counters when stopped")
    _common(p)
    p.set_defaults(handler=gateway)

    p = msub.add_parser("servable", help="the run's tuned model as one directory a server loads (adapter merged)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="a new directory outside the run directory")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(handler=servable)

    p = msub.add_parser("status", help="live figures of a deployment against the run's evaluation")
    _run_option(p)
    p.add_argument("--since", metavar="ISO_TIME", help="only events from this UTC time on")
    p.add_argument("--window", type=int, default=200, metavar="N",
                   help="drift: the first N answers are the baseline, the last N the recent window (default 200)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _common(p, key=False)
    p.set_defaults(handler=status)

    p = msub.add_parser("export", help="write events as JSONL or Parquet (for a regulator or a data warehouse)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="*.jsonl or *.parquet")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--deployment", metavar="NAME", help="only this deployment's events")
    p.add_argument("--since", metavar="ISO_TIME", help="only events from this UTC time on")
    _common(p, key=False)
    p.set_defaults(handler=export)

    p = msub.add_parser("probe", help="replay the run's held-out set through the gateway; compare with its evaluation")
    _run_option(p)
    p.add_argument("--gateway", required=True, metavar="URL", help="the gateway, e.g. http://127.0.0.1:8800")
    p.add_argument("--model", required=True, help="the model name the server answers to")
    p.add_argument("--api-key-env", metavar="NAME", help="send `Authorization: Bearer $NAME`")
    p.add_argument("--every", metavar="DURATION", type=_duration,
                   help="run on a schedule, e.g. 30m, 6h, 1d (the plan's probe schedule), until stopped; a failed "
                        "probe is reported (exit 2 at the end) and the next one runs on time (default: once)")
    p.add_argument("--count", type=int, metavar="N", help="with --every: stop after N probes")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (with --every, one line each)")
    _common(p)
    p.set_defaults(handler=probe)

    p = msub.add_parser("alerts", help="judge the live figures against alert rules (YAML); optionally open incidents")
    _run_option(p)
    p.add_argument("--rules", required=True, metavar="YAML", help="the alert rules (docs/monitor.md)")
    p.add_argument("--since", metavar="ISO_TIME", help="only events from this UTC time on")
    p.add_argument("--open-incidents", action="store_true",
                   help="open an incident for each breach whose rule names an incident category")
    p.add_argument("--by", default="ftaudit monitor alerts", help="who opens the incidents (default: the rule)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _common(p)
    p.set_defaults(handler=alerts)

    inc = msub.add_parser("incidents", help="the incident register: list, open, update, draft a report")
    isub = inc.add_subparsers(dest="incidents_command", metavar="ACTION")
    p = isub.add_parser("list", help="every incident with its status and reporting deadline")
    p.add_argument("--run", dest="run_dir", metavar="RUN_DIR", help="only this run's incidents")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    _common(p, key=False)
    p.set_defaults(handler=incidents_list)
    p = isub.add_parser("open", help="open an incident; its deadline clock starts now (or at --aware-at)")
    _run_option(p)
    p.add_argument("--title", required=True)
    p.add_argument("--category", required=True, choices=get_args(Category))
    p.add_argument("--severity", default="high", choices=get_args(Severity))
    p.add_argument("--aware-at", metavar="ISO_TIME", help="when the provider became aware (default: now)")
    p.add_argument("--by", required=True, metavar="NAME")
    p.add_argument("--json", action="store_true", help="the incident as JSON on stdout")
    _common(p)
    p.set_defaults(handler=incidents_open)
    p = isub.add_parser("update", help="move an incident on: open -> assessed -> reported -> closed")
    p.add_argument("incident_id")
    p.add_argument("--status", required=True, choices=get_args(Status)[1:])
    p.add_argument("--category", choices=get_args(Category), help="the assessed category (changes the deadline)")
    p.add_argument("--note", required=True, help="what was decided and why")
    p.add_argument("--by", required=True, metavar="NAME")
    p.add_argument("--json", action="store_true", help="the incident as JSON on stdout")
    _common(p)
    p.set_defaults(handler=incidents_update)
    p = isub.add_parser("report", help="draft the report to the market surveillance authority (Markdown)")
    p.add_argument("incident_id")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _common(p, key=False)
    p.set_defaults(handler=incidents_report)
    inc.set_defaults(handler=None)

    p = msub.add_parser("retention", help="delete events older than the retention period (default 184 days)")
    p.add_argument("--days", type=int, default=184, help="keep this many days (legal minimum 184 without --force)")
    p.add_argument("--force", action="store_true", help="allow fewer days than the legal minimum")
    p.add_argument("--json", action="store_true", help="the deletions as JSON on stdout")
    _common(p)
    p.set_defaults(handler=retention)

    for action, text in (("suspend", "stop switch: the gateway answers 503 until resumed (Art. 14(4)(e))"),
                         ("resume", "lift a suspension")):
        p = msub.add_parser(action, help=text)
        _run_option(p)
        p.add_argument("--reason", required=True, help="why (kept in the signed ledger entry)")
        p.add_argument("--by", required=True, metavar="NAME", help="who decided (kept in the signed ledger entry)")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        _common(p)
        p.set_defaults(handler=switch_action, action=action)
    mon.set_defaults(handler=None)


def _verified(ledger) -> None:
    """The monitor builds on the ledger's signed entries (checkpoints, suspensions, incidents): a ledger that fails
    verification is refused with exit 7, never read as if it were sound (`ftaudit verify` names what is wrong)."""
    from ftaudit.ledger.verify import load_trust, verify_ledger

    verify_ledger(ledger, load_trust())


def _key_from_env(option: str, name: str | None) -> str | None:
    import os

    from ftaudit.errors import BadInput

    if name is None:
        return None
    key = os.environ.get(name)
    if not key:
        raise BadInput(f"{option} {name}: that environment variable is empty")
    return key


def _listen(text: str) -> tuple[str, int]:
    from ftaudit.errors import BadInput

    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:8800")
    return host, int(port)


def gateway(args) -> int:
    import gc
    import sys

    from aiohttp import web

    from ftaudit.errors import BadInput
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor import checks
    from ftaudit.monitor.content import ContentPolicy, load_salt
    from ftaudit.monitor.events import EventBuilder
    from ftaudit.monitor.gateway import Gateway, deployment_for_run
    from ftaudit.monitor.log import EventLog

    host, port = _listen(args.listen)
    if not args.upstream.startswith(("http://", "https://")):
        raise BadInput(f"--upstream {args.upstream!r}: give an http:// or https:// URL")
    if args.flush_ms < 1 or args.queue_max < 1:
        raise BadInput("--flush-ms and --queue-max must be at least 1")
    api_key = _key_from_env("--api-key-env", args.api_key_env)
    upstream_key = _key_from_env("--upstream-api-key-env", args.upstream_api_key_env)
    deployment = deployment_for_run(args.run_dir, args.deployment, args.output_format)
    salt = load_salt()
    policy = ContentPolicy(args.content, salt)
    checks.Context.for_run(args.run_dir, reference=False)  # a damaged canary manifest: bad input now, not later
    with open_ledger(args.ledger, key_path=args.key) as ledger:  # it must open, and verify, before we listen
        _verified(ledger)
    build = EventBuilder(deployment=deployment, policy=args.content, salt=salt, run_dir=str(args.run_dir))
    log = EventLog(args.ledger, run_id=deployment.run_id, deployment=deployment.name, build=build,
                   flush_ms=args.flush_ms, queue_max=args.queue_max, key_path=args.key)
    log.start()
    if args.content == "full":
        print("ftaudit: warning: --content full keeps prompts and answers as sent, personal data included; "
              "use it only where the deployment's data-protection assessment allows it", file=sys.stderr)
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        print(f"ftaudit: warning: listening on {host} without --api-key-env: anyone who reaches it can use the "
              "model and send feedback", file=sys.stderr)
    gw = Gateway(args.upstream, deployment, log, policy, ledger_location=args.ledger, key_path=args.key,
                 timeout_s=args.timeout, api_key=api_key, upstream_api_key=upstream_key)
    started = {"event": "listening", "url": f"http://{host}:{port}", "upstream": args.upstream,
               "deployment": deployment.name, "run_id": deployment.run_id, "weights_sha256": deployment.weights_sha256,
               "content": args.content, "ledger": log.location, "writer_id": log.writer_id}
    _say(args, started, f"ftaudit monitor gateway: {deployment.name} (run {deployment.run_id}, weights "
         f"{(deployment.weights_sha256 or 'unknown')[:16]}) on http://{host}:{port} -> {args.upstream}; "
         f"content policy {args.content}; events to {log.location or 'the default ledger'}", compact=True)
    gc.freeze()  # what startup built is never collected: full collections stay short on the request path
    # On SIGTERM, requests in flight get 10 s to finish; then the log writes what it holds and checkpoints.
    web.run_app(gw.app(), host=host, port=port, access_log=None, print=None, shutdown_timeout=10)
    s = log.stats
    stopped = {"event": "stopped", "deployment": deployment.name, "writer_id": log.writer_id,
               "events_written": s.written, "rejected_queue_full": s.rejected, "failed_batches": s.failed_batches,
               "checkpoints": s.checkpoints}
    _say(args, stopped, f"ftaudit monitor gateway: stopped; {s.written} events written, {s.rejected} requests "
         f"refused with 503, {s.checkpoints} checkpoints", compact=True)
    return 0


def _deployment(args):
    from ftaudit.monitor.gateway import deployment_for_run

    return deployment_for_run(args.run_dir, args.deployment, None)


def _live(args, window: int = 200):
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.log import has_tables, read_events
    from ftaudit.monitor.status import live_status
    from ftaudit.record import RunRecord

    dep = _deployment(args)
    record = RunRecord.load(args.run_dir)
    from ftaudit.errors import BadInput
    from ftaudit.monitor.probe import latest_probes
    from ftaudit.monitor.reference import TrainingReference

    if window < 2:
        raise BadInput("--window must be at least 2")
    with open_ledger(args.ledger, create=False) as ledger:
        _verified(ledger)
        events = read_events(ledger, deployment=dep.name, since=args.since) if has_tables(ledger) else iter(())
        live = live_status(events, deployment=dep.name, run_id=dep.run_id, record=record, baseline_n=window,
                           recent_n=window, training=TrainingReference.for_run(record))
        live.probes = latest_probes(ledger, dep.run_id)
        return dep, live


def status(args) -> int:
    _, live = _live(args, args.window)
    if args.json:
        print(live.model_dump_json(indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    from ftaudit.reporting.document import sig2

    console = Console()
    console.print(f"[bold]{live.deployment}[/] (run {live.run_id}): {live.requests} requests, {live.answered} "
                  f"answered, {live.errors} errors, {live.suspended_answers} refused while suspended; "
                  f"{live.feedback} feedback; {live.first or '-'} to {live.last or '-'}")
    if live.latency_ms_p50 is not None:
        console.print(f"latency p50 {sig2(live.latency_ms_p50)} ms, p95 {sig2(live.latency_ms_p95)} ms"
                      + (f", time to first token p50 {sig2(live.ttft_ms_p50)} ms" if live.ttft_ms_p50 else ""))
    t = Table("figure", "live", "95 % CI", "n", "baseline (run's evaluation)")
    for f in live.figures:
        ci = f"{sig2(f.ci_low)}–{sig2(f.ci_high)}" if f.ci_low is not None else ""
        base = f"{sig2(f.baseline)} ({f.baseline_metric})" if f.baseline is not None else ""
        t.add_row(f.name, "" if f.value is None else sig2(f.value), ci, str(f.n), base)
    console.print(t)
    if live.drift:
        d = Table("drift (recent vs baseline window)", "test", "baseline", "recent", "statistic", "verdict")
        for x in live.drift.shifts:
            d.add_row(x.name, x.test, sig2(x.baseline), sig2(x.recent), sig2(x.statistic), x.verdict)
        console.print(d)
    for pr in live.probes[-1:]:
        console.print(f"last probe {pr['at']}: {pr['verdict']} over {pr['items']} held-out items; "
                      + "; ".join(f"{m['metric']} {sig2(m['probe'])} vs {sig2(m['evaluation'])} ({m['verdict']})"
                                  for m in pr["metrics"] if m["evaluation"] is not None))
    return 0


def export(args) -> int:
    import json
    from pathlib import Path

    from ftaudit.errors import BadInput
    from ftaudit.io import atomic_open
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.log import has_tables, read_events

    out = Path(args.output)
    if out.suffix not in (".jsonl", ".parquet"):
        raise BadInput(f"{out}: name the export *.jsonl or *.parquet")
    n = 0
    with open_ledger(args.ledger, create=False) as ledger:
        if not has_tables(ledger):
            raise BadInput(f"{ledger.location}: no monitor events in this ledger")
        events = read_events(ledger, deployment=args.deployment, since=args.since)
        if out.suffix == ".jsonl":
            with atomic_open(out, "w") as fh:
                for e in events:
                    fh.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
                    n += 1
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            # Nested fields (params, findings, flags) as JSON text: one flat schema for both event kinds.
            rows = [{k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in e.items()}
                    for e in events]
            n = len(rows)
            with atomic_open(out, "wb") as fh:
                pq.write_table(pa.Table.from_pylist(rows), fh)
    _say(args, {"events": n, "output": str(out)}, f"{n} events written to {out}")
    return 0


def switch_action(args) -> int:
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor import switch

    dep = _deployment(args)
    with open_ledger(args.ledger, key_path=args.key, create=False) as ledger:
        do = switch.suspend if args.action == "suspend" else switch.resume
        entry = do(ledger, dep.run_id, dep.name, reason=args.reason, by=args.by)
    word = "suspended" if args.action == "suspend" else "resumed"
    _say(args, {"deployment": dep.name, "state": word, "ledger_seq": entry.seq},
         f"{dep.name} {word} (signed ledger entry {entry.seq}); gateways follow within a second")
    return 0


def _say(args, data: dict, line: str, compact: bool = False) -> None:
    """One JSON object with --json (one line each where a command prints several, as the gateway does), else
    the line."""
    import json

    print(json.dumps(data, indent=None if compact else 2, default=str) if args.json else line, flush=True)


def alerts(args) -> int:
    import json

    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.alerts import ALERT, breaches, load_rules
    from ftaudit.monitor.incidents import open_incident

    dep, live = _live(args)
    rules = load_rules(args.rules, [f.name for f in live.figures])
    found = breaches(rules, live)
    opened = []
    with open_ledger(args.ledger, key_path=args.key, create=False) as ledger:
        for b in found:  # an alert raised is a state change of the deployment: a signed ledger event
            ledger.record_event(dep.run_id, ALERT, {"deployment": dep.name, **b.model_dump()})
        if args.open_incidents:
            for b in found:
                if b.incident:
                    opened.append(open_incident(ledger, dep,
                                                title=f"alert {b.rule}: {b.figure} {b.value:.3g} (threshold "
                                                      f"{b.threshold:.3g}, n={b.n})",
                                                severity=b.severity, category=b.incident, by=args.by,
                                                evidence=b.model_dump()))
    if args.json:
        print(json.dumps({"breaches": [b.model_dump() for b in found],
                          "incidents_opened": [i.incident_id for i in opened]}, indent=2))
    else:
        for b in found:
            print(f"ALERT {b.rule} [{b.severity}]: {b.figure} = {b.value:.3g} (threshold {b.threshold:.3g}, "
                  f"n={b.n})")
        for i in opened:
            print(f"incident {i.incident_id} opened ({i.category}; {_due(i)})")
        if not found:
            print(f"no alert: {len(rules.rules)} rule(s) judged on {live.answered} answers")
    return 0


def _due(inc) -> str:
    if inc.deadline is None:
        return f"no fixed deadline ({inc.citation})"
    left = inc.due_in()
    tail = "" if left is None else f", {left.total_seconds() / 86400:.1f} days left" if left.total_seconds() > 0 \
        else ", OVERDUE"
    return f"report due {inc.deadline.isoformat(timespec='minutes')} ({inc.citation}){tail}"


def incidents_list(args) -> int:
    import json

    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.incidents import register

    run_id = _deployment(args).run_id if args.run_dir else None
    with open_ledger(args.ledger, create=False) as ledger:
        found = register(ledger, run_id)
    if args.json:
        print(json.dumps([_incident_json(i) for i in found], indent=2))
        return 0
    for i in found:
        print(f"{i.incident_id}  {i.status:<8} {i.category:<16} {i.severity:<8} {i.deployment}: {i.title} — {_due(i)}")
    if not found:
        print("no incidents")
    return 0


def incidents_open(args) -> int:
    from datetime import datetime, timezone

    from ftaudit.errors import BadInput
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.incidents import open_incident

    aware = None
    if args.aware_at:
        try:
            aware = datetime.fromisoformat(args.aware_at)
        except ValueError:
            raise BadInput(f"--aware-at {args.aware_at!r}: give an ISO time, e.g. 2026-12-01T09:30:00+00:00") from None
        aware = aware if aware.tzinfo else aware.replace(tzinfo=timezone.utc)
    dep = _deployment(args)
    with open_ledger(args.ledger, key_path=args.key, create=False) as ledger:
        inc = open_incident(ledger, dep, title=args.title, severity=args.severity, category=args.category,
                            by=args.by, aware_at=aware)
    _say(args, _incident_json(inc), f"incident {inc.incident_id} opened: {_due(inc)}")
    return 0


def _incident_json(inc) -> dict:
    return {**inc.model_dump(mode="json"), "deadline": inc.deadline.isoformat() if inc.deadline else None,
            "citation": inc.citation}


def incidents_update(args) -> int:
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.incidents import update

    with open_ledger(args.ledger, key_path=args.key, create=False) as ledger:
        inc = update(ledger, args.incident_id, status=args.status, by=args.by, note=args.note,
                     category=args.category)
    _say(args, _incident_json(inc), f"incident {inc.incident_id} is {inc.status} ({inc.category}; {_due(inc)})")
    return 0


def incidents_report(args) -> int:
    from ftaudit.errors import BadInput
    from ftaudit.io import atomic_write_text
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.incidents import draft_report, register

    with open_ledger(args.ledger, create=False) as ledger:
        found = [i for i in register(ledger) if i.incident_id == args.incident_id]
        if not found:
            raise BadInput(f"no incident {args.incident_id!r}; `ftaudit monitor incidents list` lists them")
    atomic_write_text(args.output, draft_report(found[0]))
    _say(args, {"incident_id": args.incident_id, "output": args.output}, f"draft report written to {args.output}")
    return 0


def retention(args) -> int:
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.log import apply_retention

    with open_ledger(args.ledger, key_path=args.key, create=False) as ledger:
        done = apply_retention(ledger, days=args.days, force=args.force)
    deleted = sum(d["deleted"] for d in done)
    _say(args, {"deleted": deleted, "chains": done},
         f"{deleted} events older than {args.days} days deleted from {len(done)} writer chain(s); each deletion is a "
         "signed ledger entry and the remaining chains still verify")
    return 0


def servable(args) -> int:
    from ftaudit.monitor.servable import write_servable

    info = write_servable(args.run_dir, args.output)
    how = "adapter merged into its base" if info["merged"] else "full model"
    _say(args, info, f"{args.output}: run {info['run_id']}, {how}; serve it with `transformers serve "
                     f"{args.output}` and put `ftaudit monitor gateway --upstream URL --run {args.run_dir}` in front")
    return 0


def _duration(text: str) -> float:
    """'90s', '30m', '6h', '1d' as seconds."""
    import argparse

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        seconds = 0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number with a unit s, m, h or d, e.g. 6h")
    return seconds


def probe(args) -> int:
    import sys
    import time

    from ftaudit.errors import BadInput, RuntimeFailure

    if args.count is not None and (args.every is None or args.count < 1):
        raise BadInput("--count N needs --every and N >= 1")
    key = _key_from_env("--api-key-env", args.api_key_env)
    if args.every is None:
        _probe_once(args, key)
        return 0
    done, failed, next_at = 0, 0, time.monotonic()
    while args.count is None or done < args.count:
        try:
            _probe_once(args, key)
        except RuntimeFailure as exc:  # the gateway down for a while: say so, keep the schedule
            failed += 1
            print(f"ftaudit: probe failed: {exc}", file=sys.stderr, flush=True)
        done += 1
        next_at += args.every
        if args.count is None or done < args.count:
            time.sleep(max(0.0, next_at - time.monotonic()))
    return RuntimeFailure.exit_code if failed else 0


def _probe_once(args, key: str | None) -> None:
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.probe import PROBE, run_probe

    result = run_probe(args.run_dir, args.gateway, model=args.model, api_key=key)
    with open_ledger(args.ledger, key_path=args.key, create=False) as ledger:
        entry = ledger.record_event(result.run_id, PROBE, result.model_dump(mode="json"))
    if args.json:
        print(result.model_dump_json(indent=None if args.every else 2), flush=True)
        return
    print(f"probe of {result.deployment}: {result.items} held-out items "
          f"({'the evaluation set' if result.same_set_as_evaluation else 'NOT the set the evaluation used'}); "
          f"{result.verdict}; signed ledger entry {entry.seq}", flush=True)
    for m in result.metrics:
        ev = "—" if m.evaluation is None else f"{m.evaluation:.3g}"
        p = f", p={m.p_value:.2g}" if m.p_value is not None else ""
        print(f"  {m.metric}: probe {m.probe:.3g} (n={m.n}) vs evaluation {ev}{p}: {m.verdict}", flush=True)
    print(f"probe of {result.deployment}: {result.items} held-out items "
          f"({'the evaluation set' if result.same_set_as_evaluation else 'NOT the set the evaluation used'}); "
          f"{result.verdict}; signed ledger entry {entry.seq}")
    for m in result.metrics:
        ev = "—" if m.evaluation is None else f"{m.evaluation:.3g}"
        p = f", p={m.p_value:.2g}" if m.p_value is not None else ""
        print(f"  {m.metric}: probe {m.probe:.3g} (n={m.n}) vs evaluation {ev}{p}: {m.verdict}")
    return 0
