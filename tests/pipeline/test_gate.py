"""The compute gate: refuse before training (exit 3), accept, and stop mid-run (exit 4)."""

from __future__ import annotations

import json

from conftest import make_config
from ftaudit.cli import main
from ftaudit.errors import COMPUTE_GATE_STOPPED
from ftaudit.pipeline.run import after_preflight, preflight, prepare
from ftaudit.record import RunRecord


def test_plan_matches_the_tokenised_data(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": None, "epochs": 2})
    assert main(["train", str(p), "--plan", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    plan = out["plan"]
    assert plan["train_records"] == 48 and plan["optimizer_steps"] == 2 * 12
    assert plan["planned_tokens_effective"] == 2 * plan["train_tokens_per_epoch"]
    assert plan["planned_flops"] >= plan["effective_flops"] > 0
    assert out["decision"]["role"] == "downstream_modifier" and out["decision"]["within_accepted_role"]
    assert not (tmp_path / "run").exists()  # --plan writes nothing


def test_refused_before_loading_the_model(tmp_path, tiny_model, tiny_data, capsys):
    # a GPAI base of 3e9 FLOP -> threshold 1e9, below the plan (~1.7e9): a GPAI provider the config does not accept
    p = make_config(tmp_path, tiny_model, tiny_data, compute_policy={"original_flops": 3e9, "base_is_gpai": True})
    assert main(["train", str(p)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ftaudit: error: compute gate") and "gpai_provider" in err[-1]
    assert "Art. 53(1)(a)" in err[-1] and "1e+09" in err[-1]
    assert not (tmp_path / "run").exists()


def test_near_threshold_stop_refuses(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data,
                    compute_policy={"original_flops": 6e9, "base_is_gpai": True, "near_threshold": "stop",
                                    "near_fraction": 0.5})
    assert main(["train", str(p), "--plan"]) == 3
    assert "near_threshold=stop" in capsys.readouterr().err


def test_accepted_role_trains(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data,
                    compute_policy={"original_flops": 3e9, "base_is_gpai": True, "accepted_role": "gpai_provider"})
    assert main(["train", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rec = out["record"]
    assert rec["status"] == "completed" and rec["decision"]["role"] == "gpai_provider"
    assert rec["decision"]["within_accepted_role"]
    assert [s["status"] for s in rec["stages"]][:2] == ["ok", "ok"]
    run = tmp_path / "run"
    for name in ("config.yaml", "run_record.json", "ftaudit_meter.json", "flops_meter.json",
                 "model/adapter_config.json", "model/ftaudit_lineage.json", "logs/train.jsonl", "logs/stages.jsonl"):
        assert (run / name).is_file(), name
    metered = rec["compute"]["flops"]["regulatory"]
    planned = rec["compute"]["estimate"]["planned_flops"]
    assert 0.8 < metered / planned < 1.2  # same data, different shuffle: padding differs a little
    assert {a["kind"] for a in rec["artefacts"]} >= {"dataset:train", "config", "adapter", "evidence:meter"}


def test_stops_mid_run_when_the_meter_reaches_the_limit(tmp_path, tiny_model, tiny_data):
    """Preflight passes; then an artificially low original_flops override puts the accepted limit at about 40 %
    of the plan, so the runtime gate must stop the run, save a checkpoint and report exit 4."""
    from ftaudit.regulation import OriginalCompute, decide

    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": 8, "save_steps": 100})
    run = preflight(prepare(p, quiet=True))
    low = run.plan.planned_flops * 0.4 * 3  # one third of it is the threshold
    run.original = OriginalCompute(low, "known", source="test override", is_gpai=True)
    run.planned_decision = decide(0.0, run.original)
    result = after_preflight(run)
    assert result.exit_code == COMPUTE_GATE_STOPPED and "stopped" in result.message
    rec = RunRecord.load(tmp_path / "run")
    assert rec.status == "stopped"
    train = next(s for s in rec.stages if s.name == "train")
    assert train.status == "stopped" and "limit" in train.reason
    ckpts = list((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert ckpts and all(int(c.name.split("-")[1]) < 8 for c in ckpts)
    # stopped at the limit (projected), never far past it
    assert rec.compute.flops.regulatory <= low / 3 * 1.05


def test_evaluate_stage_and_canaries(tmp_path, tiny_model, tiny_data, capsys):
    """Canaries asked for by the evaluation config are trained on (and counted in the plan); the evaluate stage
    runs base vs tuned on the held-out file and the record carries its evidence."""
    p = make_config(tmp_path, tiny_model, tiny_data, eval_datasets=[{"path": str(tiny_data["eval"])}],
                    evaluation={"suites": ["quality"], "limits": {"task_items": 4, "task_max_new_tokens": 8},
                                "canaries": {"inserted": 1, "unseen": 1, "repeats": 2}})
    assert main(["train", str(p), "--plan", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["train_records"] == 48 + 2
    assert main(["train", str(p), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)["record"]
    stages = {s["name"]: s["status"] for s in rec["stages"]}
    assert stages["evaluate"] == "ok" and rec["evaluation"]["families"]
    assert (tmp_path / "run" / "evaluation" / "canaries.json").is_file()
    # the documents are made after the outputs are fingerprinted: the BOM carries the adapter's hashes, and the
    # documents describe the finished run
    weights = {a["path"]: a["sha256"] for a in rec["artefacts"] if a["kind"] == "adapter"}
    assert "model/adapter_model.safetensors" in weights
    bom = json.loads((tmp_path / "run" / "docs" / "ml_bom.cdx.json").read_text())
    files = {c["name"]: c["hashes"][0]["content"] for c in bom["metadata"]["component"]["components"]}
    assert files == weights
    assert "status completed" in (tmp_path / "run" / "docs" / "report.html").read_text()


def test_finished_run_is_recorded_in_the_ledger(tmp_path, tiny_model, tiny_data, capsys):
    from ftaudit.ledger import open_ledger

    p = make_config(tmp_path, tiny_model, tiny_data, ledger=str(tmp_path / "ledger.db"),
                    training={"max_steps": 2})
    assert main(["train", str(p), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)["record"]
    with open_ledger(tmp_path / "ledger.db", create=False) as ledger:
        assert ledger.run(rec["run_id"]) is not None
        paths = {a.path for a in ledger.artefacts(rec["run_id"])}
    assert "model/adapter_config.json" in paths and "config.yaml" in paths


def _verdict(decision: dict) -> tuple:
    o = decision["original"]
    return (decision["role"], decision["threshold_basis"], decision["threshold_flops"], o["flops"], o["status"],
            o["is_gpai"])


def test_one_original_resolver_one_verdict_in_every_entry_point(tmp_path, tiny_model, tiny_data, capsys,
                                                                 monkeypatch):
    """PRETRAIN_FLOPS=3e9 (a 3e9-FLOP base declared a GPAI model): `train --plan`, the run record, the callback's
    flops_meter.json, `ftaudit status` and `ftaudit estimate` judge the same original with the same rule."""
    monkeypatch.setenv("PRETRAIN_FLOPS", "3e9")
    monkeypatch.delenv("FLOPS_METER_OUT", raising=False)
    p = make_config(tmp_path, tiny_model, tiny_data,
                    compute_policy={"base_is_gpai": True, "accepted_role": "gpai_provider"})
    assert main(["train", str(p), "--plan", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)["decision"]
    assert planned["original"]["source"] == "PRETRAIN_FLOPS environment variable"
    assert main(["train", str(p), "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)["record"]["decision"]
    run = tmp_path / "run"
    seed = json.loads((run / "flops_meter.json").read_text())
    assert main(["status", str(run), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["decision"]
    metered = recorded["modification_flops"]
    assert main(["estimate", "--config", str(tiny_model), "--tokens", "1", "--seq-len", "1", "--prior-flops",
                 str(metered), "--base-is-gpai", "true", "--json"]) == 0
    estimated = json.loads(capsys.readouterr().out)["decision"]

    one_third = ("gpai_provider", "one_third_of_original", 1e9, 3e9, "known", True)
    assert _verdict(planned) == _verdict(recorded) == _verdict(status) == _verdict(estimated) == one_third
    assert seed["Flops_original"] == 3e9 and seed["threshold_value"] == 1e9 and seed["exceeds_30pct"] is True
    assert seed["role"] == recorded["role"] and seed["threshold_type"] == recorded["threshold_basis"]
    assert status["modification_flops"] == metered == seed["Flops_lineage_cumulative"]


def test_pretrain_flops_without_a_declaration_is_one_verdict_too(tmp_path, tiny_model, tiny_data, capsys,
                                                                 monkeypatch):
    """The reading for a base below 1e23 (not declared a GPAI model) reaches the seed file as well: no
    `exceeds_30pct: true` beside a record that says downstream modifier."""
    monkeypatch.setenv("PRETRAIN_FLOPS", "3e9")
    monkeypatch.delenv("FLOPS_METER_OUT", raising=False)
    p = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": 2})
    assert main(["train", str(p), "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)["record"]["decision"]
    seed = json.loads((tmp_path / "run" / "flops_meter.json").read_text())
    assert recorded["role"] == seed["role"] == "downstream_modifier"
    assert recorded["threshold_basis"] == seed["threshold_type"] == "cumulative_gpai_criterion"
    assert seed["threshold_value"] == recorded["threshold_flops"] == 1e23 - 3e9
    assert seed["exceeds_30pct"] is False and recorded["original"]["flops"] == 3e9


def test_bad_pretrain_flops_is_refused_before_anything_is_written(tmp_path, tiny_model, tiny_data, capsys,
                                                                  monkeypatch):
    p = make_config(tmp_path, tiny_model, tiny_data)
    for raw in ("nan", "-1", "lots"):
        monkeypatch.setenv("PRETRAIN_FLOPS", raw)
        assert main(["train", str(p), "--plan"]) == 1
        assert "PRETRAIN_FLOPS" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
