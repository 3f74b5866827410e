"""The data policy inside `ftaudit train`: secrets in the training data block the run (exit 5) before training."""

from __future__ import annotations

import json

from conftest import make_config
from ftaudit.cli import main
from ftaudit.errors import DATA_POLICY_BLOCKED

KEY = "AKIAZ7Q2VXN4LMP8RT3W"  # AWS access-key shape, made up for this test


def _with_secret(tmp_path, tiny_data) -> dict:
    rows = tiny_data["train"].read_text().splitlines()
    rec = json.loads(rows[3])
    rec["prompt"] += f" Our deploy key is {KEY}, please rotate it."
    rows[3] = json.dumps(rec)
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_text("\n".join(rows) + "\n")
    return {**tiny_data, "train": leaky}


def test_a_secret_blocks_training_with_exit_5_and_nothing_written(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, _with_secret(tmp_path, tiny_data))
    assert main(["train", str(p)]) == DATA_POLICY_BLOCKED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "secrets" in err[-1] and KEY not in "\n".join(err)
    assert not (tmp_path / "run").exists()


def test_the_policy_is_configurable(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, _with_secret(tmp_path, tiny_data), training={"max_steps": 1},
                    data_policy={"block_on_secrets": False})
    assert main(["train", str(p), "--json"]) == 0
    out = capsys.readouterr().out
    assert KEY not in out
    record = json.loads((tmp_path / "run" / "run_record.json").read_text())
    verdict = record["data"]["policy"]
    assert verdict["status"] == "pass" and any("secret" in w["rule"] for w in verdict["warnings"])
