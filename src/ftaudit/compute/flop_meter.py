"""`FlopMeter`: the runtime FLOP meter for any PyTorch training loop (plain, Accelerate, Trainer, TRL).

    meter = FlopMeter(model, output_dir="out")           # after PEFT wrapping
    meter.start()
    for batch in loader:
        model(**batch).loss.backward(); optimizer.step(); optimizer.zero_grad()
        if meter.step():                                  # True: the gate says the next steps would cross it
            break
    state = meter.stop()

or `with FlopMeter(model, output_dir="out") as meter: ...` (stop on exit), or `@FlopMeter(model, ...)` over a
training function. The meter hooks the module that owns the LM head and counts every forward call from its
arguments (`ftaudit.compute.counting.BatchCounter`); it never synchronises with the device between syncs.

What a call is, and whether it counts (docs/regulation.md §1, guidelines Annex A.1, one line each in the breakdown):
  policy          forward + backward of the trained model (grad enabled, training mode)
  generation      KV-cached forwards (`generate`): rollouts are non-public synthetic training data
  reference       forwards with the adapters disabled, a watched reference model, or the policy's no-grad forwards
                  before training starts (precomputed reference log-probabilities) — our reading: they enter the loss
  policy_no_grad  other no-grad forwards of the policy in training mode (old-policy log-probabilities)
  reward, value   auxiliary models: reported, not counted (forward only, or forward and backward for the calls
                  with gradient of a trainable one: its own line, "<model> (trained)")
Forwards while the policy is in eval mode (evaluation) are not counted. Other models that run a forward while the
meter discovers (until the first step) are watched as reference (a causal LM) or reward (a classifier).

Every `save_every_steps` steps (and at the end) the counts are all-reduced over torch.distributed ranks in one
vector (`counting.SyncLayout`), turned into FLOPs, persisted atomically by a writer thread
(`output_dir/ftaudit_meter.json` and the lineage file) and offered to the gate.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ftaudit.compute import hardware as hw_mod
from ftaudit.compute import sampling
from ftaudit.compute.counting import BatchCounter, SyncLayout, counts_from_vector
from ftaudit.compute.evidence import ComputeLine, MeterFlops, ModelCounts
from ftaudit.compute.live_model import (
    attention_kernel,
    causal_lm,
    live_parameter_counts,
    lora_layer,
    model_paths,
    setup_from_model,
)
from ftaudit.compute.meter import (
    FlopRates,
    MeterState,
    add_counts,
    find_lineage,
    meter_flops,
    save_state,
    start_lineage,
    update_lineage,
    write_lineage,
)
from ftaudit.errors import BadInput
from ftaudit.regulation import OriginalCompute, resolve_original
from ftaudit.regulation.citations import COMPUTE_ROLE_BASIS

Gate = Callable[[float], bool]
OBJECTIVES = ("sft", "dpo", "grpo")
COUNTED = {"policy": True, "reference": True, "generation": True, "policy_no_grad": True, "reward": False,
           "value": False}


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _comm_device(dist) -> torch.device:
    if dist is not None and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@dataclass
class Stream:
    """The calls of one role on one model: its counter and the FLOP rates they run at."""

    role: str
    model: str
    counter: BatchCounter
    rates: FlopRates | None
    warnings: list[str] = field(default_factory=list)
    note: str = ""  # how calls counted without the hook were obtained
    trained: bool = False  # its calls run with gradient: forward and backward
    twin: "Stream | None" = None  # a trainable auxiliary model's calls with gradient (PPO's value model)

    @property
    def key(self) -> str:
        return self.role if self.role in ("policy", "generation", "policy_no_grad") else f"{self.role}:{self.model}"


def _label(model) -> str:
    return next(iter(model_paths(model)), None) or type(model).__name__


def _forward_rates(model, role: str) -> tuple[FlopRates | None, list[str]]:
    """FLOP rates of a reference or auxiliary model from its config; a classifier's head is its `score` layer."""
    from ftaudit.compute.flops import TrainingSetup, build_flop_model

    config = model.config
    try:
        fm = build_flop_model(config.to_dict(), TrainingSetup(method="full",
                                                              attention_kernel=attention_kernel(config)))
    except BadInput as exc:
        return None, [f"no FLOP model for the {role} model {_label(model)} ({exc}); its calls are counted, not "
                      "its FLOPs"]
    rates = FlopRates(fm)
    score = getattr(model, "score", None)
    if score is not None and hasattr(score, "out_features"):
        forward = 2.0 * score.in_features * score.out_features
        rates.head = (forward, 2 * forward, 0.0)  # backward: the input's and the weight's gradient
    return rates, []


