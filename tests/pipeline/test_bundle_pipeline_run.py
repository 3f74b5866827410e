"""A run made by `ftaudit train` bundles, and the bundle verifies on a second machine with only the public key;
the training and evaluation data are referenced by hash, never packed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from conftest import make_config
from ftaudit.cli import main


def test_bundle_of_a_pipeline_run_verifies_elsewhere_without_its_data(tmp_path, tiny_model, tiny_data, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv("FTAUDIT_KEY", str(tmp_path / "keys" / "key.pem"))
    ledger = tmp_path / "ledger.sqlite"
    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": 2}, ledger=str(ledger),
                    eval_datasets=[{"path": str(tiny_data["eval"])}], evaluation={"suites": ["quality"],
                                                "limits": {"task_items": 2, "task_max_new_tokens": 4}})
    assert main(["train", str(p)]) == 0
    run = tmp_path / "run"
    out = tmp_path / "r.zip"
    capsys.readouterr()
    assert main(["bundle", str(run), "-o", str(out), "--ledger", str(ledger)]) == 0, capsys.readouterr().err
    z = zipfile.ZipFile(out)
    manifest = json.loads(z.read("manifest.json"))
    referenced = {f["path"]: f for f in manifest["referenced"]}
    assert f"external:{tiny_data['train'].resolve()}" in referenced
    assert f"external:{tiny_data['eval'].resolve()}" in referenced
    # No member holds a line of the training or evaluation data.
    records = [line for f in ("train", "eval") for line in tiny_data[f].read_text().splitlines() if line.strip()]
    for name in z.namelist():
        data = z.read(name).decode("utf-8", errors="replace")
        assert not any(r in data for r in records[:20]), name
    assert main(["verify", str(run), "--ledger", str(ledger)]) == 0

    # The second machine: another directory and HOME, no ledger, no private key; only the public key.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = elsewhere / "r.zip"
    moved.write_bytes(out.read_bytes())
    from ftaudit.ledger.keys import load_signing_key

    pub = elsewhere / "provider.pub.pem"
    pub.write_text(load_signing_key().public_pem)
    env = {**os.environ, "HOME": str(elsewhere), "XDG_DATA_HOME": str(elsewhere),
           "FTAUDIT_LEDGER": str(elsewhere / "absent.sqlite"), "FTAUDIT_KEY": str(elsewhere / "absent.pem")}
    r = subprocess.run([sys.executable, "-m", "ftaudit.cli", "verify", str(moved), "--public-key", str(pub)],
                       capture_output=True, text=True, env=env, cwd=elsewhere, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bundle ok" in r.stdout


def _recorded_run(tmp_path, tiny_model, tiny_data, monkeypatch):
    monkeypatch.setenv("FTAUDIT_KEY", str(tmp_path / "keys" / "key.pem"))
    ledger = tmp_path / "ledger.sqlite"
    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": 2, "save_steps": 1}, ledger=str(ledger))
    assert main(["train", str(p)]) == 0
    return tmp_path / "run", ledger


def test_verify_catches_added_appended_and_edited_run_files(tmp_path, tiny_model, tiny_data, capsys, monkeypatch):
    run, ledger = _recorded_run(tmp_path, tiny_model, tiny_data, monkeypatch)
    assert main(["verify", str(run), "--ledger", str(ledger)]) == 0
    capsys.readouterr()

    added = run / "docs" / "extra_note.md"
    added.write_text("not part of the run\n")
    assert main(["verify", str(run), "--ledger", str(ledger)]) == 7
    assert "docs/extra_note.md" in capsys.readouterr().err
    assert main(["verify", str(run), "--ledger", str(ledger), "--allow-extra"]) == 0
    assert "1 unregistered file(s) allowed: docs/extra_note.md" in capsys.readouterr().out
    added.unlink()

    log = run / "logs" / "train.jsonl"
    original = log.read_bytes()
    log.write_bytes(original + b'{"step": 99}\n')
    assert main(["verify", str(run), "--ledger", str(ledger)]) == 7
    assert "logs/train.jsonl: artefact modified" in capsys.readouterr().err
    log.write_bytes(original)

    state = next((run / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    state.write_text(state.read_text().replace('"global_step": ', '"global_step": 1'))
    assert main(["verify", str(run), "--ledger", str(ledger)]) == 7
    assert "trainer_state.json: artefact modified" in capsys.readouterr().err


def test_verify_of_a_run_killed_before_its_record_stage_says_incomplete(tmp_path, tiny_model, tiny_data, capsys,
                                                                        monkeypatch):
    from ftaudit.record import RunRecord

    run, ledger = _recorded_run(tmp_path, tiny_model, tiny_data, monkeypatch)
    # What a kill during the document stage leaves: a record whose stages end before "record", not in the ledger.
    record = RunRecord.load(run)
    record.run_id = "0" * 32
    record.stages = [s for s in record.stages if s.name not in ("document", "record")]
    record.save(run)
    assert main(["verify", str(run), "--ledger", str(ledger)]) == 8
    err = capsys.readouterr().err
    assert "incomplete" in err and "after stage evaluate" in err and "--resume" in err
    record.stages = [*record.stages, *RunRecord.load(run).stages]
    record.stages.append(record.stages[-1].model_copy(update={"name": "record"}))
    record.save(run)
    assert main(["verify", str(run), "--ledger", str(ledger)]) == 7  # finished, yet unknown to the ledger
