"""Wall time of `ftaudit estimate` (a registry id, and a config.json path) against `python -c pass` measured in the
same run: the command is a planning tool people run in loops and notebooks, so it answers in at most 0.3 s.

    python -m benchmarks estimate_latency
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
RUNS = 7
LLAMA_1B = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
            "max_position_embeddings": 131072, "tie_word_embeddings": True}


def median_s(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    estimate = [sys.executable, "-m", "ftaudit.cli", "estimate", "--tokens", "1e9", "--seq-len", "2048", "--config"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.json"
        cfg.write_text(json.dumps(LLAMA_1B))
        base = median_s([sys.executable, "-c", "pass"])
        rows = [("python -c pass (baseline)", base),
                ("ftaudit estimate --config meta-llama/Llama-3.2-1B", median_s([*estimate, "meta-llama/Llama-3.2-1B"])),
                ("ftaudit estimate --config config.json", median_s([*estimate, str(cfg)]))]
    print(f"median of {RUNS} runs each; load average {os.getloadavg()[0]:.2f}")
    print("| command | wall time | ratio to python -c pass |")
    print("|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {s:.3f} s | {s / base:.1f} |")
    worst = max(s for _, s in rows[1:])
    print(f"target: estimate in at most {TARGET_S} s: {'met' if worst <= TARGET_S else 'NOT met'} ({worst:.3f} s)")


if __name__ == "__main__":
    main()
