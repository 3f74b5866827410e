"""Load the base model and the tuned model (a full model or a PEFT adapter on the base) for evaluation.

A model is given as a local directory, a `.gguf` file (loaded through transformers' `gguf_file=`, de-quantised
to float32), or a hub id already in the local cache (we never download: HF_HUB_OFFLINE is honoured).
When the tuned model is an adapter, the base is loaded once and the base's numbers are taken with the adapter
disabled (`PeftModel.disable_adapter()`), which halves load time and memory.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftaudit.errors import BadInput, RuntimeFailure, first_line


@dataclass
class ModelRefInfo:
    spec: str
    kind: str  # "directory", "gguf", "hub-cache", "adapter"
    adapter_path: str | None = None


@dataclass
class LoadedModel:
    """A model and tokenizer ready for batched, left-padded generation and scoring."""

    model: Any
    tokenizer: Any
    ref: ModelRefInfo
    context_window: int
    adapter_enabled: bool | None = None  # None: no adapter; False: the base view of an adapter model
    notes: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def active(self):
        """The model in the state this handle stands for (adapter on or off)."""
        if self.adapter_enabled is False:
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.model


def _is_adapter_dir(path: Path) -> bool:
    return path.is_dir() and (path / "adapter_config.json").is_file()


def _resolve(spec: str) -> tuple[str, dict, str]:
    """(pretrained name/dir, extra from_pretrained kwargs, kind)."""
    path = Path(spec)
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise BadInput(f"model {spec}: no such GGUF file")
        return str(path.parent), {"gguf_file": path.name}, "gguf"
    if path.exists():
        if not path.is_dir():
            raise BadInput(f"model {spec}: expected a model directory or a .gguf file")
        if not (path / "config.json").is_file() and not list(path.glob("*.gguf")):
            raise BadInput(
                f"model {spec}: no config.json in this directory; pass a saved model directory or a .gguf file"
            )
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and len(ggufs) == 1:
            return str(path), {"gguf_file": ggufs[0].name}, "gguf"
        return str(path), {}, "directory"
    if spec.count("/") == 1 and not spec.startswith((".", "/")) and _in_hub_cache(spec):
        return spec, {"local_files_only": True}, "hub-cache"
    raise BadInput(
        f"model {spec}: no such file or directory (and not in the local model-hub cache; ftaudit never downloads)"
    )


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


def _torch_dtype(name: str | None):
    import torch

    if name in (None, "auto"):
        return torch.float32  # CPU default: reproducible; GGUF weights are de-quantised anyway
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise BadInput(f"dtype {name!r}: use float32, bfloat16 or float16") from None


def _load_tokenizer(name: str, kwargs: dict, spec: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name, **kwargs)
    except Exception as exc:  # transformers raises many types; the user needs one line
        raise RuntimeFailure(
            f"model {spec}: the tokenizer cannot be loaded ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    tok.padding_side = "left"  # generation continues from the right edge of every row
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if tok.pad_token is None:
        raise RuntimeFailure(f"model {spec}: the tokenizer has no pad, eos or unk token to pad batches with")
    return tok


def _load_causal_lm(name: str, kwargs: dict, spec: str, dtype, device: str):
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **kwargs)
    except Exception as exc:
        raise RuntimeFailure(
            f"model {spec}: cannot be loaded as a causal language model ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    if "quantization_config" in kwargs:  # bitsandbytes placed it on load; such models cannot be moved
        return model.eval()
    return model.to(device).eval()


def _context_window(model, tokenizer) -> int:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 10**7 else 2048


def load_model(
    spec: str, *, dtype: str | None = None, device: str = "cpu", quantization: dict | None = None
) -> LoadedModel:
    """`quantization`: extra from_pretrained arguments (a QLoRA base is evaluated in the 4-bit form it was
    trained in)."""
    if _is_adapter_dir(Path(spec)):
        raise BadInput(f"model {spec}: this is a PEFT adapter; pass it as --tuned together with its --base model")
    name, kwargs, kind = _resolve(spec)
    tok = _load_tokenizer(name, kwargs, spec)
    model = _load_causal_lm(name, {**kwargs, **(quantization or {})}, spec, _torch_dtype(dtype), device)
    return LoadedModel(
        model=model, tokenizer=tok, ref=ModelRefInfo(spec=spec, kind=kind), context_window=_context_window(model, tok)
    )


def attach_adapter(base: LoadedModel, adapter_dir: str) -> tuple[LoadedModel, LoadedModel]:
    """Wrap the base in the adapter; return (base view with adapter disabled, tuned view)."""
    from peft import PeftModel

    try:
        cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"adapter {adapter_dir}: unreadable adapter_config.json ({exc})") from None
    try:
        wrapped = PeftModel.from_pretrained(base.model, adapter_dir, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        # size mismatch, or target modules missing: the adapter was trained on another architecture
        raise BadInput(
            f"adapter {adapter_dir} does not fit base model {base.ref.spec} "
            f"(adapter was made for {cfg.get('base_model_name_or_path') or 'an unnamed base'}): {first_line(exc)}"
        ) from None
    except Exception as exc:
        raise RuntimeFailure(
            f"adapter {adapter_dir}: cannot be loaded ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    wrapped.eval()
    ref = ModelRefInfo(spec=base.ref.spec, kind=base.ref.kind)
    base_view = LoadedModel(wrapped, base.tokenizer, ref, base.context_window, adapter_enabled=False, notes=base.notes)
    tuned_ref = ModelRefInfo(spec=adapter_dir, kind="adapter", adapter_path=adapter_dir)
    tuned_view = LoadedModel(wrapped, base.tokenizer, tuned_ref, base.context_window, adapter_enabled=True)
    return base_view, tuned_view


def load_pair(
    base_spec: str, tuned_spec: str, *, dtype: str | None = None, device: str = "cpu", quantization: dict | None = None
) -> tuple[LoadedModel, LoadedModel]:
    """(base, tuned). The tuned model may be a full model or a PEFT adapter directory for the base."""
    if not Path(tuned_spec).exists() and not (tuned_spec.count("/") == 1 and _in_hub_cache(tuned_spec)):
        raise BadInput(f"tuned model {tuned_spec}: no such file or directory")
    base = load_model(base_spec, dtype=dtype, device=device, quantization=quantization)
    if quantization:
        base.notes.append("base loaded 4-bit NF4 (bitsandbytes), as it was trained (QLoRA)")
    if _is_adapter_dir(Path(tuned_spec)):
        return attach_adapter(base, tuned_spec)
    tuned = load_model(tuned_spec, dtype=dtype, device=device)
    if tuned.tokenizer.get_vocab() != base.tokenizer.get_vocab():
        base.notes.append("base and tuned tokenizers differ: likelihood metrics compare different tokenisations")
    return base, tuned
