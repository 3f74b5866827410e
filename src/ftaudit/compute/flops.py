"""Training FLOPs of one decoder model, from its architecture and the training set-up (pure Python, no torch).

Convention (docs/design.md, "FLOP convention"): 2 FLOP per multiply-accumulate of every matrix multiplication executed
in the forward and backward pass; attention scores (QKᵀ) and attention-weighted values (PV) as executed (the full
S×S per sequence for eager/SDPA, the unmasked blocks only for a flash kernel); element-wise ops, norms, softmax and
the embedding lookup are not matmuls; logits are computed at every position.

Backward, as autograd executes it: a matmul computes the gradient of an operand only when that operand requires
grad. Activations before the first trainable parameter in forward order do not (with LoRA, layer 0's frozen
k_proj computes no input gradient), and frozen weights get no weight gradient. We walk the model in forward order
tracking that flag, so full, LoRA and partial fine-tuning all fall out of one walk.

Gradient-checkpointing recompute is reported apart and excluded from the regulatory figure (guidelines Annex A.1:
"recomputing activations to save memory" does not count).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

from ftaudit.compute.arch import Architecture, architecture_from_config
from ftaudit.errors import BadInput

# PEFT's default LoRA target modules per model type (peft 0.21, peft/utils/constants.py,
# TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING); model types not listed there need explicit targets.
PEFT_DEFAULT_LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn",),
    "bloom": ("query_key_value",),
    "opt": ("q_proj", "v_proj"),
    "gptj": ("q_proj", "v_proj"),
    "gpt_neox": ("query_key_value",),
    "llama": ("q_proj", "v_proj"),
    "falcon": ("query_key_value",),
    "mistral": ("q_proj", "v_proj"),
    "mixtral": ("q_proj", "v_proj"),
    "stablelm": ("q_proj", "v_proj"),
    "phi": ("q_proj", "v_proj", "fc1", "fc2"),
    "gemma": ("q_proj", "v_proj"),
    "gemma2": ("q_proj", "v_proj"),
    "gemma3_text": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "qwen3": ("q_proj", "v_proj"),
}

AttentionKernel = Literal["eager", "sdpa", "flash"]


@dataclass(frozen=True)
class TrainingSetup:
    method: Literal["full", "lora", "partial"] = "full"
    lora_r: int = 16
    # Leaf names (q_proj, ...), ("all-linear",), or one regular expression matched against full module names
    # (PEFT's rule); None = PEFT's default for the model type.
    lora_target_modules: tuple[str, ...] | None = None
    # Partial fine-tuning (and LoRA `modules_to_save`): fnmatch patterns on HF module or parameter names,
    # e.g. "model.layers.11.*", "lm_head". A parameter is trainable if a pattern matches its name or the name
    # of its module or of any module above it.
    trainable_patterns: tuple[str, ...] = ()
    quant_bits: int | None = None  # 4/8-bit base: parameters are counted logically, not as packed storage
    gradient_checkpointing: bool = False
    # Whether the embedding output requires grad although the embedding is frozen. transformers 5 turns this on
    # with gradient checkpointing (`enable_input_require_grads`), which adds input gradients down to layer 0.
    # None = follow `gradient_checkpointing`.
    inputs_require_grad: bool | None = None
    attention_kernel: AttentionKernel = "eager"

    def __post_init__(self):
        if self.method not in ("full", "lora", "partial"):
            raise BadInput(f"unknown fine-tuning method {self.method!r}; use full, lora or partial")
        if self.method == "lora" and (not isinstance(self.lora_r, int) or self.lora_r <= 0):
            raise BadInput(f"LoRA rank must be a positive integer, got {self.lora_r!r}")
        if self.quant_bits not in (None, 4, 8, 16, 32):
            raise BadInput(f"quantisation must be 4 or 8 bits, got {self.quant_bits!r}")
        if self.attention_kernel not in ("eager", "sdpa", "flash"):
            raise BadInput(f"unknown attention kernel {self.attention_kernel!r}; use eager, sdpa or flash")
        if self.method == "partial" and not self.trainable_patterns:
            raise BadInput("partial fine-tuning needs at least one trainable module pattern (--trainable)")


@dataclass(frozen=True)
class SequenceFlops:
    forward: float = 0.0
    backward: float = 0.0
    recompute: float = 0.0  # gradient-checkpointing recompute: reported, not part of `training`

    @property
    def training(self) -> float:
        """The regulatory figure: forward + backward (guidelines Annex A.1)."""
        return self.forward + self.backward

    def __add__(self, other: "SequenceFlops") -> "SequenceFlops":
        return SequenceFlops(self.forward + other.forward, self.backward + other.backward,
                             self.recompute + other.recompute)

    def scaled(self, k: float) -> "SequenceFlops":
        return SequenceFlops(self.forward * k, self.backward * k, self.recompute * k)


@dataclass(frozen=True)
class AttentionGroup:
    """Layers sharing one sliding window: FLOP per executed query-key pair (all these layers together)."""

    window: int | None
    per_pair: SequenceFlops


def attention_pairs(seq_len: int, window: int | None, kernel: AttentionKernel) -> float:
    """Query-key pairs a kernel executes for one sequence. Eager runs the full S×S and masks afterwards; "sdpa" is
    counted as FlopCounterMode counts it (full S×S, the conservative reading of whichever backend SDPA picks); a
    flash kernel skips the causally masked half and blocks outside the sliding window (block granularity ignored)."""
    s = seq_len
    if kernel != "flash":
        return float(s * s)
    if window is None or window >= s:
        return s * (s + 1) / 2.0
    w = window
    return w * (w + 1) / 2.0 + (s - w) * w  # rows 0..w-1 see i+1 keys, later rows see w keys


class FlopModel:
    """FLOP coefficients of one (architecture, set-up); per-sequence and per-batch evaluation is arithmetic."""

    def __init__(self, arch: Architecture, setup: TrainingSetup, *, per_token: SequenceFlops,
                 attention: tuple[AttentionGroup, ...], n_parameters: int, n_trainable_parameters: int,
                 method: str, warnings: list[str], lora_modules: tuple[str, ...] = (),
                 head: SequenceFlops = SequenceFlops()):
        self.architecture = arch
        self.setup = setup
        self.per_token = per_token  # linear (sequence-length-independent) FLOP per token, LM head included
        self.head = head  # the LM head's share of per_token: it runs only where logits are computed
        self.attention = attention
        self.n_parameters = n_parameters
        self.n_trainable_parameters = n_trainable_parameters
        self.method = method
        self.warnings = warnings
        self.lora_modules = lora_modules  # full names of the modules that get adapters

    @property
    def per_pair(self) -> SequenceFlops:
        """Attention FLOP per query-key pair over all layers (eager/SDPA: multiply by Σ S² of the sequences)."""
        total = SequenceFlops()
        for g in self.attention:
            total = total + g.per_pair
        return total

    def sequence(self, seq_len: int) -> SequenceFlops:
        """One unpadded sequence of `seq_len` tokens."""
        if seq_len <= 0:
            return SequenceFlops()
        total = self.per_token.scaled(seq_len)
        kernel = self.setup.attention_kernel
        for g in self.attention:
            total = total + g.per_pair.scaled(attention_pairs(seq_len, g.window, kernel))
        return total

    def batch(self, seq_lens: Iterable[int]) -> SequenceFlops:
        """Sum over the sequences of a micro-batch (packed sequences count separately)."""
        if self.setup.attention_kernel != "flash":
            n = sq = 0
            for s in seq_lens:
                if s > 0:
                    n += s
                    sq += s * s
            return self.from_sums(n, sq)
        total = SequenceFlops()
        for s in seq_lens:
            total = total + self.sequence(s)
        return total

    def from_sums(self, n_tokens: int, sum_sq_seq_lens: int) -> SequenceFlops:
        """From Σ tokens and Σ S² (exact for eager/SDPA attention; the meter accumulates just these two)."""
        if self.setup.attention_kernel == "flash":
            raise ValueError("from_sums is exact only for eager/sdpa attention; use batch(seq_lens) with flash")
        return self.per_token.scaled(n_tokens) + self.per_pair.scaled(sum_sq_seq_lens)

    def decode_step(self, keys: int) -> SequenceFlops:
        """Attention of one query against `keys` cached keys (KV-cached generation): eager/SDPA run every key,
        a flash kernel only those inside the sliding window."""
        total = SequenceFlops()
        for g in self.attention:
            n = keys if self.setup.attention_kernel != "flash" or g.window is None else min(keys, g.window)
            total = total + g.per_pair.scaled(n)
        return total

    def forward_flops_per_token(self, seq_len: int) -> float:
        return self.sequence(seq_len).forward / seq_len if seq_len > 0 else 0.0

    def training_flops(self, tokens: int, seq_len: int) -> SequenceFlops:
        """`tokens` in unpadded sequences of `seq_len` (the last one shorter if it does not divide)."""
        full, rest = divmod(int(tokens), int(seq_len))
        return self.sequence(seq_len).scaled(full) + self.sequence(rest)


# --------------------------------------------------------------------------------------------- the walk


@dataclass
class _Tally:
    fwd: float = 0.0
    bwd: float = 0.0
    rec: float = 0.0  # recompute inside a fused attention backward


@dataclass
class _Walk:
    arch: Architecture
    setup: TrainingSetup
    lora_targets: tuple[str, ...] | None
    lora_regex: re.Pattern | None
    tok: _Tally = field(default_factory=_Tally)
    layer_fwd_tok: float = 0.0  # forward FLOP/token inside decoder layers (for the recompute figure)
    att: dict = field(default_factory=dict)  # window -> _Tally per pair
    before_head: tuple[float, float] = (0.0, 0.0)  # the per-token tally before the LM head
    n_params: int = 0
    n_trainable: int = 0
    lora_hits: list = field(default_factory=list)
    linear_names: list = field(default_factory=list)  # every nn.Linear/Conv1D full name (for error messages)
    in_layer: bool = False

    # --- trainability
    def trainable(self, param: str) -> bool:
        s = self.setup
        if s.method == "full":
            return True
        if not s.trainable_patterns:
            return False
        parts = param.split(".")
        candidates = [param] + [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
        return any(fnmatch.fnmatchcase(c, p) for p in s.trainable_patterns for c in candidates)

    def param(self, name: str, count: int) -> bool:
        self.n_params += count
        t = self.trainable(name)
        if t:
            self.n_trainable += count
        return t

    def lora_targeted(self, module: str, is_lm_head: bool) -> bool:
        if self.setup.method != "lora":
            return False
        if self.lora_regex is not None:
            return bool(self.lora_regex.fullmatch(module))
        targets = self.lora_targets or ()
        if "all-linear" in targets:
            return not is_lm_head  # PEFT's all-linear excludes the output layer
        return any(module == t or module.endswith("." + t) for t in targets)

    # --- ops
    def _mm(self, rows: float, k: int, n: int, a_rg: bool, b_rg: bool):
        """Y = A·B with A (rows×k) and B (k×n): 2·rows·k·n forward; each operand's grad costs the same."""
        f = 2.0 * rows * k * n
        self.tok.fwd += f
        if self.in_layer:
            self.layer_fwd_tok += f
            self._last_mm = f
        if a_rg:
            self.tok.bwd += f
        if b_rg:
            self.tok.bwd += f

    def linear(self, module: str, x_rg: bool, n_in: int, n_out: int, bias: bool, *, is_lm_head: bool = False,
               weight_name: str | None = None, tied_to: str | None = None, count_params: bool = True) -> bool:
        """A Linear/Conv1D (or a bare weight used with F.linear): returns whether its output requires grad."""
        wname = weight_name or module + ".weight"
        if count_params:
            w_tr = self.param(wname, n_in * n_out)
        else:  # tied weight: counted once at the embedding
            w_tr = self.trainable(wname) or (tied_to is not None and self.trainable(tied_to))
        b_tr = self.param(module + ".bias", n_out) if bias else False
        self._mm(1, n_in, n_out, x_rg, w_tr)
        out_rg = x_rg or w_tr or b_tr
        if weight_name is None:
            self.linear_names.append(module)
            if self.lora_targeted(module, is_lm_head):
                r = self.setup.lora_r
                self.lora_hits.append(module)
                self.n_params += r * (n_in + n_out)
                self.n_trainable += r * (n_in + n_out)
                self._mm(1, n_in, r, x_rg, True)  # lora_A: grad for x only if x requires it
                self._mm(1, r, n_out, True, True)  # lora_B: its input (A's output) always requires grad
                out_rg = True
        return out_rg

    def norm(self, module: str | None, x_rg: bool, dim: int, kind: str | None = None, copies: int = 1) -> bool:
        if module is None:
            return x_rg
        kind = kind or self.arch.norm_kind
        if kind == "none":
            return x_rg
        w = self.param(module + ".weight", dim * copies)
        b = self.param(module + ".bias", dim * copies) if kind == "layer" else False
        return x_rg or w or b

    def attention_core(self, window: int | None, q_rg: bool, k_rg: bool, v_rg: bool,
                       qk_dim: int | None = None, v_dim: int | None = None):
        """QKᵀ and PV over all query heads (eager repeats K/V for GQA), per query-key pair."""
        a = self.arch
        qk = 2.0 * a.n_heads * (qk_dim or a.head_dim)  # QKᵀ, per pair
        pv = 2.0 * a.n_heads * (v_dim or a.head_dim)  # PV, per pair
        kernel = self.setup.attention_kernel
        t = self.att.setdefault(window if kernel == "flash" else None, _Tally())
        t.fwd += qk + pv
        p_rg = q_rg or k_rg
        if kernel == "eager":  # two autograd matmuls: each computes only the operand grads that are required
            t.bwd += qk * (int(q_rg) + int(k_rg)) + pv * (int(p_rg) + int(v_rg))
        elif q_rg or k_rg or v_rg:
            # A fused SDPA/flash backward computes dQ, dK, dV (and dP) together, and first recomputes the scores
            # QKᵀ it did not keep: activation recomputation to save memory, reported apart (guidelines Annex A.1).
            # Same split as torch.utils.flop_counter.sdpa_backward_flop_count.
            t.bwd += 2 * qk + 2 * pv
            t.rec += qk
        return p_rg or v_rg

    def mla_block(self, base: str, i: int, x_rg: bool) -> bool:
        """DeepSeek MLA (modeling_deepseek_v3.DeepseekV3Attention), K/V expanded per head from the latent."""
        a, m = self.arch, self.arch.mla
        qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        bias = a.qkv_bias
        if m.q_lora_rank:
            q = self.linear(f"{base}.q_a_proj", x_rg, a.hidden, m.q_lora_rank, bias)
            q = self.norm(f"{base}.q_a_layernorm", q, m.q_lora_rank, "rms")
            q_rg = self.linear(f"{base}.q_b_proj", q, m.q_lora_rank, a.n_heads * qk_dim, False)
        else:
            q_rg = self.linear(f"{base}.q_proj", x_rg, a.hidden, a.n_heads * qk_dim, False)
        c = self.linear(f"{base}.kv_a_proj_with_mqa", x_rg, a.hidden, m.kv_lora_rank + m.qk_rope_head_dim, bias)
        latent = self.norm(f"{base}.kv_a_layernorm", c, m.kv_lora_rank, "rms")
        kv = self.linear(f"{base}.kv_b_proj", latent, m.kv_lora_rank,
                         a.n_heads * (m.qk_nope_head_dim + m.v_head_dim), False)
        window = a.layer_windows[i] if i < len(a.layer_windows) else None
        o_in = self.attention_core(window, q_rg, kv or c, kv, qk_dim=qk_dim, v_dim=m.v_head_dim)
        return self.linear(f"{base}.{a.names.o}", o_in, a.n_heads * m.v_head_dim, a.hidden, a.o_bias)

    _last_mm: float = 0.0  # forward FLOP/token of the latest matmul inside a layer

    # --- blocks
    def attention_block(self, p: str, i: int, x_rg: bool) -> bool:
        a, n = self.arch, self.arch.names
        base = f"{p}.{n.attn}"
        if a.mla is not None:
            return self.mla_block(base, i, x_rg)
        if a.fused_qkv:
            out = self.linear(f"{base}.{n.qkv}", x_rg, a.hidden, a.q_out + 2 * a.kv_out, a.qkv_bias)
            q_rg = k_rg = v_rg = out
        else:
            q_rg = self.linear(f"{base}.{n.q}", x_rg, a.hidden, a.q_out, a.qkv_bias)
            k_rg = self.linear(f"{base}.{n.k}", x_rg, a.hidden, a.kv_out, a.qkv_bias)
            v_rg = self.linear(f"{base}.{n.v}", x_rg, a.hidden, a.kv_out, a.qkv_bias)
        if a.qk_norm != "none":
            kind = a.qk_norm_kind
            if a.qk_norm == "full":
                q_rg = self.norm(f"{base}.{n.q_norm}", q_rg, a.q_out, kind)
                k_rg = self.norm(f"{base}.{n.k_norm}", k_rg, a.kv_out, kind)
            else:
                qc, kc = (a.n_heads, a.n_kv_heads) if a.qk_norm_per_head_params else (1, 1)
                q_rg = self.norm(f"{base}.{n.q_norm}", q_rg, a.head_dim, kind, copies=qc)
                k_rg = self.norm(f"{base}.{n.k_norm}", k_rg, a.head_dim, kind, copies=kc)
        window = a.layer_windows[i] if i < len(a.layer_windows) else None
        o_in = self.attention_core(window, q_rg, k_rg, v_rg)
        return self.linear(f"{base}.{n.o}", o_in, a.q_out, a.hidden, a.o_bias)

    def dense_mlp(self, base: str, x_rg: bool, inter: int, bias: bool, gated: bool, fused: bool = False) -> bool:
        a, n = self.arch, self.arch.names
        if gated and fused:
            h = self.linear(f"{base}.{n.gate_up}", x_rg, a.hidden, 2 * inter, bias)
        elif gated:
            g = self.linear(f"{base}.{n.gate}", x_rg, a.hidden, inter, bias)
            u = self.linear(f"{base}.{n.up}", x_rg, a.hidden, inter, bias)
            h = g or u
        else:
            h = self.linear(f"{base}.{n.up}", x_rg, a.hidden, inter, bias)
        return self.linear(f"{base}.{n.down}", h, inter, a.hidden, bias)

    def moe_block(self, base: str, x_rg: bool) -> bool:
        a, n, m = self.arch, self.arch.names, self.arch.moe
        if m.router_is_linear:
            r_rg = self.linear(f"{base}.{n.router}", x_rg, a.hidden, m.n_experts, m.router_bias)
        else:
            r_rg = self.linear(f"{base}.{n.router}", x_rg, a.hidden, m.n_experts, m.router_bias,
                               weight_name=f"{base}.{n.router}.weight")
        ex = f"{base}.{n.experts}"
        e, ie = m.n_experts, m.expert_intermediate
        # Routed experts: T·top_k token rows in all (each token visits top_k experts).
        up_w = self.param(f"{ex}.gate_up_proj" if m.gated else f"{ex}.up_proj",
                          e * a.hidden * ie * (2 if m.gated else 1))
        down_w = self.param(f"{ex}.down_proj", e * ie * a.hidden)
        self._mm(m.top_k, a.hidden, ie * (2 if m.gated else 1), x_rg, up_w)  # T·top_k rows per T tokens
        h_rg = x_rg or up_w
        self._mm(m.top_k, ie, a.hidden, h_rg, down_w)
        out = h_rg or down_w or r_rg
        if m.shared_intermediate:
            s_rg = self.dense_mlp(f"{base}.{n.shared}", x_rg, m.shared_intermediate, False, True)
            if m.shared_gate:
                s_rg = self.linear(f"{base}.{n.shared_gate}", x_rg, a.hidden, 1, False) or s_rg
            out = out or s_rg
        return out

    def mlp_block(self, p: str, i: int, x_rg: bool) -> bool:
        a = self.arch
        base = f"{p}.{a.names.mlp}"
        if a.moe is not None and i in a.moe.layers:
            return self.moe_block(base, x_rg)
        return self.dense_mlp(base, x_rg, a.intermediate, a.mlp_bias, a.mlp_kind == "gated", a.fused_gate_up)

    def run(self):
        a, n, s = self.arch, self.arch.names, self.setup
        emb = self.param(n.embed + ".weight", a.vocab * a.hidden)
        rg = emb or bool(s.inputs_require_grad if s.inputs_require_grad is not None else s.gradient_checkpointing)
        self.linear_names.append(n.embed)
        if self.lora_targeted(n.embed, is_lm_head=True):  # is_lm_head: PEFT's all-linear skips embeddings too
            # PEFT's LoRA Embedding: look up A (no matmul), then after_A @ Bᵀ (r -> hidden); both factors train.
            r = s.lora_r
            self.lora_hits.append(n.embed)
            self.n_params += r * (a.vocab + a.hidden)
            self.n_trainable += r * (a.vocab + a.hidden)
            self._mm(1, r, a.hidden, True, True)
            rg = True
        if n.pos_embed:
            rg = self.param(n.pos_embed + ".weight", a.n_positions * a.hidden) or rg
        if a.extra_params:  # BLOOM's word_embeddings_layernorm
            rg = self.param(n.embed.rsplit(".", 1)[0] + ".word_embeddings_layernorm", a.extra_params) or rg
        for i in range(a.n_layers):
            p = f"{n.layers}.{i}"
            self.in_layer = True
            if a.layout == "pre":
                h = self.norm(f"{p}.{n.norm_attn_in}", rg, a.hidden)
                rg = self.attention_block(p, i, h) or rg
                h = self.norm(f"{p}.{n.norm_mlp_in}", rg, a.hidden)
                rg = self.mlp_block(p, i, h) or rg
            elif a.layout == "sandwich":
                h = self.norm(f"{p}.{n.norm_attn_in}", rg, a.hidden)
                rg = self.norm(f"{p}.{n.norm_attn_out}", self.attention_block(p, i, h), a.hidden) or rg
                h = self.norm(f"{p}.{n.norm_mlp_in}", rg, a.hidden)
                rg = self.norm(f"{p}.{n.norm_mlp_out}", self.mlp_block(p, i, h), a.hidden) or rg
            elif a.layout == "post":
                rg = self.norm(f"{p}.{n.norm_attn_out}", self.attention_block(p, i, rg), a.hidden) or rg
                rg = self.norm(f"{p}.{n.norm_mlp_out}", self.mlp_block(p, i, rg), a.hidden) or rg
            elif a.layout == "parallel":
                h = self.norm(f"{p}.{n.norm_attn_in}", rg, a.hidden)
                rg = self.attention_block(p, i, h) | self.mlp_block(p, i, h) | rg
            else:  # parallel2: attention and MLP each with its own norm of the residual (GPT-NeoX)
                h1 = self.norm(f"{p}.{n.norm_attn_in}", rg, a.hidden)
                att = self.attention_block(p, i, h1)
                h2 = self.norm(f"{p}.{n.norm_mlp_in}", rg, a.hidden)
                rg = att | self.mlp_block(p, i, h2) | rg
            self.in_layer = False
            # Non-reentrant checkpointing (transformers' default) stops recomputing once the last tensor saved for
            # backward is back; a matmul packs its inputs before it runs, so a layer's final matmul — followed only
            # by the residual add — is not recomputed. A post-norm, a residual dropout mask or the MoE combine
            # saves something after it, and then it is.
            moe_layer = a.moe is not None and i in a.moe.layers
            if a.layout in ("pre", "parallel", "parallel2") and not a.residual_dropout and not moe_layer:
                self.layer_fwd_tok -= self._last_mm
        h = self.norm(n.final_norm, rg, a.hidden)
        self.before_head = (self.tok.fwd, self.tok.bwd)
        if a.tied_embeddings:
            self.linear(n.lm_head, h, a.hidden, a.vocab, a.lm_head_bias, is_lm_head=True, count_params=False,
                        tied_to=n.embed + ".weight")
        else:
            self.linear(n.lm_head, h, a.hidden, a.vocab, a.lm_head_bias, is_lm_head=True)


