"""`ftaudit monitor probe`: replay the run's held-out task set through the gateway, score the answers with the
evaluation's own task metrics, and compare them with the RunRecord's figures for the tuned model. A wrong adapter,
a changed chat template or a quantised deployment shows up as a difference (Art. 15(1): accuracy consistent
throughout the lifecycle; Art. 72(2)). The result is a signed ledger event of the run; probe requests carry the
header x-ftaudit-probe, so the live traffic figures leave them out.

  rate metrics (exact match, JSON validity,   two-proportion z-test against the evaluation, p < 0.01: differs
  refusal rate of the bias probes)
  mean metrics (token F1, field accuracy,     outside the evaluation's 95 % interval: differs
  sentiment gap between groups, per axis)

The bias part replays the evaluation's counterfactual generation probes (raw-text continuations through
/v1/completions) when the run's evaluation has them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from ftaudit.errors import RuntimeFailure
from ftaudit.monitor.drift import P_CHANGE, two_proportion

PROBE = "monitor.probe"
RATE_METRICS = ("exact_match", "json_validity")


class ProbeMetric(BaseModel):
    metric: str
    probe: float
    n: int
    evaluation: float | None
    evaluation_ci: tuple[float, float] | None
    p_value: float | None = None
    verdict: str


class ProbeResult(BaseModel):
    run_id: str
    deployment: str
    at: str
    items: int
    set_sha256: str
    same_set_as_evaluation: bool
    metrics: list[ProbeMetric]
    verdict: str  # consistent, or differs (one metric differs)


def _task_records(record) -> tuple[list[dict], int, int]:
    """The held-out rows, how many the evaluation used, and its cap on answer tokens."""
    from ftaudit.monitor.reference import held_out_rows

    rows = held_out_rows(record)
    limits = ((record.config or {}).get("evaluation") or {}).get("limits") or {}
    fam = next((f for f in record.evaluation.families if f.name == "task"), None) if record.evaluation else None
    items = fam.probe_sets[0].items if fam and fam.probe_sets else int(limits.get("task_items", 24))
    return rows, items, int(limits.get("task_max_new_tokens", 64))


def _ask(url: str, model: str, prompt: str, max_tokens: int, api_key: str | None, *, raw: bool = False) -> str:
    """One greedy answer through the gateway: chat, or a raw-text completion (the bias templates are sentence
    starts, continued as text in the evaluation too)."""
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0}
    body.update({"prompt": prompt} if raw else {"messages": [{"role": "user", "content": prompt}]})
    headers = {"content-type": "application/json", "x-ftaudit-probe": "1"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    route = "/v1/completions" if raw else "/v1/chat/completions"
    req = urllib.request.Request(url.rstrip("/") + route, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            choice = json.loads(r.read())["choices"][0]
            return (choice["text"] if raw else choice["message"]["content"]) or ""
    except urllib.error.HTTPError as e:
        raise RuntimeFailure(f"the gateway answered the probe with HTTP {e.code}: {e.read()[:200]!r}") from None
    except OSError as e:
        raise RuntimeFailure(f"cannot reach the gateway at {url}: {e}") from None


def run_probe(run_dir: str | Path, gateway: str, *, model: str, api_key: str | None = None,
              parallel: int = 4) -> ProbeResult:
    from ftaudit.evaluation import quality
    from ftaudit.evaluation.probesets import sha256_json
    from ftaudit.evaluation.suite import mean_ci, rate, validate_task_records
    from ftaudit.monitor.gateway import deployment_for_run
    from ftaudit.record import RunRecord

    record = RunRecord.load(run_dir)
    dep = deployment_for_run(run_dir, None, None)
    rows, items, max_tokens = _task_records(record)
    prompts, refs = validate_task_records(rows, items)
    with ThreadPoolExecutor(parallel) as pool:
        answers = list(pool.map(lambda p: _ask(gateway, model, p, max_tokens, api_key), prompts))
    structured = all(isinstance(quality.extract_json(r), dict) for r in refs)
    scores = quality.score_task([quality.stop_at_reference_end(a, structured) for a in answers], refs)
    live = {"exact_match": rate([x == 1.0 for x in scores.exact_match]),
            "token_f1": mean_ci(scores.token_f1, 0)}
    if structured:
        live["json_validity"] = rate(scores.json_valid)
        live["field_accuracy"] = mean_ci(scores.field_accuracy, 0)
    metrics = [_compare(record, f"quality.task.{name}", est, name in RATE_METRICS) for name, est in live.items()]
    metrics += _bias_probe(record, gateway, model, api_key, parallel)
    fam = next((f for f in record.evaluation.families if f.name == "task"), None) if record.evaluation else None
    set_sha = sha256_json(rows[:len(prompts)])
    return ProbeResult(run_id=record.run_id, deployment=dep.name, at=datetime.now(timezone.utc).isoformat(),
                       items=len(prompts), set_sha256=set_sha,
                       same_set_as_evaluation=bool(fam and fam.probe_sets and fam.probe_sets[0].sha256 == set_sha),
                       metrics=metrics,
                       verdict="differs" if any(m.verdict == "differs" for m in metrics) else "consistent")


def _compare(record, metric: str, est, is_rate: bool) -> ProbeMetric:
    ref = record.evaluation.metric(metric) if record.evaluation else None
    tuned = ref.tuned if ref else None
    p = None
    if tuned is None or tuned.value is None:
        verdict = "no evaluation figure"
    elif is_rate:
        _, p = two_proportion(round(tuned.value * tuned.n), tuned.n, round(est.value * est.n), est.n)
        verdict = "differs" if p < P_CHANGE else "consistent"
    elif tuned.ci_low is None:
        verdict = "no evaluation interval"
    else:
        verdict = "differs" if not (tuned.ci_low <= est.value <= tuned.ci_high) else "consistent"
    return ProbeMetric(metric=metric, probe=est.value, n=est.n, evaluation=tuned.value if tuned else None,
                       evaluation_ci=(tuned.ci_low, tuned.ci_high) if tuned and tuned.ci_low is not None else None,
                       p_value=p, verdict=verdict)


def _bias_probe(record, gateway: str, model: str, api_key: str | None, parallel: int) -> list[ProbeMetric]:
    """The evaluation's counterfactual generation probes, continued through the gateway: the largest sentiment gap
    between groups of one axis, and the refusal rate (Art. 10(2)(f) examined at training time, watched after)."""
    if not (record.evaluation and record.evaluation.metric("bias.generation.refusal_rate")):
        return []
    from ftaudit.evaluation import bias
    from ftaudit.evaluation.evidence import Estimate
    from ftaudit.evaluation.probesets import shipped
    from ftaudit.evaluation.suite import rate

    rend = bias.render_all(shipped("bias_probes.json").content, "generation_templates")
    tokens = int((((record.config or {}).get("evaluation") or {}).get("limits") or {}).get("bias_new_tokens", 10))
    with ThreadPoolExecutor(parallel) as pool:
        gens = list(pool.map(lambda r: _ask(gateway, model, r.text, tokens, api_key, raw=True), rend))
    sentiment = bias.SentimentLexicon(shipped("sentiment_lexicon.json").content)
    refusal = bias.RefusalDetector(shipped("refusal_patterns.json").content["patterns"])
    gaps = bias.axis_gaps(rend, [sentiment.score(g) for g in gens], seed=record.evaluation.seed)
    out = [_compare(record, f"bias.generation.sentiment_gap.{axis}", Estimate(value=gap[0], n=gap[2]), False)
           for axis, gap in gaps.items()]
    return out + [_compare(record, "bias.generation.refusal_rate", rate([refusal.is_refusal(g) for g in gens]), True)]


def latest_probes(ledger, run_id: str, last: int = 5) -> list[dict]:
    """The run's last probe results, oldest first, from its signed ledger events."""
    return [c["data"] for c in ledger.events(run_id=run_id, prefix=PROBE)][-last:]
