"""The callback inside real transformers Trainer runs (tiny Llama on CPU), against hand counts of the batches fed."""

import json
import math

import pytest
from meter_tiny import PackCollator, PadCollator, examples, lora, tiny_model, training_args
from transformers import AutoModelForCausalLM, Trainer

from ftaudit.compute.flops import TrainingSetup, build_flop_model
from ftaudit.compute.live_model import setup_from_model
from ftaudit.compute.meter import LINEAGE_FILENAME, METER_FILENAME, load_state, read_lineage
from ftaudit.errors import BadInput
from ftaudit.integrations.hf import FlopsMeterCallback

pytestmark = pytest.mark.slow
EVAL_MIN = 30  # eval examples are longer than every training example, so their batches are easy to tell apart


def hand_count(fm, batches):
    executed = sum(fm.batch([max(b)] * len(b)).training for b in batches)
    effective = fm.batch([n for b in batches for n in b]).training
    return executed, effective


def train(tmp_path, model, collator, cb, data=None, eval_dataset=None, **kw):
    out = str(tmp_path)
    trainer = Trainer(model=model, args=training_args(out, **kw), train_dataset=data or examples(24, 4, 20),
                      eval_dataset=eval_dataset, data_collator=collator, callbacks=[cb])
    trainer.train()
    return trainer


def test_full_padded_exact_and_eval_not_counted(tmp_path):
    col = PadCollator()
    cb = FlopsMeterCallback(save_every_steps=2)
    model = tiny_model()
    train(tmp_path, model, col, cb, eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=4,
          eval_dataset=examples(8, EVAL_MIN, EVAL_MIN + 5, seed=9))
    fed = [b for b in col.batches if max(b) < EVAL_MIN]
    assert len(fed) < len(col.batches), "evaluation ran"
    st = load_state(tmp_path)
    fm = build_flop_model(model.config.to_dict(), TrainingSetup(method="full"))
    executed, effective = hand_count(fm, fed)
    assert st.status == "completed" and st.counts.micro_batches == len(fed) == 6
    assert st.counts.tokens_executed == sum(max(b) * len(b) for b in fed)
    assert st.counts.tokens_effective == sum(map(sum, fed)) < st.counts.tokens_executed
    assert math.isclose(st.flops.executed.total, executed, rel_tol=1e-12)
    assert math.isclose(st.flops.effective.total, effective, rel_tol=1e-12)
    assert st.flops.regulatory == st.flops.executed.total
    assert st.model.n_parameters == st.model.live_n_parameters and st.warnings == []
    assert st.lineage.cumulative_flops == st.flops.regulatory
    assert read_lineage(tmp_path).cumulative_flops == st.flops.regulatory
    assert st.energy.kind in ("measured", "estimated") and st.energy.kwh > 0
    assert not st.hardware.available and "no GPU counters" in st.hardware.statement
    seed = json.loads((tmp_path / "flops_meter.json").read_text())
    assert seed["Flops_architecture"] == st.flops.regulatory and seed["tokens_processed"] == st.counts.tokens_effective
    assert seed["exceeds_30pct"] is False and seed["threshold_type"] == "unknown_original_fallback"


def test_lora_counts_after_wrapping(tmp_path):
    col = PadCollator()
    model = lora(tiny_model())
    setup = setup_from_model(model)
    assert setup.method == "lora" and setup.lora_r == 4 and set(setup.lora_target_modules) == {"q_proj", "v_proj"}
    cb = FlopsMeterCallback()
    train(tmp_path, model, col, cb)
    st = load_state(tmp_path)
    fm = build_flop_model(model.config.to_dict(), setup)
    full = build_flop_model(model.config.to_dict(), TrainingSetup(method="full"))
    executed, _ = hand_count(fm, col.batches)
    assert math.isclose(st.flops.executed.total, executed, rel_tol=1e-12)
    assert st.model.n_trainable_parameters == st.model.live_n_trainable_parameters == fm.n_trainable_parameters
    assert st.flops.executed.total < hand_count(full, col.batches)[0]  # LoRA is not billed as full fine-tuning
    assert st.model.method.startswith("LoRA")


