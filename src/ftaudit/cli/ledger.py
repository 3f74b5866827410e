"""`ftaudit ledger ...` (queries, keys, checkpoints), `ftaudit verify` and `ftaudit bundle`.

Exit codes: 0 ok; 1 bad input (no ledger there, not a SQLite file, bad key file, not a zip); 2 the database cannot
be reached; 7 verification failed (the message names the first broken entry or file).
"""

from __future__ import annotations

import json
import os

STATUSES = ("planned", "running", "completed", "failed", "stopped", "refused")


def _common(p, *, key: bool = True) -> None:
    p.add_argument("--ledger", metavar="PATH|URL",
                   help="ledger file or postgresql:// URL (default: $FTAUDIT_LEDGER, else the user data dir)")
    if key:
        p.add_argument("--key", metavar="PATH", help="ed25519 signing key (default: $FTAUDIT_KEY, else the user "
                                                     "data dir; created on first write)")


def register(sub) -> None:
    led = sub.add_parser("ledger", help="query the tamper-evident ledger, export its key and checkpoints")
    lsub = led.add_subparsers(dest="ledger_command", metavar="ACTION")

    p = lsub.add_parser("lineage", help="runs of one model lineage with their cumulative compute")
    p.add_argument("lineage_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p, key=False)
    p.set_defaults(handler=lineage)

    p = lsub.add_parser("runs", help="runs by status (their latest recorded status)")
    p.add_argument("--status", required=True, choices=STATUSES)
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p, key=False)
    p.set_defaults(handler=runs)

    p = lsub.add_parser("record", help="record a run directory's run_record.json (and register files) in the ledger")
    p.add_argument("run_dir")
    p.add_argument("--file", action="append", default=[], metavar="REL_PATH",
                   help="also register this file of the run directory (repeatable)")
    p.add_argument("--kind", default="document", help="artefact kind for --file (default: document)")
    _common(p)
    p.set_defaults(handler=record)

    p = lsub.add_parser("public-key", help="export the public key reviewers pin with `verify --public-key`")
    p.add_argument("-o", "--output", help="write the PEM here instead of stdout")
    p.add_argument("--key", metavar="PATH", help="signing key (default: $FTAUDIT_KEY, else the user data dir)")
    p.set_defaults(handler=public_key)

    p = lsub.add_parser("checkpoint", help="export the signed head; keep it elsewhere to detect rollback later")
    p.add_argument("-o", "--output", help="write it here instead of stdout")
    _common(p, key=False)
    p.set_defaults(handler=checkpoint)
    led.set_defaults(handler=None)

    v = sub.add_parser("verify", help="verify a ledger, a run directory or a bundle (exit 7 when modified, 8 when "
                       "the run has not finished)")
    v.add_argument("target", nargs="?", help="ledger file or URL, RUN_DIR, or bundle.zip (default: the ledger)")
    v.add_argument("--public-key", action="append", metavar="PEM",
                   help="trusted public key (repeatable); default for a ledger: the local signing key")
    v.add_argument("--checkpoint", metavar="FILE", help="a signed head kept elsewhere: detects a rolled-back ledger")
    v.add_argument("--allow-extra", action="store_true",
                   help="a run directory may hold files the ledger does not know (listed, not an error)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    _common(v)
    v.set_defaults(handler=verify)

    b = sub.add_parser("bundle", help="pack a run's documents, evidence, hashes, signatures and public key")
    b.add_argument("run_dir")
    b.add_argument("-o", "--output", required=True, metavar="bundle.zip")
    _common(b)
    b.set_defaults(handler=bundle)


def _print_json(model) -> None:
    print(model.model_dump_json(indent=2))


def _flops(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.2g} FLOP"


def lineage(args) -> int:
    from ftaudit.ledger import open_ledger

    with open_ledger(args.ledger, create=False) as ledger:
        report = ledger.runs_by_lineage(args.lineage_id)
    if args.json:
        _print_json(report)
        return 0
    print(f"lineage {report.lineage_id} (base model: {report.base_model or 'unknown'})")
    for r in report.runs:
        print(f"  {r.run_id}  {r.status:<9}  {_flops(r.regulatory_flops)}")
    print(f"cumulative compute: {_flops(report.cumulative_flops)} ({report.cumulative_flops!r}) over runs that are "
          f"{', '.join(report.counted_statuses)}")
    if report.runs_without_flops:
        print(f"  understated: {len(report.runs_without_flops)} counted run(s) have no compute figure")
    print(f"  {report.note}")
    return 0


def runs(args) -> int:
    from ftaudit.ledger import open_ledger

    with open_ledger(args.ledger, create=False) as ledger:
        found = ledger.runs_by_status(args.status)
    if args.json:
        print(json.dumps([r.model_dump() for r in found], indent=2))
        return 0
    for r in found:
        print(f"{r.run_id}  {r.lineage_id or '-'}  {_flops(r.regulatory_flops)}  {r.base_model or '-'}")
    print(f"{len(found)} run(s) {args.status}")
    return 0


def record(args) -> int:
    from ftaudit.ledger import open_ledger
    from ftaudit.record import RunRecord

    rec = RunRecord.load(args.run_dir)
    for rel in args.file:
        if not os.path.isfile(os.path.join(args.run_dir, rel)):
            from ftaudit.errors import BadInput

            raise BadInput(f"{os.path.join(args.run_dir, rel)}: no such file to register")
    with open_ledger(args.ledger, key_path=args.key) as ledger:
        entry = ledger.record_run(rec)
        for rel in args.file:
            ledger.register_file(rec.run_id, args.run_dir, rel, args.kind)
        print(f"recorded run {rec.run_id} as entry {entry.seq} in {ledger.location} "
              f"(+{len(args.file)} file(s)); signed by key {entry.key_id}")
    return 0


def public_key(args) -> int:
    from ftaudit.io import atomic_write_text
    from ftaudit.ledger.keys import load_or_create_signing_key

    key = load_or_create_signing_key(args.key)
    if args.output:
        atomic_write_text(args.output, key.public_pem)
        os.chmod(args.output, 0o644)
        print(f"public key {key.key_id} written to {args.output}")
    else:
        print(key.public_pem, end="")
    return 0


def checkpoint(args) -> int:
    from ftaudit.io import atomic_write_text
    from ftaudit.ledger import open_ledger

    with open_ledger(args.ledger, create=False) as ledger:
        head = ledger.head()
    text = head.model_dump_json(indent=2) + "\n"
    if args.output:
        atomic_write_text(args.output, text)
        print(f"checkpoint of {head.count} entries written to {args.output}")
    else:
        print(text, end="")
    return 0


def _target_kind(target: str | None) -> str:
    import zipfile

    from ftaudit.errors import BadInput
    from ftaudit.ledger.store import is_database_url

    if target is None or is_database_url(target):
        return "ledger"
    if os.path.isdir(target):
        return "run_dir"
    if not os.path.exists(target):
        raise BadInput(f"{target}: no such ledger, run directory or bundle")
    if target.endswith(".zip") or zipfile.is_zipfile(target):
        return "bundle"
    return "ledger"


def verify(args) -> int:
    from ftaudit.errors import VerificationFailed
    from ftaudit.ledger import open_ledger
    from ftaudit.ledger.store import LedgerCorrupt
    from ftaudit.ledger.verify import Trust, load_checkpoint, load_trust, verify_ledger, verify_run_dir

    kind = _target_kind(args.target)
    cp = load_checkpoint(args.checkpoint) if args.checkpoint else None
    if kind == "bundle":
        from ftaudit.ledger.bundle import verify_bundle
        from ftaudit.ledger.keys import key_id, load_public_key

        # A bundle is checked against the keys given, never a local key: the reviewer pins the provider's key.
        trust = Trust()
        if args.public_key:
            raws = [load_public_key(p) for p in args.public_key]
            trust = Trust(keys={key_id(r): r for r in raws}, pinned=True)
        report = verify_bundle(args.target, trust)
        if args.json:
            _print_json(report)
        else:
            print(f"bundle ok: {report.bundle}: run {report.run_id}, {report.files} files, {report.referenced} "
                  f"referenced by hash, {report.chain_entries} chain entries to the signed head")
        _warn_unpinned(report.pinned, report.key_ids)
        return 0
    trust = load_trust(args.public_key, args.key)
    location = args.target if kind == "ledger" and args.target else args.ledger
    try:
        ledger = open_ledger(location, create=False)
    except LedgerCorrupt as exc:  # a damaged file is what verification exists to find: exit 7, not 2
        raise VerificationFailed(str(exc)) from None
    with ledger:
        if kind == "run_dir":
            result = verify_run_dir(ledger, args.target, trust, cp, allow_extra=args.allow_extra)
            report = result.ledger
            line = (f"run ok: {result.run_dir}: run {result.run_id} matches the ledger, "
                    f"{result.artefacts_checked} artefact(s) checked; ")
            if result.unregistered:
                line += f"{len(result.unregistered)} unregistered file(s) allowed: {', '.join(result.unregistered)}; "
        else:
            from ftaudit.monitor.verify import verify_events

            result = report = verify_ledger(ledger, trust, cp)
            events = verify_events(ledger)
            line = ""
            if events is not None:
                report.events = events.model_dump()
                line = (f"event log ok: {events.events} events in {events.writers} writer chain(s), "
                        f"{events.anchored} anchored by signed checkpoints, {events.deleted_by_retention} deleted "
                        "by retention; ")
    if args.json:
        _print_json(result)
    else:
        extra = f", checkpoint of {report.checkpoint} entries matched" if report.checkpoint is not None else ""
        print(f"{line}ledger ok: {report.location}: {report.entries} entries, {report.runs} runs, chain and "
              f"signatures valid, signed head matches{extra}")
    _warn_unpinned(report.pinned, report.key_ids)
    return 0


def _warn_unpinned(pinned: bool, key_ids: list[str]) -> None:
    import sys

    if not pinned:
        print(f"ftaudit: warning: no trusted key given; signed by key(s) {', '.join(key_ids)} — compare with the "
              "provider's published key or pass --public-key", file=sys.stderr)


def bundle(args) -> int:
    from ftaudit.ledger import open_ledger
    from ftaudit.ledger.bundle import write_bundle
    from ftaudit.ledger.keys import load_signing_key
    from ftaudit.ledger.verify import load_trust

    key = load_signing_key(args.key)
    trust = load_trust(None, args.key)
    with open_ledger(args.ledger, key_path=args.key, create=False) as ledger:
        manifest = write_bundle(ledger, args.run_dir, args.output, key, trust)
    print(f"bundle written: {args.output}: run {manifest.run_id}, {len(manifest.files)} files, "
          f"{len(manifest.referenced)} referenced by hash; signed by key {manifest.bundler_key_id}")
    return 0


def default_ledger(given: str | None) -> str | None:
    """--ledger, else $FTAUDIT_LEDGER, else the ledger `make demo` writes (runs/ledger.sqlite) where it exists,
    else the user data directory's."""
    import os
    from pathlib import Path

    if given or os.environ.get("FTAUDIT_LEDGER"):
        return given
    demo = Path("runs") / "ledger.sqlite"
    return str(demo) if demo.is_file() else None
