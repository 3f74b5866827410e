"""The base-model registry: parameters, training tokens and training compute of widely fine-tuned open models,
each with its source, plus the essential fields of its config.json so that estimates work offline.

Data: `data/base_models.yaml`. Compute is either *reported* by the developer or *estimated* as 6·N·D from reported
parameters and tokens (guidelines Annex A.2, architecture-based method), with the arithmetic shown; *unknown* when
no token count was published (then the 3.3e22 fallback of guidelines §3.2 applies).
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
from ftaudit.regulation.decision import OriginalCompute

REGISTRY_FILE = "base_models.yaml"
# Fields a config must carry for the estimator to rebuild the architecture (GPT-2 names them differently).
_REQUIRED_CONFIG_FIELDS = {
    "gpt2": ("n_embd", "n_layer", "n_head", "vocab_size"),
    "falcon": ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"),
}
_DEFAULT_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "vocab_size", "tie_word_embeddings")
_MOE_FIELDS = ("num_local_experts", "num_experts")


class RegistryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Hugging Face repository id.")
    aliases: list[str] = Field(default_factory=list)
    family: str
    params: float = Field(gt=0, description="Total parameters as published.")
    active_params: float | None = Field(None, gt=0, description="Parameters active per token (MoE only).")
    training_tokens: float | None = Field(None, gt=0)
    training_flops: float | None = Field(None, gt=0)
    flops_status: Literal["reported", "estimated", "unknown"]
    arithmetic: str | None = Field(None, description="How an estimate was made, e.g. '6 × 8.03e+09 × 1.5e+13 = …'.")
    systemic_risk: bool = Field(False, description="True only with a notification or designation on record.")
    source: str
    config_confidence: Literal["verified", "unverified"]
    tokens_confidence: Literal["verified", "unverified"]
    notes: str = ""
    config: dict[str, Any]

    @model_validator(mode="after")
    def _consistent(self) -> "RegistryEntry":
        if self.flops_status == "unknown":
            if self.training_flops is not None:
                raise ValueError("flops_status 'unknown' but training_flops given")
        else:
            if self.training_flops is None or not math.isfinite(self.training_flops):
                raise ValueError(f"flops_status '{self.flops_status}' needs a finite training_flops")
        if self.flops_status == "estimated":
            if self.training_tokens is None or not self.arithmetic:
                raise ValueError("an estimated figure needs training_tokens and its arithmetic")
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

    def original_compute(self) -> OriginalCompute:
        """What `decide()` needs: reported → known, estimated → estimated, unknown → unknown."""
        status = {"reported": "known", "estimated": "estimated", "unknown": "unknown"}[self.flops_status]
        return OriginalCompute(self.training_flops, status, systemic_risk=self.systemic_risk,
                               source=f"ftaudit base-model registry: {self.id} ({self.source})")

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
        doc = yaml.safe_load(text)
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
