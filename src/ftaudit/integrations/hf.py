"""`FlopsMeterCallback`: the FLOP meter (`ftaudit.compute.FlopMeter`) inside a Hugging Face `Trainer` or a TRL
trainer (SFT, DPO, KTO, ORPO, GRPO, RLOO), one line to add:

    Trainer(..., callbacks=[FlopsMeterCallback(output_dir="out")])

The callback maps the Trainer's events onto the meter: at init end it watches the model (after PEFT wrapping) and
counts what the trainer precomputes (DPO's reference log-probabilities); at train begin it starts the meter, from
a checkpoint's counts when the Trainer resumes; every optimizer step it steps the meter and turns the gate's answer
into a saved checkpoint and a stop; every checkpoint gets the meter and lineage files; at the end it writes the
seed meter's `flops_meter.json` next to ours. With `use_vllm=True` the rollouts are counted from the prompt and
completion token ids that TRL's vLLM engine returns.

Resume and crash semantics: a job resumed from checkpoint step c restarts from the counts at step c, so steps
c+1… are counted once, when they are executed again. What the interrupted job metered past step c (its last
persisted state, at most N steps short of what it ran) is recorded as a `ResumeEvent` and not added (reading:
those parameter updates were discarded, like a failed experiment, guidelines Annex A.1).
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ftaudit.compute import aws_meter_file
from ftaudit.compute.flop_meter import OBJECTIVES, FlopMeter, Gate
from ftaudit.compute.meter import METER_FILENAME, MeterState, ResumeEvent, load_state, state_from_json, utc_now
from ftaudit.errors import BadInput
from ftaudit.integrations.trl_trainers import check_generation, count_vllm_rollouts, objective_of
from ftaudit.regulation import OriginalCompute


def training_dtype(args) -> str | None:
    if getattr(args, "bf16", False):
        return "bf16"
    if getattr(args, "fp16", False):
        return "fp16"
    return "tf32" if getattr(args, "tf32", False) else None  # None: the meter reads the parameters


class FlopsMeterCallback(TrainerCallback, ExportableState):
    """Meters training FLOPs of a Trainer / TRL run and keeps the lineage total.

    output_dir        where ftaudit_meter.json, ftaudit_lineage.json and flops_meter.json go (default:
                      TrainingArguments.output_dir; FLOPS_METER_OUT or SageMaker's /opt/ml/output for the seed file).
    objective         sft | dpo | grpo; default: read from the trainer's config class. A value that does not match
                      the trainer is an error.
    The other arguments are FlopMeter's: save_every_steps, parent, gate, original_flops, base_is_gpai, original,
    run_id, nvml, nvml_interval.
    """

    def __init__(self, output_dir: str | os.PathLike | None = None, *, save_every_steps: int = 10,
                 parent: str | os.PathLike | None = None, gate: Gate | None = None,
                 original_flops: float | None = None, base_is_gpai: bool | None = None,
                 original: OriginalCompute | None = None, run_id: str | None = None, nvml: bool | None = None,
                 nvml_interval: float = 1.0, write_meter_file: bool = True, objective: str | None = None):
        if objective is not None and objective not in OBJECTIVES:
            raise BadInput(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
        env_nvml = aws_meter_file.nvml_enabled_from_env()  # bad environment values fail now, not at the end
        self._options = dict(save_every_steps=save_every_steps, parent=parent, gate=gate,
                             original_flops=original_flops, base_is_gpai=base_is_gpai, original=original,
                             nvml=nvml if nvml is not None else env_nvml, nvml_interval=nvml_interval,
                             peak_override=aws_meter_file.peak_override_from_env())
        FlopMeter(**self._options)  # validates the options
        self.output_dir = str(output_dir) if output_dir is not None else None
        self.save_every_steps = save_every_steps
        self.parent = str(parent) if parent is not None else None
        self.run_id = run_id
        self.objective = objective
        self.write_meter_file = write_meter_file
        self.meter: FlopMeter | None = None
        self.meter_state: MeterState | None = None  # the last synchronised state (read it from the pipeline)

    # ---- ExportableState: the Trainer stores this in every checkpoint's trainer_state.json
    def state(self) -> dict:
        return {
            "args": {"output_dir": self.output_dir, "save_every_steps": self.save_every_steps,
                     "parent": self.parent, "run_id": self.run_id, "write_meter_file": self.write_meter_file},
            "attributes": ({"_checkpoint_meter_state": self.meter_state.model_dump(mode="json")}
                           if self.meter_state is not None else {}),
        }

    def _watch(self, args, model) -> FlopMeter:
        if model is None:
            raise BadInput("FlopsMeterCallback needs the model; use it with transformers.Trainer or TRL trainers")
        objective = objective_of(args)
        if self.objective is not None and self.objective != objective:
            raise BadInput(f"objective {self.objective!r} does not match the trainer ({type(args).__name__} trains "
                           f"{objective!r}); drop objective= or use the matching trainer")
        check_generation(args)
        meter = FlopMeter(**self._options, run_id=self.run_id, objective=objective)
        meter.watch(model)
        if getattr(args, "use_vllm", False):
            count_vllm_rollouts(self)
        return meter

    def on_init_end(self, args, state, control, model=None, **kwargs):
        self.meter = self._watch(args, model)
        self.meter.precompute()  # DPO computes the reference log-probabilities after this, in its __init__
        return control

    # ---- train begin
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.meter is None or self.meter.policy is not model:  # added after init, or the model was wrapped since
            if self.meter is not None:
                self.meter.close()
            self.meter = self._watch(args, model)
        meter = self.meter
        out = Path(self.output_dir or args.output_dir)
        meter.output_dir, meter.dtype = out, training_dtype(args)
        try:
            if meter.rank0:
                aws_meter_file.check_writable(out, "meter output directory")
                if self.write_meter_file:
                    aws_meter_file.check_writable(aws_meter_file.meter_file_dir(out), "FLOPS_METER_OUT")
            meter.start(resume=self._restore(state, args, out), global_step=state.global_step)
        except BaseException:
            meter.close()  # no hook outlives a run that never started
            self.meter = None
            raise
        if getattr(args, "precompute_ref_log_probs", False) and not meter.reference_calls():
            meter.state.warnings.append("reference log-probabilities came from the datasets cache of an earlier "
                                        "process; their compute is not in this run's total")
        self.run_id, self.meter_state = meter.run_id, meter.state
        return control

    def _restore(self, state, args, out: Path) -> MeterState | None:
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
        path = out / METER_FILENAME
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

    # ---- steps, checkpoints, the end
    def on_step_end(self, args, state, control, **kwargs):
        if self.meter is None or self.meter.state is None:
            return control
        if self.meter.step(state.global_step, sync=bool(control.should_save or control.should_training_stop)):
            control.should_training_stop = True
            control.should_save = True
        self.meter_state = self.meter.state
        return control

    def on_save(self, args, state, control, **kwargs):
        if self.meter is not None and self.meter.state is not None and self.meter.rank0:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                self.meter.write_into(ckpt)
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.meter is None or self.meter.state is None:
            return control
        new = self.meter_state = self.meter.stop()
        if self.meter.rank0 and self.write_meter_file:
            decision = aws_meter_file.decision_for(new)
            doc = aws_meter_file.meter_file_document(new, num_epochs=getattr(args, "num_train_epochs", None),
                                                     decision=decision)
            aws_meter_file.write_meter_file(aws_meter_file.meter_file_dir(self.meter.output_dir), doc)
        self.meter = None
        return control

