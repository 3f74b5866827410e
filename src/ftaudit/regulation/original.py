"""Where the original model's training compute comes from: one order, used by every entry point.

`ftaudit estimate`, `ftaudit train` (preflight), the Trainer callback (`flops_meter.json`) and `ftaudit status` all
call `resolve_original`, so one run directory never carries two verdicts. The order:

1. an explicit figure (`--original-flops`, `compute_policy.original_flops`, `FlopsMeterCallback(original_flops=)`);
2. the environment variable `PRETRAIN_FLOPS` (the seed meter's name for it);
3. the base-model registry entry of the model id (every public estimate, `original_estimate` picks one);
4. unknown (the fallback thresholds of guidelines §3.2).

An explicit figure or PRETRAIN_FLOPS is taken as reported ("known") unless its status is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ftaudit.errors import BadInput
from ftaudit.numbers import parse_number
from ftaudit.regulation.decision import OriginalCompute
from ftaudit.regulation.registry import load_registry, lookup

PRETRAIN_FLOPS = "PRETRAIN_FLOPS"


def pretrain_flops(env: Mapping[str, str] | None = None) -> float | None:
    """PRETRAIN_FLOPS as a number; None when unset or empty; BadInput when it is not a positive finite number."""
    raw = (os.environ if env is None else env).get(PRETRAIN_FLOPS, "").strip()
    return parse_number(raw, PRETRAIN_FLOPS) if raw else None


def resolve_original(*, flops: float | None = None, status: str | None = None, source: str | None = None,
                     systemic_risk: bool | None = None, is_gpai: bool | None = None, estimate: str | None = None,
                     model_id: str | None = None, strict_id: bool = False,
                     env: Mapping[str, str] | None = None) -> OriginalCompute:
    """The original's compute in the one order above.

    `systemic_risk` and `is_gpai` (the user's base_is_gpai) override what the registry says; `estimate` picks one
    registry estimate. With `strict_id`, a model id that is not in the registry is BadInput (a typo in an explicit
    registry id must not silently become "unknown").
    """
    systemic = bool(systemic_risk)
    if flops is not None:
        value = parse_number(flops, source or "original_flops")
        return OriginalCompute(value, status or "known", systemic_risk=systemic, is_gpai=is_gpai,
                               source=source or "original_flops")
    env_flops = pretrain_flops(env)
    if env_flops is not None:
        return OriginalCompute(env_flops, "known", systemic_risk=systemic, is_gpai=is_gpai,
                               source=f"{PRETRAIN_FLOPS} environment variable")
    entry = None
    if model_id:
        entry = lookup(model_id) if strict_id else load_registry().get(model_id)
    if entry is not None:
        return entry.original_compute(choice=estimate, is_gpai=is_gpai, systemic_risk=systemic_risk)
    if estimate is not None:
        raise BadInput(f"original_estimate '{estimate}' needs a base model in the base-model registry; "
                       f"{model_id or 'this model'} is not in it")
    return OriginalCompute(None, "unknown", systemic_risk=systemic, is_gpai=is_gpai,
                           source=f"{model_id or 'the model'} is not in the base-model registry and no original "
                                  f"compute was given (original_flops or {PRETRAIN_FLOPS})")
