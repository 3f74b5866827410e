"""`ftaudit train` with 2 CPU processes (gloo) under torchrun and `accelerate launch`: DDP reports one total, and
sharded training (DeepSpeed ZeRO, FSDP) gives the same counts and FLOPs as DDP, the meter reading the whole model
through the sharding.

What runs on CPU with transformers 5.x / Accelerate 1.15 / torch 2.13: DeepSpeed (its CPU accelerator, gloo) for
ZeRO stages 0-3, under torchrun and `accelerate launch`. FSDP does not: Accelerate selects FSDP only on GPUs (on
CPU its state is MULTI_CPU, the FSDP plugin is ignored for FSDP2 and FSDP1 fails creating the plugin with "There
are currently no available devices found ..."), so an FSDP config trains unsharded (DDP) there and the plan says
so. torch's FSDP1 and FSDP2 themselves run on gloo: sharded_meter_worker.py shards the model with them and checks
what the meter reads from it, as it would from the Trainer's FSDP model on GPUs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LAUNCHERS, launch, make_config, optional_module, train_distributed
from ftaudit.cli import main

ZERO3 = {"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
         "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto"}
FULL = {"type": "full"}


def _train(launcher: str, tmp: Path, tiny_model, tiny_data, method: dict | None = None, **training) -> dict:
    """`ftaudit train` of one epoch (48 records, 2 processes × 4 per micro-batch: 6 steps); rank 0's record."""
    over = {"training": {"max_steps": None, "epochs": 1, **training}}
    if method is not None:
        over["method"] = method
    rec = train_distributed(launcher, make_config(tmp, tiny_model, tiny_data, **over), tmp)
    assert json.loads((tmp / "run" / "run_record.json").read_text())["run_id"] == rec["run_id"]
    return rec


@pytest.fixture(scope="module")
def ddp(tiny_model, tiny_data, tmp_path_factory):
    """The same runs under plain DDP (torchrun), once per method."""
    cache: dict[str, dict] = {}

    def get(method: str) -> dict:
        if method not in cache:
            cache[method] = _train("torchrun", tmp_path_factory.mktemp(f"ddp-{method}"), tiny_model, tiny_data,
                                   FULL if method == "full" else None)
        return cache[method]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_report_one_total(tmp_path, tiny_model, tiny_data, launcher, ddp):
    rec = ddp("lora") if launcher == "torchrun" else _train(launcher, tmp_path, tiny_model, tiny_data)
    plan = rec["compute"]["estimate"]
    assert rec["compute"]["world_size"] == 2 and plan["world_size"] == 2
    # both ranks' micro-batches in one total: every training token exactly once (48 records, 2 × 6 × 4)
    assert rec["compute"]["counts"]["tokens_effective"] == plan["train_tokens_per_epoch"]
    assert rec["compute"]["counts"]["sequences_effective"] == 48


def _same_total(rec: dict, ref: dict) -> None:
    c, plan = rec["compute"], rec["compute"]["estimate"]
    assert c["world_size"] == 2 and plan["world_size"] == 2
    # every training token exactly once (48 records), counted on both ranks' micro-batches
    assert c["counts"]["tokens_effective"] == plan["train_tokens_per_epoch"]
    assert c["counts"]["sequences_effective"] == 48
    assert c["flops"]["effective"]["total"] == pytest.approx(plan["effective_flops"], rel=1e-12)  # the hand count
    # the same micro-batches as under DDP: the same counts and the same FLOP total, padding included
    assert c["counts"] == ref["compute"]["counts"]
    assert c["flops"]["regulatory"] == ref["compute"]["flops"]["regulatory"]
    # the whole model's parameters, not one rank's shard (ZeRO-3 leaves every local tensor empty)
    m = c["model"]
    assert (m["live_n_parameters"], m["live_n_trainable_parameters"]) == (plan["n_parameters"],
                                                                         plan["n_trainable_parameters"])
    assert not [w for w in c["warnings"] if "live model" in w]


@pytest.mark.slow
def test_deepspeed_zero3_lora_torchrun(tmp_path, tiny_model, tiny_data, ddp):
    optional_module("deepspeed", why="only training.deepspeed needs it")
    rec = _train("torchrun", tmp_path, tiny_model, tiny_data, deepspeed=ZERO3)
    _same_total(rec, ddp("lora"))
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), tmp_path / "run" / "model")
    lora = {n: p for n, p in tuned.named_parameters() if "lora_" in n}
    assert sum(p.numel() for p in lora.values()) == rec["compute"]["estimate"]["n_trainable_parameters"]
    assert max(float(p.abs().max()) for n, p in lora.items() if "lora_B" in n) > 0  # B starts at zero: it trained


