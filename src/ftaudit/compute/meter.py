"""The runtime meter's state, without torch: counts → FLOPs, atomic persistence, and lineage files.

The Trainer callback (`ftaudit.integrations.hf.FlopsMeterCallback`) counts tokens and sequence lengths on the
device and hands host-side `MeterCounts` to this module at its sync points. Everything here is plain Python so that
`ftaudit status` can read a run while it trains, without importing torch.

Files:
  ftaudit_meter.json    the run's state (counts, FLOPs, lineage, hardware, energy); in output_dir every N steps and
                        at the end, and in every checkpoint dir.
  ftaudit_lineage.json  lineage id and every run's regulatory FLOP; in every checkpoint, model and adapter dir the
                        run writes, so the next run that starts from one of them continues the lineage.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftaudit.compute.evidence import (
    ComputeEvidence,
    ComputeLine,
    EnergyEvidence,
    FlopFigures,
    HardwareCrossCheck,
    LineageRun,
    LineageTotals,
    MeterCounts,
    MeterFlops,
    ModelCounts,
)
from ftaudit.errors import BadInput, first_line
from ftaudit.io import atomic_write_text
from ftaudit.regulation.decision import OriginalCompute

METER_FILENAME = "ftaudit_meter.json"
LINEAGE_FILENAME = "ftaudit_lineage.json"
METER_FORMAT = "ftaudit-meter/1"
LINEAGE_FORMAT = "ftaudit-lineage/1"

Triple = tuple[float, float, float]  # (forward, backward, recompute)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------- FLOP rates
class _SequenceFlops(Protocol):
    forward: float
    backward: float
    recompute: float


class _FlopModel(Protocol):
    def sequence(self, seq_len: int) -> _SequenceFlops: ...


def _triple(sf: _SequenceFlops) -> Triple:
    return (float(sf.forward), float(sf.backward), float(getattr(sf, "recompute", 0.0) or 0.0))


class FlopRates:
    """Splits the estimator's per-sequence FLOPs into a per-token part, the LM head and an attention part.

    FLOP(sequence of length L) = a·L + attn(L): the matmuls of projections, MLP and head scale with tokens, the
    attention scores and weighted values with the sequence length (S² dense, capped by sliding windows). We take
    a and attn(2) from L = 1 and 2 (attention is quadratic up to any window ≥ 2): a = 2·f(1) − f(2)/2 with
    attn(1) = c, attn(2) = 4c; then attn(L) = f(L) − a·L for every L, which is exact for whatever attention
    shape the estimator models (when the estimator exposes `per_token` we use it and skip the solve). Padded
    rows run the per-token part on B×S tokens and the attention part on the lengths the kernel executes; the
    head runs only on the positions that get logits; a KV-cached decoding step attends its cached keys.
    """

    def __init__(self, flop_model: _FlopModel):
        self._fm = flop_model
        if getattr(flop_model, "per_token", None) is not None and hasattr(flop_model.per_token, "forward"):
            self.per_token: Triple = _triple(flop_model.per_token)  # the estimator states it: use it
        else:
            f1, f2 = _triple(flop_model.sequence(1)), _triple(flop_model.sequence(2))
            self.per_token = tuple(2 * a - b / 2 for a, b in zip(f1, f2, strict=True))  # type: ignore[assignment]
        head = getattr(flop_model, "head", None)
        self.head: Triple = _triple(head) if head is not None else (0.0, 0.0, 0.0)
        self.body: Triple = tuple(t - h for t, h in zip(self.per_token, self.head, strict=True))  # type: ignore
        self._attention = lru_cache(maxsize=65536)(self._attention_uncached)
        self._decode = lru_cache(maxsize=65536)(self._decode_uncached)

    def _attention_uncached(self, length: int) -> Triple:
        f = _triple(self._fm.sequence(length))
        return tuple(max(0.0, x - t * length) for x, t in zip(f, self.per_token, strict=True))  # type: ignore[return-value]

    def _decode_uncached(self, keys: int) -> Triple:
        step = getattr(self._fm, "decode_step", None)
        if step is not None:
            return _triple(step(keys))
        a1, a0 = self.attention(keys), self.attention(keys - 1)  # the causal row added by one more position
        return tuple(x - y for x, y in zip(a1, a0, strict=True))  # type: ignore[return-value]

    def attention(self, length: int) -> Triple:
        return self._attention(int(length)) if length > 0 else (0.0, 0.0, 0.0)

    def figures(self, counts: MeterCounts, *, effective: bool = False, backward: bool = True) -> FlopFigures:
        tokens = counts.tokens_effective if effective else counts.tokens_executed
        heads = tokens if counts.head_positions is None else counts.head_positions
        heads = min(heads, tokens) if effective else heads
        parts = [(self.body, tokens), (self.head, heads)]
        parts += [(self.attention(n), c) for n, c in
                  (counts.lengths_effective if effective else counts.lengths_executed).items()]
        parts += [(self._decode(int(k)), c) for k, c in counts.decode_keys.items()]
        fwd = math.fsum(r[0] * n for r, n in parts)
        bwd = math.fsum(r[1] * n for r, n in parts) if backward else 0.0
        rec = math.fsum(r[2] * n for r, n in parts) if backward else 0.0
        return FlopFigures(forward=fwd, backward=bwd, recompute=rec, total=fwd + bwd)


TRAINING_METHOD = (
    "architecture-based (guidelines Annex A.2): the estimator's per-token, LM-head and per-sequence-length matmul "
    "FLOPs applied to the tokens, logit positions and sequence lengths counted on every micro-batch of every rank; "
    "regulatory = the larger of executed (padding included) and effective (non-padding) = {basis}; "
    "gradient-checkpointing recompute excluded (guidelines Annex A.1)")
FORWARD_METHOD = (
    "architecture-based (guidelines Annex A.2): forward FLOPs only (no gradient), from the tokens, logit positions, "
    "sequence lengths and KV-cached key lengths counted on every call of every rank")


def meter_flops(counts: MeterCounts, rates: FlopRates | None, *, backward: bool = True) -> MeterFlops | None:
    if rates is None:
        return None
    executed = rates.figures(counts, backward=backward)
    effective = rates.figures(counts, effective=True, backward=backward)
    basis = "executed" if executed.total >= effective.total else "effective"
    return MeterFlops(executed=executed, effective=effective, regulatory=max(executed.total, effective.total),
                      method=TRAINING_METHOD.format(basis=basis) if backward else FORWARD_METHOD)


def add_counts(a: MeterCounts, b: MeterCounts) -> MeterCounts:
    def merge(x: dict[int, int], y: dict[int, int]) -> dict[int, int]:
        out = dict(x)
        for k, v in y.items():
            out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))

    return MeterCounts(
        micro_batches=a.micro_batches + b.micro_batches,
        optimizer_steps=a.optimizer_steps + b.optimizer_steps,
        tokens_executed=a.tokens_executed + b.tokens_executed,
        tokens_effective=a.tokens_effective + b.tokens_effective,
        sequences_executed=a.sequences_executed + b.sequences_executed,
        sequences_effective=a.sequences_effective + b.sequences_effective,
        lengths_executed=merge(a.lengths_executed, b.lengths_executed),
        lengths_effective=merge(a.lengths_effective, b.lengths_effective),
        head_positions=(None if a.head_positions is None and b.head_positions is None else
                        (a.head_positions if a.head_positions is not None else a.tokens_executed)
                        + (b.head_positions if b.head_positions is not None else b.tokens_executed)),
        decode_keys=merge(a.decode_keys, b.decode_keys),
    )


# ---------------------------------------------------------------------------------------------------- state
class ResumeEvent(BaseModel):
    """A resume from a checkpoint. The counts restart from the checkpoint's; steps after it are counted again
    because they are executed again. What the interrupted job metered past the checkpoint (as far as its last
    persisted state shows) is reported here and not added: those updates were discarded."""

    model_config = ConfigDict(extra="forbid")
    at: str
    from_step: int
    interrupted_at_step: int | None = None
    discarded_flops: float | None = Field(None, description="Metered past the checkpoint by the interrupted job "
                                          "(at most N steps short of what it really ran); not in the total.")


class MeterState(BaseModel):
    """Everything the meter knows about one run; the content of ftaudit_meter.json."""

    model_config = ConfigDict(extra="forbid")
    format: str = METER_FORMAT
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    status: str = Field("running", description="running | completed | stopped")
    started_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)
    global_step: int = 0
    world_size: int = 1
    output_dir: str | None = None
    training_seconds: float = 0.0
    model: ModelCounts = Field(default_factory=ModelCounts)
    counts: MeterCounts = Field(default_factory=MeterCounts)
    flops: MeterFlops | None = Field(None, description="The policy's training passes (forward and backward).")
    objective: str = Field("sft", description="sft | dpo | grpo")
    breakdown: list[ComputeLine] = Field(default_factory=list, description="Reference, generation, reward and "
                                         "value compute, each with what counts and why.")
    lineage: LineageTotals
    hardware: HardwareCrossCheck | None = None
    energy: EnergyEvidence | None = None
    original: OriginalCompute | None = Field(None, description="The original model's training compute as resolved "
                                             "by ftaudit.regulation.resolve_original (for the decision).")
    resumes: list[ResumeEvent] = Field(default_factory=list)
    stopped_by_gate: bool = False
    warnings: list[str] = Field(default_factory=list)

    @property
    def regulatory_flops(self) -> float:
        return math.fsum([self.flops.regulatory if self.flops else 0.0,
                          *(line.flops.regulatory for line in self.breakdown if line.counted)])

    def to_evidence(self, estimate: dict[str, Any] | None = None) -> ComputeEvidence:
        reg = self.regulatory_flops if self.flops else None
        return ComputeEvidence(
            estimate=estimate,
            model=self.model,
            counts=self.counts,
            flops=self.flops,
            hardware=self.hardware,
            energy=self.energy,
            lineage=self.lineage,
            training_seconds=self.training_seconds,
            world_size=self.world_size,
            objective=self.objective,
            breakdown=[line.model_copy(deep=True) for line in self.breakdown],
            regulatory_flops=reg,
            regulatory_flops_method=(self.regulatory_method() if self.flops else None),
            warnings=list(self.warnings),
        )


    def regulatory_method(self) -> str:
        counted = [line.role for line in self.breakdown if line.counted]
        left = [line.role for line in self.breakdown if not line.counted]
        text = self.flops.method if self.flops else ""
        if counted:
            text += "; plus " + ", ".join(counted) + " compute (forward only; see the breakdown)"
        if left:
            text += "; not counted: " + ", ".join(left) + " (auxiliary models, guidelines Annex A.1)"
        return text


def save_state(directory: str | Path, state: MeterState) -> Path:
    state.updated_at = utc_now()
    return atomic_write_text(Path(directory) / METER_FILENAME, state.model_dump_json(indent=2) + "\n")


def load_state(path: str | Path) -> MeterState:
    path = Path(path)
    if path.is_dir():
        path = path / METER_FILENAME
    try:
        return MeterState.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path}: no meter state here; pass the output dir of a run metered by ftaudit") from None
    except (ValidationError, ValueError) as exc:
        first = first_line(exc)
        raise BadInput(f"{path}: not a valid ftaudit meter state ({first})") from None


# ---------------------------------------------------------------------------------------------------- lineage
class LineageFile(BaseModel):
    """ftaudit_lineage.json: enough to continue a lineage from any directory a metered run wrote."""

    model_config = ConfigDict(extra="forbid")
    format: str = LINEAGE_FORMAT
    lineage_id: str
    runs: list[LineageRun]
    cumulative_flops: float
    updated_at: str = Field(default_factory=utc_now)


def cumulative(runs: Iterable[LineageRun]) -> float:
    seen: dict[str, float] = {}
    for run in runs:
        seen[run.run_id] = run.regulatory_flops  # a run listed twice counts once, at its latest figure
    return math.fsum(seen.values())


def read_lineage(directory: str | Path) -> LineageFile | None:
    path = Path(directory) / LINEAGE_FILENAME
    if not path.is_file():
        return None
    try:
        return LineageFile.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as exc:
        first = first_line(exc)
        raise BadInput(f"{path}: not a valid ftaudit lineage file ({first}); remove it or fix it") from None


def find_lineage(candidates: Iterable[str | Path | None]) -> tuple[Path, LineageFile] | None:
    """The first candidate directory that holds a lineage file (explicit parent first, then model paths)."""
    for cand in candidates:
        if not cand:
            continue
        path = Path(cand)
        if path.is_dir():
            found = read_lineage(path)
            if found is not None:
                return path, found
    return None


def start_lineage(run_id: str, parent: tuple[Path, LineageFile] | None) -> tuple[LineageTotals, list[str]]:
    """The lineage of a new run: the parent's runs (if any) plus this one at zero FLOP."""
    warnings: list[str] = []
    if parent is None:
        return LineageTotals(lineage_id=uuid.uuid4().hex, runs=[LineageRun(run_id=run_id, regulatory_flops=0.0)],
                             ancestors_flops=0.0, cumulative_flops=0.0), warnings
    path, lf = parent
    ancestors = [r for r in lf.runs if r.run_id != run_id]
    total = cumulative(ancestors)
    if not math.isclose(total, lf.cumulative_flops, rel_tol=1e-9, abs_tol=1.0):
        warnings.append(f"lineage file {path / LINEAGE_FILENAME}: cumulative_flops {lf.cumulative_flops:.6g} does "
                        f"not equal the sum of its runs {total:.6g}; using the sum")
    runs = ancestors + [LineageRun(run_id=run_id, regulatory_flops=0.0)]
    return LineageTotals(lineage_id=lf.lineage_id, parent_path=str(path), runs=runs, ancestors_flops=total,
                         cumulative_flops=total), warnings


def update_lineage(lineage: LineageTotals, run_id: str, flops: float, *, finished: bool,
                   output_dir: str | None, started_at: str | None) -> LineageTotals:
    runs = [r for r in lineage.runs if r.run_id != run_id]
    runs.append(LineageRun(run_id=run_id, regulatory_flops=flops, finished=finished, output_dir=output_dir,
                           started_at=started_at, updated_at=utc_now()))
    return lineage.model_copy(update={"runs": runs, "cumulative_flops": cumulative(runs)})


def write_lineage(directory: str | Path, lineage: LineageTotals) -> Path:
    lf = LineageFile(lineage_id=lineage.lineage_id, runs=lineage.runs, cumulative_flops=cumulative(lineage.runs))
    return atomic_write_text(Path(directory) / LINEAGE_FILENAME, lf.model_dump_json(indent=2) + "\n")


def state_from_json(obj: dict) -> MeterState:
    """A state embedded elsewhere (the Trainer's stateful-callback slot in trainer_state.json)."""
    try:
        return MeterState.model_validate_json(json.dumps(obj))
    except (ValidationError, ValueError) as exc:
        first = first_line(exc)
        raise BadInput(f"checkpoint meter state is not valid ({first})") from None
