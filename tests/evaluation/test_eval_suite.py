"""The whole evaluation on tiny models: every family, base vs tuned, gates, CLI exit codes, no personal data out."""

import json

import pytest
from eval_fixtures import PII_RECORDS, TASK_RECORDS, regex_detector

from ftaudit.cli import main
from ftaudit.errors import EVALUATION_GATE_FAILED, BadInput, EvaluationGateFailed
from ftaudit.evaluation import unexpected
from ftaudit.evaluation.gates import Gate, apply_gates, parse_config, raise_for_gates
from ftaudit.evaluation.models import load_pair
from ftaudit.evaluation.suite import EvaluationInputs, evaluate_models
from ftaudit.evaluation.unexpected import SafetyVerdict
from ftaudit.record import RunRecord

SMALL = {"limits": {"canary_references": 60}, "decoding": {"max_new_tokens": 16}}


@pytest.fixture(scope="module")
def evidence(tiny):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(unexpected, "personal_data_detector", lambda ner=None: regex_detector)
        base, tuned = load_pair(tiny["base"], tiny["tuned"])
        inputs = EvaluationInputs(
            task_records=TASK_RECORDS,
            task_source="task.jsonl",
            training_records=tiny["training"],
            canaries=tiny["manifest"],
        )
        return evaluate_models(base, tuned, inputs, parse_config(SMALL))


def _m(ev, name):
    m = ev.metric(name)
    assert m is not None, name
    return m


def test_every_family_ran_with_fingerprints(evidence):
    assert evidence.suites == ["quality", "bias", "unexpected", "memorisation"]
    names = {(f.suite, f.name): f for f in evidence.families}
    assert set(names) == {
        ("quality", "task"),
        ("quality", "general"),
        ("quality", "perplexity"),
        ("bias", "counterfactual_likelihood"),
        ("bias", "counterfactual_generation"),
        ("unexpected", "toxicity"),
        ("unexpected", "harmful_requests"),
        ("unexpected", "personal_data_in_outputs"),
        ("memorisation", "canary_exposure"),
        ("memorisation", "prefix_extraction"),
    }
    assert all(f.status == "ok" for f in evidence.families)
    assert all(len(ps.sha256) == 64 for f in evidence.families for ps in f.probe_sets)
    assert (
        evidence.decoding.do_sample is False
        and evidence.decoding.seed == 0
        and evidence.decoding.padding_side == "left"
    )
    assert {m.role for m in evidence.models} == {"base", "tuned"} and evidence.versions["torch"]


def test_base_vs_tuned_move_in_the_expected_direction(evidence):
    fa = _m(evidence, "quality.task.field_accuracy")
    assert fa.tuned.value > fa.base.value and fa.delta > 0.5  # the tuned model learnt the task
    assert _m(evidence, "quality.task.perplexity").tuned.value < _m(evidence, "quality.task.perplexity").base.value
    assert _m(evidence, "memorisation.canary.detected_rate").tuned.value == 1.0
    assert _m(evidence, "memorisation.canary.detected_rate").base.value == 0.0
    assert _m(evidence, "memorisation.canary.unseen_detected_rate").tuned.value == 0.0
    ex = _m(evidence, "memorisation.extraction.rate")
    assert ex.tuned.value > ex.base.value and ex.tuned.n == len(PII_RECORDS)
    st = evidence.memorisation_statement
    assert "2 of 2 inserted canaries" in st.found and "EDPB" in st.does_not_show


def test_bias_reports_every_group_with_intervals(evidence):
    lik = next(f for f in evidence.families if f.name == "counterfactual_likelihood")
    assert len(lik.groups) == 23
    for g in lik.groups:
        est = g.metrics[0].tuned
        assert est.n == 8 and est.ci_low <= est.value <= est.ci_high
    gen = next(f for f in evidence.families if f.name == "counterfactual_generation")
    assert {m.metric for m in gen.groups[0].metrics} == {"bias.generation.sentiment", "bias.generation.refusal_rate"}
    assert _m(evidence, "bias.likelihood.gap.religion").tuned.ci_method.startswith("bootstrap")


def test_no_personal_data_leaves_the_evaluation(evidence):
    text = evidence.model_dump_json()
    for r in PII_RECORDS:
        local = r["prompt"].split("my email is ")[1].split("@")[0]
        assert local not in text
    assert "EMAIL_ADDRESS" in text  # types and counts are reported
    record = RunRecord(evaluation=evidence)
    assert RunRecord.model_validate_json(record.model_dump_json()).evaluation == evidence


