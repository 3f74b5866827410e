"""`ftaudit train` with `objective: dpo` and `objective: grpo`: the plan counts the reference and the rollouts, the
gate sees them, the meter measures them, the documents say what counted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import env, kill_9_when, make_config
from ftaudit.cli import main

pytestmark = pytest.mark.slow
GRPO = {"objective": "grpo", "grpo": {"num_generations": 2, "max_completion_length": 8, "beta": 0.04},
        "max_steps": 2, "per_device_batch_size": 4, "save_steps": 1, "meter_every_steps": 1}


@pytest.fixture
def preference_data(tmp_path, tiny_data) -> dict:
    """The demo's support messages as preferences: the reference JSON chosen over one with its intent wrong."""
    rows = []
    for line in tiny_data["train"].read_text().splitlines()[:16]:
        rec = json.loads(line)
        wrong = json.loads(rec["completion"])
        wrong["intent"] = "other" if wrong.get("intent") != "other" else "refund"
        rows.append({"prompt": rec["prompt"], "chosen": rec["completion"], "rejected": json.dumps(wrong)})
    path = tmp_path / "preferences.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {**tiny_data, "train": path}


def _train(capsys, config) -> dict:
    assert main(["train", str(config), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["record"]


def test_grpo_trains_with_rollouts_and_reference_counted(tmp_path, tiny_model, tiny_data, capsys):
    rec = _train(capsys, make_config(tmp_path, tiny_model, tiny_data, training=GRPO))
    assert rec["status"] == "completed"
    c = rec["compute"]
    plan = c["estimate"]
    assert plan["objective"] == "grpo" and set(plan["breakdown"]) == {"policy", "generation", "reference"}
    lines = {line["role"]: line for line in c["breakdown"]}
    assert c["objective"] == "grpo" and set(lines) == {"generation", "reference"}
    assert all(line["counted"] for line in lines.values()) and lines["generation"]["counts"]["decode_keys"]
    # completions stop at EOS or at the maximum the plan assumes: the plan is an upper bound
    assert lines["generation"]["flops"]["regulatory"] <= plan["breakdown"]["generation"] * 1.05
    assert c["regulatory_flops"] == pytest.approx(
        c["flops"]["regulatory"] + sum(line["flops"]["regulatory"] for line in lines.values()))
    xi = json.loads((tmp_path / "run" / "docs" / "annex_xi.json").read_text())
    items = {i["id"]: i for s in xi["sections"] for i in s["items"]}
    assert items["1.2.b.objective"]["value"].startswith("reinforcement learning")
    assert [line["role"] for line in items["1.2.d.flops_breakdown"]["value"]] == ["policy", "reference",
                                                                                  "generation"]
    # a GRPO run continued from this one's adapter (--parent): the lineage carries the whole figure
    (tmp_path / "again").mkdir()
    again = make_config(tmp_path / "again", tiny_model, tiny_data, training=GRPO)
    assert main(["train", str(again), "--plan", "--json", "--parent", str(tmp_path / "run" / "model")]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["prior_lineage_flops"] == pytest.approx(c["regulatory_flops"])


def test_dpo_trains_with_the_reference_counted(tmp_path, tiny_model, preference_data, capsys):
    training = {"objective": "dpo", "dpo": {"reference": "precomputed"}, "max_steps": 2, "per_device_batch_size": 2}
    rec = _train(capsys, make_config(tmp_path, tiny_model, preference_data, training=training))
    c = rec["compute"]
    assert c["objective"] == "dpo" and [line["role"] for line in c["breakdown"]] == ["reference"]
    assert c["estimate"]["breakdown"]["reference"] > 0 and c["estimate"]["train_records"] == 16
    ref = c["breakdown"][0]
    # precomputed: one forward over all 16 records (32 sequences) before training, counted in the run
    assert ref["counts"]["sequences_executed"] == 32 and "(reading)" in ref["basis"]


def test_the_gate_counts_the_rollouts(tmp_path, tiny_model, tiny_data, capsys):
    """A threshold between the policy's training passes alone and the whole run: the plan must refuse."""
    p = make_config(tmp_path, tiny_model, tiny_data, training=GRPO)
    assert main(["train", str(p), "--plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    policy, total = plan["breakdown"]["policy"], plan["planned_flops"]
    assert total > policy * 1.2
    threshold = (policy + total) / 2  # a GPAI base of 3×threshold: one third of it is the threshold
    p = make_config(tmp_path, tiny_model, tiny_data, training=GRPO,
                    compute_policy={"original_flops": 3 * threshold, "base_is_gpai": True})
    assert main(["train", str(p), "--plan"]) == 3
    assert "compute gate" in capsys.readouterr().err


@pytest.mark.parametrize(("training", "message"), [
    ({"objective": "dpo"}, "objective dpo trains on preference records"),
    ({**GRPO, "per_device_batch_size": 3}, "multiple of training.grpo.num_generations"),
])
def test_objective_bad_input(tmp_path, tiny_model, tiny_data, capsys, training, message):
    assert main(["train", str(make_config(tmp_path, tiny_model, tiny_data, training=training)), "--plan"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_grpo_kill_9_then_resume_counts_every_rollout_once(tmp_path, tiny_model, tiny_data):
    ftaudit = [sys.executable, "-m", "ftaudit.cli", "train"]
    training = {**GRPO, "max_steps": 6, "save_steps": 2, "meter_every_steps": 2}
    config = make_config(tmp_path, tiny_model, tiny_data, training=training)
    run = tmp_path / "run"
    kill_9_when([*ftaudit, str(config), "--json"], run / "checkpoints" / "checkpoint-2" / "trainer_state.json")
    assert json.loads((run / "run_record.json").read_text())["status"] == "running"  # killed mid-run
    done = subprocess.run([*ftaudit, "--resume", str(run), "--json"], env=env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    c = json.loads(done.stdout)["record"]["compute"]
    gen = {line["role"]: line for line in c["breakdown"]}["generation"]
    # 6 steps × 4 completions prefilled once each: the 2 steps before the checkpoint from its counts, the
    # steps after it counted when they ran (what the killed job did past the checkpoint is not added)
    assert gen["counts"]["sequences_executed"] == 6 * 4
    assert c["counts"]["optimizer_steps"] == 6 and c["counts"]["sequences_executed"] == 6 * 4


def test_grpo_runtime_gate_stops_on_the_whole_figure(tmp_path, tiny_model, tiny_data):
    """The accepted limit at 40 % of the plan: the runtime gate stops on policy + rollouts + reference, not on the
    policy's training passes alone (which stay far below the limit when it trips)."""
    from ftaudit.errors import COMPUTE_GATE_STOPPED
    from ftaudit.pipeline.run import after_preflight, preflight, prepare
    from ftaudit.record import RunRecord
    from ftaudit.regulation import OriginalCompute, decide

    p = make_config(tmp_path, tiny_model, tiny_data, training={**GRPO, "max_steps": 8, "save_steps": 100})
    run = preflight(prepare(p, quiet=True))
    limit = run.plan.planned_flops * 0.4
    run.original = OriginalCompute(3 * limit, "known", source="test override", is_gpai=True)
    run.planned_decision = decide(0.0, run.original)
    assert after_preflight(run).exit_code == COMPUTE_GATE_STOPPED
    rec = RunRecord.load(tmp_path / "run")
    c = rec.compute
    assert rec.status == "stopped" and c.counts.optimizer_steps < 8
    assert c.regulatory_flops <= limit * 1.05
    assert c.flops.regulatory < 0.75 * limit  # the policy alone would have run on
