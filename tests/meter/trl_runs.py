"""TRL trainers (SFT, DPO, GRPO) on a tiny Llama, measured twice: by the meter, and by PyTorch's FlopCounterMode
around the same trainer's construction and `train()`.

FlopCounterMode counts every matmul the run executes, with two adjustments that the FLOP convention asks for:
TRL's fused LM head accumulates its backward with in-place `addmm_`, which FlopCounterMode does not count by
default (added here), and it recomputes the logits in its backward to save memory (subtracted: recomputation is
not counted, guidelines Annex A.1). Eager attention, no gradient checkpointing: every matmul is visible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from meter_tiny import VOCAB, tiny_model
from torch.utils.flop_counter import FlopCounterMode

from ftaudit.compute.meter import MeterState, load_state


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # Special tokens that no word contains: a fast tokenizer matches them inside words ("t2" in "t231").
    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2, "<bos>": 3, **{f"w{i}": i for i in range(4, VOCAB)}}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>")


def _words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(f"w{rng.randrange(4, VOCAB)}" for _ in range(rng.randint(lo, hi)))


def _addmm_(self_shape, a_shape, b_shape, *args, out_shape=None, **kw) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


class _FusedHeadRecompute:
    """Σ 2·N·d·V over the backward calls of TRL's chunked log-prob function: the logits it recomputes."""

    def __init__(self):
        from trl.kernels.chunked_logprob import ChunkedLogProbFunction

        self.cls, self.original, self.flops = ChunkedLogProbFunction, ChunkedLogProbFunction.backward, 0

    def __enter__(self):
        original = self.original

        def backward(ctx, *grads):
            hidden, weight = ctx.saved_tensors[:2]
            self.flops += 2 * hidden.shape[0] * hidden.shape[1] * weight.shape[0]
            return original(ctx, *grads)

        self.cls.backward = staticmethod(backward)
        return self

    def __exit__(self, *exc):
        self.cls.backward = staticmethod(self.original)


class TransformersEngine:
    """Stands in for TRL's `VLLMGeneration` (vLLM needs CUDA, which this machine lacks): generates each completion
    on its own with transformers, as a separate engine would, and returns what `VLLMGeneration.generate` returns —
    this rank's prompt ids, completion ids and per-token logprobs."""

    def __init__(self, model, processing_class, max_completion_length, mode, **kw):
        self.model, self.tok, self.max_new, self.mode = model, processing_class, max_completion_length, mode

    def sync_weights(self):
        pass

    def generate(self, prompts, images, num_generations, profiler=None):
        completions = []
        with torch.no_grad():
            for ids in prompts:
                out = self.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=self.max_new,
                                          attention_mask=torch.ones(1, len(ids), dtype=torch.long), do_sample=True,
                                          pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id)
                completions.append(out[0, len(ids):].tolist())
        return prompts, completions, [[[0.0]] * len(c) for c in completions], None


@dataclass
class Measured:
    counted: float  # FlopCounterMode, fused-head recompute subtracted
    state: MeterState

    @property
    def error(self) -> float:
        return self.state.regulatory_flops / self.counted - 1

    def line(self, role: str) -> float:
        return sum(line.flops.regulatory for line in self.state.breakdown if line.role == role)


