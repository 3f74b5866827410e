"""Bad input to `ftaudit train`: one line, the documented exit code, nothing written, no earlier run lost."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import make_config
from ftaudit.cli import main
from ftaudit.pipeline.config import field_docs, load_config


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_every_config_field_is_documented():
    docs = dict(field_docs())
    assert "compute_policy.accepted_role" in docs and "training.max_steps" in docs
    missing = [k for k, v in docs.items() if not v]
    assert not missing, missing


@pytest.mark.parametrize("text, fragment", [
    ("name: [unclosed\n", "malformed YAML at line 2"),
    ("", "config file is empty"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_malformed_yaml(tmp_path, capsys, text, fragment):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    code, err = _run(["train", str(p)], capsys)
    assert code == 1 and len(err) == 1 and fragment in err[0]


def test_missing_config_file(tmp_path, capsys):
    code, err = _run(["train", str(tmp_path / "nope.yaml")], capsys)
    assert code == 1 and "config file not found" in err[0]


def test_unknown_key_is_named(tmp_path, tiny_model, tiny_data, capsys):
    p = make_config(tmp_path, tiny_model, tiny_data, training={"learnig_rate": 1e-3})
    code, err = _run(["train", str(p)], capsys)
    assert code == 1 and len(err) == 1 and "training.learnig_rate" in err[0] and "unknown key" in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("section, value, want", [
    ("evaluation", {"gatez": 1}, "unknown key 'evaluation.gatez' (did you mean 'gates'?)"),
    ("evaluation", {"gates": [{"metric": "quality.task.exact_match", "min": 0.5, "max": 0.9}]}, "exactly one of"),
    ("evaluation", {"canaries": {"repeats": 0}}, "evaluation.canaries.repeats"),
    ("data_policy", {"block_on_secret": False}, "did you mean 'block_on_secrets'"),
    ("data_policy", {"max_personal_data_record_rate": 2}, "data_policy.max_personal_data_record_rate"),
])
def test_evaluation_and_data_policy_are_checked_before_any_work(tmp_path, tiny_model, tiny_data, capsys, section,
                                                                value, want):
    p = make_config(tmp_path, tiny_model, tiny_data, **{section: value})
    code, err = _run(["train", str(p)], capsys)
    assert code == 1 and len(err) == 1 and want in err[0], err
    assert not (tmp_path / "run").exists()


def test_relative_paths_resolve_against_the_config(tmp_path, tiny_model, tiny_data):
    p = make_config(tmp_path, tiny_model, tiny_data, output_dir="out/r1")
    cfg = load_config(p)
    assert cfg.output_path() == tmp_path / "out" / "r1"


@pytest.mark.parametrize("case", ["missing_field", "empty", "no_model", "bad_target", "extra_arg", "missing_data"])
def test_bad_input_writes_nothing(tmp_path, tiny_model, tiny_data, capsys, case):
    over = {}
    if case == "missing_field":
        over["datasets"] = [{"path": str(tiny_data["train"]), "format": "prompt_completion",
                             "completion_field": "answer"}]
        want = "no field 'answer'"
    elif case == "empty":
        (tmp_path / "empty.jsonl").write_text("")
        over["datasets"] = [{"path": str(tmp_path / "empty.jsonl")}]
        want = "empty"
    elif case == "no_model":
        over["base_model"] = {"path": str(tmp_path / "no-such-model")}
        want = "does not exist"
    elif case == "bad_target":
        over["method"] = {"type": "lora", "lora": {"target_modules": ["qkv_proj"]}}
        want = ""  # checked when the model is loaded: exit 1 with the module names
    elif case == "extra_arg":
        over["training"] = {"extra_args": {"not_an_arg": 1}}
        want = "not_an_arg"
    else:
        over["datasets"] = [{"path": str(tmp_path / "missing.jsonl")}]
        want = "not found"
    p = make_config(tmp_path, tiny_model, tiny_data, **over)
    code, err = _run(["train", str(p)], capsys)
    assert code == 1, err
    assert err[-1].startswith("ftaudit: error:") and want in err[-1]
    if case != "bad_target":
        assert not (tmp_path / "run").exists()


def test_unloadable_model_is_a_runtime_error(tmp_path, tiny_data, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    p = make_config(tmp_path, broken, tiny_data)
    code, err = _run(["train", str(p)], capsys)
    assert code == 1 and "cannot read the model config" in err[-1]
    assert not (tmp_path / "run").exists()


def test_foreign_output_dir_is_left_untouched(tmp_path, tiny_model, tiny_data, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    p = make_config(tmp_path, tiny_model, tiny_data)
    code, err = _run(["train", str(p)], capsys)
    assert code == 1 and "not an ftaudit run" in err[-1]
    assert sorted(x.name for x in out.iterdir()) == ["precious.txt"]


def test_run_of_another_config_is_left_untouched(tmp_path, tiny_model, tiny_data, capsys):
    out = tmp_path / "run"
    out.mkdir()
    other = yaml.safe_load(make_config(tmp_path, tiny_model, tiny_data).read_text())
    other["training"]["learning_rate"] = 0.5
    (out / "config.yaml").write_text(yaml.safe_dump(other))
    (out / "run_record.json").write_text(json.dumps({"keep": True}))
    p = make_config(tmp_path, tiny_model, tiny_data)
    code, err = _run(["train", str(p)], capsys)
    assert code == 1 and "different config" in err[-1]
    assert json.loads((out / "run_record.json").read_text()) == {"keep": True}

