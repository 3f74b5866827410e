"""`ftaudit data scan` and `ftaudit data datasheet-template`.

Exit codes: 0 ok; 1 bad input (unreadable data, bad datasheet or policy, invalid arguments, a file that vanished
or changed mid-scan: resume with --resume); 5 the data policy blocks training (the reports are still written, so
the reasons can be read); 130 interrupted (resume with --resume).
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "scan", help="scan training data: personal data, secrets, duplicates, leakage, languages, domains, bias",
        description="Scan training data and write data_report.json/.md/.html and "
                    "training_content_summary.data.json. Exit 5 when the data policy blocks training.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="training data: JSONL, JSON, CSV, Parquet, text or a "
                   "saved Hugging Face dataset directory; a local path or an s3://, gs://, abfs:// or hdfs:// URL "
                   "(a prefix: the data files under it)")
    p.add_argument("--eval", dest="eval_paths", action="append", default=[], metavar="PATH",
                   help="evaluation data to check for overlap with the training data (repeatable)")
    p.add_argument("--datasheet", metavar="FILE", help="the filled datasheet YAML (see datasheet-template)")
    p.add_argument("-o", "--output-dir", default="data_report", metavar="DIR",
                   help="where the reports go (default: ./data_report)")
    p.add_argument("--findings", metavar="OUT.jsonl", help="also write one JSON line per finding: record, field, "
                   "start, end, type, score (never the matched text)")
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout; no progress display")
    p.add_argument("--on-error", choices=["stop", "skip"], default="stop",
                   help="on an unreadable record: stop (default) or skip it and list it in the report")
    p.add_argument("--policy", default=None, metavar="SPEC", help="data policy: default, strict, off, a YAML file, "
                   "or key=value,... (e.g. max_personal_data_record_rate=0.01)")
    p.add_argument("--fields", default=None, metavar="A,B", help="only these top-level fields (default: all text)")
    p.add_argument("--tokenizer", default=None, metavar="NAME_OR_DIR",
                   help="count tokens with this Hugging Face tokenizer (offline); default: words + punctuation")
    p.add_argument("--near-duplicate-threshold", type=float, default=0.8, metavar="J",
                   help="estimated Jaccard similarity at or above which two records are near duplicates")
    p.add_argument("--sme", action="store_true", help="list domains by the SME rule of the summary template "
                   "(top 5 %% or 1,000)")
    p.add_argument("--tdm", default=None, metavar="DIR_OR_JSON",
                   help="saved TDM reservations per domain (DIR/<domain>/robots.txt, tdmrep.json, ai.txt, *.html) "
                   "or a JSON of declarations: which source domains reserve rights for text and data mining")
    p.add_argument("--no-ner", action="store_true", help="pattern-based detection only (= --ner off)")
    p.add_argument("--ner", default=None, metavar="all|sample:N|off",
                   help="names and places by NER: on every record (all; an error without a NER model), on a seeded "
                        "uniform sample of about N records with the rates estimated and their 95 %% intervals "
                        "(sample:N), or not at all (off); default: every record when a NER model is installed")
    p.add_argument("--ner-model", default=None, metavar="DIR",
                   help="names and places by this local Hugging Face token-classification model (on the GPU when "
                        "there is one) instead of the spaCy pipeline; needs torch and transformers")
    p.add_argument("--ner-seed", type=int, default=0, metavar="S", help="seed of the NER sample (default 0)")
    p.add_argument("--lsh", choices=["driver", "cluster"], default="driver",
                   help="where duplicates and eval leaks are found: driver (one index in this process, default) "
                        "or cluster (with --engine ray: band keys grouped across the cluster; not resumable)")
    p.add_argument("--resume", action="store_true",
                   help="continue a scan that was interrupted (Ctrl-C, kill, a lost machine) from its last "
                        "checkpoint in the output dir; the report is the one an uninterrupted scan writes")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="save the scan's state this often, after a finished shard (default 30; 0: every shard)")
    add_engine_arguments(p, shard_mb=1.0)
    p.set_defaults(handler=run)

    t = sub.add_parser("datasheet-template", help="print or write a datasheet YAML to fill in")
    t.add_argument("-o", "--output", metavar="FILE", help="write it here instead of stdout (not overwritten)")
    t.set_defaults(handler=run_template)


def add_engine_arguments(p, *, shard_mb: float) -> None:
    """Where the work runs: shared by the commands that read whole datasets (scan, data-subject requests)."""
    p.add_argument("--workers", type=int, default=None, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: worker processes on this machine (default); ray: Ray Data on a Ray cluster")
    p.add_argument("--address", default=None, metavar="HOST:PORT|ray://HOST:10001",
                   help="the Ray cluster (default: $RAY_ADDRESS, else a local Ray instance started for the work)")
    p.add_argument("--shard-mb", type=float, default=shard_mb, metavar="MB",
                   help=f"JSONL, text and Parquet files are cut into shards of this size that the workers read "
                        f"(default {shard_mb:g})")


def check_engine_arguments(args) -> None:
    from ftaudit.errors import BadInput

    if args.workers is not None and args.workers < 1:
        raise BadInput(f"--workers must be at least 1, not {args.workers}")
    if args.address and args.engine != "ray":
        raise BadInput("--address is the Ray cluster's: use it with --engine ray")
    if not args.shard_mb > 0:
        raise BadInput("--shard-mb must be positive")


def run(args) -> int:
    import sys
    from pathlib import Path

    from ftaudit.data import checkpoint
    from ftaudit.data.parallel import default_workers
    from ftaudit.data.policy import enforce
    from ftaudit.data.report import render_json, write_reports
    from ftaudit.data.scan import ScanOptions, scan
    from ftaudit.errors import BadInput

    check_engine_arguments(args)
    if not args.checkpoint_every >= 0:
        raise BadInput("--checkpoint-every must be at least 0")
    fields = tuple(f.strip() for f in args.fields.split(",") if f.strip()) if args.fields else None
    ner, sample = _ner_mode(args)
    opts = ScanOptions(
        workers=args.workers or default_workers(), on_error=args.on_error, fields=fields, tokenizer=args.tokenizer,
        near_duplicate_threshold=args.near_duplicate_threshold, sme=args.sme, ner=ner, ner_sample=sample,
        ner_seed=args.ner_seed, shard_bytes=max(1, int(args.shard_mb * 1e6)),
        ner_model=str(Path(args.ner_model).resolve()) if args.ner_model else None,
    )
    evidence = scan(args.paths, eval_paths=args.eval_paths, datasheet=args.datasheet, policy=args.policy,
                    options=opts, findings_path=args.findings, progress=not args.json and sys.stderr.isatty(),
                    tdm=args.tdm, checkpoint_path=Path(args.output_dir) / checkpoint.FILENAME, resume=args.resume,
                    checkpoint_seconds=args.checkpoint_every, engine=args.engine, ray_address=args.address,
                    lsh=args.lsh)
    written = write_reports(evidence, args.output_dir)
    if args.json:
        print(render_json(evidence), end="")
    else:
        f, d = evidence.findings, evidence.duplicates
        dups = d.exact_duplicate_records + d.near_duplicate_records
        print(f"{evidence.counts.records:,} records; {f.total:,} findings (records with personal data "
              f"{f.records_with_personal_data:,}, secrets {f.records_with_secrets:,}, special categories "
              f"{f.records_with_special_categories:,}); duplicates {dups:,}"
              + (f"; eval overlap {evidence.leakage.overlap_rate:.2%}" if evidence.leakage else ""))
        if f.detection and not f.detection.ner_available:
            print(f"note: {f.detection.note}")
        if evidence.missing_answers:
            print(f"datasheet: {len(evidence.missing_answers)} answers missing")
        if evidence.tdm:
            t = evidence.tdm
            print(f"TDM reservations: {t.reserved} reserved, {t.partial} partial, {t.not_reserved} not reserved, "
                  f"{t.no_information} without information, of {len(t.domains)} domains")
        print(f"policy: {evidence.policy.status}")
        for path in written + ([args.findings] if args.findings else []):
            print(f"wrote {path}")
    enforce(evidence.policy)
    return 0


def _ner_mode(args) -> tuple[bool | None, int | None]:
    """(ScanOptions.ner, ner_sample) from --ner / --no-ner."""
    from ftaudit.errors import BadInput

    mode = args.ner or ("off" if args.no_ner else None)
    if args.no_ner and args.ner not in (None, "off"):
        raise BadInput(f"--no-ner contradicts --ner {args.ner}; give one of them")
    if mode is None:
        return None, None
    if mode in ("all", "off"):
        return mode == "all", None
    kind, _, n = mode.partition(":")
    if kind != "sample" or not n.isdigit() or int(n) < 1:
        raise BadInput(f"--ner {mode}: use all, off or sample:N with N a positive number of records")
    return True, int(n)


def run_template(args) -> int:
    from pathlib import Path

    from ftaudit.data.datasheet import template_text
    from ftaudit.errors import BadInput
    from ftaudit.io import atomic_write_text

    text = template_text()
    if not args.output:
        print(text, end="")
        return 0
    if Path(args.output).exists():
        raise BadInput(f"{args.output} exists; the template never overwrites a datasheet")
    atomic_write_text(args.output, text)
    print(f"wrote {args.output}")
    return 0
