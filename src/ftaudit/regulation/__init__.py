"""ftaudit.regulation — the EU AI Act rules as data; pure functions that return their reasoning and citations.

Knows nothing else in ftaudit: numbers in, judgements out (no torch, no transformers).
"""

from ftaudit.regulation.decision import ComputeEstimate, Decision, OriginalCompute, decide, tokens_until_threshold
from ftaudit.regulation.obligations import ROLES, Obligation
from ftaudit.regulation.original import resolve_original
from ftaudit.regulation.registry import RegistryEntry, load_registry, lookup

__all__ = [
    "ComputeEstimate", "Decision", "OriginalCompute", "Obligation", "ROLES", "RegistryEntry",
    "decide", "load_registry", "lookup", "resolve_original", "tokens_until_threshold",
]
