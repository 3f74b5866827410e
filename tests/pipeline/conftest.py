"""Fixtures for the pipeline tests: a tiny llama built from a config and a BPE tokenizer trained offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tiny_models import DEMO_DATA, build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model(d)
    return d


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    rows = (DEMO_DATA / "support_train.jsonl").read_text().splitlines()
    (d / "train.jsonl").write_text("\n".join(rows[:48]) + "\n")
    (d / "eval.jsonl").write_text("\n".join((DEMO_DATA / "support_eval.jsonl").read_text().splitlines()[:8]) + "\n")
    return {"train": d / "train.jsonl", "eval": d / "eval.jsonl"}


def make_config(tmp: Path, model: Path, data: dict[str, Path], **over) -> Path:
    """Write a run config for the tiny model; `over` replaces top-level sections (dicts are merged one level)."""
    cfg = {
        "name": "tiny",
        "base_model": {"path": str(model)},
        "datasets": [{"path": str(data["train"]), "provenance": "synthetic (ftaudit demo generator)",
                      "licence": "Apache-2.0"}],
        "method": {"type": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                                            "target_modules": ["q_proj", "v_proj"]}},
        "training": {"max_steps": 4, "per_device_batch_size": 4, "learning_rate": 1e-3, "save_steps": 2,
                     "logging_steps": 1, "meter_every_steps": 1, "max_seq_len": 256},
        "purpose": {"intended_purpose": "extract fields from support messages", "deployment_context": "tests"},
        "provider": {"name": "Test Org", "contact": "ml-team@example.org"},
        "output_dir": str(tmp / "run"),
        "data_policy": {},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        elif value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def optional_module(name: str, *, minversion: str | None = None, why: str):
    """`pytest.importorskip` for an optional dependency of ftaudit, which fails instead when .ci/run (or anyone)
    sets FTAUDIT_REQUIRE_<NAME>=1: CI installs it, so a skip there would hide a broken install."""
    try:
        return pytest.importorskip(name, minversion=minversion, reason=f"{name} is optional: {why}")
    except pytest.skip.Exception:
        var = f"FTAUDIT_REQUIRE_{name.upper()}"
        if os.environ.get(var) == "1":
            pytest.fail(f"{var}=1 but {name}{'>=' + minversion if minversion else ''} is not importable")
        raise


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return e


BIN = Path(sys.executable).parent
# Both launchers start 2 gloo processes on CPU; Accelerate needs --multi_gpu for that on a machine without GPUs.
LAUNCHERS = {
    "torchrun": [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2"],
    "accelerate": [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"],
}


def launch(launcher: str, args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """A script (`-m module …` or a path) under a 2-process launcher."""
    if not Path(LAUNCHERS[launcher][0]).exists():
        pytest.skip(f"{launcher} not installed")
    proc = subprocess.Popen([*LAUNCHERS[launcher], *args], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # SIGTERM first: the launcher then stops its workers (SIGKILL would orphan them)
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def train_distributed(launcher: str, config: Path, cwd: Path) -> dict:
    """`ftaudit train CONFIG --json` under a 2-process launcher: exit 0, one report (rank 0's); returns its record."""
    done = launch(launcher, ["-m", "ftaudit.cli", "train", str(config), "--json"], cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    outs = json_objects(done.stdout)
    assert len(outs) == 1, "only rank 0 reports"
    return json.loads(outs[0])["record"]


def kill_9_when(args: list[str], marker: Path, timeout: float = 240) -> None:
    """Run `args` and kill -9 it as soon as `marker` exists (a crash or a spot interruption mid-training)."""
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "no checkpoint before the kill"


def json_objects(text: str) -> list[str]:
    """Top-level JSON objects printed on stdout (rank 0 prints one; other ranks must print none)."""
    out, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
            start = i if depth == 1 else start
        elif ch == "}":
            depth -= 1
            if depth == 0 and start is not None:
                out.append(text[start:i + 1])
    return out
