"""`FlopsMeterCallback`: the runtime FLOP meter for Hugging Face `Trainer` and TRL `SFTTrainer`, one line to add:

    Trainer(..., callbacks=[FlopsMeterCallback(output_dir="out")])

A TrainerCallback does not see the batch, so at train begin the callback registers a forward pre-hook on the
model (after PEFT wrapping). The hook counts only while `model.training` and grad is enabled (no evaluation, no
generation) and reads `input_ids` / `inputs_embeds`, `attention_mask`, `position_ids` and `cu_seq_lens_q` /
`cu_seqlens`. Counters stay on the device; they are synchronised (and all_reduced over torch.distributed ranks)
only every `save_every_steps` optimizer steps, at each checkpoint and at the end.

Resume and crash semantics: the state is persisted atomically to `output_dir/ftaudit_meter.json` every N steps
(by a writer thread) and at the end, and into every checkpoint (its own file and the Trainer's
`trainer_state.json`). A job resumed from checkpoint step c restarts from the counts at step c, so steps c+1…
are counted once, when they are executed again. What the interrupted job metered past step c (its last persisted
state, at most N steps short of what it ran) is recorded as a `ResumeEvent` and not added (reading: those
parameter updates were discarded, like a failed experiment, guidelines Annex A.1).
"""

from __future__ import annotations

import functools
import os
import time
import uuid
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ftaudit.compute import aws_meter_file
from ftaudit.compute import energy as energy_mod
from ftaudit.compute import hardware as hw_mod
from ftaudit.compute.evidence import MeterCounts, ModelCounts
from ftaudit.compute.meter import (
    METER_FILENAME,
    FlopRates,
    MeterState,
    ResumeEvent,
    add_counts,
    find_lineage,
    load_state,
    meter_flops,
    save_state,
    start_lineage,
    state_from_json,
    update_lineage,
    utc_now,
    write_lineage,
)
from ftaudit.errors import BadInput
from ftaudit.integrations.mlflow import log_meter
from ftaudit.regulation import OriginalCompute, resolve_original

Gate = Callable[[float], bool]


# ---------------------------------------------------------------------------------------------------- the live model
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


def _attention_kernel(config) -> str:
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
                  inputs_require_grad=_inputs_require_grad(model), attention_kernel=_attention_kernel(config))
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


def _model_paths(model) -> list[str]:
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