def run(kind: str, out: Path, *, lora: bool = False, steps: int = 3, kv_heads: int = 2,
        reward_model: bool = False, prompt_len: int | None = None, vllm: bool = False, **config) -> Measured:
    """kind: sft | dpo (reference: TRL's own copy, or adapters off with LoRA) | dpo-explicit | dpo-precomputed | kto |
    orpo |
    grpo | rloo (config beta=, num_generations=, max_completion_length=; reward_model: a classifier scores too).
    kv_heads=4: dense multi-head attention instead of grouped-query; prompt_len: every GRPO prompt that long;
    vllm: TRL's vLLM path (use_vllm=True), its engine replaced by `TransformersEngine`."""
    from contextlib import ExitStack
    from unittest import mock

    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from ftaudit.integrations.hf import FlopsMeterCallback

    torch.set_num_threads(1)
    rng = random.Random(0)
    model_dir = out / "base"
    tiny_model(kv_heads=kv_heads).save_pretrained(model_dir)  # TRL builds its live reference from the policy's path
    tokenizer().save_pretrained(model_dir)
    common = dict(output_dir=str(out), per_device_train_batch_size=4, max_steps=steps, report_to=[], use_cpu=True,
                  save_strategy="no", logging_steps=100, disable_tqdm=True, gradient_checkpointing=False, seed=0)
    peft = None
    if lora:
        from peft import LoraConfig

        peft = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _addmm_}) as counter, \
            _FusedHeadRecompute() as recompute, ExitStack() as engine:
        if vllm:
            from trl.generation.vllm_generation import VLLMGeneration

            engine.enter_context(mock.patch.multiple(VLLMGeneration, **{
                name: getattr(TransformersEngine, name) for name in ("__init__", "sync_weights", "generate")}))
            config = {"use_vllm": True, "vllm_mode": "colocate", "vllm_importance_sampling_correction": False,
                      **config}
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
        cb = FlopsMeterCallback(output_dir=out)
        if kind == "sft":
            from trl import SFTConfig, SFTTrainer

            data = Dataset.from_list([{"text": _words(rng, 4, 20)} for _ in range(4 * steps)])
            trainer = SFTTrainer(model=model, args=SFTConfig(**common, max_length=64, **config), train_dataset=data,
                                 processing_class=tokenizer(), callbacks=[cb], peft_config=peft)
        elif kind == "kto":
            from trl import KTOConfig, KTOTrainer

            data = Dataset.from_list([{"prompt": _words(rng, 3, 8), "completion": _words(rng, 2, 9),
                                       "label": i % 2 == 0} for i in range(8 * steps)])
            trainer = KTOTrainer(model=model, args=KTOConfig(**common, **config), train_dataset=data,
                                 processing_class=tokenizer(), callbacks=[cb], peft_config=peft)
        elif kind == "orpo":
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            data = Dataset.from_list([{"prompt": _words(rng, 3, 8), "chosen": _words(rng, 2, 9),
                                       "rejected": _words(rng, 2, 9)} for _ in range(4 * steps)])
            trainer = ORPOTrainer(model=model, args=ORPOConfig(**common, **config), train_dataset=data,
                                  processing_class=tokenizer(), callbacks=[cb], peft_config=peft)
        elif kind.startswith("dpo"):
            from trl import DPOConfig, DPOTrainer

            data = Dataset.from_list([{"prompt": _words(rng, 3, 8), "chosen": _words(rng, 2, 9),
                                       "rejected": _words(rng, 2, 9)} for _ in range(4 * steps)])
            kw = {"ref_model": AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")} \
                if kind == "dpo-explicit" else {}
            args = DPOConfig(**common, precompute_ref_log_probs=kind == "dpo-precomputed", **config)
            trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer(),
                                 callbacks=[cb], peft_config=peft, **kw)
        else:  # grpo, rloo: the same rollout loop
            from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

            config_cls, trainer_cls = (RLOOConfig, RLOOTrainer) if kind == "rloo" else (GRPOConfig, GRPOTrainer)

            lo, hi = (prompt_len, prompt_len) if prompt_len else (3, 8)
            data = Dataset.from_list([{"prompt": _words(rng, lo, hi)} for _ in range(4 * steps)])

            def length_reward(completions, **kw):
                return [float(len(c)) for c in completions]

            funcs = [length_reward]
            if reward_model:
                from transformers import AutoModelForSequenceClassification

                funcs.append(AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1,
                                                                                attn_implementation="eager"))
            config = {"num_generations": 2, "max_completion_length": 8, "beta": 0.0, **config}
            trainer = trainer_cls(model=model, reward_funcs=funcs, args=config_cls(**common, **config),
                                  train_dataset=data, processing_class=tokenizer(), callbacks=[cb],
                                  peft_config=peft)
        trainer.train()
    return Measured(counted=counter.get_total_flops() - recompute.flops, state=load_state(out))
