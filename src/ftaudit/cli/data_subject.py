"""`ftaudit data subject find|erase|confirm`: data-subject requests (GDPR Art. 15 access, Art. 17 erasure)."""

from __future__ import annotations

import argparse
import sys

from ftaudit.cli.data_scan import add_engine_arguments, check_engine_arguments

DESCRIPTION = (
    "A person's identifiers (one a line: 'email: …', 'phone: …', 'name: …', 'id: …', or a bare value) are read from "
    "stdin or --identifiers FILE and never printed. find lists every record of the datasets that holds one (also "
    "in other spellings and, with --key-file, as the pseudonyms of earlier anonymised copies) and every run in the "
    "ledger trained on a dataset version that held the person; erase also writes a new version of each dataset "
    "without those records, beside the old one; confirm REQUEST replaces the old versions. Each request is a "
    "ledger entry holding salted digests of the identifiers only. Exit codes: 0 ok, 1 bad input.")


def register(sub) -> None:
    p = sub.add_parser("subject", help="data-subject requests: find or erase one person's records",
                       description=DESCRIPTION)
    actions = p.add_subparsers(dest="subject_command", metavar="ACTION", parser_class=type(p))
    for name, help_text in (("find", "list the records, datasets and runs that hold the person's data (Art. 15)"),
                            ("erase", "find, then write new dataset versions without those records (Art. 17)")):
        a = actions.add_parser(name, help=help_text, description=DESCRIPTION)
        a.add_argument("datasets", nargs="*", metavar="DATASET", help="JSONL, JSON, CSV/TSV, Parquet, text, or a "
                                                                      "saved HF dataset dir; a path or an s3://, "
                                                                      "gs://, abfs://, hdfs:// URL")
        a.add_argument("--registered", action="store_true",
                       help="also search every data file the ledger's runs recorded, at its recorded path; those "
                            "no longer there are listed as missing")
        a.add_argument("--identifiers", metavar="FILE", default="-", help="the identifiers (default: stdin)")
        a.add_argument("--key-file", metavar="F", help="the key `ftaudit data anonymize` used: also find its "
                                                      "pseudonyms and keyed hashes of the identifiers")
        _ledger_args(a)
        add_engine_arguments(a, shard_mb=4.0)
        a.add_argument("--json", action="store_true", help="print the report as JSON")
        a.set_defaults(handler=_run)
    c = actions.add_parser("confirm", help="replace the old dataset versions by those an erase request wrote",
                           description=DESCRIPTION)
    c.add_argument("request", metavar="REQUEST", help="the request id that erase printed")
    _ledger_args(c)
    c.set_defaults(handler=_confirm)
    p.set_defaults(handler=lambda args: _usage(p))


def _ledger_args(p) -> None:
    p.add_argument("--ledger", metavar="PATH|URL", help="ledger (default: $FTAUDIT_LEDGER, else runs/ledger.sqlite "
                                                       "where it exists, else the user data directory's)")
    p.add_argument("--key", metavar="PATH", help="ledger signing key (default: $FTAUDIT_KEY, else the user data dir)")


def _usage(p) -> int:
    from ftaudit.errors import BAD_INPUT

    p.print_help(sys.stderr)
    return BAD_INPUT


def _read_identifiers(source: str):
    from pathlib import Path

    from ftaudit.data.subject import parse_identifiers
    from ftaudit.errors import BadInput

    if source == "-":
        if sys.stdin.isatty():
            raise BadInput("give the identifiers on stdin (one a line) or with --identifiers FILE")
        return parse_identifiers(sys.stdin.read())
    path = Path(source)
    if not path.is_file():
        raise BadInput(f"{path}: no such identifiers file")
    return parse_identifiers(path.read_text(encoding="utf-8"))


def _run(args: argparse.Namespace) -> int:
    from ftaudit.cli.ledger import default_ledger
    from ftaudit.data import subject
    from ftaudit.data.anonymize import read_key
    from ftaudit.errors import BadInput
    from ftaudit.ledger.core import open_ledger

    check_engine_arguments(args)
    identifiers = _read_identifiers(args.identifiers)
    key = read_key(args.key_file) if args.key_file else None
    with open_ledger(default_ledger(args.ledger), key_path=args.key) as ledger:
        present, missing = subject.registered(ledger) if args.registered else ([], [])
        if not args.datasets and not present:
            raise BadInput("no datasets to search: pass the files (or saved HF dataset directories)"
                           + (f", or record runs in {ledger.location}" if args.registered else ", or --registered "
                              "for every data file the ledger's runs recorded"))
        report = subject.find([*args.datasets, *present], identifiers, key=key, workers=args.workers,
                              engine=args.engine, ray_address=args.address, shard_bytes=int(args.shard_mb * 1e6))
        report.missing = missing
        if args.subject_command == "erase":
            report = subject.erase(report)
        held = {d.sha256: d.path for d in report.datasets if d.records}
        report.runs = subject.affected_runs(ledger, held) if held else []
        report.ledger_seq = subject.record_request(ledger, report, identifiers)
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print(f"request {report.request_id} ({report.action}), identifiers {', '.join(report.identifiers)}; ledger "
          f"entry {report.ledger_seq}")
    for d in report.datasets:
        numbers = ", ".join(str(h.record) for h in d.records[:20]) + (" …" if len(d.records) > 20 else "")
        print(f"  {d.path} (sha256 {d.sha256[:12]}): {len(d.records)} of {d.records_scanned} records"
              + (f": {numbers}" if d.records else ""))
        if d.new_version:
            print(f"    new version without them: {d.new_version} (sha256 {d.new_sha256[:12]}); the old one stays "
                  f"until `ftaudit data subject confirm {report.request_id}`")
    for m in report.missing:
        print(f"  {m.path}: not there now, so not searched; recorded by {', '.join(m.runs)} (sha256 "
              f"{', '.join(h[:12] for h in m.sha256)}): find that copy to answer the request")
    if report.runs:
        print("  runs trained on data that held the person (consider retraining):")
        for r in report.runs:
            print(f"    {r.run_id} ({r.output_name or 'unnamed model'}, {r.status}): {r.reason}")
    elif report.records_found:
        print("  no run in the ledger was trained on these dataset versions")
    return 0


def _confirm(args: argparse.Namespace) -> int:
    from ftaudit.cli.ledger import default_ledger
    from ftaudit.data import subject
    from ftaudit.errors import BadInput
    from ftaudit.ledger.core import open_ledger

    with open_ledger(default_ledger(args.ledger), key_path=args.key, create=False) as ledger:
        run_id = f"dsr-{args.request}"
        events = list(ledger.events(run_id=run_id, prefix=f"{subject.EVENT}."))
        erasure = next((e["data"] for e in events if e["event"] == f"{subject.EVENT}.erase"), None)
        if erasure is None:
            raise BadInput(f"no erase request {args.request} in {ledger.location}")
        done = any(e["event"] == f"{subject.EVENT}.confirm" for e in events)
        replaced = subject.confirm(erasure, already_confirmed=done)
        seq = ledger.record_event(run_id, f"{subject.EVENT}.confirm",
                                  {"request_id": args.request, "datasets": replaced}).seq
    for d in replaced:
        print(f"{d['path']}: replaced by the version without the person's records (sha256 {d['sha256'][:12]})")
    print(f"ledger entry {seq}")
    return 0
