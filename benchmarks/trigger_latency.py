"""Emit-to-start latency of a triggered stage on a live stack (`modelops up`, runner polled every second).

flight-delay v1 is onboarded without triggers; then `modelops.model.approved` is emitted for it N times, one at a
time, with the chain label, and each time the `deploy` deployment's new flow run is awaited. Latency = the run's
start time (Running) minus the event's time. The baseline printed beside it is the runner's poll interval.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

EMITS = 12
POLL_SECONDS = 1


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="modelops-bench-trigger-"))
    os.environ["MODELOPS_HOME"] = str(state)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{state / 'mlflow.db'}"
    from modelops.services.stack import down, free_port, up
    from modelops.settings import load_settings

    settings = load_settings()
    services = up(settings, prefect_port=free_port(), with_mlflow=False, poll_seconds=POLL_SECONDS,
                  gateway_port=None, with_streaming=False)
    os.environ["PREFECT_API_URL"] = next(s.url for s in services if s.name == "stage-runner")
    try:
        return measure()
    finally:
        down(settings)


def measure() -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.events import emit_event

    from modelops import events
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.validate import validate

    version = register(model="flight-delay", chain=False).version
    validate(model="flight-delay", version=version)
    approve(model="flight-delay", version=version)
    deploy(model="flight-delay", version=version)

    only_deploy = DeploymentFilter(name=DeploymentFilterName(any_=["deploy"]))
    latencies: list[float] = []
    splits: list[tuple[float, float]] = []
    with get_client(sync_client=True) as client:
        for _ in range(EMITS):
            before = {run.id for run in client.read_flow_runs(deployment_filter=only_deploy)}
            event = emit_event(event=events.APPROVED, payload={"model": "flight-delay", "version": version},
                               resource=events.model_resource("flight-delay", {events.CHAIN_LABEL: "continue"}))
            deadline = time.monotonic() + 60
            started = created = None
            while started is None and time.monotonic() < deadline:
                time.sleep(0.1)
                for run in client.read_flow_runs(deployment_filter=only_deploy):
                    if run.id not in before and run.start_time is not None:
                        started, created = run.start_time, run.created
            if started is None or created is None:
                print("a triggered run did not start within 60 s")
                return 1
            latencies.append((started - event.occurred).total_seconds())
            # Where the time goes: the server's trigger creating the run, then the runner starting it.
            splits.append(((created - event.occurred).total_seconds(), (started - created).total_seconds()))
            time.sleep(1.5)  # let the no-op deploy run finish before the next emit
    median = statistics.median(latencies)
    print("emit-to-start latencies (s): " + ", ".join(f"{v:.2f}" for v in latencies))
    print(f"of which emit-to-created (the trigger) median {statistics.median(s[0] for s in splits):.2f} s, "
          f"created-to-running (the runner) median {statistics.median(s[1] for s in splits):.2f} s")
    print(f"median {median:.2f} s, p90 {sorted(latencies)[int(len(latencies) * 0.9) - 1]:.2f} s, "
          f"min {min(latencies):.2f} s, max {max(latencies):.2f} s over {len(latencies)} triggered runs")
    print(f"RATIO median / runner poll interval ({POLL_SECONDS} s) = {median / POLL_SECONDS:.2f}; target median < 3 s:"
          f" {'met' if median < 3 else 'NOT met'}")
    return 0 if median < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
