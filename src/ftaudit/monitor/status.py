"""Live figures of a deployment from its events, each beside its baseline from the run's own training-time
evaluation where one exists (Art. 72(1)-(2): post-market monitoring in proportion to the risks, analysing the
system's performance; docs/monitor.md lists the pairs and what they compare)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from ftaudit.evaluation.stats import wilson
from ftaudit.monitor.checks import FLAGS
from ftaudit.monitor.drift import DriftReport, drift

# flag -> (evaluation metric, whether the live rate is the metric itself or its complement)
BASELINES = {
    "personal_data": ("unexpected.personal_data.rate", False),
    "canary": ("memorisation.canary.detected_rate", False),
    "format": ("quality.task.json_validity", True),
}


class Figure(BaseModel):
    name: str
    value: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    baseline: float | None = None
    baseline_metric: str | None = None
    unit: str = "rate"


class LiveStatus(BaseModel):
    deployment: str
    run_id: str | None
    requests: int
    answered: int
    errors: int
    suspended_answers: int
    first: str | None
    last: str | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    ttft_ms_p50: float | None
    figures: list[Figure]
    feedback: int
    probe_requests: int = 0
    drift: DriftReport | None = None
    probes: list[dict] = []


def _quantile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _rate(name: str, hits: int, n: int, **kw: Any) -> Figure:
    lo, hi = wilson(hits, n) if n else (None, None)
    return Figure(name=name, value=hits / n if n else None, n=n, ci_low=lo, ci_high=hi, **kw)


def baselines(record) -> dict[str, float]:
    """Tuned-model values of the run's evaluation, by metric name."""
    if record is None or record.evaluation is None:
        return {}
    return {m.metric: m.tuned.value for f in record.evaluation.families for m in f.metrics
            if m.tuned.value is not None}


def flag_baseline(flag: str, base: dict[str, float]) -> tuple[str | None, float | None]:
    """(evaluation metric, its value as a rate of the flag) where the run's evaluation measured the same thing."""
    metric, complement = BASELINES.get(flag, (None, False))
    value = base.get(metric) if metric else None
    if value is None:
        return None, None
    return metric, 1 - value if complement else value


def live_status(events: Iterable[dict], *, deployment: str, run_id: str | None, record=None,
                baseline_n: int = 200, recent_n: int = 200, training=None) -> LiveStatus:
    base = baselines(record)
    requests = answered = errors = suspended = feedback = probes = 0
    kept: list[dict] = []
    correct = labelled = 0
    flags = dict.fromkeys(FLAGS, 0)
    latency, ttft = [], []
    first = last = None
    for e in events:
        if e["kind"] == "feedback":
            feedback += 1
            if e.get("label"):
                labelled += 1
                correct += e["label"] == "correct"
            continue
        if e.get("probe"):
            probes += 1
            continue
        requests += 1
        first = first or e["time"]
        last = e["time"]
        if e["error"] == "suspended":
            suspended += 1
            continue
        if e["status"] >= 400 or e["error"]:
            errors += 1
            continue
        if e["route"] == "/v1/models":
            continue
        answered += 1
        kept.append({"input_chars": e["input_chars"], "output_chars": e["output_chars"], "flags": e["flags"],
                     "input_language": e.get("input_language")})
        latency.append(e["latency_ms"])
        if e.get("ttft_ms") is not None:
            ttft.append(e["ttft_ms"])
        for f in e["flags"]:
            flags[f] += 1
    figures = [_rate("errors", errors, requests - suspended)]
    for name, hits in flags.items():
        metric, value = flag_baseline(name, base)
        figures.append(_rate(f"output.{name}", hits, answered, baseline=value, baseline_metric=metric))
    figures.append(_rate("feedback.correct", correct, labelled, baseline=base.get("quality.task.exact_match"),
                         baseline_metric="quality.task.exact_match" if "quality.task.exact_match" in base else None))
    return LiveStatus(deployment=deployment, run_id=run_id, requests=requests, answered=answered, errors=errors,
                      suspended_answers=suspended, first=first, last=last,
                      latency_ms_p50=_quantile(latency, 0.5), latency_ms_p95=_quantile(latency, 0.95),
                      ttft_ms_p50=_quantile(ttft, 0.5), figures=figures, feedback=feedback, probe_requests=probes,
                      drift=drift(kept, baseline_n=baseline_n, recent_n=recent_n, training=training))
