"""The live torch model as the meter sees it: logical parameter counts (also when sharded or quantised), the
estimator's `TrainingSetup` read from it (full, LoRA, partial), the module a meter hooks, and where it came from.

Sharded training hides the logical shapes, so they are read from what the sharding keeps: FSDP1 FlatParameters
hold their originals' names and shapes, ZeRO-3 parameters carry `ds_numel`, FSDP2 DTensors report their global size.
"""

from __future__ import annotations

import warnings

import torch

from ftaudit.errors import BadInput


def _logical_numel(p: torch.Tensor) -> int:
    # DeepSpeed ZeRO-3 partitions every parameter (the local tensor is empty); ds_numel is the whole one.
    ds_numel = getattr(p, "ds_numel", None)
    if isinstance(ds_numel, int):
        return ds_numel
    # bitsandbytes stores 4-bit weights packed (two per byte); its quant_state keeps the logical shape.
    # FSDP2 parameters are DTensors, whose numel() is already the global (unsharded) one.
    shape = getattr(getattr(p, "quant_state", None), "shape", None)
    return _prod(shape) if shape is not None else p.numel()


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _quant_bits(model) -> int | None:
    for p in model.parameters():
        name = type(p).__name__
        if name == "Params4bit":
            return 4
        if name == "Int8Params":
            return 8
    qc = getattr(getattr(model, "config", None), "quantization_config", None)
    if qc is not None:
        get = qc.get if isinstance(qc, dict) else (lambda k, d=None: getattr(qc, k, d))
        if get("load_in_4bit", False):
            return 4
        if get("load_in_8bit", False):
            return 8
    return None


def attention_kernel(config) -> str:
    impl = str(getattr(config, "_attn_implementation", None) or "eager").lower()
    if "flash" in impl:
        return "flash"
    return "sdpa" if impl == "sdpa" else "eager"


def _gradient_checkpointing(model) -> bool:
    for attr in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = getattr(model, attr)
            if isinstance(value, bool):
                return value
        except Exception:  # noqa: BLE001 - absent on non-HF modules
            continue
    return False


def _inputs_require_grad(model) -> bool | None:
    try:
        emb = model.get_input_embeddings()
    except Exception:  # noqa: BLE001
        return None
    hooks = getattr(emb, "_forward_hooks", {}) or {}
    return any(getattr(h, "__name__", "") == "make_inputs_require_grads" for h in hooks.values()) or None


# Wrappers that insert a level into parameter names (FSDP1 units, activation checkpointing, torch.compile).
_WRAPPER_NAMES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def _clean_name(name: str) -> str:
    for w in _WRAPPER_NAMES:
        name = name.replace(w, "")
    return name


def _fsdp1_orig_numels(model) -> dict[int, int]:
    """FSDP1 with use_orig_params=True: id(original parameter) -> its unsharded element count. Outside forward the
    original parameters are views into this rank's shard of the FlatParameter (part of the tensor, or empty)."""
    out: dict[int, int] = {}
    for module in model.modules():
        flat = getattr(getattr(module, "_handle", None), "flat_param", None)
        params, shapes = getattr(flat, "_params", None), getattr(flat, "_shapes", None)
        if params is None or shapes is None:
            continue
        for p, shape in zip(params, shapes, strict=True):  # a tied (shared) parameter is the same object: named once
            out[id(p)] = _prod(shape)
    return out


def parameter_table(model) -> list[tuple[str, int, bool]]:
    """(name in the unwrapped model, logical element count, requires_grad) of every parameter, read from the
    model as the Trainer hands it to callbacks. Sharded training hides the logical shapes, so they are read from
    what the sharding keeps: FSDP1 FlatParameters (use_orig_params=False) hold their originals' names and shapes,
    FSDP1 sharded views (use_orig_params=True) map to those shapes, ZeRO-3 parameters carry ds_numel, FSDP2
    DTensors report their global size; wrapper levels are dropped from the names."""
    orig = _fsdp1_orig_numels(model)
    rows: list[tuple[str, int, bool]] = []
    for name, p in model.named_parameters():
        fqns, shapes = getattr(p, "_fqns", None), getattr(p, "_shapes", None)
        if getattr(p, "_is_flat_param", False) and fqns is not None and shapes is not None:
            prefix = _clean_name(name)
            prefix = prefix[: -len("_flat_param")] if prefix.endswith("_flat_param") else prefix + "."
            rows += [(prefix + _clean_name(fqn), _prod(shape), bool(p.requires_grad))
                     for fqn, shape in zip(fqns, shapes, strict=True)]
            continue
        n = orig.get(id(p))
        rows.append((_clean_name(name), n if n is not None else _logical_numel(p), bool(p.requires_grad)))
    return rows


