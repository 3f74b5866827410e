"""`ftaudit docs RUN_DIR [--answers FILE] [--format json,md,html,pdf] [--ledger PATH|URL]`.

Exit codes: 0 ok; 1 bad input (no run record, an answers file with an unknown or wrongly typed field, an unknown
format); 2 a renderer failed (nothing is half-written either way).
"""

from __future__ import annotations

FORMATS = ("json", "md", "html", "pdf")


def register(sub) -> None:
    p = sub.add_parser("docs", help="render the documents of a run (model card, Annex XI/XII, training-content "
                                    "summary, risk assessment, instructions for use, post-market monitoring plan, "
                                    "ML-BOM, HTML/PDF report)")
    p.add_argument("run_dir", nargs="?", help="run directory holding run_record.json")
    p.add_argument("--answers", metavar="FILE", help="answers.yaml with what no evidence can say (validated)")
    p.add_argument("--format", default=",".join(FORMATS), metavar="LIST",
                   help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    p.add_argument("--ledger", metavar="PATH|URL", help="also register the written documents in this ledger")
    p.add_argument("--key", metavar="PATH", help="ledger signing key (with --ledger)")
    p.add_argument("--create", action="store_true",
                   help="with --ledger: create the ledger if it does not exist (default: refuse, a typo in the path "
                   "must not start a new ledger)")
    p.add_argument("--monitor", metavar="FILE", help="monitor.yaml: the deployment's monitoring settings for the "
                   "post-market monitoring plan (docs/monitor.md)")
    p.add_argument("--answers-template", action="store_true", help="print an empty answers.yaml and exit")
    p.set_defaults(handler=docs)


def docs(args) -> int:
    from ftaudit.errors import BadInput

    if args.answers_template:
        from ftaudit.reporting.answers import template

        print(template(), end="")
        return 0
    if not args.run_dir:
        raise BadInput("give the run directory: ftaudit docs RUN_DIR")
    from pathlib import Path

    from ftaudit.reporting.render import render_all

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    run_dir = Path(args.run_dir)
    from contextlib import nullcontext

    from ftaudit.ledger import open_ledger

    # The ledger is opened first: a missing one is refused before any document is written.
    with open_ledger(args.ledger, key_path=args.key, create=args.create) if args.ledger else nullcontext() as ledger:
        written = render_all(run_dir, answers=args.answers, formats=formats, monitor=args.monitor)
        _report(run_dir, formats, written)
        if ledger is not None:
            _register(ledger, run_dir, written, args.ledger)
    return 0


def _report(run_dir, formats, written) -> None:
    import json

    summary = {}
    comp = run_dir / "docs" / "completeness.json"
    if comp.is_file() and "json" in formats:
        summary = json.loads(comp.read_text(encoding="utf-8"))
    for path in written:
        print(path)
    for name, c in summary.items():
        print(f"{name}: {c['filled']} of {c['total']} filled; {len(c['awaiting_human'])} await a human answer, "
              f"{len(c['awaiting_evidence'])} await evidence")


def _register(ledger, run_dir, written, location) -> None:
    """The documents as artefacts of their run; a run the ledger does not hold yet is recorded first, so no
    document entry is an orphan."""
    from ftaudit.record import RunRecord

    record = RunRecord.load(run_dir)
    if ledger.run(record.run_id) is None:
        ledger.record_run(record)
        print(f"recorded run {record.run_id} in {location} (it was not in the ledger)")
    for path in written:
        ledger.register_file(record.run_id, run_dir, path.relative_to(run_dir).as_posix(), kind="document")
    print(f"registered {len(written)} documents in {location}")
