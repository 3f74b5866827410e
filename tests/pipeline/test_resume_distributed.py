"""Resume after kill -9, and the same `ftaudit train` under torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LAUNCHERS, env, make_config, train_distributed
from ftaudit.cli import main

FTAUDIT = [sys.executable, "-m", "ftaudit.cli"]


def _train(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*FTAUDIT, "train", *args], env=env(), capture_output=True, text=True, timeout=300, **kw)


def _record(run: Path) -> dict:
    return json.loads((run / "run_record.json").read_text())


@pytest.mark.slow
def test_resume_after_kill_9_keeps_the_lineage_total_right(tmp_path, tiny_model, tiny_data):
    training = {"max_steps": 40, "save_steps": 5, "meter_every_steps": 5, "per_device_batch_size": 4}
    clean_dir, crash_dir = tmp_path / "clean", tmp_path / "crash"
    clean_dir.mkdir(), crash_dir.mkdir()
    clean = make_config(clean_dir, tiny_model, tiny_data, training=training)
    crash = make_config(crash_dir, tiny_model, tiny_data, training=training)

    proc = subprocess.Popen([*FTAUDIT, "train", str(crash), "--json"], env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = crash_dir / "run" / "checkpoints" / "checkpoint-10" / "trainer_state.json"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "no checkpoint before the kill"
    assert _record(crash_dir / "run")["status"] == "running"  # killed: nothing closed the record

    resumed = _train(["--resume", str(crash_dir / "run"), "--json"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = json.loads(resumed.stdout)["record"]

    assert main(["train", str(clean), "--json"]) == 0  # the uninterrupted reference, in-process (faster)
    want = _record(clean_dir / "run")

    assert got["status"] == "completed"
    # the resumed run executed the same micro-batches once each in the total: same counts, same FLOPs
    assert got["compute"]["counts"]["tokens_effective"] == want["compute"]["counts"]["tokens_effective"]
    assert got["compute"]["flops"]["regulatory"] == pytest.approx(want["compute"]["flops"]["regulatory"], rel=1e-9)
    assert got["compute"]["lineage"]["cumulative_flops"] == pytest.approx(got["compute"]["flops"]["regulatory"])
    assert got["run_id"] == _record(crash_dir / "run")["run_id"]


def test_second_run_from_the_first_adapter_adds_to_the_lineage(tmp_path, tiny_model, tiny_data, capsys):
    first = make_config(tmp_path, tiny_model, tiny_data)
    assert main(["train", str(first), "--json"]) == 0
    rec1 = json.loads(capsys.readouterr().out)["record"]
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = make_config(second_dir, tiny_model, tiny_data, parent=str(tmp_path / "run"), name="tiny-2")
    assert main(["train", str(second), "--json"]) == 0
    rec2 = json.loads(capsys.readouterr().out)["record"]
    f1, f2 = rec1["compute"]["flops"]["regulatory"], rec2["compute"]["flops"]["regulatory"]
    assert rec2["lineage"]["lineage_id"] == rec1["lineage"]["lineage_id"]
    assert rec2["compute"]["lineage"]["cumulative_flops"] == pytest.approx(f1 + f2)
    assert rec2["decision"]["modification_flops"] == pytest.approx(f1 + f2)
    assert rec2["compute"]["estimate"]["prior_lineage_flops"] == pytest.approx(f1)
    # the second run trained the first run's adapter further (same lineage), not a fresh one
    assert (second_dir / "run" / "model" / "adapter_config.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_report_one_total(tmp_path, tiny_model, tiny_data, launcher):
    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": None, "epochs": 1})
    rec = train_distributed(launcher, p, tmp_path)
    plan = rec["compute"]["estimate"]
    assert rec["compute"]["world_size"] == 2 and plan["world_size"] == 2
    # both ranks' micro-batches in one total: every training token exactly once (48 records, 2 × 6 × 4)
    assert rec["compute"]["counts"]["tokens_effective"] == plan["train_tokens_per_epoch"]
    assert rec["compute"]["counts"]["sequences_effective"] == 48
    assert json.loads((tmp_path / "run" / "run_record.json").read_text())["run_id"] == rec["run_id"]


def test_a_checkpoint_cut_off_while_its_state_was_written_is_not_resumed(tmp_path):
    """A kill in the middle of the Trainer writing trainer_state.json (it is not written atomically) leaves a
    checkpoint that cannot be resumed: the one before it is."""
    from ftaudit.pipeline.run_dir import RunDir

    rd = RunDir(tmp_path)
    for step, state in ((5, '{"global_step": 5}'), (10, '{"global_step": 10, "log_hi'), (15, None)):
        d = rd.checkpoints / f"checkpoint-{step}"
        d.mkdir(parents=True)
        if state is not None:
            (d / "trainer_state.json").write_text(state)
    assert rd.last_checkpoint() == rd.checkpoints / "checkpoint-5"
