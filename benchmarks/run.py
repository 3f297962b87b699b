"""`make benchmark`: every benchmark in turn, each in its own process (each starts what it measures)."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["benchmarks.sweep_scale", "benchmarks.batch_scale", "benchmarks.trigger_latency", "benchmarks.cli_latency",
              "benchmarks.gateway", "benchmarks.model_kinds", "benchmarks.endpoint_kind", "benchmarks.model_environment",
              "benchmarks.streaming", "benchmarks.catalog_scale", "benchmarks.log_days"]


def main() -> int:
    failed = []
    for module in BENCHMARKS:
        print(f"=== {module}", flush=True)
        if subprocess.run([sys.executable, "-m", module]).returncode != 0:
            failed.append(module)
    if failed:
        print(f"targets missed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
