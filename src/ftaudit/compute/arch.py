"""Read a Hugging Face `config.json` into a normalised `Architecture` (pure Python, no torch).

The FLOP arithmetic (`ftaudit.compute.flops`) walks an `Architecture` in forward order, so everything that
changes which matrix multiplications run — or which of them need gradients — lives here: projection shapes,
fused projections, biases, norms (a trainable norm weight makes its output require grad), layer layout
(pre-norm, sandwich, post-norm, parallel attention+MLP), MoE routing, sliding windows, and the Hugging Face
module names that LoRA targets and partial fine-tuning patterns match against.

Defaults for fields a config.json may omit are the defaults of the transformers 5.x config classes; the tests
compare them against the installed transformers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

from ftaudit.errors import BadInput

NormKind = Literal["rms", "layer", "layer_nobias", "none"]
Layout = Literal["pre", "sandwich", "post", "parallel", "parallel2"]


@dataclass(frozen=True)
class Names:
    """Hugging Face module names (relative to the *ForCausalLM model) used for LoRA targets and patterns."""

    embed: str = "model.embed_tokens"
    pos_embed: str | None = None  # learned absolute positions (GPT-2, OPT)
    layers: str = "model.layers"
    attn: str = "self_attn"
    q: str = "q_proj"
    k: str = "k_proj"
    v: str = "v_proj"
    qkv: str = "qkv_proj"  # used when Architecture.fused_qkv
    o: str = "o_proj"
    q_norm: str = "q_norm"
    k_norm: str = "k_norm"
    mlp: str = "mlp"
    gate: str = "gate_proj"
    up: str = "up_proj"  # also the first projection of a plain MLP
    down: str = "down_proj"
    gate_up: str = "gate_up_proj"  # used when Architecture.fused_gate_up
    norm_attn_in: str | None = "input_layernorm"
    norm_attn_out: str | None = None
    norm_mlp_in: str | None = "post_attention_layernorm"
    norm_mlp_out: str | None = None
    final_norm: str | None = "model.norm"
    lm_head: str = "lm_head"
    router: str = "gate"
    experts: str = "experts"
    shared: str = "shared_expert"
    shared_gate: str = "shared_expert_gate"


@dataclass(frozen=True)
class MoE:
    """Mixture of experts: a router, `top_k` of `n_experts` routed experts per token, optional shared experts."""

    n_experts: int
    top_k: int
    expert_intermediate: int
    layers: tuple[int, ...]  # indices of the layers whose MLP is the MoE block (the rest are dense)
    gated: bool = True
    router_is_linear: bool = False  # an nn.Linear (LoRA "all-linear" can target it) or a bare parameter
    router_bias: bool = False
    shared_intermediate: int = 0  # total intermediate size of the always-active shared expert(s); 0 = none
    shared_gate: bool = False  # Qwen2-MoE: sigmoid(Linear(h->1)) scales the shared expert


@dataclass(frozen=True)
class MLA:
    """DeepSeek multi-head latent attention: low-rank query and key/value projections, split rope/nope heads."""

    q_lora_rank: int | None  # None: a plain q_proj
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class Architecture:
    model_type: str
    known: bool
    hidden: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool = False
    mlp_kind: Literal["gated", "plain"] = "gated"
    fused_qkv: bool = False
    fused_gate_up: bool = False
    conv1d: bool = False  # GPT-2 Conv1D: same matmuls as Linear, weight stored transposed
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    norm_kind: NormKind = "rms"
    layout: Layout = "pre"
    qk_norm: Literal["none", "head", "full"] = "none"  # per-head-dim norm (Qwen3) or over all heads (OLMo 2)
    qk_norm_kind: NormKind = "rms"
    qk_norm_per_head_params: bool = False  # StableLM: one LayerNorm(head_dim) per head
    moe: MoE | None = None
    mla: MLA | None = None
    layer_windows: tuple[int | None, ...] = ()  # sliding-window size per layer (None = full attention)
    n_positions: int = 0  # rows of a learned absolute position embedding (0 = none)
    context_window: int | None = None  # max_position_embeddings / n_positions / seq_length as configured
    residual_dropout: float = 0.0  # dropout on a sublayer output (saves a mask: matters for checkpoint recompute)
    extra_params: int = 0  # parameters outside the walked modules (e.g. BLOOM's embedding LayerNorm)
    names: Names = field(default_factory=Names)
    notes: tuple[str, ...] = ()

    @property
    def q_out(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_out(self) -> int:
        return self.n_kv_heads * self.head_dim


# --------------------------------------------------------------------------------------------- loading


def load_model_config(ref: str) -> tuple[dict, str]:
    """Resolve `ref` (a config.json path, a directory holding one, or a base-model registry id) to (config, source)."""
    if not isinstance(ref, str) or not ref.strip():
        raise BadInput("--config is empty; pass a config.json path, a directory holding one, or a model id")
    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise BadInput(f"{ref}: directory has no config.json; pass the model directory or the config file")
    if path.is_file():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise BadInput(f"{path}: not a text file; pass a Hugging Face config.json") from None
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
        except OSError as exc:
            raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
        if not isinstance(config, dict):
            raise BadInput(f"{path}: expected a JSON object (a Hugging Face config.json)")
        return config, str(path)
    if (ref.endswith(".json") or ref.startswith((".", "/", "~")) or ref.count("/") > 1
            or os.sep != "/" and os.sep in ref):
        raise BadInput(f"{ref}: no such file; pass a config.json path, a directory holding one, or a model id")
    from ftaudit.regulation.registry import lookup

    entry = lookup(ref)  # BadInput naming the closest known ids when it is not there
    config = entry.config_dict()
    if not config:
        raise BadInput(f"{ref}: the base-model registry has no config.json for it; pass the path of its config.json")
    return config, f"registry:{entry.id}"


# --------------------------------------------------------------------------------------------- parsing


def _get(cfg: dict, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    return default


def _int(cfg: dict, *keys: str, default: int | None = None, what: str | None = None) -> int:
    value = _get(cfg, *keys, default=default)
    if value is None:
        raise BadInput(f"config.json has no `{what or keys[0]}`; is this a causal language model config?")
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or value < 0):
        raise BadInput(f"config.json: `{what or keys[0]}` must be a non-negative integer, got {value!r}")
    return int(value)


def _windows(cfg: dict, n_layers: int, *, all_layers: bool = False) -> tuple[int | None, ...]:
    """Sliding window per layer from `layer_types`, or Qwen2-style `use_sliding_window`, or all layers."""
    window = _get(cfg, "sliding_window")
    if not window:
        return (None,) * n_layers
    window = int(window)
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == n_layers:
        return tuple(window if t == "sliding_attention" else None for t in types)
    if "use_sliding_window" in cfg:
        if not cfg.get("use_sliding_window"):
            return (None,) * n_layers
        max_window_layers = int(_get(cfg, "max_window_layers", default=n_layers))
        return tuple(window if i >= max_window_layers else None for i in range(n_layers))
    return (window,) * n_layers if all_layers else (None,) * n_layers


def _base(cfg: dict, model_type: str, **defaults) -> dict:
    """The fields every decoder config spells the Llama way."""
    d = dict(defaults)
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model", default=d.pop("hidden", None), what="hidden_size")
    n_heads = _int(cfg, "num_attention_heads", "n_head", default=d.pop("n_heads", None), what="num_attention_heads")
    if n_heads == 0 or hidden == 0:
        raise BadInput("config.json: hidden_size and num_attention_heads must be positive")
    n_layers = _int(cfg, "num_hidden_layers", "n_layer", default=d.pop("n_layers", None), what="num_hidden_layers")
    n_kv = _int(cfg, "num_key_value_heads", "num_kv_heads", default=d.pop("n_kv_heads", n_heads))
    head_dim = _int(cfg, "head_dim", default=hidden // n_heads)
    vocab = _int(cfg, "vocab_size", default=d.pop("vocab", None), what="vocab_size")
    inter = _int(cfg, "intermediate_size", default=d.pop("intermediate", 4 * hidden))
    tied = bool(_get(cfg, "tie_word_embeddings", default=d.pop("tied_embeddings", False)))
    if n_kv == 0 or n_heads % n_kv:
        raise BadInput(f"config.json: num_attention_heads ({n_heads}) is not a multiple of "
                       f"num_key_value_heads ({n_kv})")
    if d.pop("mha_only", False):
        n_kv = n_heads  # the modeling code ignores num_key_value_heads
    return dict(
        model_type=model_type,
        known=True,
        hidden=hidden,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        intermediate=inter,
        vocab=vocab,
        tied_embeddings=tied,
        **d,
    )


def _llama(cfg, mt, **kw):
    bias = bool(_get(cfg, "attention_bias", default=kw.pop("attention_bias", False)))
    a = _base(cfg, mt, **kw)
    a.setdefault("qkv_bias", bias)
    a.setdefault("o_bias", bias)
    a.setdefault("mlp_bias", bool(_get(cfg, "mlp_bias", default=False)))
    a.setdefault("layer_windows", _windows(cfg, a["n_layers"]))
    return a


def _mistral(cfg, mt):
    a = _llama(cfg, mt)
    a["layer_windows"] = _windows(cfg, a["n_layers"], all_layers=True)
    return a


def _qwen2(cfg, mt):
    # Qwen2 always has q/k/v biases and no o_proj bias (modeling_qwen2.Qwen2Attention).
    return _llama(cfg, mt, qkv_bias=True, o_bias=False)


def _qwen3(cfg, mt):
    return _llama(cfg, mt, qk_norm="head")


def _gemma(cfg, mt):
    return _llama(cfg, mt, tied_embeddings=True)


def _gemma2(cfg, mt):
    return _llama(
        cfg,
        mt,
        tied_embeddings=True,
        layout="sandwich",
        names=Names(
            norm_attn_out="post_attention_layernorm",
            norm_mlp_in="pre_feedforward_layernorm",
            norm_mlp_out="post_feedforward_layernorm",
        ),
    )


def _gemma3(cfg, mt):
    a = _gemma2(cfg, mt)
    a["qk_norm"] = "head"
    return a


def _phi3(cfg, mt):
    a = _llama(cfg, mt, fused_qkv=True, fused_gate_up=True)
    a["layer_windows"] = _windows(cfg, a["n_layers"], all_layers=True)
    return a


def _olmo2(cfg, mt):
    return _llama(
        cfg,
        mt,
        layout="post",
        qk_norm="full",
        names=Names(norm_attn_in=None, norm_attn_out="post_attention_layernorm", norm_mlp_in=None,
                    norm_mlp_out="post_feedforward_layernorm"),
    )


def _olmo(cfg, mt):
    return _llama(cfg, mt, norm_kind="none")  # OlmoLayerNorm has no parameters


def _starcoder2(cfg, mt):
    bias = bool(_get(cfg, "use_bias", default=True))
    a = _base(cfg, mt, tied_embeddings=True, mlp_kind="plain", norm_kind="layer", qkv_bias=bias, o_bias=bias,
              mlp_bias=bias, names=Names(up="c_fc", down="c_proj"))
    a["layer_windows"] = _windows(cfg, a["n_layers"], all_layers=True)
    return a


def _stablelm(cfg, mt):
    parallel = bool(_get(cfg, "use_parallel_residual", default=False))
    qk = bool(_get(cfg, "qk_layernorm", default=False))
    return _base(
        cfg, mt, norm_kind="layer", qkv_bias=bool(_get(cfg, "use_qkv_bias", default=False)),
        layout="parallel" if parallel else "pre",
        qk_norm="head" if qk else "none", qk_norm_kind="layer_nobias", qk_norm_per_head_params=qk,
        names=Names(norm_mlp_in=None if parallel else "post_attention_layernorm"),
    )


def _cohere(cfg, mt):
    qk = bool(_get(cfg, "use_qk_norm", default=False))
    a = _base(cfg, mt, tied_embeddings=True, norm_kind="layer_nobias", layout="parallel",
              qk_norm="full" if qk else "none", qk_norm_kind="layer_nobias", names=Names(norm_mlp_in=None))
    bias = bool(_get(cfg, "attention_bias", default=False))
    a.update(qkv_bias=bias, o_bias=bias)
    if mt == "cohere2":
        a["layer_windows"] = _windows(cfg, a["n_layers"])
    return a


def _granite(cfg, mt):
    return _llama(cfg, mt)  # the multipliers are element-wise


def _gpt2(cfg, mt):
    a = _base(cfg, mt, mha_only=True, tied_embeddings=True, mlp_kind="plain", norm_kind="layer", fused_qkv=True,
              conv1d=True,
              qkv_bias=True, o_bias=True, mlp_bias=True,
              names=Names(embed="transformer.wte", pos_embed="transformer.wpe", layers="transformer.h", attn="attn",
                          qkv="c_attn", o="c_proj", up="c_fc", down="c_proj", norm_attn_in="ln_1",
                          norm_mlp_in="ln_2", final_norm="transformer.ln_f"))
    a["intermediate"] = _int(cfg, "n_inner", default=4 * a["hidden"])
    a["n_kv_heads"] = a["n_heads"]
    a["head_dim"] = a["hidden"] // a["n_heads"]
    a["n_positions"] = _int(cfg, "n_positions", "max_position_embeddings", default=1024)
    a["residual_dropout"] = float(_get(cfg, "resid_pdrop", default=0.1))
    return a


def _gpt_neox(cfg, mt):
    parallel = bool(_get(cfg, "use_parallel_residual", default=True))
    bias = bool(_get(cfg, "attention_bias", default=True))
    return _base(cfg, mt, mha_only=True, mlp_kind="plain", norm_kind="layer", fused_qkv=True, qkv_bias=bias,
                 o_bias=bias, mlp_bias=True, layout="parallel2" if parallel else "pre",
                 names=Names(embed="gpt_neox.embed_in", layers="gpt_neox.layers", attn="attention",
                             qkv="query_key_value", o="dense", up="dense_h_to_4h", down="dense_4h_to_h",
                             final_norm="gpt_neox.final_layer_norm", lm_head="embed_out"))


def _opt(cfg, mt):
    if _get(cfg, "word_embed_proj_dim", default=None) not in (None, _get(cfg, "hidden_size")):
        return None  # project_in/project_out variant (opt-350m): not modelled, fall back
    if not _get(cfg, "do_layer_norm_before", default=True):
        return None
    bias = bool(_get(cfg, "enable_bias", default=True))
    affine = bool(_get(cfg, "layer_norm_elementwise_affine", default=True))
    a = _base(cfg, mt, mha_only=True, tied_embeddings=True, mlp_kind="plain", norm_kind="layer" if affine else "none",
              qkv_bias=bias, o_bias=bias, mlp_bias=bias,
              names=Names(embed="model.decoder.embed_tokens", pos_embed="model.decoder.embed_positions",
                          layers="model.decoder.layers", o="out_proj", up="fc1", down="fc2",
                          norm_attn_in="self_attn_layer_norm", norm_mlp_in="final_layer_norm",
                          final_norm="model.decoder.final_layer_norm"))
    a["intermediate"] = _int(cfg, "ffn_dim", default=4 * a["hidden"])
    a["n_positions"] = _int(cfg, "max_position_embeddings", default=2048) + 2  # OPT offsets positions by 2
    if _get(cfg, "_remove_final_layer_norm", default=False):
        a["names"] = replace(a["names"], final_norm=None)
    return a


def _phi(cfg, mt):
    qk = bool(_get(cfg, "qk_layernorm", default=False))
    return _base(cfg, mt, mlp_kind="plain", norm_kind="layer", qkv_bias=True, o_bias=True, mlp_bias=True,
                 lm_head_bias=True, layout="parallel", qk_norm="head" if qk else "none", qk_norm_kind="layer",
                 names=Names(o="dense", up="fc1", down="fc2", norm_mlp_in=None, final_norm="model.final_layernorm"))


def _gptj(cfg, mt):
    a = _base(cfg, mt, mha_only=True, mlp_kind="plain", norm_kind="layer", o_bias=False, mlp_bias=True,
              lm_head_bias=True,
              layout="parallel",
              names=Names(embed="transformer.wte", layers="transformer.h", attn="attn", o="out_proj", up="fc_in",
                          down="fc_out", norm_attn_in="ln_1", norm_mlp_in=None, final_norm="transformer.ln_f"))
    a["intermediate"] = _int(cfg, "n_inner", default=4 * a["hidden"])
    a["residual_dropout"] = float(_get(cfg, "resid_pdrop", default=0.0))
    return a


def _bloom(cfg, mt):
    a = _base(cfg, mt, mha_only=True, tied_embeddings=True, mlp_kind="plain", norm_kind="layer", fused_qkv=True,
              qkv_bias=True,
              o_bias=True, mlp_bias=True,
              names=Names(embed="transformer.word_embeddings", layers="transformer.h", attn="self_attention",
                          qkv="query_key_value", o="dense", up="dense_h_to_4h", down="dense_4h_to_h",
                          final_norm="transformer.ln_f"))
    a["intermediate"] = 4 * a["hidden"]
    a["extra_params"] = 2 * a["hidden"]  # word_embeddings_layernorm (trainable norm right after the embedding)
    return a


def _falcon(cfg, mt):
    """Falcon: fused query_key_value whose width depends on the generation (modeling_falcon.FalconAttention)."""
    new = bool(_get(cfg, "new_decoder_architecture", default=False))
    multi_query = bool(_get(cfg, "multi_query", default=True))
    parallel = bool(_get(cfg, "parallel_attn", default=True))
    n_ln = _get(cfg, "num_ln_in_parallel_attn", default=None)
    if n_ln is None and new:
        n_ln = 2
    bias = bool(_get(cfg, "bias", default=False))
    a = _base(cfg, mt, tied_embeddings=True, mlp_kind="plain", norm_kind="layer", fused_qkv=True, qkv_bias=bias,
              o_bias=bias, mlp_bias=bias)
    heads = a["n_heads"]
    a["head_dim"] = a["hidden"] // heads  # Falcon ignores head_dim
    a["n_kv_heads"] = _int(cfg, "num_kv_heads", default=heads) if new else (1 if multi_query else heads)
    a["intermediate"] = _int(cfg, "ffn_hidden_size", default=4 * a["hidden"])
    names = dict(embed="transformer.word_embeddings", layers="transformer.h", attn="self_attention",
                 qkv="query_key_value", o="dense", up="dense_h_to_4h", down="dense_4h_to_h",
                 final_norm="transformer.ln_f")
    if new and n_ln == 2:
        a["layout"] = "parallel2"
        names.update(norm_attn_in="ln_attn", norm_mlp_in="ln_mlp")
    elif new or parallel:
        a["layout"] = "parallel"
        names.update(norm_mlp_in=None)
    a["names"] = Names(**names)
    a["residual_dropout"] = float(_get(cfg, "hidden_dropout", default=0.0))
    return a


def _moe_layers(cfg, n_layers: int) -> tuple[int, ...]:
    step = int(_get(cfg, "decoder_sparse_step", default=1) or 1)
    dense_only = set(_get(cfg, "mlp_only_layers", default=[]) or [])
    first_dense = int(_get(cfg, "first_k_dense_replace", default=0) or 0)
    return tuple(
        i for i in range(n_layers) if i not in dense_only and (i + 1) % step == 0 and i >= first_dense
    )


def _mixtral(cfg, mt):
    a = _mistral(cfg, mt)
    a["moe"] = MoE(
        n_experts=_int(cfg, "num_local_experts", default=8),
        top_k=_int(cfg, "num_experts_per_tok", default=2),
        expert_intermediate=a["intermediate"],
        layers=tuple(range(a["n_layers"])),
    )
    return a


def _qwen2_moe(cfg, mt):
    a = _llama(cfg, mt, qkv_bias=bool(_get(cfg, "qkv_bias", default=True)), o_bias=False)
    shared = _int(cfg, "shared_expert_intermediate_size", default=5632)
    a["moe"] = MoE(
        n_experts=_int(cfg, "num_experts", default=60),
        top_k=_int(cfg, "num_experts_per_tok", default=4),
        expert_intermediate=_int(cfg, "moe_intermediate_size", default=1408),
        layers=_moe_layers(cfg, a["n_layers"]),
        shared_intermediate=shared,
        shared_gate=shared > 0,
    )
    return a


def _qwen3_moe(cfg, mt):
    a = _llama(cfg, mt, qk_norm="head")
    a["moe"] = MoE(
        n_experts=_int(cfg, "num_experts", "num_local_experts", default=128),
        top_k=_int(cfg, "num_experts_per_tok", default=8),
        expert_intermediate=_int(cfg, "moe_intermediate_size", default=768),
        layers=_moe_layers(cfg, a["n_layers"]),
    )
    return a


def _olmoe(cfg, mt):
    a = _llama(cfg, mt, qk_norm="full")
    a["moe"] = MoE(
        n_experts=_int(cfg, "num_experts", default=64),
        top_k=_int(cfg, "num_experts_per_tok", default=8),
        expert_intermediate=a["intermediate"],
        layers=tuple(range(a["n_layers"])),
    )
    return a


def _deepseek(cfg, mt):
    """DeepSeek V2/V3: MLA attention; dense MLP in the first `first_k_dense_replace` layers, then MoE with shared
    experts (modeling_deepseek_v3.DeepseekV3MoE)."""
    a = _llama(cfg, mt)
    # An explicit null means a plain q_proj (DeepSeek-V2-Lite); only an absent key takes the class default.
    q_rank = cfg["q_lora_rank"] if "q_lora_rank" in cfg else (1536 if mt == "deepseek_v3" else None)
    a["mla"] = MLA(
        q_lora_rank=int(q_rank) if q_rank else None,
        kv_lora_rank=_int(cfg, "kv_lora_rank", default=512),
        qk_nope_head_dim=_int(cfg, "qk_nope_head_dim", default=128),
        qk_rope_head_dim=_int(cfg, "qk_rope_head_dim", default=64),
        v_head_dim=_int(cfg, "v_head_dim", default=128),
    )
    a["n_kv_heads"] = a["n_heads"]  # K/V are expanded per head from the latent
    n_layers = a["n_layers"]
    first_dense = _int(cfg, "first_k_dense_replace", default=3 if mt == "deepseek_v3" else 0)
    inter_e = _int(cfg, "moe_intermediate_size", default=2048 if mt == "deepseek_v3" else 1407)
    a["moe"] = MoE(
        n_experts=_int(cfg, "n_routed_experts", "num_local_experts", default=256 if mt == "deepseek_v3" else 64),
        top_k=_int(cfg, "num_experts_per_tok", default=8 if mt == "deepseek_v3" else 6),
        expert_intermediate=inter_e,
        layers=tuple(range(first_dense, n_layers)),
        shared_intermediate=inter_e * _int(cfg, "n_shared_experts", default=1 if mt == "deepseek_v3" else 2),
    )
    a["names"] = Names(shared="shared_experts")
    return a


# model_type -> parser returning Architecture kwargs (or None: recognised but a variant we do not model)
_PARSERS: dict[str, Callable[[dict, str], dict | None]] = {
    "llama": _llama,
    "mistral": _mistral,
    "ministral": _llama,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "gemma3_text": _gemma3,
    "phi3": _phi3,
    "olmo": _olmo,
    "olmo2": _olmo2,
    "olmo3": _olmo2,
    "granite": _granite,
    "smollm3": _llama,
    "starcoder2": _starcoder2,
    "stablelm": _stablelm,
    "cohere": _cohere,
    "cohere2": _cohere,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "phi": _phi,
    "gptj": _gptj,
    "bloom": _bloom,
    "falcon": _falcon,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen2_moe,
    "qwen3_moe": _qwen3_moe,
    "olmoe": _olmoe,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
}

KNOWN_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_PARSERS))


def architecture_from_config(config: dict) -> Architecture:
    """Normalise a config.json dict. Unknown model types give `known=False` (parameter-count fallback)."""
    if not isinstance(config, dict):
        raise BadInput("model config must be a JSON object (a Hugging Face config.json)")
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    model_type = str(cfg.get("model_type") or config.get("model_type") or "")
    if not model_type:
        raise BadInput("config.json has no `model_type`; is this a Hugging Face model config?")
    parser = _PARSERS.get(model_type)
    kwargs = parser(cfg, model_type) if parser else None
    arch = _fallback(cfg, model_type) if kwargs is None else Architecture(**kwargs)
    window = _get(cfg, "max_position_embeddings", "n_positions", "seq_length", "max_sequence_length")
    if isinstance(window, int) and not isinstance(window, bool) and window > 0:
        arch = replace(arch, context_window=window)
    return arch


def _fallback(cfg: dict, model_type: str) -> Architecture:
    """Enough of a generic decoder to count parameters; FLOPs then use the parameter-count method."""
    a = _base(cfg, model_type)
    a["known"] = False
    return Architecture(**a)
