"""The framework-free core: a plain PyTorch loop (object, context manager, decorator), `accelerate launch` with two
processes (examples/plain_loop.py), and the bad input the meter refuses."""

import importlib.util
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from meter_tiny import lora, tiny_model

from ftaudit.compute import FlopMeter
from ftaudit.compute.counting import BatchCounter, counts_from_vector
from ftaudit.compute.flops import TrainingSetup, build_flop_model
from ftaudit.compute.meter import load_state
from ftaudit.errors import BadInput
from ftaudit.integrations.hf import FlopsMeterCallback

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plain_loop.py"
BIN = Path(sys.executable).parent


def _example():
    spec = importlib.util.spec_from_file_location("plain_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hand(model, batches) -> float:
    fm = build_flop_model(model.config.to_dict(), TrainingSetup(method="full"))
    return sum(fm.batch([b["input_ids"].shape[1]] * b["input_ids"].shape[0]).training for b in batches)


def _train(model, batches, meter=None):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for b in batches:
        model(**b).loss.backward()
        opt.step()
        opt.zero_grad()
        if meter is not None:
            meter.step()


def test_object_context_manager_and_decorator_agree_with_the_hand_count(tmp_path):
    batches = list(_example().batches(5, seed=0))
    model = tiny_model()
    meter = FlopMeter(model, output_dir=tmp_path / "object", save_every_steps=2).start()
    _train(model, batches, meter)
    with torch.no_grad():  # evaluation: not counted
        model.eval()
        model(**batches[0])
        model.train()
    by_object = meter.stop()
    assert by_object.status == "completed" and by_object.global_step == 5 and by_object.counts.micro_batches == 5
    assert math.isclose(by_object.flops.executed.total, _hand(model, batches), rel_tol=1e-12)
    assert load_state(tmp_path / "object").regulatory_flops == by_object.regulatory_flops

    model = tiny_model()
    with FlopMeter(model, output_dir=tmp_path / "with") as m:
        _train(model, batches, m)
    assert m.state.regulatory_flops == by_object.regulatory_flops

    model = tiny_model()

    @FlopMeter(model, output_dir=tmp_path / "decorated")
    def train():
        _train(model, batches)

    train()
    assert load_state(tmp_path / "decorated").regulatory_flops == by_object.regulatory_flops
    hooks = [h for m in model.modules() for h in m._forward_pre_hooks.values()]
    assert not hooks, "stop() removes the hooks"


def test_gate_stops_the_loop(tmp_path):
    batches = list(_example().batches(12, seed=0))
    model = tiny_model()
    limit = _hand(model, batches[:5])
    meter = FlopMeter(model, output_dir=tmp_path, save_every_steps=2, gate=lambda projected: projected <= limit)
    meter.start()
    steps = 0
    for b in batches:
        _train(model, [b])
        steps += 1
        if meter.step():
            break
    st = meter.stop()
    assert st.stopped_by_gate and st.status == "stopped" and steps < len(batches)
    assert st.lineage.cumulative_flops <= limit


def test_accelerate_launch_two_processes_one_total(tmp_path):
    example = _example()
    cmd = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", str(EXAMPLE),
           str(tmp_path), "--accelerate", "--steps", "6"]
    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": f"{BIN}:/usr/bin:/bin"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    st = load_state(tmp_path)
    fed = [b for rank in (0, 1) for b in example.batches(6, seed=rank)]
    assert st.world_size == 2 and st.counts.micro_batches == 12 and st.global_step == 6
    assert st.counts.tokens_effective == sum(int(b["attention_mask"].sum()) for b in fed)
    assert math.isclose(st.flops.executed.total, _hand(tiny_model(), fed), rel_tol=1e-12)
    assert "on 2 process(es)" in done.stdout


def test_decoding_steps_attend_their_cached_keys():
    """eager/SDPA run every cached key, a flash kernel only the causal row; the FLOP model prices each step."""
    for varlen in (False, True):
        c = BatchCounter(varlen_kernel=varlen)
        cache = types.SimpleNamespace(get_seq_length=lambda: 6)
        c.count((), {"input_ids": torch.ones(2, 2, dtype=torch.long), "cache": cache, "logits_to_keep": 1})
        size = c.hist_size()
        counts = counts_from_vector(c.vector(size, torch.device("cpu")).tolist(), size)
        assert counts.decode_keys == ({7: 2, 8: 2} if varlen else {8: 4})
        assert counts.head_positions == 2 and counts.tokens_executed == 4
    fm = build_flop_model(tiny_model().config.to_dict(), TrainingSetup(attention_kernel="flash"))
    windowed = build_flop_model(dict(tiny_model().config.to_dict(), model_type="mistral", sliding_window=4),
                                TrainingSetup(attention_kernel="flash"))
    assert fm.decode_step(8).forward == 8 * fm.per_pair.forward
    assert windowed.decode_step(8).forward == 4 * windowed.per_pair.forward


