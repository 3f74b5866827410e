"""`ftaudit schema`: print or write the RunRecord JSON schema."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("schema", help="print the RunRecord JSON schema")
    p.add_argument("-o", "--output", help="write it to this file instead of stdout")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ftaudit.io import atomic_write_text
    from ftaudit.record import json_schema_text

    text = json_schema_text()
    if args.output:
        atomic_write_text(args.output, text)
    else:
        print(text, end="")
    return 0