def test_packed_rows_use_per_sequence_attention(tmp_path):
    col = PackCollator()
    cb = FlopsMeterCallback()
    model = tiny_model()
    train(tmp_path, model, col, cb)
    st = load_state(tmp_path)
    fm = build_flop_model(model.config.to_dict(), TrainingSetup(method="full"))
    lengths = [n for b in col.batches for n in b]
    assert st.counts.sequences_effective == len(lengths) and st.counts.sequences_executed == len(col.batches)
    assert st.counts.tokens_executed == st.counts.tokens_effective == sum(lengths)
    assert math.isclose(st.flops.effective.total, fm.batch(lengths).training, rel_tol=1e-12)
    rows = [sum(b) for b in col.batches]  # eager attention runs the whole packed row
    assert math.isclose(st.flops.executed.total, fm.batch(rows).training, rel_tol=1e-12)


def test_lineage_two_runs_adapter_and_merged_model(tmp_path):
    from peft import PeftModel

    first = tmp_path / "first"
    t1 = train(first, lora(tiny_model()), PadCollator(), FlopsMeterCallback())
    t1.save_model(str(first / "adapter"))
    s1 = load_state(first)
    assert (first / "adapter" / LINEAGE_FILENAME).is_file() and (first / "adapter" / METER_FILENAME).is_file()

    second = tmp_path / "second"  # a second fine-tune from the first run's adapter
    model2 = PeftModel.from_pretrained(tiny_model(), str(first / "adapter"), is_trainable=True)
    train(second, model2, PadCollator(), FlopsMeterCallback(parent=first / "adapter"),
          data=examples(16, 4, 20, seed=3))
    s2 = load_state(second)
    assert s2.lineage.lineage_id == s1.lineage.lineage_id
    assert [r.run_id for r in s2.lineage.runs] == [s1.run_id, s2.run_id]
    assert s2.lineage.ancestors_flops == s1.flops.regulatory
    assert math.isclose(s2.lineage.cumulative_flops, s1.flops.regulatory + s2.flops.regulatory, rel_tol=1e-12)

    # Found without parent=: a full model saved by a metered run and loaded from its directory.
    third = tmp_path / "third"
    t3 = train(third, tiny_model(), PadCollator(), FlopsMeterCallback())
    t3.save_model(str(third / "model"))
    fourth = tmp_path / "fourth"
    reloaded = AutoModelForCausalLM.from_pretrained(str(third / "model"), attn_implementation="eager")
    train(fourth, reloaded, PadCollator(), FlopsMeterCallback(), data=examples(8, 4, 20, seed=4))
    s3, s4 = load_state(third), load_state(fourth)
    assert s4.lineage.parent_path == str(third / "model")
    assert math.isclose(s4.lineage.cumulative_flops, s3.flops.regulatory + s4.flops.regulatory, rel_tol=1e-12)


def test_gate_stops_before_limit_and_saves(tmp_path):
    probe = tmp_path / "probe"
    train(probe, tiny_model(), PadCollator(), FlopsMeterCallback(), data=examples(8, 20, 20), max_steps=2)
    per_step = load_state(probe).flops.regulatory / 2  # all rows have 20 tokens: every step costs the same
    limit = 6.5 * per_step
    seen = []

    def gate(projected):
        seen.append(projected)
        return projected <= limit

    out = tmp_path / "gated"
    train(out, tiny_model(), PadCollator(), FlopsMeterCallback(save_every_steps=2, gate=gate),
          data=examples(64, 20, 20), max_steps=16)
    st = load_state(out)
    assert st.stopped_by_gate and st.status == "stopped" and st.global_step == 6
    assert st.lineage.cumulative_flops <= limit
    assert (out / f"checkpoint-{st.global_step}" / METER_FILENAME).is_file()
    assert math.isclose(seen[0], 4 * per_step, rel_tol=1e-9)  # at step 2: 2 steps done + 2 projected


def test_checkpoint_holds_state_and_lineage(tmp_path):
    train(tmp_path, tiny_model(), PadCollator(), FlopsMeterCallback(save_every_steps=5), save_strategy="steps",
          save_steps=3, max_steps=6, data=examples(32, 4, 20))
    for step in (3, 6):
        ckpt = tmp_path / f"checkpoint-{step}"
        st = load_state(ckpt)
        assert st.global_step == step and read_lineage(ckpt).runs[-1].run_id == st.run_id
        slot = json.loads((ckpt / "trainer_state.json").read_text())["stateful_callbacks"]["FlopsMeterCallback"]
        assert slot["attributes"]["_checkpoint_meter_state"]["global_step"] == step


