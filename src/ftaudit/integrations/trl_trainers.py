"""What the FLOP meter's Trainer callback knows about TRL: the objective a config class trains, the generation
settings it cannot count, and TRL's vLLM engine, whose rollouts run outside the hooked model."""

from __future__ import annotations

import contextlib
import functools
import weakref

from ftaudit.errors import BadInput

# TRL's configuration classes name the objective; each config subclasses TrainingArguments.
_CONFIG_OBJECTIVES = {"DPOConfig": "dpo", "KTOConfig": "dpo", "ORPOConfig": "dpo", "GRPOConfig": "grpo",
                      "RLOOConfig": "grpo"}


_VLLM_CALLBACKS: weakref.WeakSet = weakref.WeakSet()


def count_vllm_rollouts(callback) -> None:  # a FlopsMeterCallback: its `meter` changes at train begin
    """TRL's vLLM engine (`use_vllm=True`, colocate or server) generates outside the hooked model: every
    `VLLMGeneration.generate` returns this rank's prompt and completion token ids, which the meters of the
    registered callbacks count (`FlopMeter.add_generation`); the engine's own forwards are not hooked or discovered."""
    from trl.generation.vllm_generation import VLLMGeneration

    _VLLM_CALLBACKS.add(callback)
    original = VLLMGeneration.generate
    if getattr(original, "_ftaudit_wrapped", False):
        return

    @functools.wraps(original)
    def generate(self, *args, **kwargs):
        meters = [cb.meter for cb in _VLLM_CALLBACKS if cb.meter is not None and cb.meter.counting]
        with contextlib.ExitStack() as outside:
            for meter in meters:
                outside.enter_context(meter.outside())
            result = original(self, *args, **kwargs)
        rollouts = [(len(p), len(c)) for p, c in zip(result[0], result[1], strict=True) if len(p) and len(c)]
        for meter in meters:
            meter.add_generation([p for p, _ in rollouts], [c for _, c in rollouts],
                                 engine=f"TRL's vLLM engine ({self.mode} mode)")
        return result

    generate._ftaudit_wrapped = True  # type: ignore[attr-defined]
    VLLMGeneration.generate = generate


def objective_of(args) -> str:
    for cls in type(args).__mro__:
        if cls.__name__ in _CONFIG_OBJECTIVES:
            return _CONFIG_OBJECTIVES[cls.__name__]
    return "sft"


def check_generation(args) -> None:
    if getattr(args, "use_transformers_continuous_batching", False):
        raise BadInput("use_transformers_continuous_batching=True generates through a paged cache whose key lengths "
                       "the meter cannot read (the rollouts' attention would be undercounted); set it to False, or "
                       "use_vllm=True")
