"""`ftaudit status RUN_DIR [--json]`: the compute a metered run has used so far, during or after it.

Reads `RUN_DIR/ftaudit_meter.json` (written by the meter every N steps) or, failing that, the compute section of
`RUN_DIR/run_record.json`; judges the lineage total with `ftaudit.regulation.decide`. No torch import.
"""

from __future__ import annotations

from ftaudit.cli.estimate import add_base_options


def register(sub) -> None:
    p = sub.add_parser("status", help="compute, lineage total and decision of a running or finished metered run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run's output dir (holds ftaudit_meter.json)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--original-flops", default=None, metavar="FLOP",
                   help="training FLOP of the original model (default: PRETRAIN_FLOPS, the run's figure, the registry)")
    add_base_options(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    import json
    from datetime import datetime, timezone
    from pathlib import Path

    from ftaudit.compute import aws_meter_file
    from ftaudit.compute.meter import METER_FILENAME, load_state
    from ftaudit.errors import BadInput

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: not a directory; pass the output dir of a metered run")
    if (run_dir / METER_FILENAME).is_file():
        state = load_state(run_dir)
    elif (run_dir / "run_record.json").is_file():
        state = _state_from_record(run_dir)
    else:
        raise BadInput(f"{run_dir}: no {METER_FILENAME} or run_record.json here; pass the output dir of a run "
                       "metered by ftaudit")
    state.original = _original(args, state)
    decision = aws_meter_file.decision_for(state)
    age = None
    try:
        updated = datetime.fromisoformat(state.updated_at)
        age = (datetime.now(timezone.utc) - updated).total_seconds()
    except ValueError:
        pass
    doc = _document(state, decision, age)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(_text(state, decision, age))
    return 0


def _original(args, state):
    """--original-flops, else PRETRAIN_FLOPS, else what the run recorded, else the registry (one order,
    ftaudit.regulation.resolve_original); --base-is-gpai and --original-estimate apply to any of them."""
    from ftaudit.regulation import resolve_original
    from ftaudit.regulation.original import pretrain_flops

    recorded = state.original
    is_gpai = args.base_is_gpai if args.base_is_gpai is not None else recorded and recorded.is_gpai
    estimate = args.original_estimate or (recorded and recorded.estimate_choice)
    if recorded is not None and args.original_flops is None and pretrain_flops() is None:
        return type(recorded)(**{**recorded.model_dump(), "is_gpai": is_gpai, "estimate_choice": estimate})
    return resolve_original(flops=args.original_flops,
                            source="--original-flops" if args.original_flops is not None else None,
                            is_gpai=is_gpai, estimate=estimate, model_id=state.model.name)


def _state_from_record(run_dir):
    from ftaudit.compute.evidence import ModelCounts
    from ftaudit.compute.meter import MeterState
    from ftaudit.errors import BadInput
    from ftaudit.record import RunRecord

    record = RunRecord.load(run_dir)
    c = record.compute
    if c is None or c.lineage is None:
        raise BadInput(f"{run_dir}/run_record.json has no metered compute section yet")
    return MeterState(run_id=record.run_id, status=record.status, started_at=record.created_at.isoformat(),
                      updated_at=record.updated_at.isoformat(), model=c.model or ModelCounts(),
                      counts=c.counts or MeterState.model_fields["counts"].default_factory(), flops=c.flops,
                      lineage=c.lineage, hardware=c.hardware, energy=c.energy,
                      training_seconds=c.training_seconds or 0.0, world_size=c.world_size or 1,
                      warnings=list(c.warnings), original=record.decision.original if record.decision else None)


def _document(state, decision, age) -> dict:
    counts = state.counts.model_dump(exclude={"lengths_executed", "lengths_effective"})
    return {
        "run_id": state.run_id,
        "status": state.status,
        "global_step": state.global_step,
        "updated_at": state.updated_at,
        "seconds_since_update": age,
        "training_seconds": state.training_seconds,
        "world_size": state.world_size,
        "model": state.model.model_dump(exclude={"setup"}),
        "counts": counts,
        "flops": state.flops.model_dump() if state.flops else None,
        "regulatory_flops": state.regulatory_flops if state.flops else None,
        "lineage": state.lineage.model_dump(),
        "decision": decision.model_dump(mode="json"),
        "hardware": state.hardware.model_dump() if state.hardware else None,
        "energy": state.energy.model_dump() if state.energy else None,
        "resumes": [r.model_dump() for r in state.resumes],
        "stopped_by_gate": state.stopped_by_gate,
        "warnings": state.warnings,
    }


def _text(state, decision, age) -> str:
    from ftaudit.regulation.figures import flops2, percent2

    c = state.counts
    lines = []
    when = f"updated {state.updated_at}" + (f" ({age:.0f} s ago)" if age is not None else "")
    lines.append(f"run       {state.run_id}  {state.status}, step {state.global_step}, {when}")
    m = state.model
    if m.n_parameters is not None:
        lines.append(f"model     {m.name or '?'}: {m.method}, {m.n_parameters:,} parameters, "
                     f"{m.n_trainable_parameters:,} trainable")
    pad = 1 - c.tokens_effective / c.tokens_executed if c.tokens_executed else 0.0
    lines.append(f"tokens    {c.tokens_executed:,} executed, {c.tokens_effective:,} effective "
                 f"({percent2(pad)} padding), {c.micro_batches:,} micro-batches")
    if state.flops:
        f = state.flops
        lines.append(f"FLOP      regulatory {flops2(f.regulatory)} (executed {flops2(f.executed.total)}, effective "
                     f"{flops2(f.effective.total)}; checkpointing recompute {flops2(f.executed.recompute)} "
                     "excluded, guidelines Annex A.1)")
    else:
        lines.append("FLOP      not metered (no FLOP model for this model; see warnings)")
    lin = state.lineage
    lines.append(f"lineage   {lin.lineage_id}: {len(lin.runs)} run(s), cumulative {flops2(lin.cumulative_flops)} FLOP "
                 f"(earlier runs {flops2(lin.ancestors_flops)})")
    lines.append(f"decision  {decision.role}: threshold {flops2(decision.threshold_flops)} FLOP "
                 f"({decision.threshold_basis}, {decision.citation}); headroom "
                 f"{percent2(decision.headroom_fraction)}"
                 + ("; the ±30 % margin straddles the threshold" if decision.margin_straddles else ""))
    hw = state.hardware
    if hw is not None:
        line = f"hardware  {hw.statement}"
        if hw.flops_measured_utilisation is not None:
            line += (f"; N·L·H·U {flops2(hw.flops_measured_utilisation)} FLOP, U=1 bound "
                     f"{flops2(hw.flops_upper_bound or 0.0)}")
        lines.append(line)
    e = state.energy
    if e is not None and e.kwh is not None:
        lines.append(f"energy    {e.kwh:.2g} kWh ({e.method})")
    for r in state.resumes:
        lines.append(f"resumed   from step {r.from_step}" + (
            f"; the interrupted job had metered to step {r.interrupted_at_step}, "
            f"{flops2(r.discarded_flops or 0.0)} FLOP discarded (not counted)" if r.interrupted_at_step else ""))
    if state.stopped_by_gate:
        lines.append("stopped   by the compute gate")
    for w in state.warnings:
        lines.append(f"warning   {w}")
    return "\n".join(lines)