def test_environment_and_output_errors(tmp_path, monkeypatch):
    for name, value in [("PRETRAIN_FLOPS", "nan"), ("PRETRAIN_FLOPS", "-3"), ("PRETRAIN_FLOPS", "lots"),
                        ("PEAK_TFLOPS_PER_GPU", "0"), ("FLOPS_METER_NVML", "2")]:
        monkeypatch.setenv(name, value)
        with pytest.raises(BadInput, match=name):
            FlopsMeterCallback()
        monkeypatch.delenv(name)
    with pytest.raises(BadInput, match="save_every_steps"):
        FlopsMeterCallback(save_every_steps=0)
    with pytest.raises(BadInput, match="parent"):
        FlopsMeterCallback(parent=tmp_path / "missing")

    blocker = tmp_path / "file"
    blocker.write_text("x")
    trainer = Trainer(model=tiny_model(), args=training_args(str(tmp_path / "t")), train_dataset=examples(4, 4, 8),
                      data_collator=PadCollator(), callbacks=[FlopsMeterCallback(output_dir=blocker / "sub")])
    with pytest.raises(BadInput, match="not writable"):
        trainer.train()

    monkeypatch.setenv("PRETRAIN_FLOPS", "3e3")  # tiny original: the run passes one third of it
    monkeypatch.setenv("FLOPS_METER_OUT", str(tmp_path / "seed"))
    train(tmp_path / "run", tiny_model(), PadCollator(), FlopsMeterCallback(base_is_gpai=True), data=examples(4, 4, 8))
    seed = json.loads((tmp_path / "seed" / "flops_meter.json").read_text())
    assert seed["Flops_original"] == 3e3 and seed["exceeds_30pct"] is True
    assert seed["threshold_value"] == pytest.approx(1e3) and seed["pct_of_pretrain"] > 100
    # Not declared a GPAI model, a 3e3-FLOP base is below 1e23: the cumulative criterion decides (docs/regulation.md).
    train(tmp_path / "run2", tiny_model(), PadCollator(), FlopsMeterCallback(), data=examples(4, 4, 8))
    seed = json.loads((tmp_path / "seed" / "flops_meter.json").read_text())
    assert seed["exceeds_30pct"] is False and seed["threshold_type"] == "cumulative_gpai_criterion"
    assert seed["threshold_value"] == pytest.approx(1e23 - 3e3)
    assert not (tmp_path / "run" / "flops_meter.json").exists()


def test_trl_sft_trainer_padding_free_packing(tmp_path):
    from datasets import Dataset
    from meter_tiny import VOCAB
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from trl import SFTConfig, SFTTrainer

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({f"t{i}": i for i in range(VOCAB)},
                                                                              unk_token="t1")),
                                  pad_token="t0", eos_token="t2")
    cfg = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=3, report_to=[], use_cpu=True,
                    save_strategy="no", packing=True, padding_free=True, max_length=64, logging_steps=100,
                    disable_tqdm=True)
    model = tiny_model()
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(examples(12, 4, 20)),
                         processing_class=tok, callbacks=[FlopsMeterCallback()])
    fed, collate = [], trainer.data_collator

    def recording(features):  # TRL's padding-free collator: one row, cu_seq_lens_q marks the sequences
        batch = collate(features)
        fed.append(batch["cu_seq_lens_q"].diff().tolist())
        return batch

    trainer.data_collator = recording
    trainer.train()
    fed = fed[:3]
    st = load_state(tmp_path)
    fm = build_flop_model(model.config.to_dict(), TrainingSetup(method="full"))
    lengths = [n for b in fed for n in b]
    assert st.counts.sequences_effective == len(lengths) and st.counts.tokens_effective == sum(lengths)
    # TRL's fused LM head scores hidden[:, :-1]: one position fewer per (packed) row than there are tokens
    head = len(fed) * fm.head.training
    assert st.counts.head_positions == sum(lengths) - len(fed)
    assert math.isclose(st.flops.effective.total, fm.batch(lengths).training - head, rel_tol=1e-12)
    assert math.isclose(st.flops.executed.total, fm.batch([sum(b) for b in fed]).training - head, rel_tol=1e-12)
