"""QLoRA (method.type qlora): LoRA on a 4-bit NF4 base through bitsandbytes, here on CPU (bitsandbytes >= 0.46.1
has a CPU backend). Without bitsandbytes the run is refused before anything is loaded (one line, exit 1)."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from conftest import make_config, optional_module
from ftaudit.cli import main
from ftaudit.pipeline import models

MIN_BNB = models.BNB_MIN_VERSION
QLORA = {"type": "qlora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}


def _fake_bitsandbytes(monkeypatch, have: str | None) -> None:
    real = importlib.metadata.version

    def version(name):
        if name == "bitsandbytes":
            if have is None:
                raise importlib.metadata.PackageNotFoundError(name)
            return have
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)


@pytest.mark.parametrize("have, fragment", [
    (None, f"needs bitsandbytes, which is not installed here (pip install 'bitsandbytes>={MIN_BNB}'; CPU or CUDA)"),
    ("0.45.5", f"needs bitsandbytes>={MIN_BNB}, this is 0.45.5"),
])
def test_refused_before_loading_without_a_usable_bitsandbytes(tmp_path, tiny_model, tiny_data, capsys, monkeypatch,
                                                              have, fragment):
    _fake_bitsandbytes(monkeypatch, have)
    loaded = []
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loaded.append(a))
    p = make_config(tmp_path, tiny_model, tiny_data, method=QLORA)
    for argv in (["train", str(p)], ["train", str(p), "--plan"]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ftaudit: error: method.type qlora") and fragment in err[0], err
        assert "or use method.type lora" in err[0]
    assert not loaded and not (tmp_path / "run").exists()


def _bitsandbytes():
    return optional_module("bitsandbytes", minversion=MIN_BNB, why="only method.type qlora needs it")


def _train(tmp_path, tiny_model, tiny_data, method, capsys, monkeypatch):
    """`ftaudit train --json` in-process; returns (record, the model object that was trained)."""
    trained = []
    apply_method = models.apply_method

    def capture(model, cfg, **kw):
        out = apply_method(model, cfg, **kw)
        trained.append(out)
        return out

    monkeypatch.setattr(models, "apply_method", capture)
    tmp_path.mkdir(exist_ok=True)
    p = make_config(tmp_path, tiny_model, tiny_data, method=method)
    assert main(["train", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(trained) == 1
    return out["record"], trained[0]


@pytest.mark.slow
def test_qlora_trains_a_4bit_base_and_meters_its_logical_size(tmp_path, tiny_model, tiny_data, capsys, monkeypatch):
    bnb = _bitsandbytes()
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ftaudit.pipeline.config import load_config

    rec, model = _train(tmp_path / "q", tiny_model, tiny_data, QLORA, capsys, monkeypatch)
    assert rec["status"] == "completed"

    # the model that was trained: every projection of the base is a bitsandbytes 4-bit NF4 layer; only LoRA trains
    blocks = [m for m in model.modules() if isinstance(m, torch.nn.Module) and hasattr(m, "q_proj")]
    assert len(blocks) == 2
    for attn in blocks:
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            layer = getattr(attn, name)
            base = getattr(layer, "base_layer", layer)
            assert isinstance(base, bnb.nn.Linear4bit) and isinstance(base.weight, bnb.nn.Params4bit), name
            assert base.weight.quant_state.quant_type == "nf4" and not base.weight.requires_grad
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(".lora_" in n for n in trained)
    assert all(p.abs().sum() > 0 for n, p in trained.items() if ".lora_B." in n)  # B starts at zero: it was trained

    # the meter: quant_bits 4 read from the live model, and the LOGICAL parameter count (the unquantised model's)
    comp = rec["compute"]
    assert rec["compute"]["model"]["setup"]["quant_bits"] == 4 and comp["estimate"]["setup"]["quant_bits"] == 4
    plain = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).num_parameters()
    n_lora = sum(p.numel() for p in trained.values())
    packed = sum(p.numel() for p in model.parameters())
    assert packed < plain  # 4-bit storage: two weights a byte
    assert comp["model"]["live_n_parameters"] == comp["model"]["n_parameters"] == plain + n_lora
    assert comp["model"]["live_n_trainable_parameters"] == comp["estimate"]["n_trainable_parameters"] == n_lora
    assert comp["model"]["method"].startswith("QLoRA r=4")

    # metered compute against the preflight estimate of the same plan (quant_bits=4 path), as for LoRA
    metered, planned = comp["flops"]["regulatory"], comp["estimate"]["planned_flops"]
    assert 0.8 < metered / planned < 1.2
    assert comp["counts"]["optimizer_steps"] == 4 and comp["counts"]["sequences_effective"] == 16

    # the adapter is saved, and loads onto a freshly quantised base with the same outputs as the trained model
    run = tmp_path / "q" / "run"
    assert (run / "model" / "adapter_config.json").is_file()
    assert "adapter" in {a["kind"] for a in rec["artefacts"]}
    assert json.loads((run / "model" / "adapter_config.json").read_text())["r"] == 4
    cfg = load_config(tmp_path / "q" / "run.yaml")
    fresh = models.load_model(models.resolve_source(cfg), cfg)
    reloaded = PeftModel.from_pretrained(fresh, str(run / "model")).eval()
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        want = model.eval()(input_ids=ids).logits
        got = reloaded(input_ids=ids).logits
        with reloaded.disable_adapter():
            untuned = reloaded(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(untuned, want, atol=1e-5)

    # the same plan as plain LoRA meters the same FLOPs: the 4-bit base changes storage, not the matmuls counted
    lora, _ = _train(tmp_path / "l", tiny_model, tiny_data, {**QLORA, "type": "lora"}, capsys, monkeypatch)
    assert lora["compute"]["model"]["setup"]["quant_bits"] is None
    assert lora["compute"]["model"]["n_parameters"] == comp["model"]["n_parameters"]
    assert lora["compute"]["flops"]["regulatory"] == pytest.approx(metered, rel=1e-12)
    assert lora["compute"]["estimate"]["planned_flops"] == pytest.approx(planned, rel=1e-12)


@pytest.mark.slow
def test_qlora_adapter_is_evaluated_on_the_4bit_base(tmp_path, tiny_model, tiny_data, capsys, monkeypatch):
    """The evaluate stage loads the base as it was trained (4-bit NF4), not de-quantised weights it never saw."""
    bnb = _bitsandbytes()
    from ftaudit.evaluation import models as eval_models

    loaded = []
    load_pair = eval_models.load_pair

    def capture(*a, **kw):
        pair = load_pair(*a, **kw)
        loaded.append(pair)
        return pair

    monkeypatch.setattr(eval_models, "load_pair", capture)
    p = make_config(tmp_path, tiny_model, tiny_data, method=QLORA, training={"max_steps": 2},
                    eval_datasets=[{"path": str(tiny_data["eval"])}],
                    evaluation={"suites": ["quality"], "limits": {"task_items": 4, "task_max_new_tokens": 8}})
    assert main(["train", str(p), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)["record"]
    assert {s["name"]: s["status"] for s in rec["stages"]}["evaluate"] == "ok"
    assert any("4-bit NF4" in n for n in rec["evaluation"]["notes"])
    (base, tuned), = loaded
    assert base.model is tuned.model  # one wrapped model: the adapter on the 4-bit base, toggled for the base view
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in tuned.model.modules()) == 2 * 7  # q k v o gate up down