# ---------------------------------------------------------------------------------------------------- counting
class _BatchCounter:
    """Per-rank counts of one session (since train begin). Device tensors for what depends on the data; plain
    ints for what the shapes tell. Nothing here synchronises with the device."""

    def __init__(self, varlen_kernel: bool):
        self.varlen = varlen_kernel  # flash kernels run attention per real sequence (padding and packing skipped)
        self.micro_batches = 0
        self.uncounted = 0
        self.tokens_exec = 0
        self.seq_exec = 0
        self.host_exec_hist: dict[int, int] = {}
        self.host_eff_hist: dict[int, int] = {}
        self.host_tokens_eff = 0
        self.host_seq_eff = 0
        self.device: torch.device | None = None
        self.dev_scalars: torch.Tensor | None = None  # [tokens_eff, seq_eff, seq_exec(varlen)]
        self.dev_eff_hist: torch.Tensor | None = None
        self.dev_exec_hist: torch.Tensor | None = None

    def _ensure(self, size: int, device: torch.device) -> None:
        if self.dev_scalars is None:
            self.device = device
            self.dev_scalars = torch.zeros(3, dtype=torch.int64, device=device)
            self.dev_eff_hist = torch.zeros(size + 1, dtype=torch.int64, device=device)
            self.dev_exec_hist = torch.zeros(size + 1, dtype=torch.int64, device=device)
        elif self.dev_eff_hist.numel() < size + 1:
            grow = size + 1 - self.dev_eff_hist.numel()
            self.dev_eff_hist = F.pad(self.dev_eff_hist, (0, grow))
            self.dev_exec_hist = F.pad(self.dev_exec_hist, (0, grow))

    def count(self, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args and isinstance(args[0], torch.Tensor):
            ids = args[0]
        emb = kwargs.get("inputs_embeds")
        ref = ids if ids is not None else emb
        if ref is None:
            self.uncounted += 1
            return
        if ids is not None and ids.dim() == 1:
            ids = ids.unsqueeze(0)
        shape = (ids if ids is not None else emb).shape
        b, s = int(shape[0]), int(shape[1])
        self.micro_batches += 1
        self.tokens_exec += b * s
        mask = kwargs.get("attention_mask")
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dim() != 2):
            mask = None  # 4-D / custom masks carry no per-token padding flag we can read
        pos = kwargs.get("position_ids")
        if pos is not None and (not isinstance(pos, torch.Tensor) or pos.dim() != 2):
            pos = None  # e.g. 3-D multimodal rotary positions
        cu = None
        for key in ("cu_seq_lens_q", "cu_seqlens_q", "cu_seqlens"):
            if isinstance(kwargs.get(key), torch.Tensor):
                cu = kwargs[key]
                break
        if cu is None and mask is None and pos is None:
            # Plain unpadded rows: the shapes say everything, no device work at all.
            self.host_exec_hist[s] = self.host_exec_hist.get(s, 0) + b
            self.host_eff_hist[s] = self.host_eff_hist.get(s, 0) + b
            self.host_tokens_eff += b * s
            self.host_seq_eff += b
            self.seq_exec += b
            return
        device = ref.device
        self._ensure(s, device)
        if cu is not None:
            cu = cu.to(device=device, dtype=torch.int64).flatten()
            lens = cu[1:] - cu[:-1]
            ones = torch.ones_like(lens)
            self.dev_eff_hist.index_add_(0, lens.clamp(0, s), ones)
            self.dev_scalars[0] += cu[-1] - cu[0]
            self.dev_scalars[1] += lens.numel()
            if self.varlen:
                self.dev_exec_hist.index_add_(0, lens.clamp(0, s), ones)
                self.dev_scalars[2] += lens.numel()
            else:
                self.host_exec_hist[s] = self.host_exec_hist.get(s, 0) + b
                self.seq_exec += b
            return
        real = mask.to(device=device).bool() if mask is not None else torch.ones(b, s, dtype=torch.bool,
                                                                                   device=device)
        prev_real = F.pad(real[:, :-1], (1, 0), value=False)
        cont = real & prev_real  # token continues the sequence of the token before it
        if pos is not None:
            pos = pos.to(device)
            if pos.shape[0] != b:
                pos = pos.expand(b, -1)
            prev_pos = F.pad(pos[:, :-1], (1, 0), value=-2)
            cont = cont & (pos == prev_pos + 1)  # a restart of position ids starts a new packed sequence
        is_start = real & ~cont
        is_end = real & ~F.pad(cont[:, 1:], (0, 1), value=False)
        idx = torch.arange(s, device=device).expand(b, s)
        start_idx = torch.cummax(torch.where(is_start, idx, torch.zeros_like(idx)), dim=1).values
        seg_len = torch.where(is_end, idx - start_idx + 1, torch.zeros_like(idx)).flatten()
        ends = is_end.flatten().to(torch.int64)
        self.dev_eff_hist.index_add_(0, seg_len, ends)
        self.dev_scalars[0] += real.sum()
        n_ends = ends.sum()
        self.dev_scalars[1] += n_ends
        if self.varlen:
            self.dev_exec_hist.index_add_(0, seg_len, ends)
            self.dev_scalars[2] += n_ends
        else:
            self.host_exec_hist[s] = self.host_exec_hist.get(s, 0) + b
            self.seq_exec += b

    def hist_size(self) -> int:
        size = max([*self.host_exec_hist, *self.host_eff_hist, 0]) + 1
        if self.dev_eff_hist is not None:
            size = max(size, self.dev_eff_hist.numel())
        return size

    def vector(self, size: int, device: torch.device) -> torch.Tensor:
        """[micro_batches, tokens_exec, tokens_eff, seq_exec, seq_eff, exec_hist(size), eff_hist(size)], float64
        (counts stay exact up to 2**53)."""
        head = torch.tensor([self.micro_batches, self.tokens_exec, self.host_tokens_eff, self.seq_exec,
                             self.host_seq_eff], dtype=torch.float64, device=device)
        exec_h = torch.zeros(size, dtype=torch.float64, device=device)
        eff_h = torch.zeros(size, dtype=torch.float64, device=device)
        for k, v in self.host_exec_hist.items():
            exec_h[k] += v
        for k, v in self.host_eff_hist.items():
            eff_h[k] += v
        if self.dev_scalars is not None:
            sc = self.dev_scalars.to(device=device, dtype=torch.float64)
            head[2] += sc[0]
            head[4] += sc[1]
            head[3] += sc[2]
            n = self.dev_eff_hist.numel()
            exec_h[:n] += self.dev_exec_hist.to(device=device, dtype=torch.float64)
            eff_h[:n] += self.dev_eff_hist.to(device=device, dtype=torch.float64)
        return torch.cat([head, exec_h, eff_h])


