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

import difflib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ftaudit.errors import BadInput, FtauditError, RuntimeFailure, first_line
from ftaudit.pipeline.config import RunConfig, config_from_dict, load_config

CONFIG_CHANNEL = "config"
CONFIG_NAME = "ftaudit-config.yaml"
MODEL_CHANNEL = "base_model"
DRY_ROLE = "arn:aws:iam::000000000000:role/YOUR-SAGEMAKER-ROLE"  # placeholders that pass the service's patterns
DRY_IMAGE = "<account>.dkr.ecr.<region>.amazonaws.com/<image-with-ftaudit>:latest"


# ---------------------------------------------------------------------------------------------------- the request
@dataclass
class JobRequest:
    """A CreateTrainingJob request, and the (local file, S3 URI) uploads it needs before submission."""

    request: dict[str, Any]
    uploads: list[tuple[Path, str]]
    sdk: str


def _core():
    """SageMaker Core, the typed request layer of the `sagemaker` SDK: `sagemaker.core` in v3, `sagemaker_core` in v2.

    The request is built from its shapes rather than with v3's ModelTrainer or v2's Estimator: only the shapes exist
    in both lines, and ModelTrainer cannot set a container entry point without uploading its own driver scripts.
    """
    try:  # v2 first: importing `sagemaker.core` under v2 would run v2's noisy package import
        from sagemaker_core.main import shapes
        from sagemaker_core.main.utils import serialize
    except ImportError:
        try:
            from sagemaker.core import shapes
            from sagemaker.core.utils.utils import serialize
        except ImportError:
            raise BadInput("the sagemaker SDK is not installed: pip install 'ftaudit[sagemaker]'") from None
    return shapes, serialize


def sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("sagemaker", "sagemaker-core"):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return "sagemaker (version unknown)"


def _s3_join(prefix: str, *parts: str) -> str:
    return "/".join([prefix.rstrip("/"), *parts])


