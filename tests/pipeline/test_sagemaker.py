"""SageMaker without AWS: the training-job request, and the entry point run against a fake /opt/ml tree."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from conftest import make_config
from ftaudit.cli import main


def test_launch_dry_run_prints_the_request(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data,
                    eval_datasets=[{"path": str(tiny_data["eval"])}])
    assert main(["sagemaker", "launch", str(p), "--dry-run", "--job-name", "tiny-job",
                 "--s3-output", "s3://bucket/runs", "--instance-type", "ml.g5.xlarge"]) == 0
    out = json.loads(capsys.readouterr().out)
    req = out["request"]
    assert req["TrainingJobName"] == "tiny-job"
    assert req["AlgorithmSpecification"]["ContainerEntrypoint"] == ["ftaudit", "sagemaker", "entry"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert set(channels) == {"config", "train0", "eval0", "base_model"}
    assert channels["train0"] == "s3://bucket/runs/tiny-job/input/train0"
    assert req["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert req["OutputDataConfig"]["S3OutputPath"] == "s3://bucket/runs/tiny-job/output"
    uploads = {u["to"] for u in out["uploads"]}
    assert "s3://bucket/runs/tiny-job/input/train0/train.jsonl" in uploads
    assert "s3://bucket/runs/tiny-job/input/config/ftaudit-config.yaml" in uploads
    assert any(u.endswith("base_model/config.json") for u in uploads)


def test_real_launch_without_role_is_bad_input(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data)
    assert main(["sagemaker", "launch", str(p)]) == 1
    assert "--role" in capsys.readouterr().err


@pytest.mark.slow
def test_entry_point_on_a_fake_opt_ml_tree(tmp_path, tiny_model, tiny_data, monkeypatch):
    root = tmp_path / "opt" / "ml"
    data = root / "input" / "data"
    (data / "train0").mkdir(parents=True)
    shutil.copy(tiny_data["train"], data / "train0" / "train.jsonl")
    shutil.copytree(tiny_model, data / "base_model")
    cfg_src = make_config(tmp_path, tiny_model, tiny_data)
    cfg = yaml.safe_load(cfg_src.read_text())
    cfg["datasets"][0]["path"] = "/somewhere/on/the/laptop/train.jsonl"  # rewritten to the channel
    cfg["base_model"]["path"] = "/somewhere/on/the/laptop/tiny-llama"
    (data / "config").mkdir()
    (data / "config" / "ftaudit-config.yaml").write_text(yaml.safe_dump(cfg))
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"ftaudit_config_file": "ftaudit-config.yaml", "training.max_steps": "3", "training.learning_rate": "0.002",
         "sagemaker_program": "ignored"}))
    (root / "checkpoints").mkdir()
    for var in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_OUTPUT_DIR", "FLOPS_METER_OUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SM_CHANNEL_TRAIN0", str(data / "train0"))
    assert main(["sagemaker", "entry", "--root", str(root)]) == 0
    assert (root / "model" / "adapter_config.json").is_file()
    assert (root / "model" / "ftaudit_lineage.json").is_file()
    rec = json.loads((root / "output" / "data" / "run_record.json").read_text())
    assert rec["status"] == "completed"
    assert rec["config"]["training"]["max_steps"] == 3 and rec["config"]["training"]["learning_rate"] == 0.002
    assert rec["config"]["datasets"][0]["path"] == str(data / "train0" / "train.jsonl")
    assert (root / "output" / "flops_meter.json").is_file()
    assert (root / "checkpoints" / "tiny" / "run_record.json").is_file()  # the run dir, synced for spot restarts
    assert not (root / "output" / "failure").exists()


def test_entry_point_failure_file(tmp_path, monkeypatch):
    root = tmp_path / "ml"
    root.mkdir()
    monkeypatch.delenv("SM_OUTPUT_DIR", raising=False)
    assert main(["sagemaker", "entry", "--root", str(root)]) == 1
    assert "config" in (root / "output" / "failure").read_text()
