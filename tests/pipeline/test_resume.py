"""Resume after kill -9 (and after a checkpoint cut off mid-write), and a lineage over two runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import env, kill_9_when, make_config
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

    kill_9_when([*FTAUDIT, "train", str(crash), "--json"],
                crash_dir / "run" / "checkpoints" / "checkpoint-10" / "trainer_state.json")
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


KILL_TRAINING = {"max_steps": 8, "save_steps": 4, "meter_every_steps": 2, "per_device_batch_size": 4}
KILL_EVAL = {"suites": ["quality"], "limits": {"task_items": 4, "task_max_new_tokens": 6}}


def _kill_config(root: Path, tiny_model, tiny_data) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return make_config(root, tiny_model, tiny_data, training=KILL_TRAINING, evaluation=KILL_EVAL,
                       eval_datasets=[{"path": str(tiny_data["eval"])}])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model, tiny_data) -> dict:
    root = tmp_path_factory.mktemp("clean")
    assert main(["train", str(_kill_config(root, tiny_model, tiny_data)), "--json"]) == 0
    return _record(root / "run")


def _stage_logged(name: str):
    def check(run: Path) -> bool:
        log = run / "logs" / "stages.jsonl"
        return log.is_file() and any(json.loads(line)["stage"] == name for line in log.read_text().splitlines())
    return check


# Where the job is killed: a predicate on the run directory, polled until it holds.
KILL_POINTS = {
    "before training": _stage_logged("preflight"),
    "during training": lambda run: (run / "checkpoints" / "checkpoint-4" / "trainer_state.json").is_file(),
    "after training": _stage_logged("train"),
    "during evaluation": lambda run: (run / "evaluation").is_dir() and _stage_logged("train")(run),
    "during documents": lambda run: (run / "docs").is_dir(),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_anywhere_then_resume_gives_the_uninterrupted_figures(point, tmp_path, tiny_model, tiny_data,
                                                                     uninterrupted):
    import signal
    import time

    run = tmp_path / "run"
    proc = subprocess.Popen([*FTAUDIT, "train", str(_kill_config(tmp_path, tiny_model, tiny_data)), "--json"],
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not KILL_POINTS[point](run) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert KILL_POINTS[point](run), f"the job ended before {point}"
    resumed = _train(["--resume", str(run), "--json"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got, want = json.loads(resumed.stdout)["record"], uninterrupted
    assert got["status"] == "completed" and [s["name"] for s in got["stages"]][-1] == "record"
    assert got["compute"]["counts"]["optimizer_steps"] == want["compute"]["counts"]["optimizer_steps"] == 8
    assert got["compute"]["counts"]["tokens_effective"] == want["compute"]["counts"]["tokens_effective"]
    assert got["compute"]["flops"]["regulatory"] == pytest.approx(want["compute"]["flops"]["regulatory"], rel=1e-9)
    assert got["decision"]["modification_flops"] == pytest.approx(want["decision"]["modification_flops"], rel=1e-9)
    steps = [json.loads(line).get("step") for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s is not None) <= 8  # never a step past max_steps
    assert (run / "docs" / "annex_xi.json").is_file() and got["evaluation"] is not None
