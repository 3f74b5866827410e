"""`BatchCounter`: what one model executes, call by call, read from the arguments of its forward.

A forward pre-hook hands every call's `(args, kwargs)` to `count`. It reads `input_ids` / `inputs_embeds`,
`attention_mask`, `position_ids`, `cu_seq_lens_q` / `cu_seqlens` (packed rows), `logits_to_keep` and TRL's
`fused_lm_head` (where the LM head runs) and `cache` / `past_key_values` (KV-cached generation). Counters stay on
the device and never synchronise with it: what the shapes tell is a host integer, what depends on the data is a
device tensor read only when the meter synchronises (`vector`). Plain `input_ids` batches do no device work at all.

Attention is kept as histograms: sequence length → attention units executed (padded rows, or each packed
sequence under a variable-length kernel) and → real sequences; cached key length → decoding query rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ftaudit.compute.evidence import MeterCounts

HEAD_FIELDS = ("micro_batches", "tokens_exec", "tokens_eff", "seq_exec", "seq_eff", "head_positions")


def _cache_length(cache) -> int:
    get = getattr(cache, "get_seq_length", None)
    if get is not None:
        return int(get())
    if isinstance(cache, (tuple, list)) and cache and isinstance(cache[0], (tuple, list)):
        return int(cache[0][0].shape[-2])  # legacy tuple-of-tuples cache
    return 0


def _fused_head_is_compact(device: torch.device) -> bool:
    """TRL's fused head scores only the labelled positions where Triton runs, every position elsewhere."""
    try:
        from trl.kernels.chunked_logprob import _use_triton
    except ImportError:
        return False
    return bool(_use_triton(device))