def live_parameter_counts(model) -> tuple[int, int]:
    """(all, trainable) parameters of the whole model, also when it is sharded over ranks (parameter_table)."""
    total = trainable = 0
    for _, n, grad in parameter_table(model):
        total += n
        if grad:
            trainable += n
    return total, trainable


def setup_from_model(model):
    """The estimator's TrainingSetup read from the live model, after PEFT wrapping."""
    from ftaudit.compute.flops import TrainingSetup

    config = model.config
    common = dict(quant_bits=_quant_bits(model), gradient_checkpointing=_gradient_checkpointing(model),
                  inputs_require_grad=_inputs_require_grad(model), attention_kernel=attention_kernel(config))
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and peft_config:
        adapter = getattr(model, "active_adapter", None)
        adapter = adapter if isinstance(adapter, str) and adapter in peft_config else next(iter(peft_config))
        pc = peft_config[adapter]
        if str(getattr(pc, "peft_type", "")).upper().endswith("LORA"):
            # Resolve targets from the modules that actually carry adapters (covers regexes and "all-linear").
            leaves = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if hasattr(m, "lora_A")
                             and adapter in getattr(m, "lora_A", {})})
            to_save = tuple(getattr(pc, "modules_to_save", None) or ())
            return TrainingSetup(method="lora", lora_r=int(pc.r), lora_target_modules=tuple(leaves) or None,
                                 trainable_patterns=to_save, **common)
        raise BadInput(f"PEFT method {getattr(pc, 'peft_type', '?')} is not LoRA; the meter counts LoRA, full and "
                       "partial fine-tuning")
    params = parameter_table(model)  # names without FSDP wrapper levels: the patterns must match the architecture
    if params and all(grad for _, _, grad in params):
        return TrainingSetup(method="full", **common)
    modules = sorted({name.rsplit(".", 1)[0] for name, _, grad in params if grad})
    if not modules:
        raise BadInput("no parameter of the model requires grad; nothing would be trained")
    return TrainingSetup(method="partial", trainable_patterns=tuple(f"{m}.*" for m in modules), **common)


def model_paths(model) -> list[str]:
    out = []
    for obj in (model, getattr(model, "config", None)):
        for attr in ("name_or_path", "_name_or_path"):
            v = getattr(obj, attr, None) if obj is not None else None
            if isinstance(v, str) and v:
                out.append(v)
    pc = getattr(model, "peft_config", None)
    if isinstance(pc, dict):
        out += [c.base_model_name_or_path for c in pc.values() if getattr(c, "base_model_name_or_path", None)]
    return list(dict.fromkeys(out))


def causal_lm(model):
    """The module that takes the tokens and owns the LM head (inside PEFT, FSDP1, ZeRO or torch.compile wrappers):
    generation calls it directly, bypassing the wrappers, so this is where a meter hooks. Wrappers forward
    `config` through __getattr__ (DeepSpeed's engine holds a dict of its own); the model itself holds it."""
    for m in model.modules():
        get = getattr(m, "get_output_embeddings", None)
        if get is not None and hasattr(vars(m).get("config"), "to_dict"):  # a transformers config
            try:
                if get() is not None:
                    return m
            except (AttributeError, NotImplementedError):
                continue
    return model


def lora_layer(model):
    """One PEFT LoRA layer, whose flags say whether adapters are on (a reference forward disables them)."""
    return next((m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "disable_adapters")), None)
