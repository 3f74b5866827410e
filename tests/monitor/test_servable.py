"""`ftaudit monitor servable`: a run's LoRA adapter merged into its base gives one directory a server loads, whose
outputs equal the adapter model's, and which names the run and the adapter's hash."""

from __future__ import annotations

import json

import pytest

from ftaudit.errors import BadInput
from ftaudit.monitor.servable import SERVED_FILE, write_servable
from tiny_models import build_tiny_model

pytestmark = pytest.mark.slow


def test_an_adapter_run_becomes_a_merged_model_with_the_same_outputs(tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftaudit.evaluation.evidence import EvaluationEvidence, ModelUnderTest
    from ftaudit.io import sha256_file
    from ftaudit.record import RunRecord

    base, run = tmp_path / "base", tmp_path / "run"
    build_tiny_model(base)
    torch.manual_seed(1)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                          LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter: B is no longer zero, so merging changes the weights
    lora.save_pretrained(run / "model")
    models = [ModelUnderTest(role="base", spec=str(base), kind="directory", context_window=512, dtype="float32",
                             parameters=1),
              ModelUnderTest(role="tuned", spec=str(run / "model"), kind="adapter", adapter_path=str(run / "model"),
                             context_window=512, dtype="float32", parameters=1)]
    RunRecord(status="completed", evaluation=EvaluationEvidence(models=models)).save(run)

    with pytest.raises(BadInput, match="outside the run directory"):
        write_servable(run, run / "served")
    info = write_servable(run, tmp_path / "served")
    assert info["merged"] and info["source_sha256"] == sha256_file(run / "model" / "adapter_model.safetensors")[0]
    assert json.loads((tmp_path / "served" / SERVED_FILE).read_text()) == info
    with pytest.raises(BadInput, match="already exists"):
        write_servable(run, tmp_path / "served")

    ids = AutoTokenizer.from_pretrained(base)("Where is my parcel?", return_tensors="pt")["input_ids"]
    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), run / "model").eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "served").eval()
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        want, got, before = adapter(ids).logits, merged(ids).logits, plain(ids).logits
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, before, atol=1e-3)
