"""The base-model registry: parameters, training tokens and training compute of widely fine-tuned open models,
each with its source, plus the essential fields of its config.json so that estimates work offline.

Data: `data/base_models.yaml`. Each entry carries every estimate public facts allow, by the guidelines' own methods
(Annex A.2): *architecture* (6·N·D from published parameters and tokens), *hardware* (published GPU-hours × the
GPU's dense peak × utilisation, 50 % as in the guidelines' worked examples) and *reported* (a FLOP figure the
developer published), each with its arithmetic and source. No estimate means unknown compute (the 3.3e22 fallback
of guidelines §3.2). `decide()` judges every estimate and says when they disagree.
"""

from __future__ import annotations

import difflib
import math
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ftaudit.errors import BadInput, first_line
from ftaudit.io import load_yaml
from ftaudit.regulation.decision import ComputeEstimate, EstimateMethod, OriginalCompute

REGISTRY_FILE = "base_models.yaml"
# Fields a config must carry for the estimator to rebuild the architecture (GPT-2 names them differently).
_REQUIRED_CONFIG_FIELDS = {
    "gpt2": ("n_embd", "n_layer", "n_head", "vocab_size"),
    "falcon": ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"),
}
_DEFAULT_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "vocab_size", "tie_word_embeddings")
_MOE_FIELDS = ("num_local_experts", "num_experts")
_METHOD_ORDER = ("reported", "hardware", "architecture")


# Rounding slack between an estimate's stated figure and the product of its inputs.
_ARITHMETIC_REL = 1e-4


class RegistryEstimate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: EstimateMethod
    flops: float = Field(gt=0, allow_inf_nan=False)
    arithmetic: str | None = Field(None, description="How the figure was made, e.g. '6 × 8.03e+09 params × …'.")
    source: str | None = Field(None, description="Where the inputs come from; architecture estimates default to the "
                               "entry's source.")
    verified: bool = Field(description="The inputs were cross-checked against the source while building the file.")
    gpu: str | None = Field(None, description="Hardware estimates: the GPU model.")
    gpu_hours: float | None = Field(None, gt=0, description="Hardware estimates: reported GPU-hours.")
    peak_flops_per_s: float | None = Field(None, gt=0, description="Hardware estimates: dense bf16 peak per GPU.")
    utilisation: float | None = Field(None, gt=0, le=1, description="Hardware estimates: assumed average utilisation.")

    @model_validator(mode="after")
    def _inputs(self) -> "RegistryEstimate":
        if self.method == "hardware":
            if None in (self.gpu, self.gpu_hours, self.peak_flops_per_s, self.utilisation):
                raise ValueError("a hardware estimate needs gpu, gpu_hours, peak_flops_per_s and utilisation")
            product = self.gpu_hours * 3600 * self.peak_flops_per_s * self.utilisation
            if not math.isclose(product, self.flops, rel_tol=_ARITHMETIC_REL):
                raise ValueError(f"hardware estimate {self.flops:g} is not gpu_hours × 3600 × peak × utilisation "
                                 f"({product:g})")
        if self.method != "reported" and not self.arithmetic:
            raise ValueError(f"an {self.method} estimate needs its arithmetic")
        return self


class RegistryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Hugging Face repository id.")
    aliases: list[str] = Field(default_factory=list)
    family: str
    params: float = Field(gt=0, description="Total parameters as published.")
    active_params: float | None = Field(None, gt=0, description="Parameters active per token (MoE only).")
    training_tokens: float | None = Field(None, gt=0)
    estimates: list[RegistryEstimate] = Field(default_factory=list, description="Every public estimate of the "
                                              "training compute; empty when it is unknown.")
    systemic_risk: bool = Field(False, description="A reported figure above 1e25 (Art. 51(2)) or a designation.")
    source: str
    config_confidence: Literal["verified", "unverified"]
    tokens_confidence: Literal["verified", "unverified"]
    notes: str = ""
    config: dict[str, Any]

    @model_validator(mode="after")
    def _consistent(self) -> "RegistryEntry":
        methods = [e.method for e in self.estimates]
        if len(set(methods)) != len(methods):
            raise ValueError("one estimate per method")
        arch = self.estimate("architecture")
        if arch is not None:
            if self.training_tokens is None:
                raise ValueError("an architecture estimate needs training_tokens")
            product = 6 * self.flops_per_token_params * self.training_tokens
            if not math.isclose(product, arch.flops, rel_tol=_ARITHMETIC_REL):
                raise ValueError(f"architecture estimate {arch.flops:g} is not 6 × N × D ({product:g})")
        model_type = self.config.get("model_type")
        if not model_type:
            raise ValueError("config needs model_type")
        missing = [f for f in _REQUIRED_CONFIG_FIELDS.get(model_type, _DEFAULT_REQUIRED) if f not in self.config]
        if missing:
            raise ValueError(f"config lacks {', '.join(missing)}")
        if any(self.config.get(f) for f in _MOE_FIELDS):
            if not self.config.get("num_experts_per_tok") or self.active_params is None:
                raise ValueError("an MoE config needs num_experts_per_tok and the entry active_params")
        return self

    @property
    def flops_per_token_params(self) -> float:
        """The N of 6·N·D: active parameters for MoE, all parameters otherwise."""
        return self.active_params or self.params

    def estimate(self, method: str) -> RegistryEstimate | None:
        return next((e for e in self.estimates if e.method == method), None)

    def original_compute(self, *, choice: str | None = None, is_gpai: bool | None = None,
                         systemic_risk: bool | None = None) -> OriginalCompute:
        """What `decide()` needs: every estimate, the user's pick (`choice`) or, for display, the reported figure,
        else the hardware one, else the architecture one; unknown without any."""
        estimates = tuple(
            ComputeEstimate(method=e.method, flops=e.flops, verified=e.verified,
                            source=f"ftaudit base-model registry: {self.id}, {e.method}: "
                                   f"{e.arithmetic or f'{e.flops:.2g} FLOP'} ({e.source or self.source})")
            for e in sorted(self.estimates, key=lambda e: _METHOD_ORDER.index(e.method)))
        systemic = self.systemic_risk if systemic_risk is None else systemic_risk
        if not estimates:
            return OriginalCompute(None, "unknown", systemic_risk=systemic, is_gpai=is_gpai,
                                   source=f"ftaudit base-model registry: {self.id} (no public compute figure)")
        if choice is not None and choice not in {e.method for e in estimates}:
            raise BadInput(f"original_estimate '{choice}' is not available for {self.id}; available: "
                           f"{', '.join(e.method for e in estimates)}")
        shown = next((e for e in estimates if e.method == choice), estimates[0])
        return OriginalCompute(shown.flops, shown.status, systemic_risk=systemic, source=shown.source,
                               is_gpai=is_gpai, estimates=estimates, estimate_choice=choice)

    def config_dict(self) -> dict[str, Any]:
        """A copy of the essential config.json fields (safe to mutate)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.config.items()}


class Registry:
    def __init__(self, entries: list[RegistryEntry]):
        self.entries = entries
        self._index: dict[str, RegistryEntry] = {}
        for entry in entries:
            for key in [entry.id, *entry.aliases]:
                folded = key.casefold()
                if folded in self._index and self._index[folded] is not entry:
                    raise BadInput(f"base-model registry: '{key}' names two entries")
                self._index[folded] = entry

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def get(self, model_id: str) -> RegistryEntry | None:
        return self._index.get(str(model_id).strip().casefold())

    def lookup(self, model_id: str) -> RegistryEntry:
        entry = self.get(model_id)
        if entry is not None:
            return entry
        close = difflib.get_close_matches(str(model_id).strip().casefold(), list(self._index), n=3, cutoff=0.5)
        names = sorted({self._index[c].id for c in close})
        hint = f"; did you mean {', '.join(names)}?" if names else "; pass a path to a config.json instead"
        raise BadInput(f"unknown model id '{model_id}': not in the base-model registry{hint}")


def parse_registry(text: str, *, origin: str = REGISTRY_FILE) -> Registry:
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"{origin}: not valid YAML ({first_line(exc)})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise BadInput(f"{origin}: expected a mapping with a 'models' list")
    entries = []
    for i, raw in enumerate(doc["models"]):
        try:
            entries.append(RegistryEntry.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            name = raw.get("id", f"#{i}") if isinstance(raw, dict) else f"#{i}"
            where = ".".join(str(p) for p in err["loc"])
            raise BadInput(f"{origin}: entry {name}: {where + ': ' if where else ''}{err['msg']}") from None
    return Registry(entries)


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    text = resources.files("ftaudit.regulation").joinpath("data", REGISTRY_FILE).read_text(encoding="utf-8")
    return parse_registry(text)


def lookup(model_id: str) -> RegistryEntry:
    """Case-insensitive on id and aliases; an unknown id is BadInput naming the closest known ids."""
    return load_registry().lookup(model_id)


_ARITHMETIC = re.compile(
    r"6 × (?P<n>[0-9.e+-]+) params(?: \(active\))? × (?P<d>[0-9.e+-]+) tokens = (?P<f>[0-9.e+-]+) FLOP"
)


def parse_arithmetic(text: str) -> tuple[float, float, float]:
    """(N, D, result) of an '6 × N params × D tokens = F FLOP' line, so tests can check it against the fields."""
    m = _ARITHMETIC.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a 6·N·D line: {text!r}")
    return float(m["n"]), float(m["d"]), float(m["f"])
