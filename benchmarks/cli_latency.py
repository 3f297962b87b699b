"""End-to-end time of `modelops approve` (a fresh process, as a person types it) with `modelops up` running, where
the CLI hands the stage to the stack's stage service (a warm process that forks a child per request), against the
same command when the CLI has to start a temporary Prefect server of its own (the same-run baseline).

flight-delay v1 is registered and validated first; each mode gets one warm-up run (the first approval records the
decision and emits its event; later runs decide the same and record nothing new), then RUNS timed runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 5
TARGET_SECONDS = 3.0
ROOT = Path(__file__).resolve().parents[1]


def _cli(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "modelops.cli", *args], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _approvals(env: dict[str, str]) -> list[float]:
    _cli(env, "approve", "flight-delay", "--version", "1")
    return [_cli(env, "approve", "flight-delay", "--version", "1") for _ in range(RUNS)]


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="modelops-bench-cli-"))
    env = {**os.environ, "MODELOPS_HOME": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    os.environ.update({"MODELOPS_HOME": str(state)})
    os.environ.pop("PREFECT_API_URL", None)
    from modelops.services.stack import down, free_port, up
    from modelops.settings import configure_environment

    settings = configure_environment()
    _cli(env, "register", "flight-delay")
    _cli(env, "validate", "flight-delay", "--version", "1")
    temporary = _approvals(env)
    from modelops.services.stage_service import log_path

    up(settings, prefect_port=free_port(), with_mlflow=False, gateway_port=None, with_streaming=False)
    try:
        running = _approvals(env)
        served = log_path(settings).read_text().count("approve (pid ")
    finally:
        down(settings)
    if served != RUNS + 1:
        print(f"only {served} of {RUNS + 1} approvals went through the stage service: see {log_path(settings)}")
        return 1
    baseline, measured = statistics.median(temporary), statistics.median(running)
    print("approve with a temporary server (s): " + ", ".join(f"{v:.2f}" for v in temporary))
    print("approve with `modelops up` running, through the stage service (s): " + ", ".join(f"{v:.2f}" for v in running))
    print(f"RATIO median with the running stack / median with a temporary server = {measured:.2f} s / "
          f"{baseline:.2f} s = {measured / baseline:.2f}; target median < {TARGET_SECONDS:.0f} s: "
          f"{'met' if measured < TARGET_SECONDS else 'NOT met'}")
    return 0 if measured < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
