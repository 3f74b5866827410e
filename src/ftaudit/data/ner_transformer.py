"""Names and places by a Hugging Face token-classification model (`ftaudit data scan --ner-model DIR`), on the GPU
when the machine has one: the accurate, slower alternative to the small spaCy pipeline.

The model is read from a local directory only (nothing is downloaded); CoNLL labels (PER, LOC, ORG, MISC) and
OntoNotes labels (PERSON, GPE, NORP, …) are mapped to types as spaCy's are. A text longer than the model's window
is read by the pipeline in overlapping token windows (`stride`), so no part of it goes unread.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
from functools import lru_cache
from pathlib import Path

from ftaudit.data.ner_filter import NER_LABELS
from ftaudit.errors import BadInput

STRIDE = 32  # tokens shared by consecutive windows of a text longer than the model's maximum length
GPU_BATCH, CPU_BATCH = 64, 8  # texts per forward pass


@lru_cache(maxsize=None)  # asked once per batch; the answer holds for the run
def missing(path: str) -> str | None:
    """Why the model cannot be used, or None; reads its configuration only (the weights load in the workers)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        return f"--ner-model {path} needs torch and transformers: pip install 'ftaudit[train]'"
    if not (Path(path) / "config.json").is_file():
        return (f"--ner-model {path}: not a model directory (no config.json); give a local Hugging Face "
                "token-classification model saved with save_pretrained")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        return f"--ner-model {path}: not a token-classification model ({_first_line(exc)})"
    if not any(label.startswith(("B-", "I-")) or label in NER_LABELS for label in config.id2label.values()):
        return (f"--ner-model {path}: not a token-classification model (its labels {sorted(config.id2label.values())} "
                "name no entity)")
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


def device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


class TransformerNer:
    def __init__(self, path: str):
        if why := missing(path):
            raise BadInput(why)
        from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a scan's output is its own progress display
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForTokenClassification.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise BadInput(f"--ner-model {path}: not a token-classification model ({_first_line(exc)})") from None
        if not tokenizer.is_fast:
            raise BadInput(f"--ner-model {path}: its tokenizer has no fast (Rust) version, which character offsets "
                           "need; save the model with a tokenizer.json")
        # A tokenizer trained on its own may not know the model's limit: the windows must fit the positions.
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit and tokenizer.model_max_length > limit:
            tokenizer.model_max_length = limit
        self.device = device()
        if self.device == "cpu" and multiprocessing.parent_process() is not None:
            import torch

            torch.set_num_threads(1)  # a scan worker: the pool already has one process per core
        self.batch = GPU_BATCH if self.device.startswith("cuda") else CPU_BATCH
        self.pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, device=self.device,
                             aggregation_strategy="simple", stride=min(STRIDE, tokenizer.model_max_length // 4))

    def entities(self, texts: list[str]) -> list[list[tuple[int, int, str]]]:
        """(start, end, label) of each text's entities, labels without their B-/I- prefix."""
        found = self.pipe(texts, batch_size=self.batch)
        return [[(int(e["start"]), int(e["end"]), e["entity_group"]) for e in ents] for ents in found]


@lru_cache(maxsize=None)
def describe(path: str) -> str:
    return (f"NER by the token-classification model in {Path(path).name} (Hugging Face transformers, on each "
            f"worker's GPU when it has one, else its CPU; here: {device()}), its labels mapped to PERSON, LOCATION "
            "and NRP like spaCy's.")
