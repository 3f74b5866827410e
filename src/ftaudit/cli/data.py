"""`ftaudit data ...`: the data-governance commands (scan, anonymize, subject)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("data", help="data governance: scan, anonymise and document training data")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", parser_class=type(p))
    from ftaudit.cli import data_anonymize, data_scan, data_subject

    data_scan.register(data_sub)
    data_anonymize.register(data_sub)
    data_subject.register(data_sub)