def _resolve_lora_targets(arch: Architecture, setup: TrainingSetup) -> tuple[tuple[str, ...] | None, re.Pattern | None]:
    if setup.method != "lora":
        return None, None
    targets = setup.lora_target_modules
    if targets is None:
        default = PEFT_DEFAULT_LORA_TARGETS.get(arch.model_type)
        if default is None:
            raise BadInput(
                f"PEFT has no default LoRA target modules for model type {arch.model_type!r}; "
                "pass them (--lora-target-modules q_proj,v_proj or all-linear)"
            )
        return default, None
    targets = tuple(t.strip() for t in targets if t and t.strip())
    if not targets:
        raise BadInput("LoRA target module list is empty; pass names like q_proj,v_proj or all-linear")
    if len(targets) == 1 and not re.fullmatch(r"[A-Za-z0-9_.\-]+", targets[0]):
        try:
            return None, re.compile(targets[0])
        except re.error as exc:
            raise BadInput(f"LoRA target {targets[0]!r} is not a valid regular expression ({exc})") from None
    return targets, None


def build_flop_model(config_or_arch: dict | Architecture, setup: TrainingSetup = TrainingSetup()) -> FlopModel:
    arch = config_or_arch if isinstance(config_or_arch, Architecture) else architecture_from_config(config_or_arch)
    targets, regex = _resolve_lora_targets(arch, setup)
    warnings: list[str] = []
    if not arch.known:
        return _parameter_count_model(arch, setup, targets, regex)
    walk = _Walk(arch, setup, targets, regex)
    walk.run()
    if setup.method == "lora" and not walk.lora_hits:
        leaves = sorted({m.rsplit(".", 1)[-1] for m in walk.linear_names})
        raise BadInput(
            f"LoRA targets {','.join(targets) if targets else regex.pattern} match no module of this "
            f"{arch.model_type} model; modules LoRA can target: {', '.join(leaves)}"
        )
    if setup.method == "partial" and walk.n_trainable == 0:
        raise BadInput(
            f"trainable patterns {', '.join(setup.trainable_patterns)} match no parameter; use HF module names "
            f"such as '{arch.names.layers}.{arch.n_layers - 1}.*' or '{arch.names.lm_head}'"
        )
    per_token = SequenceFlops(walk.tok.fwd, walk.tok.bwd,
                              walk.layer_fwd_tok if setup.gradient_checkpointing else 0.0)
    groups = []
    for window, t in sorted(walk.att.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        rec = t.rec + (t.fwd if setup.gradient_checkpointing else 0.0)  # attention is inside the decoder layers
        groups.append(AttentionGroup(window, SequenceFlops(t.fwd, t.bwd, rec)))
    if setup.method == "lora" and arch.moe is not None and (regex is not None or "all-linear" in (targets or ())):
        warnings.append(
            "MoE with LoRA all-linear/regex targets: PEFT >= 0.17 may also wrap router and expert parameters "
            "(target_parameters); their adapters and the expert weight gradients they imply are not modelled and "
            "can add tens of percent; prefer explicit attention/shared-expert targets or meter the run"
        )
    if setup.quant_bits in (4, 8):
        warnings.append(
            f"{setup.quant_bits}-bit base: parameters counted logically (not as packed storage); the matmuls run on "
            "dequantised weights, so the FLOPs are those of the unquantised model"
        )
    return FlopModel(arch, setup, per_token=per_token, attention=tuple(groups), n_parameters=walk.n_params,
                     n_trainable_parameters=walk.n_trainable, method=describe_method(arch, setup, walk.lora_hits),
                     warnings=warnings, lora_modules=tuple(walk.lora_hits),
                     head=SequenceFlops(walk.tok.fwd - walk.before_head[0], walk.tok.bwd - walk.before_head[1]))


def describe_method(arch: Architecture, setup: TrainingSetup, lora_hits: Sequence[str] = ()) -> str:
    if setup.method == "full":
        m = "full fine-tuning"
    elif setup.method == "lora":
        leaves = sorted({h.rsplit(".", 1)[-1] for h in lora_hits})
        m = f"LoRA r={setup.lora_r} on {', '.join(leaves) or 'no modules'}"
        if setup.trainable_patterns:
            m += f" + trainable {', '.join(setup.trainable_patterns)}"
    else:
        m = f"partial fine-tuning of {', '.join(setup.trainable_patterns)}"
    if setup.quant_bits in (4, 8):
        m = f"{m} on a {setup.quant_bits}-bit base" if setup.method != "lora" else f"Q{m} ({setup.quant_bits}-bit base)"
    return m


def _parameter_count_model(arch: Architecture, setup: TrainingSetup, targets, regex) -> FlopModel:
    """Unknown architecture: the guidelines' parameter-count method (Annex A.2, C ≈ 6·P·D for full training).

    *Reading*: for LoRA/partial training the backward pass still computes input gradients through the frozen
    weights (≈ 2·P per token) but weight gradients only for the trainable ones, hence 4·P + 2·P_trainable.
    """
    a = arch
    per_layer = a.hidden * (a.q_out + 2 * a.kv_out) + a.q_out * a.hidden
    per_layer += a.hidden * a.intermediate * (3 if a.mlp_kind == "gated" else 2)
    matmul_params = a.n_layers * per_layer + a.vocab * a.hidden
    n = matmul_params + (0 if a.tied_embeddings else a.vocab * a.hidden)
    if setup.method == "full":
        n_tr = n
    elif setup.method == "lora":
        n_tr = a.n_layers * 2 * setup.lora_r * (a.hidden + a.q_out)  # reading: q_proj + v_proj-sized adapters
    else:
        n_tr = 0
    fwd = 2.0 * matmul_params
    bwd = 2.0 * matmul_params + (2.0 * matmul_params if setup.method == "full" else 2.0 * n_tr)
    warning = (
        f"unknown architecture {a.model_type!r}: used the parameter-count method (C ≈ 6·N·D, guidelines Annex A.2) "
        f"with N ≈ {n:.2g} reconstructed from hidden_size/num_hidden_layers/intermediate_size/vocab_size; it "
        "ignores the attention S² term (under-counts by roughly S/(6·hidden) of the total) and any architecture "
        "detail not in those fields; expect an error of up to ±30 %"
    )
    if setup.method != "full":
        warning += "; for LoRA/partial it assumes 4·N + 2·N_trainable per token"
    return FlopModel(arch, setup, per_token=SequenceFlops(fwd, bwd, fwd if setup.gradient_checkpointing else 0.0),
                     attention=(), n_parameters=n + (n_tr if setup.method == "lora" else 0),
                     n_trainable_parameters=n_tr, method=describe_method(arch, setup, ()) + " (parameter-count method)",
                     warnings=[warning])
