"""Run records for the document tests (fixtures in conftest.py), built from the real models of every section: a
data scan of a file with planted (fake) personal data, compute evidence, a decision from `decide`, evaluation
evidence. Also used by benchmarks/documents_render.py."""

from __future__ import annotations

import json
from pathlib import Path

from ftaudit.compute.evidence import (
    ComputeEvidence,
    EnergyEvidence,
    FlopFigures,
    GpuUsage,
    HardwareCrossCheck,
    LineageRun,
    LineageTotals,
    MeterCounts,
    MeterFlops,
    ModelCounts,
)
from ftaudit.evaluation.evidence import (
    Comparison,
    Decoding,
    Estimate,
    EvaluationEvidence,
    GateResult,
    GroupResult,
    MemorisationStatement,
    ModelUnderTest,
    ProbeFamily,
    ProbeSet,
)
from ftaudit.pipeline.config import config_from_dict
from ftaudit.record import Artefact, Environment, Lineage, ModelIdentity, RunRecord
from ftaudit.regulation import OriginalCompute, decide

# Fake personal data planted in the training file: none of it may reach a document.
PLANTED = ["Marta Kowalczyk", "marta.kowalczyk@example.org", "+44 20 7946 0958", "DE89370400440532013000",
           "Kowalczyk"]
FLOPS = 1.2345e22


def _data_files(d: Path) -> tuple[Path, Path]:
    rows = [{"prompt": f"Message {i}: call me back, I am Marta Kowalczyk, mail marta.kowalczyk@example.org, phone "
                       f"+44 20 7946 0958, IBAN DE89370400440532013000. Order A-{1000 + i}",
             "completion": '{"intent": "callback"}'} for i in range(12)]
    rows += [{"prompt": f"Where is my order B-{i}? It is {i} days late.", "completion": '{"intent": "order_status"}'}
             for i in range(30)]
    train, ev = d / "support_train.jsonl", d / "support_eval.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ev.write_text("\n".join(json.dumps(r) for r in rows[12:16]) + "\n")
    return train, ev


def _cmp(metric, desc, unit, hib, base, tuned, n=40, ci=True):
    def e(v):
        return Estimate(value=v, n=n, ci_low=v - 0.05 if ci else None, ci_high=v + 0.05 if ci else None,
                        ci_method="Wilson 95%" if ci else None)
    return Comparison(metric=metric, description=desc, unit=unit, higher_is_better=hib, base=e(base), tuned=e(tuned),
                      delta=tuned - base)


def _evaluation() -> EvaluationEvidence:
    task = ProbeFamily(suite="quality", name="task", description="held-out task metrics", probe_sets=[
        ProbeSet(name="support_eval", source="support_eval.jsonl", sha256="a" * 64, items=40)],
        metrics=[_cmp("quality.task.field_accuracy", "JSON fields reproduced", "ratio", True, 0.31, 0.8),
                 _cmp("quality.task.exact_match", "exact answers", "rate", True, 0.05, 0.62),
                 _cmp("quality.task.perplexity", "perplexity of references", "perplexity", False, 18.0, 3.1,
                      ci=False)],
        groups=[GroupResult(axis="language", group="en", metrics=[
            _cmp("quality.task.field_accuracy", "JSON fields reproduced", "ratio", True, 0.3, 0.82)]),
            GroupResult(axis="language", group="de", metrics=[
                _cmp("quality.task.field_accuracy", "JSON fields reproduced", "ratio", True, 0.2, 0.61)])])
    general = ProbeFamily(suite="quality", name="general", description="general probes",
                          metrics=[_cmp("quality.general.accuracy", "general probes", "rate", True, 0.55, 0.51)])
    bias = ProbeFamily(suite="bias", name="counterfactual_likelihood", description="counterfactual pairs",
                       metrics=[_cmp("bias.likelihood.gap.gender", "largest gap", "score", False, 0.12, 0.2,
                                     ci=False)])
    toxic = ProbeFamily(suite="unexpected", name="toxicity", description="toxicity",
                        metrics=[_cmp("unexpected.toxicity.rate", "toxic completions", "rate", False, 0.0, 0.025)])
    mem = ProbeFamily(suite="memorisation", name="prefix_extraction", description="prefix extraction",
                      metrics=[_cmp("memorisation.extraction.rate", "PII reproduced", "rate", False, 0.0, 0.0)])
    skipped = ProbeFamily(suite="memorisation", name="canary_exposure", description="canaries", status="skipped",
                          reason="no canaries were inserted")
    return EvaluationEvidence(
        suites=["quality", "bias", "unexpected", "memorisation"],
        models=[ModelUnderTest(role="base", spec="base", kind="directory", context_window=8192, dtype="float32",
                               parameters=134515008),
                ModelUnderTest(role="tuned", spec="tuned", kind="adapter", context_window=8192, dtype="float32",
                               parameters=134515008)],
        decoding=Decoding(do_sample=False, max_new_tokens=64, seed=0, batch_size=8, prompt_format="chat"),
        families=[task, general, bias, toxic, mem, skipped],
        gates=[GateResult(metric="quality.task.field_accuracy", rule="min", threshold=0.7, tuned=0.8, observed=0.8,
                          passed=True, message="ok")],
        approved=True,
        memorisation_statement=MemorisationStatement(tested="prefix extraction of 12 items", found="0 reproduced",
                                                     shows="no verbatim extraction at greedy decoding",
                                                     does_not_show="resistance to stronger attacks"),
        versions={"torch": "2.13.0+cpu", "transformers": "5.24.0"})


