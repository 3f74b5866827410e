"""Bad input answered in one line with a documented exit code, nothing written (the reliability issue's list)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import make_config
from ftaudit.cli import main


def _one_line(capsys, code_expected, argv):
    assert main(argv) == code_expected, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_config_json_with_nan_and_absurd_estimate_numbers(tmp_path, capsys):
    from ftaudit.regulation import lookup

    cfg = json.dumps(lookup("HuggingFaceTB/SmolLM2-135M").config_dict()).replace('"hidden_size": 576',
                                                                                  '"hidden_size": NaN')
    (tmp_path / "config.json").write_text(cfg)
    assert "hidden_size" in _one_line(capsys, 1, ["estimate", "--config", str(tmp_path), "--tokens", "100",
                                                  "--seq-len", "10"])
    base = ["estimate", "--config", "HuggingFaceTB/SmolLM2-135M"]
    assert "more than 1e+16" in _one_line(capsys, 1, [*base, "--tokens", "1e300", "--seq-len", "10"])
    assert "more than 1e+08" in _one_line(capsys, 1, [*base, "--tokens", "1e6", "--seq-len", "1e12"])
    assert main([*base, "--tokens", "1e6", "--seq-len", "20000", "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any("longer than the model's context window (8,192" in w for w in warnings)


def test_output_into_a_closed_pipe_exits_quietly():
    script = ("import sys; from ftaudit.cli import main; "
              "sys.exit(main(['estimate', '--config', 'HuggingFaceTB/SmolLM2-135M', '--tokens', '1e6', "
              "'--seq-len', '10']))")
    producer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.readline()
    producer.stdout.close()  # what `| head -1` does
    err = producer.stderr.read().decode()
    assert producer.wait(timeout=60) == 0 and "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize("command", ["ledger", "data", "sagemaker"])
def test_a_command_without_its_action_lists_its_actions(capsys, command):
    assert main([command]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"usage: ftaudit {command}")


def test_unknown_config_keys_say_did_you_mean(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_step": 3})
    assert "did you mean 'max_steps'" in _one_line(capsys, 1, ["train", str(p), "--plan"])
    p = make_config(tmp_path, tiny_model, tiny_data, compute_policy={"base_is_gpaj": True})
    assert "did you mean 'base_is_gpai'" in _one_line(capsys, 1, ["train", str(p), "--plan"])


def test_huge_max_steps_plans_in_closed_form(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": 10**14},
                    compute_policy={"accepted_role": "gpai_provider_systemic_risk"})
    assert main(["train", str(p), "--plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["optimizer_steps"] == 10**14 and any("simulated" in a for a in plan["assumptions"])
    small = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": 50_000})
    assert main(["train", str(small), "--plan", "--json"]) == 0
    per_step = json.loads(capsys.readouterr().out)["plan"]["planned_flops"] / 50_000
    assert plan["planned_flops"] / 10**14 == pytest.approx(per_step, rel=0.02)


def test_max_seq_len_beyond_the_model_is_warned(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_seq_len": 10**8})
    assert main(["train", str(p), "--plan", "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["plan"]["warnings"]
    assert any("longer than the model's context window" in w for w in warnings)


def test_unwritable_outputs_refused_in_preflight_and_nothing_left_behind(tmp_path, tiny_model, tiny_data, capsys,
                                                                       monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    p = make_config(tmp_path, tiny_model, tiny_data, output_dir=str(blocker / "run"))
    for argv in (["train", str(p), "--plan"], ["train", str(p)]):
        assert "is a file, not a directory" in _one_line(capsys, 1, argv)
    p = make_config(tmp_path, tiny_model, tiny_data)
    monkeypatch.setenv("FLOPS_METER_OUT", str(blocker / "seed"))
    assert "FLOPS_METER_OUT" in _one_line(capsys, 1, ["train", str(p)])
    monkeypatch.delenv("FLOPS_METER_OUT")
    monkeypatch.setenv("PRETRAIN_FLOPS", "-1")
    assert "PRETRAIN_FLOPS" in _one_line(capsys, 1, ["train", str(p)])
    assert not (tmp_path / "run").exists()


def test_sagemaker_unknown_region_is_refused(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data)
    err = _one_line(capsys, 1, ["sagemaker", "launch", str(p), "--dry-run", "--region", "eu-wset-1"])
    assert "did you mean eu-west-1" in err


def test_verify_of_a_cut_ledger_is_a_verification_failure(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FTAUDIT_KEY", str(tmp_path / "k.pem"))
    from ftaudit.ledger import open_ledger

    path = tmp_path / "l.sqlite"
    with open_ledger(path) as ledger:
        for i in range(200):
            ledger.record_event("r1", "note", {"i": i, "pad": "y" * 400})
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    assert "damaged" in _one_line(capsys, 7, ["verify", str(path)])
