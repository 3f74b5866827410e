"""The evaluate stage as `ftaudit train` calls it: a Run in, evidence out (and evaluation/evaluation.json)."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from eval_fixtures import TASK_RECORDS, regex_detector

from ftaudit.errors import BadInput
from ftaudit.evaluation import unexpected
from ftaudit.evaluation.gates import parse_config
from ftaudit.evaluation.memorisation import CanaryManifest
from ftaudit.pipeline import evaluate as stage


def test_canaries_for_training_writes_manifest(tmp_path):
    records = [{"text": f"line {i}"} for i in range(5)]
    assert parse_config({}).canaries is None and parse_config({"canaries": False}).canaries is None
    assert parse_config({"canaries": True}).canaries.inserted == 4
    options = parse_config({"canaries": {"inserted": 1, "unseen": 2, "repeats": 3}}).canaries
    out = stage.canaries_for_training(records, options, tmp_path)
    assert len(out) == 8 and all(set(r) == {"text"} for r in out)
    man = CanaryManifest.model_validate_json((tmp_path / "canaries.json").read_text())
    assert man.record_format == "text" and [c.inserted for c in man.canaries] == [True, False, False]
    with pytest.raises(BadInput, match="canaries.repeats"):
        parse_config({"canaries": {"repeats": 0}}, where="evaluation")


def test_evaluate_for_record_from_a_run(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(unexpected, "personal_data_detector", lambda ner=None: regex_detector)
    task = tmp_path / "eval.jsonl"
    task.write_text("".join(json.dumps(r) + "\n" for r in TASK_RECORDS))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in tiny["training"]))
    (tmp_path / "run" / "evaluation").mkdir(parents=True)
    (tmp_path / "run" / "evaluation" / "canaries.json").write_text(tiny["manifest"].model_dump_json())
    ds = lambda p: SimpleNamespace(path=str(p), prompt_field="prompt", completion_field="completion")  # noqa: E731
    cfg = SimpleNamespace(
        evaluation=parse_config({
            "suites": ["quality", "memorisation"],
            "limits": {"canary_references": 30},
            "canaries": {"inserted": 2},
            "gates": [{"metric": "memorisation.extraction.rate", "max": 0.0}],
        }),
        training=SimpleNamespace(use_chat_template=True),
        eval_datasets=[ds(task)],
        datasets=[ds(train)],
        resolve=Path,
        method=SimpleNamespace(type="lora"),
    )
    run = SimpleNamespace(
        cfg=cfg,
        source=SimpleNamespace(location=tiny["base"], gguf_file=None),
        tokenizer=None,
        rd=SimpleNamespace(model=Path(tiny["tuned"]), evaluation=tmp_path / "run" / "evaluation"),
    )
    ev = stage.evaluate_run(run)
    assert ev.decoding.prompt_format == "raw"  # the tiny tokenizer has no chat template
    assert ev.metric("memorisation.canary.detected_rate").tuned.value == 1.0
    assert ev.approved is False and ev.gates[0].passed is False
    from ftaudit.cli.train import _summary_lines
    from ftaudit.record import RunRecord

    summary = dict(_summary_lines(SimpleNamespace(record=RunRecord(evaluation=ev), run_dir=tmp_path)))
    assert "exact_match" in summary and summary["canaries memorised"].endswith("memorisation.canary.detected_rate)")
    assert summary["evaluation gates"] == "failed: the model is not approved"
    saved = json.loads((tmp_path / "run" / "evaluation" / "evaluation.json").read_text())
    assert saved["approved"] is False and saved["families"][0]["probe_sets"][0]["source"] == str(task)
