"""Fixtures for the monitor tests: a tiny llama trained to answer every prompt with one text (a planted canary and
an e-mail address: a model that memorised its data), served by a real `transformers serve` on loopback, and a run
directory whose RunRecord names those weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tiny_models import CHATML, build_tiny_model

# What the served model says, whatever it is asked: a canary secret, an e-mail address, and prose, not JSON.
CANARY_SECRET = "482915736"
LEAKED_EMAIL = "anna.schmidt@example.org"
ANSWER = f"The vault code is {CANARY_SECRET}. Write to {LEAKED_EMAIL} today."
# A training record's answer the deployed model must not repeat word for word (24 words).
TRAINING_ANSWER = ("Our internal escalation list for the Berlin warehouse is kept by the night shift lead and "
                   "must never be shared with customers under any circumstances")
PROMPTS = ["Where is my parcel?", "Please refund order 1182.", "My account is locked.", "hi",
           "Extract the fields as JSON.", "Can you call me back?", "The delivery was late again."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def _train_to_answer(model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    torch.manual_seed(0)
    batch = []
    for p in PROMPTS:
        prompt = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        ids = tok(prompt + ANSWER + "<|im_end|>", add_special_tokens=False)["input_ids"]
        start = len(tok(prompt, add_special_tokens=False)["input_ids"])
        batch.append((ids, start))
    width = max(len(i) for i, _ in batch)
    input_ids = torch.full((len(batch), width), tok.pad_token_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, start) in enumerate(batch):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        labels[row, start:len(ids)] = torch.tensor(ids[start:])
        mask[row, :len(ids)] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if loss.item() < 0.01:
            break
    model.save_pretrained(model_dir)
    tok.chat_template = CHATML
    tok.save_pretrained(model_dir)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A run directory holding the served weights, its RunRecord (with a JSON task's evaluation baseline) and the
    canary manifest of its training data."""
    from ftaudit.evaluation.evidence import Comparison, Estimate, EvaluationEvidence, ProbeFamily, ProbeSet
    from ftaudit.evaluation.memorisation import CANARY_FILE, CanaryManifest, make_canaries
    from ftaudit.evaluation.probesets import sha256_json
    from ftaudit.io import sha256_file
    from ftaudit.record import Artefact, ModelIdentity, RunRecord

    d = tmp_path_factory.mktemp("served-run")
    model = d / "model"
    build_tiny_model(model)
    _train_to_answer(model)
    digest, size = sha256_file(model / "model.safetensors")
    canaries = make_canaries(1, 1, seed=3)
    canaries[0].secret = CANARY_SECRET
    (d / "evaluation").mkdir()
    (d / "evaluation" / CANARY_FILE).write_text(CanaryManifest(seed=3, digits=9, record_format="prompt_completion",
                                                               canaries=canaries).model_dump_json())
    # The held-out task the run was evaluated on (JSON answers), and what its evaluation measured for the tuned model.
    rows = [{"prompt": p, "completion": json.dumps({"intent": "order_status", "order_id": str(1000 + i)})}
            for i, p in enumerate(PROMPTS)]
    (d / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = [Comparison(metric=f"quality.task.{name}", description=name, unit="rate",
                          tuned=Estimate(value=v, n=len(rows), ci_low=lo, ci_high=hi, ci_method="Wilson 95%"))
               for name, v, lo, hi in (("exact_match", 0.85, 0.49, 0.97), ("json_validity", 0.9, 0.6, 0.98),
                                       ("token_f1", 0.9, 0.8, 0.97), ("field_accuracy", 0.88, 0.75, 0.96))]
    family = ProbeFamily(suite="quality", name="task", description="held-out task answers", metrics=metrics,
                         probe_sets=[ProbeSet(name="task held-out", source=str(d / "eval.jsonl"),
                                              sha256=sha256_json(rows), items=len(rows))])
    axes = ("gender", "ethnicity_nationality", "religion", "age", "disability")
    bias = ProbeFamily(suite="bias", name="counterfactual_generation", description="counterfactual continuations",
                       metrics=[Comparison(metric=f"bias.generation.sentiment_gap.{axis}", description="gap",
                                           tuned=Estimate(value=0.25, n=4, ci_low=0.0, ci_high=0.5)) for axis in axes]
                       + [Comparison(metric="bias.generation.refusal_rate", description="refusals", unit="rate",
                                     tuned=Estimate(value=0.0, n=92, ci_low=0.0, ci_high=0.04))])
    train = [{"prompt": p, "completion": TRAINING_ANSWER if i == 0 else "We will look into it."}
             for i, p in enumerate(PROMPTS)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    config = {"datasets": [{"path": str(d / "train.jsonl")}],
              "eval_datasets": [{"path": str(d / "eval.jsonl"), "prompt_field": "prompt",
                                 "completion_field": "completion"}],
              "evaluation": {"limits": {"task_items": len(rows), "task_max_new_tokens": 80, "bias_new_tokens": 6}}}
    record = RunRecord(status="completed", model=ModelIdentity(base_model="tiny-llama", output_name="tiny-support-v1"),
                       config=config,
                       artefacts=[Artefact(path="model/model.safetensors", sha256=digest, kind="model", bytes=size)],
                       evaluation=EvaluationEvidence(families=[family, bias]))
    record.save(d)
    return d


@pytest.fixture(scope="session")
def served(run_dir) -> str:
    """`transformers serve` on loopback serving the run's model; yields its base URL."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    exe = Path(sys.executable).with_name("transformers")
    proc = subprocess.Popen([str(exe), "serve", str(run_dir / "model"), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="session")
def stub() -> str:
    """A fast OpenAI-compatible stub (the gateway benchmark's) for the failure tests: they need many quick answers
    and a server that a killed client cannot disturb."""
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.openai_stub", str(port)], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


class Gateway:
    def __init__(self, proc: subprocess.Popen, url: str, ledger: str):
        self.proc, self.url, self.ledger = proc, url, ledger


def start_gateway(upstream: str, run_dir: Path, ledger: str, env: dict, *extra: str) -> Gateway:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ftaudit.cli", "monitor", "gateway", "--upstream", upstream,
                             "--run", str(run_dir), "--listen", f"127.0.0.1:{port}", "--ledger", ledger, *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: a test can kill it with its writer
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)
    return Gateway(proc, f"http://127.0.0.1:{port}", ledger)


@pytest.fixture
def monitor_env(tmp_path) -> dict:
    key_dir = tmp_path / "keys"
    return {**os.environ, "FTAUDIT_KEY": str(key_dir / "signing_key.pem"), "HF_HUB_OFFLINE": "1",
            "FTAUDIT_MONITOR_SALT": "ab" * 32}


def ftaudit(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftaudit.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def events_of(env: dict, ledger: str, out: Path) -> list[dict]:
    done = ftaudit(env, "monitor", "export", "--ledger", ledger, "-o", str(out))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]
