"""The compute section of the RunRecord: the estimate before training, the meter during it, the hardware
cross-check and the energy after it, the lineage total, and which figure is the regulatory one and why.

Filled by the estimator (`ftaudit.compute.estimate`), the meter (`ftaudit.compute.meter` + the Trainer callback in
`ftaudit.integrations.hf`) and the hardware sampler (`ftaudit.compute.hardware`). Pure pydantic: no torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftaudit.strict import Strict


class FlopFigures(Strict):
    """One FLOP figure split by pass (docs/design.md convention: 2 FLOP per multiply-accumulate of every matmul)."""

    forward: float = 0.0
    backward: float = 0.0
    recompute: float = Field(0.0, description="Gradient-checkpointing recompute: reported, never counted "
                             "(guidelines Annex A.1).")
    total: float = Field(0.0, description="forward + backward; recompute excluded.")


class MeterCounts(Strict):
    """What the meter saw, summed over every micro-batch of every rank (torch.distributed all_reduce)."""

    micro_batches: int = 0
    optimizer_steps: int = 0
    tokens_executed: int = Field(0, description="B×S per micro-batch, padding included (it is executed).")
    tokens_effective: int = Field(0, description="Non-padding tokens.")
    sequences_executed: int = 0
    sequences_effective: int = Field(0, description="Real sequences; a packed row counts each packed sequence.")
    lengths_executed: dict[int, int] = Field(
        default_factory=dict, description="Histogram length→count of the attention units as executed (padded rows, "
        "or per-sequence for variable-length kernels).")
    lengths_effective: dict[int, int] = Field(
        default_factory=dict, description="Histogram length→count of real (unpadded, unpacked) sequences.")
    head_positions: int | None = Field(None, description="Positions the LM head ran on (logits_to_keep, TRL's "
                                       "fused head); None: every token.")
    decode_keys: dict[int, int] = Field(
        default_factory=dict, description="KV-cached generation: key length→query rows that attended that many "
        "cached keys (prefill is in the length histograms).")


class MeterFlops(Strict):
    executed: FlopFigures = Field(default_factory=FlopFigures)
    effective: FlopFigures = Field(default_factory=FlopFigures)
    regulatory: float = Field(0.0, description="The larger of executed and effective totals (docs/design.md).")
    method: str = ""


Role = Literal["policy", "reference", "generation", "policy_no_grad", "reward", "value"]


class ComputeLine(Strict):
    """Compute beyond the policy's own training passes, one line per role (docs/regulation.md §1, Annex A.1)."""

    role: Role
    counted: bool = Field(description="Part of the regulatory figure.")
    basis: str = Field(description="Why it is counted or not: the citation and, where it is ours, the reading.")
    method: str = Field("", description="How the FLOPs were obtained.")
    model: str | None = Field(None, description="The model that ran (name or class).")
    calls: int = 0
    counts: MeterCounts = Field(default_factory=MeterCounts)
    flops: MeterFlops = Field(default_factory=MeterFlops)


class ModelCounts(Strict):
    """The model as trained (after PEFT wrapping; logical parameters of quantised bases)."""

    name: str | None = None
    method: str | None = Field(None, description="full | lora | partial")
    n_parameters: int | None = None
    n_trainable_parameters: int | None = None
    live_n_parameters: int | None = Field(None, description="Counted on the live torch model (cross-check).")
    live_n_trainable_parameters: int | None = None
    setup: dict[str, Any] = Field(default_factory=dict, description="The TrainingSetup read from the live model.")


class GpuUsage(Strict):
    name: str
    matched_model: str | None = Field(None, description="Peak-table entry, exact match on the normalised name.")
    dtype: str
    peak_tflops: float | None = None
    peak_source: str | None = None
    mean_utilisation: float | None = Field(None, description="NVML utilization.gpu, 0..1, mean over samples.")
    samples: int = 0
    seconds: float = 0.0
    energy_kwh: float | None = None


class HardwareCrossCheck(Strict):
    """Guidelines Annex A.2: C = N·L·H·U (GPUs × seconds × peak FLOP/s × utilisation)."""

    available: bool = Field(description="False: no GPU counters on this machine.")
    statement: str = Field(description="One plain sentence on what was and was not measured.")
    dtype: str | None = None
    n_gpus: int = 0
    gpu_seconds: float = 0.0
    gpus: list[GpuUsage] = Field(default_factory=list, description="This node's GPUs (rank 0's view).")
    flops_measured_utilisation: float | None = Field(None, description="Σ peak × mean utilisation × time, all "
                                                     "ranks and nodes.")
    flops_upper_bound: float | None = Field(None, description="Σ peak × time (U = 1).")
    ratio_architecture_to_hardware: float | None = Field(
        None, description="Metered regulatory FLOP / hardware figure with measured utilisation.")
    ratio_architecture_to_upper_bound: float | None = None
    caveat: str = ("NVML utilisation is the share of time any kernel ran, not the share of peak FLOP/s, so the "
                   "hardware figure overstates compute; it is a plausibility check, not the regulatory figure.")


class EnergyEvidence(Strict):
    """Annex XI §1 2(e): known or estimated energy consumption."""

    kwh: float | None = None
    kind: Literal["measured", "estimated", "unavailable"] = "unavailable"
    method: str = ""
    seconds: float = 0.0


class LineageRun(Strict):
    run_id: str
    regulatory_flops: float
    finished: bool = False
    output_dir: str | None = None
    started_at: str | None = None
    updated_at: str | None = None


class LineageTotals(Strict):
    """Reading (docs/regulation.md §1): successive modifications of one lineage add up."""

    lineage_id: str
    parent_path: str | None = Field(None, description="Checkpoint, adapter or model dir this run started from.")
    runs: list[LineageRun] = Field(default_factory=list, description="Every run of the lineage, this one last.")
    ancestors_flops: float = 0.0
    cumulative_flops: float = Field(0.0, description="Σ regulatory FLOP over the runs (each run once).")


class ComputeEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    estimate: dict[str, Any] | None = Field(None, description="The estimator's Estimate before training (as JSON).")
    model: ModelCounts | None = None
    counts: MeterCounts | None = None
    flops: MeterFlops | None = None
    hardware: HardwareCrossCheck | None = None
    energy: EnergyEvidence | None = None
    lineage: LineageTotals | None = None
    training_seconds: float | None = None
    world_size: int | None = None
    objective: str | None = Field(None, description="sft | dpo | grpo (the training objective).")
    breakdown: list[ComputeLine] = Field(default_factory=list, description="Compute beyond the policy's training "
                                         "passes: reference, generation, reward and value models.")
    regulatory_flops: float | None = Field(None, description="This run's figure for the decision, FLOP.")
    regulatory_flops_method: str | None = Field(None, description="How regulatory_flops was chosen.")
    warnings: list[str] = Field(default_factory=list)