def test_bad_input_is_one_clear_line(tmp_path):
    with pytest.raises(BadInput, match="unknown objective 'ppo'"):
        FlopMeter(objective="ppo")
    with pytest.raises(BadInput, match="no model to meter"):
        FlopMeter().start()
    with pytest.raises(BadInput, match="unknown role"):
        FlopMeter().watch(tiny_model(), role="critic")
    meter = FlopMeter(lora(tiny_model()))
    other = tiny_model()
    other.resize_token_embeddings(300)
    with pytest.raises(BadInput, match="same tokenizer"):
        meter.watch(other, role="reference")
    cb = FlopsMeterCallback(objective="dpo")
    plain = types.SimpleNamespace()  # a TrainingArguments stand-in: not a TRL config, so the objective is sft
    with pytest.raises(BadInput, match="does not match the trainer"):
        cb.on_init_end(plain, None, None, model=tiny_model())
    with pytest.raises(BadInput, match="paged cache"):
        FlopsMeterCallback().on_init_end(types.SimpleNamespace(use_transformers_continuous_batching=True), None, None,
                                         model=tiny_model())
    with pytest.raises(BadInput, match="unknown objective"):
        FlopsMeterCallback(objective="rlhf")


def test_rollouts_from_their_lengths_equal_the_hooked_generation(tmp_path):
    """vLLM-style rollouts (outside the model) counted from lengths give what the hook counts for `generate`."""
    model = tiny_model()
    hooked = FlopMeter(model, save_every_steps=1).start()
    model.train()
    with torch.no_grad():
        model.generate(input_ids=torch.randint(4, 200, (3, 7)), attention_mask=torch.ones(3, 7, dtype=torch.long),
                       max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0)
    by_hook = {line.role: line for line in hooked.stop().breakdown}["generation"]
    outside = FlopMeter(tiny_model(), save_every_steps=1).start()
    outside.add_generation([7, 7, 7], [5, 5, 5], engine="vLLM")
    by_lengths = {line.role: line for line in outside.stop().breakdown}["generation"]
    assert by_lengths.flops.regulatory == pytest.approx(by_hook.flops.regulatory, rel=1e-12)
    assert "vLLM" in by_lengths.method and "prompt and completion lengths" in by_lengths.method
    with pytest.raises(BadInput, match="one prompt length per completion"):
        outside.add_generation([7], [5, 5])
    with pytest.raises(BadInput, match="positive integers"):
        outside.add_generation([0], [5])


def test_a_trained_value_model_is_reported_apart_with_its_backward():
    """PPO's shape in a plain loop (TRL 1.x ships no PPOTrainer): the value model scores each batch without
    gradient and is trained on it; both kinds of call are reported on their own lines, neither counts. Against
    FlopCounterMode around the whole loop."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import LlamaForSequenceClassification

    policy = tiny_model()
    cfg = policy.config.__class__(**{**policy.config.to_dict(), "num_labels": 1, "pad_token_id": 0})
    cfg._attn_implementation = "eager"  # FlopCounterMode does not see the CPU SDPA kernel
    value = LlamaForSequenceClassification(cfg)
    with FlopCounterMode(display=False) as counter:
        meter = FlopMeter(policy, save_every_steps=1)
        meter.watch(value, role="value")
        meter.start()
        opt = torch.optim.SGD([*policy.parameters(), *value.parameters()], lr=1e-3)
        for b in _example().batches(3, seed=0):
            scored = {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}
            with torch.no_grad():
                value(**scored)
            (policy(**b).loss + value(**scored).logits.pow(2).mean()).backward()
            opt.step()
            opt.zero_grad()
            meter.step()
        state = meter.stop()
    lines = {line.model: line for line in state.breakdown}
    scoring = next(line for name, line in lines.items() if not name.endswith("(trained)"))
    trained = next(line for name, line in lines.items() if name.endswith("(trained)"))
    assert {scoring.role, trained.role} == {"value"} and not scoring.counted and not trained.counted
    assert scoring.calls == trained.calls == 3
    assert scoring.flops.executed.backward == 0 and trained.flops.executed.backward > 0
    total = state.regulatory_flops + scoring.flops.regulatory + trained.flops.regulatory
    assert math.isclose(total, counter.get_total_flops(), rel_tol=1e-9)
    assert "not counted: value" in state.regulatory_method()