class BatchCounter:
    """Per-rank counts of one model's calls since the meter started.

    varlen_kernel  the model runs a flash kernel, which executes attention per real sequence (padding and packing
                   skipped) and only the unmasked blocks; eager and SDPA run the whole padded row.
    """

    def __init__(self, varlen_kernel: bool = False):
        self.varlen = varlen_kernel
        self.calls = 0
        self.micro_batches = 0
        self.uncounted = 0
        self.tokens_exec = 0
        self.seq_exec = 0
        self.head_positions = 0
        self.host_exec_hist: dict[int, int] = {}
        self.host_eff_hist: dict[int, int] = {}
        self.decode_hist: dict[int, int] = {}
        self.host_tokens_eff = 0
        self.host_seq_eff = 0
        self.dev_scalars: torch.Tensor | None = None  # [tokens_eff, seq_eff, seq_exec(varlen), head_positions]
        self.dev_eff_hist: torch.Tensor | None = None
        self.dev_exec_hist: torch.Tensor | None = None

    def _ensure(self, size: int, device: torch.device) -> None:
        if self.dev_scalars is None:
            self.dev_scalars = torch.zeros(4, dtype=torch.int64, device=device)
            self.dev_eff_hist = torch.zeros(size + 1, dtype=torch.int64, device=device)
            self.dev_exec_hist = torch.zeros(size + 1, dtype=torch.int64, device=device)
        elif self.dev_eff_hist.numel() < size + 1:
            grow = size + 1 - self.dev_eff_hist.numel()
            self.dev_eff_hist = F.pad(self.dev_eff_hist, (0, grow))
            self.dev_exec_hist = F.pad(self.dev_exec_hist, (0, grow))

    @staticmethod
    def _add(hist: dict[int, int], key: int, n: int) -> None:
        hist[key] = hist.get(key, 0) + n

    def count(self, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args and isinstance(args[0], torch.Tensor):
            ids = args[0]
        emb = kwargs.get("inputs_embeds")
        ref = ids if ids is not None else emb
        if ref is None:
            self.uncounted += 1
            return
        if ids is not None and ids.dim() == 1:
            ids = ids.unsqueeze(0)
        shape = (ids if ids is not None else emb).shape
        b, s = int(shape[0]), int(shape[1])
        self.calls += 1
        self.micro_batches += 1
        self.tokens_exec += b * s
        self._count_head(kwargs, b, s, ref.device)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))  # transformers 5 renamed it `cache`
        cached = _cache_length(cache) if cache is not None else 0
        if cached:
            self._count_decode(b, s, cached)
            return
        mask = kwargs.get("attention_mask")
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dim() != 2):
            mask = None  # 4-D / custom masks carry no per-token padding flag we can read
        pos = kwargs.get("position_ids")
        if pos is not None and (not isinstance(pos, torch.Tensor) or pos.dim() != 2):
            pos = None  # e.g. 3-D multimodal rotary positions
        if cache is not None:
            pos = None  # generation passes positions of left-padded prompts; the mask tells the sequences
        cu = next((kwargs[k] for k in ("cu_seq_lens_q", "cu_seqlens_q", "cu_seqlens")
                   if isinstance(kwargs.get(k), torch.Tensor)), None)
        if cu is None and mask is None and pos is None:
            # Plain unpadded rows: the shapes say everything, no device work at all.
            self._add(self.host_exec_hist, s, b)
            self._add(self.host_eff_hist, s, b)
            self.host_tokens_eff += b * s
            self.host_seq_eff += b
            self.seq_exec += b
            return
        self._ensure(s, ref.device)
        if cu is not None:
            self._count_packed(cu, b, s, ref.device)
        else:
            self._count_masked(mask, pos, b, s, ref.device)

    def count_rollout(self, prompt_len: int, completion_len: int) -> None:
        """One completion generated outside the hooked model (a vLLM engine), from its lengths, as `transformers`
        generate runs it: the prompt's prefill with logits on its last position, then completion_len − 1 decoding
        steps, each attending every cached key (no padding: each sequence on its own)."""
        self.calls += 1
        self.micro_batches += 1
        self.tokens_exec += prompt_len + completion_len - 1
        self.host_tokens_eff += prompt_len + completion_len - 1
        self.head_positions += completion_len
        self.seq_exec += 1
        self.host_seq_eff += 1
        self._add(self.host_exec_hist, prompt_len, 1)
        self._add(self.host_eff_hist, prompt_len, 1)
        for i in range(1, completion_len):
            self._add(self.decode_hist, prompt_len + i, 1)

    def _count_head(self, kwargs: dict, b: int, s: int, device: torch.device) -> None:
        if kwargs.get("fused_lm_head"):  # TRL: the head on hidden[:, :-1] (or only its labelled positions)
            labels = kwargs.get("labels")
            if isinstance(labels, torch.Tensor) and _fused_head_is_compact(device):
                self._ensure(s, device)
                self.dev_scalars[3] += (labels[:, 1:] != -100).sum()
            else:
                self.head_positions += b * max(s - 1, 0)
            return
        keep = kwargs.get("logits_to_keep")
        if isinstance(keep, torch.Tensor):
            self.head_positions += b * int(keep.numel() if keep.dim() else keep.item() or s)
        elif isinstance(keep, int) and keep > 0:
            self.head_positions += b * min(keep, s)
        else:
            self.head_positions += b * s

    def _count_decode(self, b: int, q: int, cached: int) -> None:
        """q new tokens after `cached` keys: eager/SDPA run q×(cached+q) pairs, a flash kernel the causal rows."""
        if self.varlen:
            for i in range(q):
                self._add(self.decode_hist, cached + i + 1, b)
        else:
            self._add(self.decode_hist, cached + q, b * q)
        self.host_tokens_eff += b * q

    def _count_packed(self, cu: torch.Tensor, b: int, s: int, device: torch.device) -> None:
        cu = cu.to(device=device, dtype=torch.int64).flatten()
        lens = cu[1:] - cu[:-1]
        ones = torch.ones_like(lens)
        self.dev_eff_hist.index_add_(0, lens.clamp(0, s), ones)
        self.dev_scalars[0] += cu[-1] - cu[0]
        self.dev_scalars[1] += lens.numel()
        if self.varlen:
            self.dev_exec_hist.index_add_(0, lens.clamp(0, s), ones)
            self.dev_scalars[2] += lens.numel()
        else:
            self._add(self.host_exec_hist, s, b)
            self.seq_exec += b

    def _count_masked(self, mask, pos, b: int, s: int, device: torch.device) -> None:
        real = mask.to(device=device).bool() if mask is not None else torch.ones(b, s, dtype=torch.bool,
                                                                                   device=device)
        prev_real = F.pad(real[:, :-1], (1, 0), value=False)
        cont = real & prev_real  # token continues the sequence of the token before it
        if pos is not None:
            pos = pos.to(device)
            if pos.shape[0] != b:
                pos = pos.expand(b, -1)
            prev_pos = F.pad(pos[:, :-1], (1, 0), value=-2)
            cont = cont & (pos == prev_pos + 1)  # a restart of position ids starts a new packed sequence
        is_start = real & ~cont
        is_end = real & ~F.pad(cont[:, 1:], (0, 1), value=False)
        idx = torch.arange(s, device=device).expand(b, s)
        start_idx = torch.cummax(torch.where(is_start, idx, torch.zeros_like(idx)), dim=1).values
        seg_len = torch.where(is_end, idx - start_idx + 1, torch.zeros_like(idx)).flatten()
        ends = is_end.flatten().to(torch.int64)
        self.dev_eff_hist.index_add_(0, seg_len, ends)
        self.dev_scalars[0] += real.sum()
        n_ends = ends.sum()
        self.dev_scalars[1] += n_ends
        if self.varlen:
            self.dev_exec_hist.index_add_(0, seg_len, ends)
            self.dev_scalars[2] += n_ends
        else:
            self._add(self.host_exec_hist, s, b)
            self.seq_exec += b

    def hist_size(self) -> int:
        size = max([*self.host_exec_hist, *self.host_eff_hist, *self.decode_hist, 0]) + 1
        if self.dev_eff_hist is not None:
            size = max(size, self.dev_eff_hist.numel())
        return size

    def vector(self, size: int, device: torch.device) -> torch.Tensor:
        """`SyncLayout` order: the HEAD_FIELDS, then the executed, effective and decoding histograms of `size`
        bins each; float64 (counts stay exact up to 2**53)."""
        head = torch.tensor([self.micro_batches, self.tokens_exec, self.host_tokens_eff, self.seq_exec,
                             self.host_seq_eff, self.head_positions], dtype=torch.float64, device=device)
        hists = torch.zeros(3, size, dtype=torch.float64, device=device)
        for row, hist in enumerate((self.host_exec_hist, self.host_eff_hist, self.decode_hist)):
            for k, v in hist.items():
                hists[row, k] += v
        if self.dev_scalars is not None:
            sc = self.dev_scalars.to(device=device, dtype=torch.float64)
            head[2] += sc[0]
            head[4] += sc[1]
            head[3] += sc[2]
            head[5] += sc[3]
            n = self.dev_eff_hist.numel()
            hists[0, :n] += self.dev_exec_hist.to(device=device, dtype=torch.float64)
            hists[1, :n] += self.dev_eff_hist.to(device=device, dtype=torch.float64)
        return torch.cat([head, hists.flatten()])


