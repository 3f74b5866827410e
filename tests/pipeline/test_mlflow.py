"""MLflow: `ftaudit train` logs its evidence into a real local MLflow store (SQLite backend, the real client), and
the callback logs into the run the Trainer has open."""

from __future__ import annotations

import json

import pytest

from conftest import make_config, optional_module
from ftaudit.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path, monkeypatch):
    mlflow = optional_module("mlflow", why="the `mlflow` extra: ftaudit train logs into MLflow")
    monkeypatch.chdir(tmp_path)  # the store's default artefact root is relative to the working directory
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield mlflow, uri
    mlflow.set_tracking_uri(None)


def test_train_logs_params_metrics_verdict_documents_and_a_model_version(tmp_path, tiny_model, tiny_data, store):
    mlflow, uri = store
    cfg = make_config(tmp_path, tiny_model, tiny_data,
                      mlflow={"tracking_uri": uri, "experiment": "support-extraction",
                              "registered_model": "support-extractor"})
    assert main(["train", str(cfg)]) == 0
    rec = json.loads((tmp_path / "run" / "run_record.json").read_text())

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("support-extraction")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["ftaudit.method"] == "lora" and run.data.params["ftaudit.run_id"] == rec["run_id"]
    assert run.data.params["ftaudit.lineage_id"] == rec["lineage"]["lineage_id"]
    assert run.data.metrics["ftaudit.flops_regulatory"] == pytest.approx(rec["compute"]["regulatory_flops"])
    decision = rec["decision"]
    assert run.data.metrics["ftaudit.fraction_of_threshold"] == pytest.approx(
        decision["modification_flops"] / decision["threshold_flops"])
    assert run.data.tags["ftaudit.role"] == decision["role"] == "downstream_modifier"
    assert run.data.tags["ftaudit.citation"] == decision["citation"] and run.data.tags["ftaudit.status"] == "completed"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "ftaudit")}
    docs = {a.path for a in client.list_artifacts(run.info.run_id, "ftaudit/docs")}
    assert "ftaudit/run_record.json" in logged and "ftaudit/docs/ml_bom.cdx.json" in docs
    assert "ftaudit/docs/model_card.md" in docs
    (version,) = client.search_model_versions("name='support-extractor'")
    assert version.run_id == run.info.run_id and version.tags["ftaudit.role"] == "downstream_modifier"
    assert version.tags["ftaudit.rule"] == decision["rule"]


def test_train_logs_into_the_run_handed_over_by_mlflow_run_id(tmp_path, tiny_model, tiny_data, store, monkeypatch):
    mlflow, uri = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    outer = client.create_run(client.create_experiment("orchestrator"))
    monkeypatch.setenv("MLFLOW_RUN_ID", outer.info.run_id)
    cfg = make_config(tmp_path, tiny_model, tiny_data, training={"max_steps": 2})  # no `mlflow:` key
    assert main(["train", str(cfg)]) == 0
    got = client.get_run(outer.info.run_id)
    assert got.data.tags["ftaudit.role"] == "downstream_modifier" and got.data.metrics["ftaudit.flops_regulatory"] > 0


def test_callback_logs_into_the_trainers_run(tmp_path, store):
    mlflow, uri = store
    from transformers import AutoModelForCausalLM, LlamaConfig, Trainer, TrainingArguments

    from ftaudit.compute.meter import load_state
    from ftaudit.integrations.hf import FlopsMeterCallback

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("trainer")
    model = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                                         num_hidden_layers=1, num_attention_heads=2))
    rows = [{"input_ids": [1, 5, 9, 13, 2], "labels": [1, 5, 9, 13, 2]}] * 8
    args = TrainingArguments(str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, report_to=[],
                             save_strategy="no", use_cpu=True)
    with mlflow.start_run() as run:
        Trainer(model=model, args=args, train_dataset=rows, callbacks=[FlopsMeterCallback()]).train()
    got = mlflow.MlflowClient(tracking_uri=uri).get_run(run.info.run_id)
    state = load_state(tmp_path / "out")
    assert got.data.metrics["ftaudit.flops_regulatory"] == pytest.approx(state.flops.regulatory)
    assert got.data.tags["ftaudit.threshold_basis"] == "unknown_original_fallback"