def build_request(cfg: RunConfig, config_file: Path, *, role: str, image_uri: str, s3_output: str,
                  instance_type: str = "ml.g5.2xlarge", instance_count: int = 1, job_name: str | None = None,
                  max_run: int = 24 * 3600, volume_gb: int = 100, spot: bool = False,
                  max_wait: int | None = None) -> JobRequest:
    """The request, built from the SDK's shapes and checked against the service's CreateTrainingJob model."""
    if not s3_output.startswith("s3://"):
        raise BadInput(f"--s3-output must be an s3:// URI, got {s3_output!r}")
    if max_wait is not None and not spot:
        raise BadInput("--max-wait applies to spot training only: add --spot or drop --max-wait")
    # checked here: the SDK's serialiser drops zeros, so botocore would never see them
    for flag, value in (("--instance-count", instance_count), ("--max-run", max_run), ("--volume-gb", volume_gb),
                        ("--max-wait", max_wait or max_run)):
        if value < 1:
            raise BadInput(f"{flag} must be at least 1, got {value}")
    if spot and max_wait is not None and max_wait < max_run:
        raise BadInput(f"--max-wait ({max_wait}) must be at least --max-run ({max_run}): it counts the run too")
    shapes, serialize = _core()
    name = job_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}".replace("_", "-")[:63]
    inputs = _s3_join(s3_output, name, "input")
    uploads: list[tuple[Path, str]] = []

    def channel(ch: str, uri: str):
        return shapes.Channel(channel_name=ch, input_mode="File", data_source=shapes.DataSource(
            s3_data_source=shapes.S3DataSource(s3_data_type="S3Prefix", s3_uri=uri,
                                               s3_data_distribution_type="FullyReplicated")))

    channels = [channel(CONFIG_CHANNEL, _s3_join(inputs, CONFIG_CHANNEL))]
    uploads.append((Path(config_file), _s3_join(inputs, CONFIG_CHANNEL, CONFIG_NAME)))
    for prefix, specs in (("train", cfg.datasets), ("eval", cfg.eval_datasets)):
        for i, spec in enumerate(specs):
            ch = f"{prefix}{i}"
            if spec.path.startswith("s3://"):
                channels.append(channel(ch, spec.path))
                continue
            local = cfg.resolve(spec.path)
            if not local.is_file():
                raise BadInput(f"dataset {local} not found")
            uploads.append((local, _s3_join(inputs, ch, local.name)))
            channels.append(channel(ch, _s3_join(inputs, ch)))
    if cfg.base_model.path:
        local = cfg.resolve(cfg.base_model.path)
        if not local.exists():
            raise BadInput(f"base_model.path {local} does not exist")
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        base = local.parent if local.is_file() else local
        uploads += [(f, _s3_join(inputs, MODEL_CHANNEL, f.relative_to(base).as_posix())) for f in files]
        channels.append(channel(MODEL_CHANNEL, _s3_join(inputs, MODEL_CHANNEL)))
    try:
        request = serialize({
            "TrainingJobName": name,
            "RoleArn": role,
            "AlgorithmSpecification": shapes.AlgorithmSpecification(
                training_image=image_uri, training_input_mode="File",
                container_entrypoint=["ftaudit", "sagemaker", "entry"]),
            "HyperParameters": {"ftaudit_config_file": CONFIG_NAME},
            "InputDataConfig": channels,
            "OutputDataConfig": shapes.OutputDataConfig(s3_output_path=_s3_join(s3_output, name, "output")),
            # the run dir lives under LocalPath, synced to S3: a restarted (spot) job resumes it
            "CheckpointConfig": shapes.CheckpointConfig(s3_uri=_s3_join(s3_output, name, "checkpoints"),
                                                        local_path="/opt/ml/checkpoints"),
            "ResourceConfig": shapes.ResourceConfig(instance_type=instance_type, instance_count=instance_count,
                                                    volume_size_in_gb=volume_gb),
            "StoppingCondition": shapes.StoppingCondition(
                max_runtime_in_seconds=max_run, max_wait_time_in_seconds=(max_wait or max_run) if spot else None),
            "EnableManagedSpotTraining": True if spot else None,  # absent = off (the v2 serialiser drops False)
            "Environment": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
            "Tags": [shapes.Tag(key="ftaudit:run", value=cfg.name),
                     shapes.Tag(key="ftaudit:config-sha256", value=cfg.digest())],
        })
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BadInput(f"SageMaker request: {exc.title} {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    _validate(request)
    return JobRequest(request=request, uploads=uploads, sdk=sdk_version())


def _validate(request: dict) -> None:
    """The request against the CreateTrainingJob input shape: botocore's own check (types, required, minimums), then
    what botocore leaves to the service (maximums, patterns, enumerations such as instance types), so that a typo
    fails here and not after the uploads."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob")
    report = ParamValidator().validate(request, model.input_shape)
    problems = [" ".join(report.generate_report().split())] if report.has_errors() else []
    problems += _service_checks(request, model.input_shape, "")
    if problems:
        raise BadInput(f"SageMaker request: {problems[0]}")


def _service_checks(value, shape, where: str) -> list[str]:
    import botocore

    meta, kind = shape.metadata, shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return [p for key, item in value.items() if key in shape.members
                for p in _service_checks(item, shape.members[key], f"{where}.{key}".lstrip("."))]
    if kind == "list" and isinstance(value, list):
        if len(value) > meta.get("max", len(value)):
            return [f"{where} has {len(value)} entries, at most {meta['max']} allowed"]
        return [p for i, item in enumerate(value) for p in _service_checks(item, shape.member, f"{where}[{i}]")]
    if kind in ("integer", "long") and isinstance(value, int) and value > meta.get("max", value):
        return [f"{where} is {value}, at most {meta['max']} allowed"]
    if kind != "string" or not isinstance(value, str):
        return []
    if getattr(shape, "enum", None) and value not in shape.enum:
        near = difflib.get_close_matches(value, shape.enum, n=3)
        return [f"{where} {value!r} is not one of the service's values" + (f" (did you mean {', '.join(near)}?)"
                if near else "") + f" — per botocore {botocore.__version__}; upgrade it if the value is new"]
    if len(value) > meta.get("max", len(value)):
        return [f"{where} is {len(value)} characters long, at most {meta['max']} allowed"]
    try:
        pattern = re.compile(meta["pattern"]) if "pattern" in meta else None
    except re.error:  # Java-only syntax (\p{L} …): the service checks it
        pattern = None
    if pattern is not None and not pattern.fullmatch(value):
        return [f"{where} {value!r} does not match the service's pattern {meta['pattern']}"]
    return []


def launch(config: str | os.PathLike, *, role: str | None = None, image_uri: str | None = None,
           s3_output: str | None = None, region: str | None = None, dry_run: bool = False,
           instance_type: str = "ml.g5.2xlarge", instance_count: int = 1, job_name: str | None = None,
           max_run: int = 24 * 3600, volume_gb: int = 100, spot: bool = False, max_wait: int | None = None) -> int:
    """`ftaudit sagemaker launch CONFIG [--dry-run]`: build the request; print it (dry run) or submit it."""
    cfg = load_config(config)
    if region:
        check_region(region)
    role = role or os.environ.get("FTAUDIT_SAGEMAKER_ROLE") or (DRY_ROLE if dry_run else None)
    image = image_uri or os.environ.get("FTAUDIT_SAGEMAKER_IMAGE") or (DRY_IMAGE if dry_run else None)
    s3 = s3_output or ("s3://<bucket>/ftaudit" if dry_run else None)
    if not (role and image and s3):
        raise BadInput("a real launch needs --role, --image-uri and --s3-output (or --dry-run to see the request)")
    job = build_request(cfg, Path(config), role=role, image_uri=image, s3_output=s3, instance_type=instance_type,
                        instance_count=instance_count, job_name=job_name, max_run=max_run, volume_gb=volume_gb,
                        spot=spot, max_wait=max_wait)
    if dry_run:
        print(json.dumps({"request": job.request, "uploads": [{"from": str(a), "to": b} for a, b in job.uploads],
                          "sdk": job.sdk}, indent=2))
        return 0
    arn = _submit(job, region=region)
    print(json.dumps({"launched": job.request["TrainingJobName"], "arn": arn, "sdk": job.sdk}))
    return 0


def check_region(region: str) -> None:
    """A region botocore knows SageMaker in (any partition), checked offline before any upload."""
    import boto3

    session = boto3.Session()
    known = sorted({r for part in session.get_available_partitions()
                    for r in session.get_available_regions("sagemaker", partition_name=part)})
    if region not in known:
        near = difflib.get_close_matches(region, known, n=3)
        raise BadInput(f"--region {region!r} is not a region with SageMaker" + (f" (did you mean {', '.join(near)}?)"
                       if near else "") + f" — per botocore's endpoint data; known: {len(known)} regions")


def _submit(job: JobRequest, *, region: str | None) -> str:
    """Upload the inputs, then create the job; AWS errors become one line (exit 1 for set-up, 2 for the service)."""
    import boto3
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        session = boto3.Session(region_name=region)
        s3, sm = session.client("s3"), session.client("sagemaker")
        for local, uri in job.uploads:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            s3.upload_file(str(local), bucket, key)
        return sm.create_training_job(**job.request)["TrainingJobArn"]
    except NoRegionError:
        raise BadInput("no AWS region: pass --region or set AWS_DEFAULT_REGION") from None
    except NoCredentialsError:
        raise BadInput("no AWS credentials: configure them (aws configure / AWS_PROFILE) or use --dry-run") from None
    except (ClientError, BotoCoreError, Boto3Error) as exc:
        raise RuntimeFailure(f"SageMaker launch failed: {first_line(exc)}") from None


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
    from ftaudit.pipeline.run import execute, prepare

    root = Path(root or os.environ.get("FTAUDIT_SM_ROOT", "/opt/ml"))
    paths = _sm_paths(root)
    os.environ.setdefault("FLOPS_METER_OUT", str(paths["output"]))  # the seed meter's file, where SageMaker looks
    try:
        run = prepare(container_config(root))  # a restarted job finds its run dir under checkpoints/: resume
        result = execute(run)
    except FtauditError as exc:
        paths["output"].mkdir(parents=True, exist_ok=True)
        (paths["output"] / "failure").write_text(f"ftaudit: {exc}\n")
        raise
    if run.is_main:
        _export(run.rd, paths)
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
