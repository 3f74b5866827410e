import json
from pathlib import Path

import pytest

from ftaudit.errors import BadInput
from ftaudit.record import RunRecord, json_schema_text

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "runrecord.schema.json"


def test_published_schema_is_current():
    # `make schema` regenerates it; a stale published schema misleads every consumer.
    assert SCHEMA.read_text() == json_schema_text()


def test_round_trip_and_atomic_save(tmp_path):
    record = RunRecord(status="running")
    path = record.save(tmp_path)
    assert path.name == "run_record.json"
    loaded = RunRecord.load(tmp_path)
    assert loaded.run_id == record.run_id and loaded.status == "running"
    assert [p.name for p in tmp_path.iterdir()] == ["run_record.json"]


def test_unknown_fields_are_rejected(tmp_path):
    doc = json.loads(RunRecord().model_dump_json())
    doc["surprise"] = 1
    (tmp_path / "run_record.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="not a valid run record"):
        RunRecord.load(tmp_path)


def test_missing_record_is_one_clear_error(tmp_path):
    with pytest.raises(BadInput, match="no run record"):
        RunRecord.load(tmp_path)


def test_atomic_outputs_get_ordinary_permissions_and_leave_nothing_on_failure(tmp_path):
    import os
    import stat

    from ftaudit.io import atomic_open, atomic_write_text

    out = atomic_write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "a.txt") as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")
    assert out.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
