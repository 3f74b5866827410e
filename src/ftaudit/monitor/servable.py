"""`ftaudit monitor servable RUN_DIR -o DIR`: the run's tuned model as one directory any OpenAI-compatible server
loads (`transformers serve DIR`, vLLM): a LoRA adapter merged into its base, or a full model copied as it is.
The directory names the run and the sha256 of the weights it came from (`ftaudit_served.json`), so the gateway's
events link to the run's own evidence."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ftaudit.errors import BadInput
from ftaudit.io import sha256_file

SERVED_FILE = "ftaudit_served.json"


def write_servable(run_dir: str | Path, out: str | Path) -> dict:
    from ftaudit.evaluation.models import load_model, load_pair
    from ftaudit.record import WEIGHTS_FILES, RunRecord

    run_dir, out = Path(run_dir), Path(out)
    record = RunRecord.load(run_dir)
    if out.resolve().is_relative_to(run_dir.resolve()):
        raise BadInput(f"{out}: write the servable model outside the run directory (verify would report it as an "
                       f"unregistered file); e.g. -o {run_dir}-served")
    if out.exists():
        raise BadInput(f"{out}: already exists; choose a new directory (nothing was overwritten)")
    models = {m.role: m for m in (record.evaluation.models if record.evaluation else [])}
    if "tuned" not in models:
        raise BadInput(f"{run_dir}: the run record names no tuned model (run the evaluate stage first)")
    tuned = models["tuned"]
    if tuned.adapter_path:
        if "base" not in models:
            raise BadInput(f"{run_dir}: the run record names an adapter but not its base model")
        _, view = load_pair(models["base"].spec, tuned.adapter_path)
        model, tokenizer = view.model.merge_and_unload(), view.tokenizer
        source = Path(tuned.adapter_path)
    else:
        loaded = load_model(tuned.spec)
        model, tokenizer, source = loaded.model, loaded.tokenizer, Path(tuned.spec)
    if getattr(model, "hf_quantizer", None) is not None and getattr(model.config, "quantization_config", None) \
            and getattr(model.config.quantization_config, "quant_method", None) == "gguf":
        # A .gguf base is de-quantised when loaded: the weights in memory are plain floats, saved as such.
        model.hf_quantizer = None
        del model.config.quantization_config
    weights = next((source / name for name in WEIGHTS_FILES if (source / name).is_file()), None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:  # written beside the target, renamed when complete: a failure leaves no half-written model
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        served, _ = sha256_file(tmp / "model.safetensors")
        info = {"run_id": record.run_id, "source": str(source),
                "source_sha256": sha256_file(weights)[0] if weights else None, "served_sha256": served,
                "merged": bool(tuned.adapter_path)}
        (tmp / SERVED_FILE).write_text(json.dumps(info, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