def _compute() -> ComputeEvidence:
    fig = FlopFigures(forward=FLOPS / 3, backward=2 * FLOPS / 3, total=FLOPS)
    return ComputeEvidence(
        model=ModelCounts(name="SmolLM2-135M", method="lora", n_parameters=134515008, n_trainable_parameters=921600),
        counts=MeterCounts(micro_batches=40, optimizer_steps=10, tokens_executed=52000, tokens_effective=48000),
        flops=MeterFlops(executed=fig, effective=fig, regulatory=FLOPS, method="architecture-based"),
        hardware=HardwareCrossCheck(available=True, statement="1 GPU sampled by NVML", n_gpus=1, gpu_seconds=600,
                                    gpus=[GpuUsage(name="NVIDIA H100 80GB HBM3", dtype="bf16", seconds=600,
                                                   energy_kwh=0.11)]),
        energy=EnergyEvidence(kwh=0.1234, kind="measured", method="NVML energy counter", seconds=600),
        lineage=LineageTotals(lineage_id="lin-1", runs=[LineageRun(run_id="r0", regulatory_flops=FLOPS / 2,
                                                                   finished=True),
                                                        LineageRun(run_id="r1", regulatory_flops=FLOPS / 2)],
                              cumulative_flops=FLOPS),
        training_seconds=600.0, world_size=1, regulatory_flops=FLOPS,
        regulatory_flops_method="architecture-based (guidelines Annex A.2)")


def full_record(tmp: Path, *, purpose: str = "extract order fields from customer support messages",
                decision=None) -> RunRecord:
    from ftaudit.data.scan import ScanOptions, scan

    train, ev = _data_files(tmp)
    cfg = config_from_dict({
        "name": "support-extractor",
        "base_model": {"id": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        "datasets": [{"path": str(train), "name": "support-messages", "provenance": "synthetic demo generator",
                      "licence": "Apache-2.0"}],
        "eval_datasets": [{"path": str(ev)}],
        "purpose": {"intended_purpose": purpose, "deployment_context": "internal support tooling"},
        "provider": {"name": "Example Org", "contact": "ml-compliance@example.com", "established_in_eu": True},
    }, base_dir=tmp)
    data = scan([train], eval_paths=[ev], options=ScanOptions(ner=False))
    return RunRecord(
        status="completed",
        model=ModelIdentity(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", output_name="support-extractor"),
        lineage=Lineage(lineage_id="lin-1"),
        config=cfg.as_dict(),
        environment=Environment(python="3.11.7", packages={"ftaudit": "0.1.0", "torch": "2.13.0+cpu",
                                                           "peft": "0.21.2"}),
        compute=_compute(),
        decision=decision or decide(FLOPS, OriginalCompute(None, "unknown")),
        data=data,
        evaluation=_evaluation(),
        artefacts=[Artefact(path="model/adapter_model.safetensors", sha256="b" * 64, kind="adapter", bytes=10)],
    )


def write_run(run_dir: Path, record: RunRecord) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    record.save(run_dir)
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "train.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 2.0 / s, "lineage_flops": FLOPS * s / 10, "num_input_tokens_seen": 5200 * s})
        + "\n" for s in range(1, 11)))
    return run_dir
