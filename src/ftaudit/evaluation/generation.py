"""Batched generation and likelihood scoring with left padding.

Rows are sorted by length before batching (less padding), and position ids are computed from the attention mask,
so a row's numbers do not depend on what it was batched with (tests check batched == unbatched).
Prompts longer than the context window are truncated from the left, and counted: the evidence says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from ftaudit.evaluation.models import LoadedModel


class DecodingSettings(BaseModel):
    """Everything needed to reproduce a generation (greedy by default)."""

    model_config = ConfigDict(extra="forbid")
    do_sample: bool = Field(False, description="False: greedy decoding (deterministic).")
    max_new_tokens: int = Field(48, ge=1, le=4096, description="Default cap on generated tokens per answer.")
    temperature: float | None = Field(None, description="Only with do_sample.")
    top_p: float | None = Field(None, description="Only with do_sample.")
    seed: int = Field(0, description="Seed of the sampler (only with do_sample).")
    batch_size: int = Field(32, ge=1, description="Prompts generated or scored at once.")
    prompt_format: str = Field(
        "raw", description="raw: prompt text as is; chat: the tokenizer's chat template, one user turn."
    )


@dataclass
class Usage:
    """Counts the runner reports into the evidence."""

    truncated_prompts: int = 0
    generated_rows: int = 0
    scored_rows: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Runner:
    def __init__(self, loaded: LoadedModel, settings: DecodingSettings):
        import torch

        self.loaded = loaded
        self.tok = loaded.tokenizer
        self.settings = settings
        self.usage = Usage()
        self.torch = torch
        self.device = next(loaded.model.parameters()).device
        if settings.prompt_format not in ("raw", "chat"):
            from ftaudit.errors import BadInput

            raise BadInput(f"prompt_format {settings.prompt_format!r}: use raw or chat")
        if settings.prompt_format == "chat" and not getattr(self.tok, "chat_template", None):
            from ftaudit.errors import BadInput

            raise BadInput(f"prompt_format chat: model {loaded.ref.spec} has no chat template; use prompt_format raw")

    # -- text -> ids ---------------------------------------------------------------------------------------------
    def _format(self, prompt: str, raw: bool = False) -> list[int]:
        if self.settings.prompt_format == "chat" and not raw:
            ids = self.tok.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
            )
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        return self.tok(prompt, add_special_tokens=True)["input_ids"]

    def _fit(self, ids: list[int], room: int) -> list[int]:
        """Keep the last `room` tokens (the end of a prompt is what the model continues from)."""
        limit = max(1, self.loaded.context_window - room)
        if len(ids) > limit:
            self.usage.truncated_prompts += 1
            return ids[-limit:]
        return ids

    def _pad_left(self, rows: list[list[int]]):
        torch = self.torch
        width = max(len(r) for r in rows)
        pad = self.tok.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _batches(self, lengths: Sequence[int]):
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        bs = self.settings.batch_size
        for start in range(0, len(order), bs):
            yield order[start : start + bs]

    # -- generation ----------------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int | None = None, raw: bool = False) -> list[str]:
        """Continuations (without the prompt), in the order of `prompts`. `raw`: never apply the chat template
        (for continuing training text verbatim, as the extraction test does)."""
        return self.generate_and_score(prompts, None, max_new_tokens=max_new_tokens, raw=raw)[0]

    def generate_and_score(
        self,
        prompts: Sequence[str],
        references: Sequence[str] | None,
        *,
        max_new_tokens: int | None = None,
        raw: bool = False,
    ) -> tuple[list[str], list[tuple[float, int]] | None]:
        """Continuations, and (when `references` are given) each reference's log-probability after its prompt,
        from one prefill per batch: the prompt's key/value cache scores the reference, is cut back, and seeds
        generation (the prompt is the expensive part; results equal `generate` + `score`, tested)."""
        import time

        torch = self.torch
        if not prompts:
            return [], ([] if references is not None else None)
        new = max_new_tokens or self.settings.max_new_tokens
        ref_ids = (
            [self.tok(r, add_special_tokens=False)["input_ids"] for r in references] if references is not None else None
        )
        if ref_ids is not None and any(not r for r in ref_ids):
            raise ValueError("empty reference")
        room = [max(new, len(ref_ids[i]) if ref_ids else 0) for i in range(len(prompts))]
        encoded = [self._fit(self._format(p, raw), n) for p, n in zip(prompts, room, strict=True)]
        out: list[str] = [""] * len(prompts)
        scores: list[tuple[float, int]] | None = [(0.0, 0)] * len(prompts) if ref_ids is not None else None
        start = time.perf_counter()
        torch.manual_seed(self.settings.seed)
        kwargs = dict(max_new_tokens=new, do_sample=self.settings.do_sample, pad_token_id=self.tok.pad_token_id)
        if self.settings.do_sample:
            kwargs.update(
                {
                    k: v
                    for k, v in (("temperature", self.settings.temperature), ("top_p", self.settings.top_p))
                    if v is not None
                }
            )
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with self.loaded.active() as model, torch.inference_mode():
            for idx in self._batches([len(e) for e in encoded]):
                ids, mask = self._pad_left([encoded[i] for i in idx])
                if ref_ids is not None:
                    pos = (mask.cumsum(-1) - 1).clamp(min=0)
                    pre = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
                    sums = self._score_with_cache(model, pre, mask, [ref_ids[i] for i in idx])
                    for j, i in enumerate(idx):
                        scores[i] = (sums[j], len(ref_ids[i]))
                    pre.cache.crop(-1)  # generate() recomputes the last prompt token from this cache
                    gen = model.generate(input_ids=ids, attention_mask=mask, cache=pre.cache, **kwargs)
                else:
                    gen = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
                for row, i in enumerate(idx):
                    out[i] = self.tok.decode(gen[row, ids.shape[1] :], skip_special_tokens=True)
        self.usage.generated_rows += len(prompts)
        self.usage.seconds += time.perf_counter() - start
        return out, scores

    def _score_with_cache(self, model, pre, mask, options: list[list[int]]) -> list[float]:
        """Log-probability of one token sequence per row after the cached context; the cache is cut back after."""
        torch = self.torch
        first = torch.log_softmax(pre.logits[:, -1].float(), dim=-1)
        past = pre.cache
        width = max(len(r) for r in options)
        pad = self.tok.pad_token_id
        o_ids = torch.full((len(options), width), pad, dtype=torch.long)
        o_mask = torch.zeros((len(options), width), dtype=torch.long)
        for j, r in enumerate(options):  # right-padded: real tokens never attend to padding
            o_ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
            o_mask[j, : len(r)] = 1
        o_ids, o_mask = o_ids.to(self.device), o_mask.to(self.device)
        sums = first.gather(-1, o_ids[:, :1]).squeeze(-1).clone()
        if width > 1:
            o_pos = mask.sum(-1, keepdim=True) + torch.arange(width, device=self.device)[None, :]
            o_out = model(
                input_ids=o_ids,
                attention_mask=torch.cat([mask, o_mask], dim=-1),
                position_ids=o_pos,
                cache=past,
                use_cache=True,
            )
            rest = (
                torch.log_softmax(o_out.logits[:, :-1].float(), dim=-1)
                .gather(-1, o_ids[:, 1:].unsqueeze(-1))
                .squeeze(-1)
            )
            sums = sums + (rest * o_mask[:, 1:]).sum(-1)
            past.crop(-width)
        return [float(x) for x in sums]

    # -- scoring -------------------------------------------------------------------------------------------------
    def score(
        self, contexts: Sequence[str], continuations: Sequence[str], *, raw: bool = False
    ) -> list[tuple[float, int]]:
        """(sum of log-probabilities of the continuation's tokens given the context, number of those tokens).

        The context is tokenised alone and the continuation appended as its own tokens, so every context/
        continuation pair is split at the same token boundary whatever the tokenizer merges."""
        import time

        torch = self.torch
        if len(contexts) != len(continuations):
            raise ValueError("contexts and continuations differ in length")
        rows, cont_lens = [], []
        for ctx, cont in zip(contexts, continuations, strict=True):
            ctx_ids = (
                self._format(ctx, raw)
                if ctx
                else ([self.tok.bos_token_id] if self.tok.bos_token_id is not None else [])
            )
            cont_ids = self.tok(cont, add_special_tokens=False)["input_ids"]
            if not cont_ids:
                raise ValueError("empty continuation")
            if not ctx_ids:  # no BOS token: the first continuation token becomes context
                ctx_ids, cont_ids = cont_ids[:1], cont_ids[1:]
            cont_ids = cont_ids[-(self.loaded.context_window - 1) :]
            ctx_ids = self._fit(ctx_ids, len(cont_ids))
            rows.append(ctx_ids + cont_ids)
            cont_lens.append(len(cont_ids))
        results: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
        start = time.perf_counter()
        with self.loaded.active() as model, torch.inference_mode():
            for idx in self._batches([len(r) for r in rows]):
                ids, mask = self._pad_left([rows[i] for i in idx])
                keep = max(cont_lens[i] for i in idx)
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                # left padding puts every continuation at the right edge: only the last `keep`+1 logits are needed
                logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep + 1).logits
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # predicts positions -keep..-1
                targets = ids[:, -keep:]
                tok_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                for row, i in enumerate(idx):
                    n = cont_lens[i]
                    results[i] = (float(tok_lp[row, keep - n :].sum()), n)
        self.usage.scored_rows += len(rows)
        self.usage.seconds += time.perf_counter() - start
        return results

    def score_options(
        self, contexts: Sequence[str], options: Sequence[Sequence[str]], *, raw: bool = False
    ) -> list[list[tuple[float, int]]]:
        """For each context, (log-probability, tokens) of each of its options. The context is run once and its
        key/value cache reused for every option (a 2-4x saving for multiple choice and favourable/unfavourable
        endings); results equal `score` for the same pairs (tested)."""
        import time

        torch = self.torch
        ctx_rows = [self._format(c, raw) if c else [] for c in contexts]
        opt_rows = [[self.tok(o, add_special_tokens=False)["input_ids"] for o in opts] for opts in options]
        if any(not r for r in ctx_rows) or any(not o for opts in opt_rows for o in opts):
            raise ValueError("score_options needs non-empty contexts and options")
        longest = [max(len(o) for o in opts) for opts in opt_rows]
        ctx_rows = [self._fit(r, n) for r, n in zip(ctx_rows, longest, strict=True)]
        results: list[list[tuple[float, int]]] = [[] for _ in contexts]
        start = time.perf_counter()
        pad = self.tok.pad_token_id
        with self.loaded.active() as model, torch.inference_mode():
            for idx in self._batches([len(r) for r in ctx_rows]):
                ids, mask = self._pad_left([ctx_rows[i] for i in idx])
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
                for k in range(max(len(opt_rows[i]) for i in idx)):
                    rows = [opt_rows[i][k] if k < len(opt_rows[i]) else [pad] for i in idx]
                    sums = self._score_with_cache(model, out, mask, rows)
                    for j, i in enumerate(idx):
                        if k < len(opt_rows[i]):
                            results[i].append((sums[j], len(opt_rows[i][k])))
        self.usage.scored_rows += sum(len(o) for o in opt_rows)
        self.usage.seconds += time.perf_counter() - start
        return results

    def perplexity(self, contexts: Sequence[str], texts: Sequence[str], *, raw: bool = False) -> tuple[float, int]:
        """Perplexity of `texts` given `contexts` (token-weighted) and the number of tokens scored."""
        scores = self.score(contexts, texts, raw=raw)
        nll = -sum(s for s, _ in scores)
        n = sum(k for _, k in scores)
        return (math.exp(nll / n) if n else float("nan"), n)