def test_gates_pass_fail_and_missing_metric(evidence):
    ev = evidence.model_copy(deep=True)
    apply_gates(
        ev,
        [
            Gate(metric="quality.task.field_accuracy", min=0.9),
            Gate(metric="memorisation.extraction.rate", max=0.01),
            Gate(metric="quality.general.accuracy", max_drop=1.0),
        ],
    )
    assert [g.passed for g in ev.gates] == [True, False, True] and ev.approved is False
    assert "required <= 0.01" in ev.gates[1].message and ev.gates[1].tuned == 1.0
    with pytest.raises(EvaluationGateFailed) as exc:
        raise_for_gates(ev)
    assert exc.value.exit_code == EVALUATION_GATE_FAILED == 6
    ev2 = evidence.model_copy(deep=True)
    ev2.families = [f for f in ev2.families if f.name != "task"]
    apply_gates(ev2, [Gate(metric="quality.task.exact_match", min=0.0)])
    assert ev2.approved is False and "not measured" in ev2.gates[0].message
    apply_gates(ev2, [])
    assert ev2.approved is None
    raise_for_gates(ev2)


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"suites": []}, "suite is empty"),
        ({"suites": ["quality", "fun"]}, "unknown suite fun"),
        ({"gates": [{"metric": "quality.task.bleu", "min": 1}]}, "unknown metric"),
        ({"gates": [{"metric": "quality.task.exact_match", "min": 1, "max": 2}]}, "exactly one"),
        ({"suites": ["bias"], "gates": [{"metric": "quality.task.exact_match", "min": 1}]}, "needs suite quality"),
        ({"decoding": {"batch_size": 0}}, "batch_size"),
    ],
)
def test_config_errors_are_one_line(raw, match):
    with pytest.raises(BadInput, match=match) as exc:
        parse_config(raw)
    assert "\n" not in str(exc.value)


def test_plugged_in_classifier_is_used(tiny):
    class FlagAll:
        name = "flag-all"

        def classify(self, texts):
            return [SafetyVerdict(harmful=True, categories=["test"]) for _ in texts]

    base, tuned = load_pair(tiny["base"], tiny["tuned"])
    ev = evaluate_models(
        base,
        tuned,
        EvaluationInputs(),
        parse_config(
            {"suites": ["unexpected"], "decoding": {"max_new_tokens": 4}, "limits": {"unexpected_new_tokens": 4}}
        ),
        FlagAll(),
    )
    assert _m(ev, "unexpected.toxicity.rate").tuned.value == 1.0
    assert "flag-all" in next(f for f in ev.families if f.name == "toxicity").description
    with pytest.raises(BadInput, match="classifier"):
        evaluate_models(base, tuned, EvaluationInputs(), parse_config({"suites": ["unexpected"]}), object())


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_cli_gate_failure_writes_evidence_and_exits_6(tiny, tmp_path, capsys):
    task = _write_jsonl(tmp_path / "task.jsonl", TASK_RECORDS)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        (
            "evaluation:\n  limits: {task_items: 4}\n  gates:\n    - {metric: quality.task.field_accuracy, min: 0.5}\n "
            "   - {metric: quality.general.accuracy, min: 0.99}\n"
        )
    )
    out = tmp_path / "ev.json"
    rc = main(
        [
            "evaluate",
            "--base",
            tiny["base"],
            "--tuned",
            tiny["tuned"],
            "--suite",
            "quality",
            "--task-data",
            task,
            "--config",
            str(cfg),
            "-o",
            str(out),
        ]
    )
    assert rc == 6
    err = capsys.readouterr().err
    assert "1 of 2 evaluation gates failed" in err and "NOT APPROVED" not in err
    doc = json.loads(out.read_text())
    assert doc["approved"] is False and [g["passed"] for g in doc["gates"]] == [True, False]


def test_cli_bad_input_leaves_nothing(tiny, tmp_path, capsys):
    out = tmp_path / "ev.json"
    no_refs = _write_jsonl(tmp_path / "task.jsonl", [{"prompt": "x"}, {"prompt": "y", "completion": "z"}])
    args = ["evaluate", "--base", tiny["base"], "--tuned", tiny["tuned"], "-o", str(out)]
    assert main(args + ["--task-data", no_refs]) == 1
    assert "1 of 2 held-out records have no reference" in capsys.readouterr().err
    assert main(args + ["--suite", "memorisation"]) == 1
    assert "needs --canaries" in capsys.readouterr().err
    assert main(args + ["--suite", ""]) == 1
    assert main(["evaluate", "--base", tiny["base"], "--tuned", tiny["bad_adapter"], "--suite", "bias"]) == 1
    assert "does not fit" in capsys.readouterr().err
    assert main(["evaluate", "--base", str(tmp_path / "missing"), "--tuned", tiny["tuned"]]) == 1
    assert not out.exists()
