"""`ftaudit estimate` end to end: the JSON contract, the human view, bad input (one line, exit 1), no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ftaudit.cli import main

LLAMA = dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
             num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True)


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    return tmp_path


def _json(capsys, *argv) -> dict:
    assert main(["estimate", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_json_contract(config_dir, capsys, monkeypatch):
    monkeypatch.delenv("PRETRAIN_FLOPS", raising=False)
    doc = _json(capsys, "--config", str(config_dir), "--tokens", "1000000", "--seq-len", "2048")
    for key in ("training_flops", "forward_flops_per_token", "n_parameters", "n_trainable_parameters"):
        assert isinstance(doc[key], (int, float)) and doc[key] > 0
    for key in ("role", "threshold_flops", "rule", "citation", "headroom_fraction"):
        assert key in doc["decision"]
    assert doc["decision"]["role"] == "downstream_modifier"
    assert doc["decision"]["threshold_flops"] == pytest.approx(1e23 / 3)  # unknown original: guidelines §3.2
    assert doc["n_parameters"] == doc["n_trainable_parameters"] == 1_235_814_400
    assert set(doc["comparison"]) == {"full", "lora"}


def test_lora_flags_and_lineage(config_dir, capsys):
    base = ["--config", str(config_dir / "config.json"), "--tokens", "1e6", "--seq-len", "1024"]
    full = _json(capsys, *base)
    lora = _json(capsys, *base, "--method", "lora", "--lora-r", "8", "--lora-target-modules", "q_proj,k_proj,v_proj")
    assert lora["training_flops"] < full["training_flops"]
    assert lora["n_trainable_parameters"] == 16 * 8 * (2048 + 2048 + 2 * (2048 + 512))
    assert lora["method"] == "LoRA r=8 on k_proj, q_proj, v_proj"
    prior = _json(capsys, *base, "--prior-flops", "1e22", "--original-flops", "6e22")
    assert prior["lineage_flops"] == pytest.approx(1e22 + full["training_flops"])
    assert prior["decision"]["modification_flops"] == pytest.approx(prior["lineage_flops"])
    assert prior["decision"]["role"] == "downstream_modifier"
    # 6e22 is below 1e23: not a GPAI base, so 6e22 + 3e22 stays below the cumulative 1e23 criterion ...
    small = _json(capsys, *base, "--prior-flops", "3e22", "--original-flops", "6e22")
    assert small["decision"]["role"] == "downstream_modifier"
    assert small["decision"]["threshold_basis"] == "cumulative_gpai_criterion"
    assert small["decision"]["alternative"]["threshold_flops"] == pytest.approx(2e22)
    # ... unless the base is declared a GPAI model: then one third of it (2e22) is crossed.
    declared = _json(capsys, *base, "--prior-flops", "3e22", "--original-flops", "6e22", "--base-is-gpai", "true")
    assert declared["decision"]["role"] == "gpai_provider"
    assert declared["decision"]["threshold_basis"] == "one_third_of_original"
    over = _json(capsys, *base, "--prior-flops", "5e22", "--original-flops", "6e22")
    assert over["decision"]["role"] == "gpai_provider"
    assert {o["scope"] for o in over["decision"]["obligations"]} == {"whole_model"}
    assert over["headroom"]["more_tokens_under_threshold"] == 0


def test_epochs_partial_quant_and_checkpointing(config_dir, capsys):
    base = ["--config", str(config_dir), "--tokens", "1e6", "--seq-len", "1024"]
    one = _json(capsys, *base)
    two = _json(capsys, *base, "--epochs", "2", "--gradient-checkpointing")
    assert two["training_flops"] == pytest.approx(2 * one["training_flops"])
    assert two["recompute_flops"] > 0
    partial = _json(capsys, *base, "--trainable", "model.layers.15.*,lm_head")
    assert partial["setup"]["method"] == "partial"
    assert partial["training_flops"] < one["training_flops"]
    assert set(partial["comparison"]) == {"full", "lora", "partial"}
    q = _json(capsys, *base, "--method", "lora", "--quant", "4")
    assert q["n_parameters"] > 1_235_814_400 and any("4-bit" in w for w in q["warnings"])


def test_pretrain_flops_env_and_registry(config_dir, capsys, monkeypatch):
    monkeypatch.setenv("PRETRAIN_FLOPS", "9e22")
    doc = _json(capsys, "--config", str(config_dir), "--tokens", "1e6", "--seq-len", "1024")
    assert doc["decision"]["original"]["flops"] == 9e22
    monkeypatch.delenv("PRETRAIN_FLOPS")
    registry = pytest.importorskip("ftaudit.regulation.registry")
    entry = registry.lookup("meta-llama/Llama-3.2-1B")
    doc = _json(capsys, "--config", "meta-llama/Llama-3.2-1B", "--tokens", "1e6", "--seq-len", "1024")
    assert doc["config_source"] == "registry:meta-llama/Llama-3.2-1B"
    assert doc["decision"]["original"]["flops"] == entry.estimate("architecture").flops  # the stricter estimate
    assert {o["method"] for o in doc["decision"]["estimates"]} == {"architecture", "hardware"}
    assert doc["decision"]["estimates_disagree"] is True
    picked = _json(capsys, "--config", "meta-llama/Llama-3.2-1B", "--tokens", "1e6", "--seq-len", "1024",
                   "--original-estimate", "hardware")
    assert picked["decision"]["original"]["flops"] == entry.estimate("hardware").flops


def test_human_view_and_output_file(config_dir, capsys, tmp_path):
    out = tmp_path / "out" / "estimate.json"
    assert main(["estimate", "--config", str(config_dir), "--tokens", "1e6", "--seq-len", "1024",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "full fine-tuning" in text and "LoRA r=16" in text and "decision:" in text
    assert "more tokens" in text
    assert json.loads(out.read_text())["training_flops"] > 0


BAD = [
    (["--tokens", "0"], "--tokens"),
    (["--tokens", "-5"], "--tokens"),
    (["--tokens", "many"], "--tokens"),
    (["--seq-len", "0"], "--seq-len"),
    (["--original-flops", "nan"], "--original-flops"),
    (["--original-flops=-1e20"], "--original-flops"),
    (["--prior-flops", "inf"], "--prior-flops"),
    (["--method", "lora", "--lora-target-modules", "query,value"], "q_proj"),
    (["--method", "lora", "--lora-r", "0"], "--lora-r"),
    (["--method", "partial"], "--trainable"),
    (["--trainable", "transformer.h.*"], "match no parameter"),
    (["--epochs", "0"], "--epochs"),
]


@pytest.mark.parametrize("extra,needle", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_one_line_exit_1(config_dir, capsys, extra, needle):
    argv = ["estimate", "--config", str(config_dir), "--tokens", "1000", "--seq-len", "128"]
    # later flags override earlier ones in argparse
    assert main(argv + extra) == 1
    err = capsys.readouterr().err
    assert err.startswith("ftaudit: error:") and err.count("\n") == 1 and needle in err


def test_bad_config_and_env(tmp_path, capsys, monkeypatch):
    (tmp_path / "broken.json").write_text('{"model_type": "llama",')
    (tmp_path / "nohidden.json").write_text('{"model_type": "llama"}')
    cases = [str(tmp_path / "broken.json"), str(tmp_path / "missing.json"), str(tmp_path / "nohidden.json"),
             str(tmp_path), "no-such-org/no-such-model-xyz"]
    for ref in cases:
        assert main(["estimate", "--config", ref, "--tokens", "1000", "--seq-len", "128"]) == 1, ref
        err = capsys.readouterr().err
        assert err.startswith("ftaudit: error:") and err.count("\n") == 1, err
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    for raw in ("nan", "-3e22", "lots"):
        monkeypatch.setenv("PRETRAIN_FLOPS", raw)
        assert main(["estimate", "--config", str(tmp_path), "--tokens", "1000", "--seq-len", "128"]) == 1
        assert "PRETRAIN_FLOPS" in capsys.readouterr().err


def test_unwritable_output_leaves_nothing(config_dir, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["estimate", "--config", str(config_dir), "--tokens", "1000", "--seq-len", "128", "--json",
                 "-o", str(blocker / "sub" / "e.json")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert blocker.read_text() == "x"


def test_cli_never_imports_torch(config_dir):
    code = ("import sys; from ftaudit.cli import main; rc = main(['estimate', '--config', sys.argv[1], '--tokens', "
            "'1e6', '--seq-len', '512', '--json']); bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
            "assert rc == 0 and not bad, bad")
    env = dict(os.environ)
    env.pop("PRETRAIN_FLOPS", None)
    subprocess.run([sys.executable, "-c", code, str(config_dir)], check=True, env=env, capture_output=True)


def test_objectives_add_their_lines(config_dir, capsys):
    base = ["--config", str(config_dir), "--tokens", "1000000", "--seq-len", "1024"]
    sft = _json(capsys, *base)
    assert sft["objective"] == "sft" and [line["role"] for line in sft["breakdown"]] == ["policy"]
    live = _json(capsys, *base, "--objective", "dpo")
    pre = _json(capsys, *base, "--objective", "dpo", "--reference", "precomputed", "--epochs", "3")
    roles = {line["role"]: line for line in live["breakdown"]}
    # the frozen reference runs forward only: one third of forward + backward, on the same tokens
    assert roles["reference"]["flops"] == pytest.approx(roles["policy"]["flops"] / 3, rel=0.01)
    assert live["training_flops"] == pytest.approx(sum(line["flops"] for line in live["breakdown"]))
    assert "(reading)" in roles["reference"]["basis"]
    pre_ref = {line["role"]: line for line in pre["breakdown"]}["reference"]["flops"]
    assert pre_ref == pytest.approx(roles["reference"]["flops"])  # once, not once per epoch
    grpo = _json(capsys, *base[:4], "--seq-len", "128", "--objective", "grpo", "--num-generations", "8",
                 "--max-completion-length", "256", "--reference", "live")
    g = {line["role"]: line for line in grpo["breakdown"]}
    assert set(g) == {"policy", "generation", "reference"} and all(line["counted"] for line in g.values())
    assert grpo["tokens"] == 8 * (1_000_000 // 128 + 1) * (128 + 256)  # policy tokens: prompts × G × (P + C)
    assert grpo["training_flops"] == pytest.approx(sum(line["flops"] for line in g.values()))
    assert grpo["decision"]["role"] in ("downstream_modifier", "provider")
    scored = _json(capsys, *base[:4], "--seq-len", "128", "--objective", "grpo", "--num-generations", "8",
                   "--max-completion-length", "256", "--reference", "live", "--reward-model", str(config_dir))
    r = {line["role"]: line for line in scored["breakdown"]}
    # a reward model of the policy's shape scores every completion once, forward only: the reference's cost, apart
    assert not r["reward"]["counted"] and "auxiliary" in r["reward"]["basis"]
    assert r["reward"]["flops"] == pytest.approx(g["reference"]["flops"])
    assert scored["training_flops"] == pytest.approx(grpo["training_flops"])  # not in the regulatory figure
    assert main(["estimate", *base, "--objective", "grpo"]) == 0
    assert "breakdown (planned)" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "message"), [
    (["--objective", "grpo", "--reference", "precomputed"], "cannot be precomputed"),
    (["--objective", "grpo", "--num-generations", "0"], "--num-generations"),
    (["--objective", "dpo", "--reward-model", "x"], "use it with --objective grpo"),
])
def test_objective_bad_input(config_dir, capsys, extra, message):
    code = main(["estimate", "--config", str(config_dir), "--tokens", "1000", "--seq-len", "100", *extra])
    assert code in (1, 2)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
