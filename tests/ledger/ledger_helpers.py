"""Builders shared by the ledger tests (a module of its own: test dirs are not packages)."""

from __future__ import annotations

import os
from pathlib import Path

from ftaudit.compute.evidence import ComputeEvidence
from ftaudit.record import Artefact, Lineage, ModelIdentity, RunRecord


def make_record(status="completed", lineage="lin-a", flops=1.0e18, **kw) -> RunRecord:
    return RunRecord(
        status=status,
        lineage=Lineage(lineage_id=lineage) if lineage else None,
        model=ModelIdentity(base_model="org/base-1b", output_name="tuned-v1"),
        compute=ComputeEvidence(regulatory_flops=flops) if flops is not None else None,
        **kw,
    )


def make_run_dir(root: Path, ledger, *, lineage="lin-a", flops=2.5e18) -> tuple[Path, RunRecord]:
    """A run directory with a record, documents, evidence JSON and a weights file, recorded in the ledger."""
    run_dir = root / "run"
    (run_dir / "docs").mkdir(parents=True)
    (run_dir / "docs" / "model_card.md").write_text("# Model card\n\nTuned on synthetic data.\n")
    (run_dir / "docs" / "annex_xi.json").write_text('{"section": "1(a)", "filled": true}\n')
    (run_dir / "data_evidence.json").write_text('{"records": 120, "pii_findings": {"EMAIL": 3}}\n')
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_model.bin").write_bytes(os.urandom(4096))
    from ftaudit.io import sha256_file

    weights = run_dir / "adapter" / "adapter_model.bin"
    record = make_record(lineage=lineage, flops=flops, artefacts=[
        Artefact(path="adapter/adapter_model.bin", sha256=sha256_file(weights)[0], kind="adapter",
                 bytes=weights.stat().st_size)])
    record.save(run_dir)
    ledger.record_run(record)
    ledger.register_file(record.run_id, run_dir, "docs/model_card.md", "document")
    ledger.register_file(record.run_id, run_dir, "docs/annex_xi.json", "document")
    ledger.record_event(record.run_id, "stage_finished", {"stage": "document"})
    return run_dir, record