@pytest.mark.slow
def test_deepspeed_zero3_full_accelerate_launch(tmp_path, tiny_model, tiny_data, ddp):
    optional_module("deepspeed", why="only training.deepspeed needs it")
    rec = _train("accelerate", tmp_path, tiny_model, tiny_data, FULL, deepspeed=ZERO3)
    ref = ddp("full")
    _same_total(rec, ref)
    import torch
    from transformers import AutoModelForCausalLM

    # ZeRO-3 gathered the weights into a loadable model, and it trained like the DDP run did
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    same = AutoModelForCausalLM.from_pretrained(ref["model"]["output_path"])
    moved = max(float((a - b).abs().max()) for a, b in zip(tuned.parameters(), base.parameters(), strict=True))
    apart = max(float((a - b).abs().max()) for a, b in zip(tuned.parameters(), same.parameters(), strict=True))
    assert moved > 1e-4 and apart < moved / 100
    assert all(torch.isfinite(p).all() for p in tuned.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("version", [1, 2])
def test_fsdp_config_on_cpu_trains_unsharded_and_says_so(tmp_path, tiny_model, tiny_data, ddp, version):
    """Accelerate shards only on GPUs: on CPU the FSDP settings are not passed on (FSDP1 would fail in the plugin,
    FSDP2 would be ignored), the run is the DDP run, and the plan's warnings say so."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU machine shards with FSDP")
    rec = _train("torchrun", tmp_path, tiny_model, tiny_data, fsdp="full_shard auto_wrap",
                 fsdp_config={"version": version, "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]})
    _same_total(rec, ddp("lora"))
    assert any("training.fsdp is set" in w and "unsharded" in w for w in rec["compute"]["estimate"]["warnings"])


@pytest.mark.slow
def test_meter_reads_the_whole_model_through_fsdp_sharding(tiny_model, tmp_path):
    """torch FSDP1 (FlatParameters; use_orig_params views) and FSDP2 (DTensors) on 2 gloo ranks, LoRA, full and
    partial: the meter's parameter table, setup, model counts, warnings, FLOPs and hook counts equal the unsharded
    model's (before the fix, FSDP1 gave one rank's shard and wrapper-prefixed names: half the parameters, bogus
    warnings, and no FLOP model at all for partial fine-tuning)."""
    worker = Path(__file__).with_name("sharded_meter_worker.py")
    done = launch("torchrun", [str(worker), str(tiny_model)], tmp_path, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    cases = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(cases) == 9
    for name, case in cases.items():
        ref, got = case["ref"], case["sharded"]
        assert case["local_numel"] < ref["counts"]["live_n_parameters"], f"{name}: not sharded"
        assert ref["flops"] is not None and ref["save_hook"] and ref["hook"] == {
            "micro_batches": 1, "tokens_executed": 40, "tokens_effective": 33}
        for key in ref:
            assert got[key] == ref[key], f"{name}: {key}"


def _bad(tmp_path, tiny_model, tiny_data, capsys, monkeypatch, **over) -> list[str]:
    from ftaudit.pipeline import models

    def no_loading(*a, **k):
        raise AssertionError("weights loaded before the config error")

    monkeypatch.setattr(models, "load_model", no_loading)
    p = make_config(tmp_path, tiny_model, tiny_data, **over)
    assert main(["train", str(p)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ftaudit: error: ")
    assert not (tmp_path / "run").exists()
    return err


def test_deepspeed_not_installed_is_one_line_before_loading(tmp_path, tiny_model, tiny_data, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # import deepspeed fails, find_spec says None
    err = _bad(tmp_path, tiny_model, tiny_data, capsys, monkeypatch, training={"deepspeed": {"zero_optimization":
                                                                                            {"stage": 2}}})
    assert "DeepSpeed is not installed" in err[0] and "pip install deepspeed" in err[0]


@pytest.mark.parametrize("training, method, fragment", [
    ({"deepspeed": "ds.json"}, None, "ds.json not found"),
    ({"deepspeed": "bad.json"}, None, "is not a JSON file"),
    ({"fsdp_config": "nope.json", "fsdp": "full_shard"}, None, "training.fsdp_config"),
    ({"fsdp": "full_shard", "deepspeed": {"zero_optimization": {"stage": 2}}}, None, "choose one"),
    ({"deepspeed": {"zero_optimization": {"stage": 3}}}, FULL, "stage3_gather_16bit_weights_on_model_save: true"),
])
def test_bad_distribution_settings(tmp_path, tiny_model, tiny_data, capsys, monkeypatch, training, method,
                                   fragment):
    (tmp_path / "bad.json").write_text("{not json")
    over = {"training": training, **({"method": method} if method else {})}
    err = _bad(tmp_path, tiny_model, tiny_data, capsys, monkeypatch, **over)
    assert fragment in err[0]


def test_json_stdout_carries_only_the_json():
    """With deepspeed installed, transformers imports it and its logger prints to stdout; `--json` moves every
    other stdout write (Python, logging handlers holding sys.stdout, file descriptor 1) to stderr."""
    code = ("import logging, os, sys\n"
            "from ftaudit.pipeline.ui import stdout_json, stdout_to_stderr\n"
            "early = logging.StreamHandler(sys.stdout)\n"
            "with stdout_to_stderr():\n"
            "    print('print'); early.handle(logging.makeLogRecord({'msg': 'handler'})); os.write(1, b'native\\n')\n"
            "stdout_json({'ok': 1})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": 1}
    assert all(w in done.stderr for w in ("print", "handler", "native"))
