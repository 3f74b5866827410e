"""Tiny models for the evaluation tests: a byte-level BPE tokenizer trained offline, a 2-layer Llama built from
its config, a fine-tuned copy that has memorised canaries and personal data, and LoRA adapters."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from eval_fixtures import PII_RECORDS, TASK_RECORDS, corpus  # noqa: E402

from ftaudit.evaluation.memorisation import insert_canaries


def _train(model, tok, texts, steps, lr, seed=0):
    import torch

    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    enc = tok(texts, return_tensors="pt", padding=True)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # left padding: positions as at evaluation
    for _ in range(steps):
        loss = model(**enc, position_ids=pos, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return float(loss.detach())


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """{'base': dir, 'tuned': dir, 'adapter': dir, 'bad_adapter': dir, 'manifest': CanaryManifest,
    'training': records}."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus(), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    tok.padding_side = "left"

    def build(hidden=64, seed=0):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            tie_word_embeddings=True,
        )
        return LlamaForCausalLM(cfg).eval()

    def save(model, name):
        path = root / name
        model.save_pretrained(path)
        tok.save_pretrained(path)
        return path

    base = build()
    base_dir = save(base, "base")

    training, manifest = insert_canaries(
        PII_RECORDS + TASK_RECORDS, n_inserted=2, n_unseen=2, repeats=2, digits=6, seed=7
    )
    tuned = build()
    tuned.load_state_dict(base.state_dict())
    texts = [r["prompt"] + r["completion"] for r in training]
    loss = _train(tuned, tok, texts, steps=150, lr=5e-3)
    tuned_dir = save(tuned, "tuned")

    lora_cfg = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(build(), lora_cfg)
    _train(peft_model, tok, [r["prompt"] + r["completion"] for r in TASK_RECORDS], steps=5, lr=1e-2)
    adapter_dir = root / "adapter"
    peft_model.save_pretrained(adapter_dir)

    other = get_peft_model(
        build(hidden=32), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    bad_adapter_dir = root / "bad_adapter"
    other.save_pretrained(bad_adapter_dir)
    random.seed(0)
    return {
        "base": str(base_dir),
        "tuned": str(tuned_dir),
        "adapter": str(adapter_dir),
        "bad_adapter": str(bad_adapter_dir),
        "manifest": manifest,
        "training": training,
        "final_loss": loss,
        "root": Path(root),
    }
