"""The document stage's adapter: render every document of the run and list each as an artefact of the record
(kind "document"), so the record stage fingerprints them with the rest."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ftaudit.record import Artefact, RunRecord
from ftaudit.reporting.render import DOCS_DIR, render_record


def document_record(record: RunRecord, root: Path) -> list[Path]:
    """Writes the documents under ROOT/docs/ and replaces the record's document artefacts; returns the paths."""
    written = render_record(record, root)
    kept = [a for a in record.artefacts if not a.path.startswith(DOCS_DIR + "/")]
    for path in written:
        data = path.read_bytes()
        kept.append(Artefact(path=path.relative_to(root).as_posix(), sha256=hashlib.sha256(data).hexdigest(),
                             kind="document", bytes=len(data)))
    record.artefacts = kept
    return written
