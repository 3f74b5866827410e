"""The *document* stage of `ftaudit train`: render every document of the run and list them as artefacts of the
record (kind "document"), so the record stage fingerprints them with the rest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ftaudit.record import Artefact
from ftaudit.reporting.render import DOCS_DIR, render_record


def document_for_record(run: Any) -> list[Path]:
    """`run` is the pipeline's Run (record, rd.root). Returns the written paths."""
    root = Path(run.rd.root)
    written = render_record(run.record, root)
    kept = [a for a in run.record.artefacts if not a.path.startswith(DOCS_DIR + "/")]
    for path in written:
        data = path.read_bytes()
        kept.append(Artefact(path=path.relative_to(root).as_posix(), sha256=hashlib.sha256(data).hexdigest(),
                             kind="document", bytes=len(data)))
    run.record.artefacts = kept
    return written
