"""Real processes: a 2-process torchrun (gloo, CPU) job reports one total; kill -9 after a checkpoint and resume."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from meter_tiny import tiny_model

from ftaudit.compute.flops import TrainingSetup, build_flop_model
from ftaudit.compute.meter import load_state

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("meter_tiny.py")
VENV_BIN = Path(sys.executable).parent


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(SCRIPT.parent), env.get("PYTHONPATH", "")])
    return env


def _batches(path: Path) -> list[list[int]]:
    return [[int(x) for x in line.split(",")] for line in path.read_text().split()]


def _hand(batches):
    fm = build_flop_model(tiny_model().config.to_dict(), TrainingSetup(method="full"))
    return sum(fm.batch([max(b)] * len(b)).training for b in batches)


def test_torchrun_two_processes_one_total_and_gate(tmp_path):
    # The gate (rank 0 only) says stop at its 2nd call, i.e. at step 4 of 8: both ranks must stop there.
    torchrun = VENV_BIN / "torchrun"
    # --standalone: torchrun's own rendezvous picks and holds a free port (no race with other tests' jobs).
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(SCRIPT),
           str(tmp_path), "--max-steps", "8", "--meter-every", "2", "--gate-calls", "2"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # Accelerate's dataloader fetches one batch ahead: the log may hold a fifth, never trained, batch per rank.
    per_rank = [_batches(tmp_path / f"batches-first-rank{r}.txt") for r in (0, 1)]
    assert all(len(b) in (4, 5) for b in per_rank)
    fed = per_rank[0][:4] + per_rank[1][:4]
    st = load_state(tmp_path)
    assert st.world_size == 2 and st.counts.micro_batches == 8 and st.global_step == 4 and st.stopped_by_gate
    assert st.counts.tokens_effective == sum(map(sum, fed))
    assert st.counts.tokens_executed == sum(max(b) * len(b) for b in fed)
    assert math.isclose(st.flops.executed.total, _hand(fed), rel_tol=1e-12)


def test_kill_9_after_checkpoint_then_resume(tmp_path):
    first = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path), "--max-steps", "12", "--save-steps", "4",
                              "--meter-every", "2", "--slow", "0.4"], env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            # Kill once the checkpoint exists and the meter has persisted a later step (so work is discarded).
            if (tmp_path / "checkpoint-4" / "ftaudit_meter.json").is_file():
                try:
                    if load_state(tmp_path).global_step >= 6:
                        break
                except Exception:  # noqa: BLE001 - file being replaced right now
                    pass
            assert first.poll() is None, first.stderr.read().decode()[-3000:]
            time.sleep(0.05)
        else:
            pytest.fail("the first run never reached step 6")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    crashed = load_state(tmp_path)
    assert crashed.status == "running" and crashed.global_step >= 6

    resumed = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--max-steps", "12", "--meter-every", "2",
                              "--resume"], env=_env(), capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    st = load_state(tmp_path)
    first_fed = _batches(tmp_path / "batches-first-rank0.txt")
    second_fed = _batches(tmp_path / "batches-resume-rank0.txt")
    assert len(second_fed) in (8, 9)  # steps 5..12 executed again (+ maybe one batch fetched ahead)
    counted = first_fed[:4] + second_fed[:8]  # steps 1..4 from the checkpoint, 5..12 from the resumed job
    assert st.status == "completed" and st.global_step == 12 and st.run_id == crashed.run_id
    assert st.counts.micro_batches == 12
    assert st.counts.tokens_effective == sum(map(sum, counted))
    assert math.isclose(st.flops.executed.total, _hand(counted), rel_tol=1e-12)
    [event] = st.resumes
    assert event.from_step == 4 and event.interrupted_at_step == crashed.global_step
    assert math.isclose(event.discarded_flops, _hand(first_fed[4:crashed.global_step]), rel_tol=1e-12)
    assert st.lineage.cumulative_flops == st.flops.regulatory