@dataclass(frozen=True)
class SyncLayout:
    """What the meter all-reduces at a sync, in one float64 vector: per role (in `roles` order) the counter's
    `vector`, then the hardware totals and the CPU energy reading. Every rank packs every role, so the vectors
    line up whatever each rank has seen."""

    roles: tuple[str, ...]
    hist_size: int
    n_hardware: int

    @property
    def per_role(self) -> int:
        return len(HEAD_FIELDS) + 3 * self.hist_size

    def role_slice(self, i: int) -> slice:
        return slice(i * self.per_role, (i + 1) * self.per_role)

    @property
    def hardware_slice(self) -> slice:
        start = len(self.roles) * self.per_role
        return slice(start, start + self.n_hardware)

    @property
    def energy_slice(self) -> slice:
        start = len(self.roles) * self.per_role + self.n_hardware
        return slice(start, start + 3)  # joules, estimated (0/1), unused


def counts_from_vector(v: list[float], size: int, optimizer_steps: int = 0) -> MeterCounts:
    n = len(HEAD_FIELDS)
    exec_h, eff_h, dec_h = v[n:n + size], v[n + size:n + 2 * size], v[n + 2 * size:n + 3 * size]
    return MeterCounts(
        micro_batches=int(v[0]), optimizer_steps=optimizer_steps, tokens_executed=int(v[1]),
        tokens_effective=int(v[2]), sequences_executed=int(v[3]), sequences_effective=int(v[4]),
        head_positions=int(v[5]),
        lengths_executed={i: int(c) for i, c in enumerate(exec_h) if c and i},
        lengths_effective={i: int(c) for i, c in enumerate(eff_h) if c and i},
        decode_keys={i: int(c) for i, c in enumerate(dec_h) if c and i},
    )
