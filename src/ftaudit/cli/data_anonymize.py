"""`ftaudit data anonymize IN OUT --strategy redact|mask|hash|pseudonymize`."""

from __future__ import annotations

import argparse

STRATEGIES = ("redact", "mask", "hash", "pseudonymize")


def register(sub) -> None:
    p = sub.add_parser(
        "anonymize", help="write an anonymised / pseudonymised copy of a dataset",
        description="Detects personal data and secrets and writes a copy of IN to OUT (same format) with each value "
                    "redacted, masked, hashed or pseudonymised. IN is never modified; OUT is written atomically. "
                    "A summary of what was changed (types and counts, never values) is printed and written to "
                    "OUT.changes.json. Exit codes: 0 ok, 1 bad input.")
    p.add_argument("input", metavar="IN", help="JSONL, JSON, CSV/TSV, Parquet, text file, or a saved HF dataset dir")
    p.add_argument("output", metavar="OUT", help="output file (same format as IN; JSONL for a saved HF dataset)")
    p.add_argument("--strategy", choices=STRATEGIES, default="redact",
                   help="redact: <TYPE>; mask: ****; hash: <TYPE:digest>; pseudonymize: a consistent keyed stand-in "
                        "(default: redact)")
    p.add_argument("--key-file", metavar="F", help="secret key for hash/pseudonymize (hex or raw, >= 16 bytes); the "
                                                  "same key gives the same stand-ins across files and runs")
    p.add_argument("--new-key", action="store_true",
                   help="generate a new random key and write it to --key-file (refuses to overwrite)")
    p.add_argument("--types", nargs="+", metavar="TYPE",
                   help="entity types to replace (default: all personal-data types except URL, and all secrets); "
                        "commas also separate")
    p.add_argument("--preserve-format", action="store_true",
                   help="pseudonyms keep the shape: an email stays an email, a phone keeps its digit layout")
    p.add_argument("--fields", nargs="+", metavar="FIELD", help="only these top-level fields (default: every string)")
    p.add_argument("--min-score", type=float, default=None, help="replace detections scoring at least this "
                                                                 "(default 0.3)")
    p.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                   help="a record that cannot be parsed: stop (default) or leave it out and report it")
    ner = p.add_mutually_exclusive_group()
    ner.add_argument("--ner", dest="ner", action="store_true", default=None,
                     help="require NER for names/places (error if no spaCy model is installed)")
    ner.add_argument("--no-ner", dest="ner", action="store_false", help="pattern detectors only")
    p.add_argument("--ner-model", default=None, metavar="DIR",
                   help="names and places by this local Hugging Face token-classification model (on the GPU when "
                        "there is one) instead of the spaCy pipeline; needs torch and transformers")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--summary", metavar="FILE", help="where to write the change summary (default: OUT.changes.json)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ftaudit.data.anonymize import DEFAULT_MIN_SCORE, anonymize_path, read_key, write_new_key
    from ftaudit.errors import BadInput
    from ftaudit.io import atomic_write_json

    key = None
    key_source = None
    if args.new_key:
        if not args.key_file:
            raise BadInput("--new-key needs --key-file F (where to write the new key)")
        if args.strategy not in ("hash", "pseudonymize"):
            raise BadInput(f"--new-key is only useful with --strategy hash or pseudonymize, not {args.strategy}")
    if args.key_file:
        kf = Path(args.key_file).resolve()
        if kf in (Path(args.output).resolve(), Path(args.summary or f"{args.output}.changes.json").resolve()):
            raise BadInput("--key-file must not be the output or summary file: the key is never written into outputs")
    if args.workers is not None and args.workers < 1:
        raise BadInput("--workers must be at least 1")
    types = None
    if args.types:
        types = [t.strip().upper() for group in args.types for t in group.split(",") if t.strip()]
    min_score = DEFAULT_MIN_SCORE if args.min_score is None else args.min_score
    if not 0.0 <= min_score <= 1.0:
        raise BadInput("--min-score must be between 0 and 1")
    # Validate everything about the run before a new key file is created.
    if args.key_file and not args.new_key:
        key, key_source = read_key(args.key_file), "key file"
    summary_path = Path(args.summary or f"{args.output}.changes.json")
    if args.new_key:
        key, key_source = write_new_key(args.key_file), "key file"
    summary = anonymize_path(args.input, args.output, args.strategy, key=key, types=types,
                             preserve_format=args.preserve_format, ner=args.ner, min_score=min_score,
                             on_error=args.on_error, fields=args.fields, workers=args.workers,
                             key_source=key_source,
                             ner_model=str(Path(args.ner_model).resolve()) if args.ner_model else None)
    atomic_write_json(summary_path, summary.model_dump())
    print(f"wrote {summary.output}: {summary.records_written} records, {summary.records_changed} changed, "
          f"{summary.replacements_total} replacements ({summary.strategy}): "
          f"{summary.replacements_found_by_detection} found by detection, "
          f"{summary.replacements_found_by_propagation} more occurrences of those values found across the dataset")
    for t in sorted({*summary.replacements_by_type, *summary.propagated_by_type}):
        print(f"  {t:<28} {summary.replacements_by_type.get(t, 0)}"
              + (f" + {summary.propagated_by_type[t]} propagated" if t in summary.propagated_by_type else ""))
    print(summary.ner)
    for note in summary.notes:
        print(f"note: {note}")
    print(f"summary: {summary_path}")
    return 0
