"""`make bench`: run every benchmark module in turn (or the ones named: `python -m benchmarks NAME ...`).

Benchmarks report ratios against a baseline measured in the same script: these machines are shared and noisy.
"""

import importlib
import sys
import time

# One module per benchmark; each defines main() and prints its own table.
BENCHMARKS = [
    "estimator_accuracy",
    "estimate_latency",
    "meter_overhead",
    "meter_objectives",
    "pii_detection",
    "data_scan",
    "data_scan_stages",
    "long_record_memory",
    "checkpoint_cost",
    "evaluation_throughput",
    "ledger_query",
    "documents_render",
    "gateway_overhead",
    "dashboard_pages",
]


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benchmarks.{name}":
                print(f"## {name}: not present, skipped\n")
                continue
            raise
        print(f"## {name}")
        start = time.perf_counter()
        module.main()
        print(f"({name}: {time.perf_counter() - start:.1f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