def counts_from_vector(v: list[float], size: int, optimizer_steps: int) -> MeterCounts:
    exec_h, eff_h = v[5:5 + size], v[5 + size:5 + 2 * size]
    return MeterCounts(
        micro_batches=int(v[0]), optimizer_steps=optimizer_steps, tokens_executed=int(v[1]),
        tokens_effective=int(v[2]), sequences_executed=int(v[3]), sequences_effective=int(v[4]),
        lengths_executed={i: int(c) for i, c in enumerate(exec_h) if c and i},
        lengths_effective={i: int(c) for i, c in enumerate(eff_h) if c and i},
    )


# ---------------------------------------------------------------------------------------------------- distributed
def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _comm_device(dist) -> torch.device:
    if dist is not None and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------------- the callback
class FlopsMeterCallback(TrainerCallback, ExportableState):
    """Meters training FLOPs of a Trainer / SFTTrainer run and keeps the lineage total.

    output_dir        where ftaudit_meter.json, ftaudit_lineage.json and flops_meter.json go (default:
                      TrainingArguments.output_dir; FLOPS_METER_OUT or SageMaker's /opt/ml/output for the seed file).
    save_every_steps  persist (and all_reduce) every N optimizer steps; a crash loses at most N steps of metering.
    parent            a checkpoint, adapter or model dir written by an earlier metered run, to continue its lineage
                      (otherwise found from model.name_or_path / the PEFT base path when one holds a lineage file).
    gate              called at every sync with the lineage's cumulative regulatory FLOP projected to the next sync
                      (current + mean FLOP per step × steps to the next sync); return False to stop training
                      (a checkpoint is saved). `gate=lambda flops: flops <= limit` stops before `limit` is crossed.
    original_flops    the original model's training FLOP; else PRETRAIN_FLOPS, else the base-model registry entry
                      of the model's name (ftaudit.regulation.resolve_original), for the seed file's decision.
    base_is_gpai      the base was placed on the market as a GPAI model (True) or not (False); None: the 1e23
                      indicative criterion decides (docs/regulation.md §1).
    original          an OriginalCompute resolved by the caller (the pipeline passes its own): overrides the two above.
    run_id            give the pipeline's RunRecord id; a fresh one otherwise.
    nvml              sample GPUs with NVML (default: FLOPS_METER_NVML, else when CUDA is available).
    """

    def __init__(self, output_dir: str | os.PathLike | None = None, *, save_every_steps: int = 10,
                 parent: str | os.PathLike | None = None, gate: Gate | None = None,
                 original_flops: float | None = None, base_is_gpai: bool | None = None,
                 original: OriginalCompute | None = None, run_id: str | None = None, nvml: bool | None = None,
                 nvml_interval: float = 1.0, write_meter_file: bool = True):
        if not isinstance(save_every_steps, int) or save_every_steps < 1:
            raise BadInput(f"save_every_steps must be a positive integer, got {save_every_steps!r}")
        if parent is not None and not Path(parent).is_dir():
            raise BadInput(f"parent {parent} is not a directory; pass the checkpoint, adapter or model dir of the "
                           "earlier run")
        # Environment checked now, before training starts: a bad value is one line, not a crash at the end.
        if original is None:
            resolve_original(flops=original_flops, is_gpai=base_is_gpai)
        self.peak_override = aws_meter_file.peak_override_from_env()
        env_nvml = aws_meter_file.nvml_enabled_from_env()
        self.output_dir = str(output_dir) if output_dir is not None else None
        self.save_every_steps = save_every_steps
        self.parent = str(parent) if parent is not None else None
        self.gate = gate
        self.original_flops = original_flops
        self.base_is_gpai = base_is_gpai
        self.original = original
        self.run_id = run_id
        self.nvml = nvml if nvml is not None else env_nvml
        self.nvml_interval = nvml_interval
        self.write_meter_file = write_meter_file
        self.meter_state: MeterState | None = None  # the last synchronised state (read it from the pipeline)
        self._reset_session()

    def _reset_session(self) -> None:
        self._counter: _BatchCounter | None = None
        self._hook = None
        self._base: MeterState | None = None
        self._rates: FlopRates | None = None
        self._sampler: hw_mod.NvmlSampler | None = None
        self._cpu_energy: energy_mod.CpuEnergyMeter | None = None
        self._t0 = time.monotonic()
        self._session_start_step = 0
        self._dtype = "fp32"
        self._out: Path | None = None
        self._rank0 = True
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    # ---- ExportableState: the Trainer stores this in every checkpoint's trainer_state.json
    def state(self) -> dict:
        return {
            "args": {"output_dir": self.output_dir, "save_every_steps": self.save_every_steps,
                     "parent": self.parent, "run_id": self.run_id, "write_meter_file": self.write_meter_file},
            "attributes": ({"_checkpoint_meter_state": self.meter_state.model_dump(mode="json")}
                           if self.meter_state is not None else {}),
        }

    # ---- train begin
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise BadInput("FlopsMeterCallback needs the model; use it with transformers.Trainer or TRL trainers")
        self._reset_session()
        dist = _dist()
        self._rank0 = dist is None or dist.get_rank() == 0
        self._out = Path(self.output_dir or args.output_dir)
        if self._rank0:
            aws_meter_file.check_writable(self._out, "meter output directory")
            if self.write_meter_file:
                aws_meter_file.check_writable(aws_meter_file.meter_file_dir(self._out), "FLOPS_METER_OUT")
        warnings_: list[str] = []
        base = self._restore(state, args)
        if base is None:
            run_id = self.run_id or uuid.uuid4().hex
            parent = find_lineage([self.parent, *_model_paths(model)])
            lineage, lw = start_lineage(run_id, parent)
            warnings_ += lw
            if state.global_step:
                warnings_.append(f"resumed at step {state.global_step} of a run that was not metered: its first "
                                 f"{state.global_step} steps are not in this total; add them by hand")
            base = MeterState(run_id=run_id, lineage=lineage, output_dir=str(self._out))
        self.run_id = base.run_id
        base.world_size = dist.get_world_size() if dist is not None else 1
        base.model, self._rates, mw = self._flop_model(model)
        base.original = self.original or base.original or resolve_original(
            flops=self.original_flops, is_gpai=self.base_is_gpai, model_id=base.model.name)
        base.warnings = list(dict.fromkeys([*base.warnings, *warnings_, *mw]))
        base.status = "running"
        base.flops = meter_flops(base.counts, self._rates)  # zeros for a new run; `ftaudit status` reads it at once
        self._base = base
        self._session_start_step = state.global_step
        self._dtype = self._training_dtype(args, model)
        self._counter = _BatchCounter(varlen_kernel=_attention_kernel(model.config) == "flash")
        self._hook = model.register_forward_pre_hook(self._count, with_kwargs=True)
        self._wrap_save_pretrained(model)
        self._start_hardware(model, dist)
        self._t0 = time.monotonic()
        self.meter_state = base.model_copy(deep=True)
        if self._rank0:
            save_state(self._out, self.meter_state)
        return control

    def _restore(self, state, args) -> MeterState | None:
        if not state.global_step:
            return None
        slot = (state.stateful_callbacks or {}).get(type(self).__name__)
        if isinstance(slot, list):
            slot = slot[-1] if slot else None
        data = (slot or {}).get("attributes", {}).get("_checkpoint_meter_state") if isinstance(slot, dict) else None
        restored = state_from_json(data) if data else None
        if restored is None or restored.global_step != state.global_step:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if (ckpt / METER_FILENAME).is_file():
                restored = load_state(ckpt)
        if restored is None:
            return None
        last = None
        if self._out is not None:
            path = self._out / METER_FILENAME
            try:
                last = load_state(path) if path.is_file() else None
            except BadInput:
                last = None
        event = ResumeEvent(at=utc_now(), from_step=restored.global_step)
        if last is not None and last.run_id == restored.run_id and last.global_step > restored.global_step:
            event.interrupted_at_step = last.global_step
            event.discarded_flops = max(0.0, last.regulatory_flops - restored.regulatory_flops)
        restored.resumes.append(event)
        return restored

    def _flop_model(self, model) -> tuple[ModelCounts, FlopRates | None, list[str]]:
        live_total, live_trainable = live_parameter_counts(model)
        name = next(iter(_model_paths(model)), None)
        counts = ModelCounts(name=name, live_n_parameters=live_total, live_n_trainable_parameters=live_trainable)
        try:
            from ftaudit.compute.flops import build_flop_model

            setup = setup_from_model(model)
            fm = build_flop_model(model.config.to_dict(), setup)
        except BadInput as exc:
            return counts, None, [f"no FLOP model for this model ({exc}); tokens are counted, FLOPs are not"]
        w = list(fm.warnings)
        counts.method, counts.setup = fm.method, {k: v for k, v in vars(setup).items()}
        counts.n_parameters, counts.n_trainable_parameters = fm.n_parameters, fm.n_trainable_parameters
        if fm.n_trainable_parameters != live_trainable:
            w.append(f"trainable parameters: estimator {fm.n_trainable_parameters:,} vs live model "
                     f"{live_trainable:,}; the FLOPs follow the estimator's architecture walk")
        if fm.n_parameters != live_total:
            w.append(f"parameters: estimator {fm.n_parameters:,} vs live model {live_total:,} (the live count "
                     "includes e.g. PEFT's frozen copies of modules_to_save)")
        return counts, FlopRates(fm), w

    @staticmethod
    def _training_dtype(args, model) -> str:
        if getattr(args, "bf16", False):
            return "bf16"
        if getattr(args, "fp16", False):
            return "fp16"
        dtypes = {p.dtype for p in model.parameters() if p.requires_grad}
        if torch.bfloat16 in dtypes:
            return "bf16"
        if torch.float16 in dtypes:
            return "fp16"
        if getattr(args, "tf32", False) or (torch.cuda.is_available() and torch.backends.cuda.matmul.allow_tf32):
            return "tf32"
        return "fp32"

    def _start_hardware(self, model, dist) -> None:
        enabled = self.nvml if self.nvml is not None else torch.cuda.is_available()
        if enabled and torch.cuda.is_available():
            try:
                import pynvml

                if dist is not None:
                    devices = [torch.cuda.current_device()]
                else:
                    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
                uuids = []
                for d in devices:
                    u = str(getattr(torch.cuda.get_device_properties(d), "uuid", "") or "")
                    uuids.append(u if u.startswith(("GPU-", "MIG-")) else f"GPU-{u}")
                try:
                    self._sampler = hw_mod.NvmlSampler(pynvml, uuids=uuids, interval=self.nvml_interval).start()
                except Exception:  # noqa: BLE001 - UUID lookup unsupported: fall back to indices
                    self._sampler = hw_mod.NvmlSampler(pynvml, devices, interval=self.nvml_interval).start()
            except Exception as exc:  # noqa: BLE001 - NVML missing or broken: say so in the record
                self._base.warnings.append(f"NVML sampling failed ({type(exc).__name__}: {exc}); no GPU counters")
                self._sampler = None
        self._cpu_energy = energy_mod.CpuEnergyMeter(read_rapl=energy_mod.local_rank_is_node_leader()).start()

    def _wrap_save_pretrained(self, model) -> None:
        # Every model/adapter dir saved from this model (trainer.save_model, model.save_pretrained) gets the
        # lineage and meter files, so a later run that starts from it continues the lineage. Under FSDP1 the
        # Trainer hands callbacks the FSDP wrapper but saves through the module inside it: wrap both.
        self._wrap_one_save_pretrained(model)
        inner = getattr(model, "_fsdp_wrapped_module", None)
        if inner is not None:
            self._wrap_one_save_pretrained(inner)

    def _wrap_one_save_pretrained(self, model) -> None:
        original = getattr(model, "save_pretrained", None)
        if original is None or getattr(original, "_ftaudit_wrapped", False):
            return
        meter = self

        @functools.wraps(original)
        def save_pretrained(save_directory, *a, **kw):
            result = original(save_directory, *a, **kw)
            if meter.meter_state is not None and Path(save_directory).is_dir():
                meter._write_into(Path(save_directory))
            return result

        save_pretrained._ftaudit_wrapped = True  # type: ignore[attr-defined]
        model.save_pretrained = save_pretrained

    def _count(self, module, args, kwargs):
        if module.training and torch.is_grad_enabled() and self._counter is not None:
            self._counter.count(args, kwargs)
        return None

    # ---- sync points
    def _sync(self, state, *, final: bool = False) -> MeterState:
        """Collective on every rank: all_reduce counts and hardware figures, then the new state (rank 0 writes)."""
        dist = _dist()
        dev = _comm_device(dist)
        size = self._counter.hist_size()
        if dist is not None:
            t = torch.tensor([size], dtype=torch.int64, device=dev)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            size = int(t.item())
        hw_local, energy_local = self._hardware_local()
        vec = torch.cat([self._counter.vector(size, dev),
                         torch.tensor(hw_local.vector() + energy_local, dtype=torch.float64, device=dev)])
        if dist is not None:
            dist.all_reduce(vec)
        values = vec.cpu().tolist()
        n_counts = 5 + 2 * size
        session = counts_from_vector(values[:n_counts], size, 0)
        hw_vals = values[n_counts:n_counts + len(hw_mod.HardwareTotals.FIELDS)]
        cpu_joules, cpu_estimated, seconds = values[-3], values[-2], time.monotonic() - self._t0
        if dist is not None:  # wall time: the slowest rank
            t = torch.tensor([seconds], dtype=torch.float64, device=dev)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            seconds = float(t.item())

        base = self._base
        counts = add_counts(base.counts, session)
        counts.optimizer_steps = state.global_step
        flops = meter_flops(counts, self._rates)
        reg = flops.regulatory if flops else 0.0
        new = base.model_copy(deep=True)
        new.counts, new.flops, new.global_step = counts, flops, state.global_step
        new.training_seconds = base.training_seconds + seconds
        new.lineage = update_lineage(base.lineage, base.run_id, reg, finished=final, output_dir=str(self._out),
                                     started_at=base.started_at)
        totals = hw_mod.HardwareTotals().with_vector(hw_vals)
        totals.gpus = hw_local.gpus
        prev = base.hardware
        if prev is not None and prev.flops_upper_bound is not None:  # resumed: earlier sessions count too
            totals.flops_measured += prev.flops_measured_utilisation or 0.0
            totals.flops_upper += prev.flops_upper_bound
            totals.gpu_seconds += prev.gpu_seconds
        if self._sampler is not None or totals.n_gpus:
            new.hardware = hw_mod.cross_check(totals, self._dtype, reg)
            new.energy = hw_mod.gpu_energy(totals, new.training_seconds)
        else:
            new.hardware = hw_mod.cross_check(totals, self._dtype, reg)
            kind = "estimated" if cpu_estimated > 0 else "measured"
            new.energy = energy_mod.cpu_energy(cpu_joules, kind, seconds)
        if base.energy is not None and base.energy.kwh is not None and new.energy.kwh is not None:
            new.energy.kwh += base.energy.kwh  # resumed: add what the run used before the checkpoint
            new.energy.seconds += base.energy.seconds
        if self._counter.uncounted:
            msg = (f"{self._counter.uncounted} training forward call(s) had neither input_ids nor inputs_embeds "
                   "and were not counted")
            new.warnings = [w for w in new.warnings if "were not counted" not in w] + [msg]
        self.meter_state = new
        return new

    def _hardware_local(self) -> tuple[hw_mod.HardwareTotals, list[float]]:
        if self._sampler is not None:
            totals = hw_mod.local_totals(self._sampler.readings(), self._dtype, self.peak_override)
        else:
            totals = hw_mod.HardwareTotals()
        joules, kind = self._cpu_energy.reading() if self._cpu_energy else (0.0, "estimated")
        return totals, [joules, 1.0 if kind == "estimated" else 0.0, 0.0]

    def _write_into(self, directory: Path, snapshot: MeterState | None = None) -> None:
        snapshot = snapshot or self.meter_state
        if snapshot is None:
            return
        save_state(directory, snapshot)
        write_lineage(directory, snapshot.lineage)

    def _write_later(self, new: MeterState) -> None:
        """Periodic persistence off the training thread: two atomic writes with fsync cost ~15 ms, more than
        the whole sync. A kill -9 mid-write leaves the previous file (the rename never happened)."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ftaudit-meter-writer")
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._writer.submit(self._write_into, self._out, new))

    def _flush_writes(self) -> None:
        for f in self._pending:
            f.result()  # re-raises a failed write here, on the training thread
        self._pending = []

    def _gate_says_stop(self, new: MeterState, state) -> bool:
        if self.gate is None:
            return False
        steps = max(1, state.global_step - self._session_start_step)
        session_flops = new.regulatory_flops - (self._base.regulatory_flops if self._base else 0.0)
        per_step = session_flops / steps
        projected = new.lineage.cumulative_flops + per_step * self.save_every_steps
        stop = 0.0
        if self._rank0:  # the gate runs once (it may log or write); every rank gets its answer
            stop = 0.0 if bool(self.gate(projected)) else 1.0
        dist = _dist()
        if dist is not None:
            t = torch.tensor([stop], dtype=torch.float64, device=_comm_device(dist))
            dist.broadcast(t, src=0)
            stop = float(t.item())
        return stop > 0

    def on_step_end(self, args, state, control, **kwargs):
        if self._counter is None:
            return control
        due = state.global_step % self.save_every_steps == 0
        if not (due or control.should_save or control.should_training_stop):
            return control
        new = self._sync(state)
        if self._gate_says_stop(new, state):
            for st in (new, self._base):
                st.stopped_by_gate, st.status = True, "stopped"
            control.should_training_stop = True
            control.should_save = True
        if self._rank0:
            self._write_later(new)
        return control

    def on_save(self, args, state, control, **kwargs):
        if self._rank0 and self.meter_state is not None:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                self._write_into(ckpt)
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._counter is None:
            return control
        if self._sampler is not None:
            self._sampler.stop()
        new = self._sync(state, final=True)
        if new.status != "stopped":
            new.status = "completed"
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._rank0:
            self._flush_writes()
            self._write_into(self._out, new)
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            decision = aws_meter_file.decision_for(new)
            log_meter(new, decision)  # into the active MLflow run, when there is one
            if self.write_meter_file:
                self._write_seed(new, args, decision)
        self._counter = None
        return control

    def _write_seed(self, new: MeterState, args, decision) -> None:
        doc = aws_meter_file.meter_file_document(new, num_epochs=getattr(args, "num_train_epochs", None),
                                        decision=decision)
        aws_meter_file.write_meter_file(aws_meter_file.meter_file_dir(self._out), doc)
