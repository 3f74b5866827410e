"""ftaudit.ledger: a tamper-evident audit trail of runs, lineages, events and artefacts.

    from ftaudit.ledger import open_ledger
    with open_ledger() as ledger:          # $FTAUDIT_LEDGER, a postgresql:// URL, or a file in the user data dir
        ledger.record_run(record)          # after record.save(run_dir)
        ledger.register_file(record.run_id, run_dir, "docs/model_card.md", kind="document")
        ledger.runs_by_lineage(lineage_id).cumulative_flops

Entries are sha256 hash-chained and ed25519-signed; `ftaudit verify` checks them (see ftaudit.ledger.verify).
"""

from ftaudit.ledger.core import (  # noqa: F401
    COUNTED_STATUSES,
    ArtefactEntry,
    Entry,
    Ledger,
    LineageReport,
    RunSummary,
    SignedHead,
    open_ledger,
)
