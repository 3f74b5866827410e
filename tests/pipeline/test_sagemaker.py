"""SageMaker without AWS: the training-job request, and the entry point run against a fake /opt/ml tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import env, kill_9_when, make_config
from ftaudit.cli import main

REAL = ["--role", "arn:aws:iam::123456789012:role/SageMakerRole", "--image-uri",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ftaudit:latest", "--s3-output", "s3://ftaudit-test/runs"]


@pytest.fixture(autouse=True)
def _no_sagemaker_env(monkeypatch):
    """None of SageMaker's variables from this machine, and the entry point's FLOPS_METER_OUT default (it sets one for
    the seed meter's file) does not outlive the test: later runs in this process would write there."""
    for var in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_OUTPUT_DIR", "FLOPS_METER_OUT"):
        monkeypatch.setenv(var, "")  # records the original state, restored after the test
        monkeypatch.delenv(var)


def test_launch_dry_run_prints_the_request(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data,
                    eval_datasets=[{"path": str(tiny_data["eval"])}])
    assert main(["sagemaker", "launch", str(p), "--dry-run", "--job-name", "tiny-job",
                 "--s3-output", "s3://bucket/runs", "--instance-type", "ml.g5.xlarge"]) == 0
    out = json.loads(capsys.readouterr().out)
    req = out["request"]
    assert out["sdk"].startswith(("sagemaker ", "sagemaker-core "))
    assert req["TrainingJobName"] == "tiny-job"
    assert req["AlgorithmSpecification"]["ContainerEntrypoint"] == ["ftaudit", "sagemaker", "entry"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert set(channels) == {"config", "train0", "eval0", "base_model"}
    assert channels["train0"] == "s3://bucket/runs/tiny-job/input/train0"
    assert req["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert req["OutputDataConfig"]["S3OutputPath"] == "s3://bucket/runs/tiny-job/output"
    assert req["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert "EnableManagedSpotTraining" not in req and "MaxWaitTimeInSeconds" not in req["StoppingCondition"]
    assert {t["Key"] for t in req["Tags"]} == {"ftaudit:run", "ftaudit:config-sha256"}
    uploads = {u["to"] for u in out["uploads"]}
    assert "s3://bucket/runs/tiny-job/input/train0/train.jsonl" in uploads
    assert "s3://bucket/runs/tiny-job/input/config/ftaudit-config.yaml" in uploads
    assert any(u.endswith("base_model/config.json") for u in uploads)


def test_sdk_v2_line_builds_the_same_request(tmp_path, tiny_model, tiny_data, capsys):
    """SDK v2 (`sagemaker<3`, SageMaker Core 1.x) and the v3 layer in this environment give one request."""
    v2 = os.environ.get("FTAUDIT_SAGEMAKER_V2_PYTHON")
    if not v2:
        pytest.skip("FTAUDIT_SAGEMAKER_V2_PYTHON names no Python with sagemaker<3 and ftaudit (.ci/run makes one)")
    p = make_config(tmp_path, tiny_model, tiny_data)
    argv = ["sagemaker", "launch", str(p), "--dry-run", "--job-name", "tiny-job", "--spot", *REAL]
    assert main(argv) == 0
    here = json.loads(capsys.readouterr().out)
    proc = subprocess.run([v2, "-m", "ftaudit.cli", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    there = json.loads(proc.stdout)
    assert there["sdk"].startswith("sagemaker 2.") and not here["sdk"].startswith("sagemaker 2.")
    assert there["request"] == here["request"] and there["uploads"] == here["uploads"]


def test_dry_run_request_passes_the_service_model(tmp_path, tiny_model, tiny_data, capsys):
    """What botocore would check before sending: every field known, typed and in range."""
    import botocore.session
    from botocore.validate import ParamValidator

    p = make_config(tmp_path, tiny_model, tiny_data)
    assert main(["sagemaker", "launch", str(p), "--dry-run", "--spot", "--max-wait", "7200",
                 "--max-run", "3600"]) == 0
    req = json.loads(capsys.readouterr().out)["request"]
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(
        "CreateTrainingJob").input_shape
    assert not ParamValidator().validate(req, shape).has_errors()


@pytest.mark.parametrize("args, says", [
    (["--max-run", "0"], "--max-run"),
    (["--instance-count", "0"], "--instance-count"),
    (["--spot", "--max-wait", "60"], "at least --max-run"),
    (["--instance-type", "ml.g5.2xlarg"], "did you mean ml.g5.2xlarge"),  # the service model's enumeration
    (["--job-name", "x" * 64], "TrainingJobName is 64 characters long"),  # the service model's limits
    (["--job-name", "tiny_job"], "TrainingJobName 'tiny_job' does not match"),
    (["--role", "SageMakerRole"], "RoleArn"),
    (["--max-wait", "100"], "--spot"),
    (["--s3-output", "my-bucket/runs"], "s3://"),
])
def test_bad_launch_options_are_one_line(tmp_path, tiny_model, tiny_data, capsys, args, says):
    p = make_config(tmp_path, tiny_model, tiny_data)
    assert main(["sagemaker", "launch", str(p), "--dry-run", *args]) == 1
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_without_the_sdk_launch_says_how_to_install(tmp_path, tiny_model, tiny_data, capsys, monkeypatch):
    for mod in ("sagemaker.core", "sagemaker.core.shapes", "sagemaker_core", "sagemaker_core.main"):
        monkeypatch.setitem(sys.modules, mod, None)  # import of these now raises ImportError
    p = make_config(tmp_path, tiny_model, tiny_data)
    assert main(["sagemaker", "launch", str(p), "--dry-run"]) == 1
    assert "pip install 'ftaudit[sagemaker]'" in capsys.readouterr().err


def test_real_launch_without_role_is_bad_input(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data)
    assert main(["sagemaker", "launch", str(p)]) == 1
    assert "--role" in capsys.readouterr().err


@pytest.fixture
def fake_aws(tmp_path, monkeypatch):
    """moto's in-process S3 and SageMaker, with fake credentials and no AWS config of the user's."""
    moto = pytest.importorskip("moto", reason="moto is a dev dependency (pip install -e '.[dev]')")
    (tmp_path / "aws-config").write_text("")
    for var in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        yield


def _launch(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_launch_uploads_creates_the_job_and_the_container_runs_it(tmp_path, tiny_model, tiny_data, capsys, fake_aws,
                                                                  monkeypatch):
    """launch → S3 + CreateTrainingJob (moto) → an /opt/ml tree made from the job as SageMaker makes it → entry."""
    import boto3

    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="ftaudit-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    p = make_config(tmp_path, tiny_model, tiny_data)
    argv = ["sagemaker", "launch", str(p), *REAL, "--job-name", "tiny-job", "--region", "eu-west-1"]
    planned = _launch([*argv, "--dry-run"], capsys)
    launched = _launch(argv, capsys)
    assert launched["launched"] == "tiny-job"
    assert launched["arn"] == "arn:aws:sagemaker:eu-west-1:123456789012:training-job/tiny-job"

    sm = boto3.client("sagemaker", region_name="eu-west-1")
    job = sm.describe_training_job(TrainingJobName="tiny-job")
    req = planned["request"]
    for key in ("RoleArn", "HyperParameters", "InputDataConfig", "OutputDataConfig", "CheckpointConfig",
                "ResourceConfig", "StoppingCondition"):
        assert job[key] == req[key], key
    assert job["AlgorithmSpecification"]["ContainerEntrypoint"] == ["ftaudit", "sagemaker", "entry"]
    tags = sm.list_tags(ResourceArn=launched["arn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags}["ftaudit:run"] == "tiny"

    # every planned upload is in S3 with the local file's bytes
    for up in planned["uploads"]:
        key = up["to"].removeprefix("s3://ftaudit-test/")
        assert s3.get_object(Bucket="ftaudit-test", Key=key)["Body"].read() == open(up["from"], "rb").read()

    # the container: each channel's S3 prefix copied under input/data/<channel>, hyperparameters as SageMaker writes
    root = tmp_path / "opt" / "ml"
    for ch in job["InputDataConfig"]:
        prefix = ch["DataSource"]["S3DataSource"]["S3Uri"].removeprefix("s3://ftaudit-test/") + "/"
        for obj in s3.list_objects_v2(Bucket="ftaudit-test", Prefix=prefix)["Contents"]:
            dest = root / "input" / "data" / ch["ChannelName"] / obj["Key"].removeprefix(prefix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file("ftaudit-test", obj["Key"], str(dest))
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(job["HyperParameters"]))
    (root / "checkpoints").mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["sagemaker", "entry", "--root", str(root)]) == 0
    rec = json.loads((root / "output" / "data" / "run_record.json").read_text())
    assert rec["status"] == "completed"
    assert rec["config"]["base_model"]["path"] == str(root / "input" / "data" / "base_model")
    assert (root / "model" / "adapter_config.json").is_file()


def test_launch_errors_from_aws_are_one_line(tmp_path, tiny_model, tiny_data, capsys, fake_aws):
    p = make_config(tmp_path, tiny_model, tiny_data)
    assert main(["sagemaker", "launch", str(p), *REAL]) == 1  # no region anywhere
    assert "no AWS region" in capsys.readouterr().err
    assert main(["sagemaker", "launch", str(p), *REAL, "--region", "eu-west-1"]) == 2  # the bucket does not exist
    err = capsys.readouterr().err
    assert "SageMaker launch failed" in err and len(err.strip().splitlines()) == 1


def _opt_ml(tmp_path, tiny_model, tiny_data, hyperparameters: dict) -> Path:
    """A SageMaker container's /opt/ml tree: channels config, train0, base_model; hyperparameters; checkpoints/."""
    root = tmp_path / "opt" / "ml"
    data = root / "input" / "data"
    (data / "train0").mkdir(parents=True)
    shutil.copy(tiny_data["train"], data / "train0" / "train.jsonl")
    shutil.copytree(tiny_model, data / "base_model")
    cfg = yaml.safe_load(make_config(tmp_path, tiny_model, tiny_data).read_text())
    cfg["datasets"][0]["path"] = "/somewhere/on/the/laptop/train.jsonl"  # rewritten to the channel
    cfg["base_model"]["path"] = "/somewhere/on/the/laptop/tiny-llama"
    (data / "config").mkdir()
    (data / "config" / "ftaudit-config.yaml").write_text(yaml.safe_dump(cfg))
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"ftaudit_config_file": "ftaudit-config.yaml", "sagemaker_program": "ignored", **hyperparameters}))
    (root / "checkpoints").mkdir()
    return root


@pytest.mark.slow
def test_entry_point_on_a_fake_opt_ml_tree(tmp_path, tiny_model, tiny_data, monkeypatch):
    root = _opt_ml(tmp_path, tiny_model, tiny_data, {"training.max_steps": "3", "training.learning_rate": "0.002"})
    data = root / "input" / "data"
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
    # A job restarted after it had finished (checkpoints/ restored) is the pipeline's "already completed" case:
    # nothing is trained or recorded twice.
    stages = (root / "checkpoints" / "tiny" / "logs" / "stages.jsonl").read_text()
    assert main(["sagemaker", "entry", "--root", str(root)]) == 0
    assert (root / "checkpoints" / "tiny" / "logs" / "stages.jsonl").read_text() == stages
    assert json.loads((root / "output" / "data" / "run_record.json").read_text()) == rec


@pytest.mark.slow
def test_spot_interruption_the_restarted_job_resumes_with_the_same_total(tmp_path, tiny_model, tiny_data):
    """kill -9 mid-training (a spot interruption); SageMaker restarts the job with checkpoints/ restored from S3;
    the entry point resumes the run there, and the total equals an uninterrupted job's."""
    hp = {"training.max_steps": "40", "training.save_steps": "5", "training.meter_every_steps": "5"}
    roots = {k: _opt_ml(tmp_path / k, tiny_model, tiny_data, hp) for k in ("spot", "clean")}
    entry = [sys.executable, "-m", "ftaudit.cli", "sagemaker", "entry", "--root"]
    kill_9_when([*entry, str(roots["spot"])],
                roots["spot"] / "checkpoints" / "tiny" / "checkpoints" / "checkpoint-10" / "trainer_state.json")
    assert not (roots["spot"] / "model" / "adapter_config.json").exists()  # the job had not finished
    first = json.loads((roots["spot"] / "checkpoints" / "tiny" / "run_record.json").read_text())
    assert first["status"] == "running"

    for root in roots.values():
        done = subprocess.run([*entry, str(root)], env=env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    got, want = (json.loads((roots[k] / "output" / "data" / "run_record.json").read_text()) for k in ("spot", "clean"))
    assert got["status"] == "completed" and (roots["spot"] / "model" / "adapter_config.json").is_file()
    assert got["compute"]["counts"]["tokens_effective"] == want["compute"]["counts"]["tokens_effective"]
    assert got["compute"]["flops"]["regulatory"] == pytest.approx(want["compute"]["flops"]["regulatory"], rel=1e-9)
    assert got["compute"]["counts"]["optimizer_steps"] == 40
    assert got["run_id"] == first["run_id"]  # the same run, resumed from checkpoint-10, not a fresh start


def test_entry_point_failure_file(tmp_path, monkeypatch):
    root = tmp_path / "ml"
    root.mkdir()
    assert main(["sagemaker", "entry", "--root", str(root)]) == 1
    assert "config" in (root / "output" / "failure").read_text()
