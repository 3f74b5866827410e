"""`ftaudit train` as an Amazon SageMaker training job: the request (`ftaudit sagemaker launch`) and the entry point
that runs inside the container (`ftaudit sagemaker entry`).

Channel convention (what `launch` builds and `entry` reads):
  config       the run config, as ftaudit-config.yaml
  train<i>     training dataset i of the config (its file name kept)
  eval<i>      evaluation dataset i
  base_model   the base model directory, when the config points at a local one (else the image must have it)
Hyperparameters: `ftaudit_config_file` plus any dotted config field (e.g. `training.learning_rate`) as an
override; SageMaker passes values as strings, read here as YAML scalars (so tuning jobs work).

The container layout read by `entry` (root /opt/ml, overridable for tests): input/config/hyperparameters.json,
input/data/<channel>/ (or SM_CHANNEL_<NAME>), model/ (SM_MODEL_DIR: the adapter or model, uploaded by SageMaker),
output/data/ (SM_OUTPUT_DATA_DIR: run record, documents, logs), output/ (flops_meter.json, and `failure` with the
reason when the job fails), checkpoints/ (when checkpointing to S3 is on: the run dir lives there, so a restarted
spot job resumes it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from ftaudit.errors import BadInput, FtauditError
from ftaudit.pipeline.config import RunConfig, config_from_dict, load_config

CONFIG_CHANNEL = "config"
CONFIG_NAME = "ftaudit-config.yaml"
MODEL_CHANNEL = "base_model"


# ---------------------------------------------------------------------------------------------------- the request
def _s3_join(prefix: str, *parts: str) -> str:
    return "/".join([prefix.rstrip("/"), *parts])


def _channel(name: str, uri: str) -> dict:
    return {"ChannelName": name, "InputMode": "File", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}}


def build_request(cfg: RunConfig, *, role: str, image_uri: str, s3_output: str, instance_type: str = "ml.g5.2xlarge",
                  instance_count: int = 1, job_name: str | None = None, max_run: int = 24 * 3600,
                  volume_gb: int = 100) -> tuple[dict, list[tuple[Path, str]]]:
    """The CreateTrainingJob request, and the (local file, S3 URI) uploads it needs before submission."""
    if not s3_output.startswith("s3://"):
        raise BadInput(f"--s3-output must be an s3:// URI, got {s3_output!r}")
    if instance_count < 1:
        raise BadInput("--instance-count must be at least 1")
    name = job_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}".replace("_", "-")[:63]
    inputs = _s3_join(s3_output, name, "input")
    uploads: list[tuple[Path, str]] = []
    channels = [_channel(CONFIG_CHANNEL, _s3_join(inputs, CONFIG_CHANNEL))]
    for prefix, specs in (("train", cfg.datasets), ("eval", cfg.eval_datasets)):
        for i, spec in enumerate(specs):
            ch = f"{prefix}{i}"
            if spec.path.startswith("s3://"):
                channels.append(_channel(ch, spec.path))
                continue
            local = cfg.resolve(spec.path)
            if not local.is_file():
                raise BadInput(f"dataset {local} not found")
            uri = _s3_join(inputs, ch)
            uploads.append((local, _s3_join(uri, local.name)))
            channels.append(_channel(ch, uri))
    if cfg.base_model.path:
        local = cfg.resolve(cfg.base_model.path)
        if not local.exists():
            raise BadInput(f"base_model.path {local} does not exist")
        uri = _s3_join(inputs, MODEL_CHANNEL)
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        base = local.parent if local.is_file() else local
        uploads += [(f, _s3_join(uri, f.relative_to(base).as_posix())) for f in files]
        channels.append(_channel(MODEL_CHANNEL, uri))
    request = {
        "TrainingJobName": name,
        "RoleArn": role,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File",
                                   "ContainerEntrypoint": ["ftaudit", "sagemaker", "entry"]},
        "HyperParameters": {"ftaudit_config_file": CONFIG_NAME},
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": _s3_join(s3_output, name, "output")},
        "CheckpointConfig": {"S3Uri": _s3_join(s3_output, name, "checkpoints"), "LocalPath": "/opt/ml/checkpoints"},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": instance_count,
                           "VolumeSizeInGB": volume_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_run},
        "Environment": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        "Tags": [{"Key": "ftaudit:run", "Value": cfg.name}, {"Key": "ftaudit:config-sha256", "Value": cfg.digest()}],
    }
    return request, uploads


def launch(args) -> int:
    """`ftaudit sagemaker launch CONFIG [--dry-run]`."""
    cfg = load_config(args.config)
    role = args.role or os.environ.get("FTAUDIT_SAGEMAKER_ROLE") or ("<role ARN>" if args.dry_run else None)
    image = args.image_uri or os.environ.get("FTAUDIT_SAGEMAKER_IMAGE") or ("<image URI>" if args.dry_run else None)
    s3 = args.s3_output or ("s3://<bucket>/ftaudit" if args.dry_run else None)
    if not (role and image and s3):
        raise BadInput("a real launch needs --role, --image-uri and --s3-output (or --dry-run to see the request)")
    request, uploads = build_request(cfg, role=role, image_uri=image, s3_output=s3,
                                     instance_type=args.instance_type, instance_count=args.instance_count,
                                     job_name=args.job_name, max_run=args.max_run)
    config_uri = _s3_join(request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"], CONFIG_NAME)
    sdk = sdk_available()
    if args.dry_run:
        print(json.dumps({"request": request, "uploads": [{"from": str(a), "to": b} for a, b in uploads]
                          + [{"from": str(Path(args.config).resolve()), "to": config_uri}],
                          "sdk": sdk or "not installed: pip install 'ftaudit[sagemaker]' for a real launch"},
                         indent=2))
        return 0
    if not sdk:
        raise BadInput("the sagemaker SDK is not installed: pip install 'ftaudit[sagemaker]' (or use --dry-run)")
    session = _session()
    s3 = session.boto_session.client("s3")
    for local, uri in [*uploads, (Path(args.config), config_uri)]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        s3.upload_file(str(local), bucket, key)
    session.sagemaker_client.create_training_job(**request)
    print(json.dumps({"launched": request["TrainingJobName"]}))
    return 0


def sdk_available() -> str | None:
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    if importlib.util.find_spec("sagemaker") is None:
        return None
    try:
        return f"sagemaker {version('sagemaker')}"
    except PackageNotFoundError:
        return "sagemaker (version unknown)"


def _session():
    try:
        from sagemaker.session import Session  # SDK v2
    except ImportError:
        from sagemaker.core.helper.session_helper import Session  # SDK v3
    return Session()


# ---------------------------------------------------------------------------------------------------- the container
def _sm_paths(root: Path) -> dict[str, Path]:
    env = os.environ
    return {
        "model": Path(env.get("SM_MODEL_DIR", root / "model")),
        "output": Path(env.get("SM_OUTPUT_DIR", root / "output")),
        "output_data": Path(env.get("SM_OUTPUT_DATA_DIR", root / "output" / "data")),
        "hyperparameters": root / "input" / "config" / "hyperparameters.json",
        "checkpoints": root / "checkpoints",
    }


def _channel_dir(root: Path, name: str) -> Path | None:
    d = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    path = Path(d) if d else root / "input" / "data" / name
    return path if path.is_dir() else None


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
        if not isinstance(d, dict):
            raise BadInput(f"hyperparameter {dotted!r} does not name a config field")
    d[keys[-1]] = value


def _file_in(directory: Path, name: str) -> Path:
    p = directory / name
    if p.is_file():
        return p
    files = [f for f in directory.rglob("*") if f.is_file()]
    if len(files) == 1:
        return files[0]
    raise BadInput(f"channel {directory} has no {name!r}")


def container_config(root: Path) -> RunConfig:
    """The run config as the container sees it: channels for data and model, hyperparameters as overrides."""
    paths = _sm_paths(root)
    hp: dict[str, Any] = {}
    if paths["hyperparameters"].is_file():
        try:
            hp = json.loads(paths["hyperparameters"].read_text())
        except ValueError as exc:
            raise BadInput(f"{paths['hyperparameters']}: not JSON ({exc})") from None
    ch = _channel_dir(root, CONFIG_CHANNEL)
    if ch is None:
        raise BadInput(f"no '{CONFIG_CHANNEL}' channel ({root}/input/data/{CONFIG_CHANNEL} or SM_CHANNEL_CONFIG)")
    cfg_file = _file_in(ch, str(hp.pop("ftaudit_config_file", CONFIG_NAME)))
    data = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise BadInput(f"{cfg_file}: not a run config")
    for key, raw in hp.items():
        if key.startswith(("sagemaker_", "_")):
            continue  # SageMaker's own hyperparameters
        _set_dotted(data, key, yaml.safe_load(raw) if isinstance(raw, str) else raw)
    for prefix, key in (("train", "datasets"), ("eval", "eval_datasets")):
        for i, spec in enumerate(data.get(key) or []):
            d = _channel_dir(root, f"{prefix}{i}")
            if d is not None and isinstance(spec, dict):
                spec["path"] = str(_file_in(d, Path(str(spec.get("path", ""))).name))
    mch = _channel_dir(root, MODEL_CHANNEL)
    if mch is not None and isinstance(data.get("base_model"), dict) and data["base_model"].get("path"):
        bm = data["base_model"]
        p = mch / Path(bm["path"]).name
        bm["path"] = str(p if p.suffix == ".gguf" and p.is_file() else mch)
    # the run dir: under checkpoints/ when SageMaker syncs it to S3 (a restarted job resumes), else scratch
    base = paths["checkpoints"] if paths["checkpoints"].is_dir() else root / "ftaudit-run"
    data["output_dir"] = str(base / str(data.get("name", "run")))
    return config_from_dict(data, base_dir=cfg_file.parent, source=f"{cfg_file} + hyperparameters")


def entry_point(root: str | os.PathLike | None = None) -> int:
    """Run the job inside the container; copy the model to SM_MODEL_DIR and the evidence to SM_OUTPUT_DATA_DIR."""
    from ftaudit.pipeline.run import Run, after_preflight, preflight
    from ftaudit.pipeline.run_dir import RunDir, check_output_dir
    from ftaudit.pipeline.ui import UI
    from ftaudit.record import RunRecord

    root = Path(root or os.environ.get("FTAUDIT_SM_ROOT", "/opt/ml"))
    paths = _sm_paths(root)
    os.environ.setdefault("FLOPS_METER_OUT", str(paths["output"]))  # the seed meter's file, where SageMaker looks
    try:
        cfg = container_config(root)
        rd = RunDir(Path(cfg.output_dir))
        resume = check_output_dir(cfg, rd.root) == "same"
        record = RunRecord.load(rd.root) if resume and rd.record.is_file() else RunRecord()
        run = Run(cfg=cfg, rd=rd, record=record, ui=UI(quiet=int(os.environ.get("RANK", "0")) != 0), resume=resume,
                  is_main=int(os.environ.get("RANK", "0")) == 0)
        result = after_preflight(preflight(run))
    except FtauditError as exc:
        paths["output"].mkdir(parents=True, exist_ok=True)
        (paths["output"] / "failure").write_text(f"ftaudit: {exc}\n")
        raise
    if run.is_main:
        _export(rd, paths)
    if result.exit_code:
        (paths["output"] / "failure").write_text(f"ftaudit: {result.message}\n")
        print(f"ftaudit: error: {result.message}")
    return result.exit_code


def _export(rd, paths: dict[str, Path]) -> None:
    """SageMaker uploads model/ and output/data/ to S3 when the job ends: put the model and the evidence there."""
    paths["model"].mkdir(parents=True, exist_ok=True)
    if rd.model.is_dir():
        shutil.copytree(rd.model, paths["model"], dirs_exist_ok=True)
    out = paths["output_data"]
    out.mkdir(parents=True, exist_ok=True)
    for item in rd.root.iterdir():
        if item.name in ("checkpoints", "model"):
            continue
        if item.is_dir():
            shutil.copytree(item, out / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, out / item.name)