class FlopMeter:
    """Meters the training FLOPs of one run and keeps its lineage total.

    model             the trained model, after PEFT wrapping (or `watch` it later); the meter hooks its LM module.
    output_dir        where ftaudit_meter.json and ftaudit_lineage.json go (None: nothing is written).
    save_every_steps  sync (all_reduce), persist and gate every N steps; a crash loses at most N steps of metering.
    parent            a checkpoint, adapter or model dir of an earlier metered run, to continue its lineage (else
                      found from the model's name_or_path / PEFT base path when one holds a lineage file).
    gate              called at every sync with the lineage's cumulative regulatory FLOP projected to the next
                      sync; return False to stop (`step()` then returns True).
    original_flops, base_is_gpai, original
                      the original model's training compute (ftaudit.regulation.resolve_original).
    objective         sft | dpo | grpo: recorded, and named in the documents.
    dtype             training precision for the hardware cross-check (default: read from the parameters).
    samplers          hardware samplers (default: NVML when CUDA is there, and the CPU energy meter).
    """

    def __init__(self, model=None, output_dir: str | os.PathLike | None = None, *, save_every_steps: int = 10,
                 parent: str | os.PathLike | None = None, gate: Gate | None = None,
                 original_flops: float | None = None, base_is_gpai: bool | None = None,
                 original: OriginalCompute | None = None, run_id: str | None = None, objective: str = "sft",
                 dtype: str | None = None, nvml: bool | None = None, nvml_interval: float = 1.0,
                 peak_override: float | None = None, samplers: list[hw_mod.Sampler] | None = None):
        if not isinstance(save_every_steps, int) or save_every_steps < 1:
            raise BadInput(f"save_every_steps must be a positive integer, got {save_every_steps!r}")
        if parent is not None and not Path(parent).is_dir():
            raise BadInput(f"parent {parent} is not a directory; pass the checkpoint, adapter or model dir of the "
                           "earlier run")
        if objective not in OBJECTIVES:
            raise BadInput(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
        if original is None:
            resolve_original(flops=original_flops, is_gpai=base_is_gpai)  # a bad PRETRAIN_FLOPS fails now
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.save_every_steps = save_every_steps
        self.parent = str(parent) if parent is not None else None
        self.gate = gate
        self.original_flops, self.base_is_gpai, self.original = original_flops, base_is_gpai, original
        self.run_id = run_id
        self.objective = objective
        self.dtype = dtype
        self.nvml, self.nvml_interval, self.peak_override = nvml, nvml_interval, peak_override
        self._samplers = samplers
        self.state: MeterState | None = None  # the last synchronised state
        self.policy = None
        self._policy_lm = None  # the policy's module that owns the LM head (its hook, its training flag)
        self._streams: dict[str, Stream] = {}
        self._hooks: list = []
        self._modules: dict[int, str | None] = {}  # id(module) -> the role its calls have (None: not a model)
        self._lora = None
        self._own_reference: str | None = None  # the policy's own reference stream (adapters off, or precompute)
        self._discovery = None
        self._counting = False
        self._outside = False  # an engine with its own copy of the weights is generating (`outside`)
        self._precompute = False
        self._base: MeterState | None = None
        self._step = 0
        self._session_start_step = 0
        self._t0 = time.monotonic()
        self._rank0 = True
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._model_counts = ModelCounts()
        self._warnings: list[str] = []
        if model is not None:
            self.watch(model)

    # ---- what is counted
    def watch(self, model, role: str = "policy") -> Stream:
        """Count `model`'s forward calls: the trained policy, or a frozen reference / reward / value model."""
        if role not in COUNTED:
            raise BadInput(f"unknown role {role!r}; use one of {', '.join(COUNTED)}")
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module  # its parameter names carry a "module." prefix the architecture walk does not know
        lm = causal_lm(model)
        for m in model.modules():
            self._modules.setdefault(id(m), None)
        self._modules[id(lm)] = role
        if role == "policy":
            self.policy, self._policy_lm = model, lm
            self._model_counts, rates, self._warnings = self._policy_rates(model)
            varlen = attention_kernel(lm.config) == "flash"
            ref_rates, ref_w = _forward_rates(lm, "reference")
            name = _label(model)
            for r, rr in (("policy", rates), ("generation", rates), ("policy_no_grad", rates)):
                self._add_stream(Stream(r, name, BatchCounter(varlen), rr))
            self._lora = lora_layer(model)
            # With adapters the base model is the reference; a full fine-tune's reference is the policy as it was
            # before training (DPO's precomputed log-probabilities).
            if self._lora is not None or self.objective == "dpo":
                self._own_reference = self._add_stream(Stream("reference", name, BatchCounter(varlen), ref_rates,
                                                              ref_w)).key
            self._hooks.append(lm.register_forward_pre_hook(self._policy_call, with_kwargs=True))
            self._wrap_save_pretrained(model)
            return self._streams["policy"]
        vocab = getattr(getattr(self._policy_lm, "config", None), "vocab_size", None)
        if role == "reference" and vocab is not None and getattr(lm.config, "vocab_size", vocab) != vocab:
            raise BadInput(f"the reference model {_label(model)} has a vocabulary of {lm.config.vocab_size} tokens, "
                           f"the policy {vocab}: they need the same tokenizer for log-probabilities to compare")
        rates, w = _forward_rates(lm, role)
        label, varlen = _label(model), attention_kernel(lm.config) == "flash"
        stream = self._add_stream(Stream(role, label, BatchCounter(varlen), rates, w))
        if any(p.requires_grad for p in model.parameters()):
            stream.twin = self._add_stream(Stream(role, f"{label} (trained)", BatchCounter(varlen), rates,
                                                  trained=True))
        self._hooks.append(lm.register_forward_pre_hook(functools.partial(self._model_call, stream),
                                                        with_kwargs=True))
        return stream

    def _add_stream(self, stream: Stream) -> Stream:
        return self._streams.setdefault(stream.key, stream)

    def _policy_rates(self, model) -> tuple[ModelCounts, FlopRates | None, list[str]]:
        live_total, live_trainable = live_parameter_counts(model)
        counts = ModelCounts(name=next(iter(model_paths(model)), None), live_n_parameters=live_total,
                             live_n_trainable_parameters=live_trainable)
        try:
            from ftaudit.compute.flops import build_flop_model

            setup = setup_from_model(model)
            fm = build_flop_model(causal_lm(model).config.to_dict(), setup)
        except BadInput as exc:
            return counts, None, [f"no FLOP model for this model ({exc}); tokens are counted, FLOPs are not"]
        w = list(fm.warnings)
        counts.method, counts.setup = fm.method, dict(vars(setup))
        counts.n_parameters, counts.n_trainable_parameters = fm.n_parameters, fm.n_trainable_parameters
        if fm.n_trainable_parameters != live_trainable:
            w.append(f"trainable parameters: estimator {fm.n_trainable_parameters:,} vs live model "
                     f"{live_trainable:,}; the FLOPs follow the estimator's architecture walk")
        if fm.n_parameters != live_total:
            w.append(f"parameters: estimator {fm.n_parameters:,} vs live model {live_total:,} (the live count "
                     "includes e.g. PEFT's frozen copies of modules_to_save)")
        return counts, FlopRates(fm), w

    def _adapters_off(self) -> bool:
        lora = self._lora
        if lora is None:
            return False
        return bool(lora.disable_adapters) or "ref" in lora.active_adapters  # TRL's frozen copy is named "ref"

    def _policy_call(self, module, args, kwargs):
        if not self._counting or self._outside:
            return None
        if torch.is_grad_enabled():
            if module.training and not self._precompute:
                self._streams["policy"].counter.count(args, kwargs)
            return None
        if not (module.training or self._precompute):
            return None  # evaluation
        if kwargs.get("cache", kwargs.get("past_key_values")) is not None:
            role = "generation"
        elif self._own_reference is not None and (self._precompute or self._adapters_off()):
            role = self._own_reference
        else:
            role = "policy_no_grad"
        self._streams[role].counter.count(args, kwargs)
        return None

    def _model_call(self, stream: Stream, module, args, kwargs):
        policy = self._policy_lm
        if self._counting and not self._outside and (self._precompute or policy is None or policy.training):
            trained = stream.twin is not None and torch.is_grad_enabled() and module.training
            (stream.twin if trained else stream).counter.count(args, kwargs)
        return None

    # ---- discovery of the models a trainer builds itself (TRL's reference and reward models)
    def discover(self) -> None:
        """Until the first step, watch every other model that runs a forward: a causal LM as the reference, a
        classifier as a reward model."""
        if self._discovery is None:
            self._discovery = torch.nn.modules.module.register_module_forward_hook(self._discover_call,
                                                                                   with_kwargs=True)

    def _discover_call(self, module, args, kwargs, output):
        # A forward hook (after the call): inner modules finish first, so the model that owns them is seen last.
        if self._outside or id(module) in self._modules:
            return None
        get = getattr(module, "get_output_embeddings", None)
        head = None
        if get is not None and hasattr(module, "config"):
            try:
                head = get()
            except (AttributeError, NotImplementedError):
                head = None
        score = getattr(module, "score", None) if hasattr(module, "config") else None
        if head is None and score is None:
            self._modules[id(module)] = None
            return None
        stream = self.watch(module, "reference" if head is not None else "reward")
        self._model_call(stream, module, args, kwargs)  # the new hook sees the calls after this one
        return None

    def _end_discovery(self) -> None:
        if self._discovery is not None:
            self._discovery.remove()
            self._discovery = None

    def add_generation(self, prompt_lengths, completion_lengths, *, engine: str = "an external engine") -> None:
        """Rollouts generated outside the hooked model (vLLM, TGI, an API): counted from each completion's prompt
        and completion length, as KV-cached decoding (`BatchCounter.count_rollout`); the breakdown says so."""
        prompts, completions = list(prompt_lengths), list(completion_lengths)
        if len(prompts) != len(completions):
            raise BadInput(f"add_generation: {len(prompts)} prompt lengths for {len(completions)} completions; "
                           "give one prompt length per completion")
        if any(not isinstance(n, int) or n < 1 for n in [*prompts, *completions]):
            raise BadInput("add_generation: lengths must be positive integers (tokens)")
        stream = self._streams["generation"]
        for p, c in zip(prompts, completions, strict=True):
            stream.counter.count_rollout(p, c)
        stream.note = (f"generated by {engine}, outside the hooked model: counted from the prompt and completion "
                       "lengths as KV-cached decoding (prefill, then one step per further token); each "
                       "completion's prompt is prefilled once, an upper bound where the engine shares a prompt's "
                       "prefill between its samples or caches prefixes")

    @contextlib.contextmanager
    def outside(self):
        """Forwards inside are not the hooks' to count or discover: an engine that generates on its own copy of
        the weights (in-process vLLM). Count what it generated with `add_generation`."""
        before, self._outside = self._outside, True
        try:
            yield self
        finally:
            self._outside = before

    @property
    def counting(self) -> bool:
        """Started and not yet stopped or closed."""
        return self._counting and self.state is not None

    @property
    def rank0(self) -> bool:
        dist = _dist()
        return dist is None or dist.get_rank() == 0

    def reference_calls(self) -> int:
        return sum(s.counter.calls for s in self._streams.values() if s.role == "reference")

    def close(self) -> None:
        """Remove every hook: the model runs as if it had never been metered."""
        for h in self._hooks:
            h.remove()
        self._hooks, self._counting = [], False
        self._end_discovery()

    def precompute(self) -> None:
        """From now until `start`, no-grad forwards of the policy are the reference (precomputed log-probs)."""
        self._counting = self._precompute = True
        self.discover()

    # ---- the run
    def start(self, *, resume: MeterState | None = None, global_step: int = 0) -> "FlopMeter":
        if self.policy is None:
            raise BadInput("FlopMeter has no model to meter: pass it, or call meter.watch(model) before start()")
        dist = _dist()
        self._rank0 = dist is None or dist.get_rank() == 0
        if resume is None:
            run_id = self.run_id or uuid.uuid4().hex
            lineage, lw = start_lineage(run_id, find_lineage([self.parent, *model_paths(self.policy)]))
            self._warnings += lw
            resume = MeterState(run_id=run_id, lineage=lineage,
                                output_dir=str(self.output_dir) if self.output_dir else None)
            if global_step:
                self._warnings.append(f"resumed at step {global_step} of a run that was not metered: its first "
                                      f"{global_step} steps are not in this total; add them by hand")
        base = resume
        self.run_id = base.run_id
        base.world_size = dist.get_world_size() if dist is not None else 1
        base.model, base.objective = self._model_counts, self.objective
        base.original = self.original or base.original or resolve_original(
            flops=self.original_flops, is_gpai=self.base_is_gpai, model_id=base.model.name)
        base.warnings = list(dict.fromkeys([*base.warnings, *self._warnings]))
        base.status = "running"
        base.flops = meter_flops(base.counts, self._streams["policy"].rates)
        self._base = base
        self._step = self._session_start_step = global_step
        self.dtype = self.dtype or self._training_dtype()
        self._samplers = ([x.start() for x in self._samplers] if self._samplers is not None else
                          sampling.default_samplers(self.policy, dist, self.nvml, self.nvml_interval, base.warnings))
        self._t0 = time.monotonic()
        self._precompute, self._counting = False, True
        self.discover()
        self.state = base.model_copy(deep=True)
        if self._rank0 and self.output_dir is not None:
            save_state(self.output_dir, self.state)
        return self

    def step(self, global_step: int | None = None, *, sync: bool = False) -> bool:
        """After an optimizer step: sync when due (or `sync=True`); True when the gate says stop."""
        self._step = self._step + 1 if global_step is None else global_step
        self._end_discovery()
        if not (sync or self._step % self.save_every_steps == 0):
            return False
        new = self.sync()
        stop = self._gate_says_stop(new)
        if stop:
            for st in (new, self._base):
                st.stopped_by_gate, st.status = True, "stopped"
        if self._rank0 and self.output_dir is not None:
            self._write_later(new)
        return stop

    def stop(self) -> MeterState:
        """Final sync (every rank), the files written and flushed (rank 0), the hooks removed."""
        for s in self._samplers or ():
            s.stop()
        new = self.sync(final=True)
        if new.status != "stopped":
            new.status = "completed"
        self.close()
        if self._rank0:
            self._flush_writes()
            if self.output_dir is not None:
                self.write_into(self.output_dir, new)
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            from ftaudit.compute.aws_meter_file import decision_for
            from ftaudit.integrations.mlflow import log_meter

            log_meter(new, decision_for(new))  # into the active MLflow run, when there is one
        return new

    def __enter__(self) -> "FlopMeter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __call__(self, fn):
        @functools.wraps(fn)
        def metered(*a, **kw):
            with self:
                return fn(*a, **kw)

        return metered

    # ---- sync points
    def sync(self, *, final: bool = False) -> MeterState:
        """Collective on every rank: all_reduce counts and hardware figures in one vector, then the new state."""
        dist = _dist()
        dev = _comm_device(dist)
        streams = list(self._streams.values())
        size = max(s.counter.hist_size() for s in streams)
        if dist is not None:
            t = torch.tensor([size], dtype=torch.int64, device=dev)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            size = int(t.item())
        layout = SyncLayout(tuple(self._streams), size, len(hw_mod.HardwareTotals.FIELDS))
        reading = sampling.combined_reading(self._samplers, self.dtype, self.peak_override)
        vec = torch.cat([*(s.counter.vector(size, dev) for s in streams),
                         torch.tensor(reading.gpu.vector() + [reading.cpu_joules, float(reading.cpu_estimated), 0.0],
                                      dtype=torch.float64, device=dev)])
        if dist is not None:
            dist.all_reduce(vec)
        values = vec.cpu().tolist()
        seconds = time.monotonic() - self._t0
        if dist is not None:  # wall time: the slowest rank
            t = torch.tensor([seconds], dtype=torch.float64, device=dev)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            seconds = float(t.item())

        base = self._base
        new = base.model_copy(deep=True)
        lines = {f"{line.role}:{line.model}": line for line in base.breakdown}
        for i, s in enumerate(streams):
            session = counts_from_vector(values[layout.role_slice(i)], size)
            if s.role == "policy":
                new.counts = add_counts(base.counts, session)
                new.counts.optimizer_steps = self._step
                new.flops = meter_flops(new.counts, s.rates)
                continue
            key = f"{s.role}:{s.model}"
            prev = lines.get(key)
            counts = add_counts(prev.counts, session) if prev else session
            if not counts.micro_batches:
                continue
            flops = meter_flops(counts, s.rates, backward=s.trained)
            method = "; ".join(filter(None, [flops.method if flops else "; ".join(s.warnings), s.note]))
            lines[key] = ComputeLine(role=s.role, counted=COUNTED[s.role], basis=COMPUTE_ROLE_BASIS[s.role],
                                     method=method, model=s.model,
                                     calls=counts.micro_batches, counts=counts, flops=flops or MeterFlops())
            new.warnings = list(dict.fromkeys([*new.warnings, *s.warnings]))
        order = list(COUNTED)
        new.breakdown = sorted(lines.values(), key=lambda line: (order.index(line.role), line.model or ""))
        new.global_step = self._step
        new.training_seconds = base.training_seconds + seconds
        new.lineage = update_lineage(base.lineage, base.run_id, new.regulatory_flops, finished=final,
                                     output_dir=str(self.output_dir) if self.output_dir else None,
                                     started_at=base.started_at)
        new.hardware, new.energy = sampling.hardware_evidence(base, new, values[layout.hardware_slice],
                                                              values[layout.energy_slice], seconds,
                                                              reading.gpu.gpus, self.dtype)
        uncounted = self._streams["policy"].counter.uncounted
        if uncounted:
            msg = (f"{uncounted} training forward call(s) had neither input_ids nor inputs_embeds and were not "
                   "counted")
            new.warnings = [w for w in new.warnings if "were not counted" not in w] + [msg]
        self.state = new
        return new

    def _training_dtype(self) -> str:
        dtypes = {p.dtype for p in self.policy.parameters() if p.requires_grad}
        if torch.bfloat16 in dtypes:
            return "bf16"
        if torch.float16 in dtypes:
            return "fp16"
        if torch.cuda.is_available() and torch.backends.cuda.matmul.allow_tf32:
            return "tf32"
        return "fp32"

    def _gate_says_stop(self, new: MeterState) -> bool:
        if self.gate is None:
            return False
        steps = max(1, self._step - self._session_start_step)
        per_step = (new.regulatory_flops - self._base.regulatory_flops) / steps
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

    # ---- persistence
    def write_into(self, directory: Path, snapshot: MeterState | None = None) -> None:
        snapshot = snapshot or self.state
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
        self._pending.append(self._writer.submit(self.write_into, self.output_dir, new))

    def _flush_writes(self) -> None:
        for f in self._pending:
            f.result()  # re-raises a failed write here, on the training thread
        self._pending = []

    def _wrap_save_pretrained(self, model) -> None:
        # Every model/adapter dir saved from this model (trainer.save_model, model.save_pretrained) gets the
        # lineage and meter files, so a later run that starts from it continues the lineage. Under FSDP1 the
        # Trainer hands callbacks the FSDP wrapper but saves through the module inside it: wrap both.
        for target in (model, getattr(model, "_fsdp_wrapped_module", None)):
            original = getattr(target, "save_pretrained", None)
            if original is None or getattr(original, "_ftaudit_wrapped", False):
                continue
            target.save_pretrained = self._saving(original)

    def _saving(self, original):
        meter = self

        @functools.wraps(original)
        def save_pretrained(save_directory, *a, **kw):
            result = original(save_directory, *a, **kw)
            if meter.state is not None and Path(save_directory).is_dir():
                meter.write_into(Path(save_directory))
            return result

        save_pretrained._ftaudit_wrapped = True  # type: ignore[attr-defined]
        return save_pretrained

