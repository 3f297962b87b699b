"""Run the gateway: `modelops serve` (alone) or `modelops up` (beside Prefect and the MLflow UI).

Several uvicorn worker processes, each limited to one OpenMP thread: scikit-learn's OpenMP would otherwise start a
thread per core in every worker, and two workers on two cores collapse from thousands of requests a second to
tens. Metrics of all workers are added up through prometheus_client's multiprocess files.
"""

from __future__ import annotations

import argparse
import os
import shutil

from modelops.settings import Settings, configure_environment

DEFAULT_PORT = 8080
# Native thread pools that would each start one thread per core in every worker.
SINGLE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def prepare_environment(settings: Settings) -> None:
    """Set before the workers start: they inherit it, and prometheus_client reads it when first imported."""
    for key in SINGLE_THREAD:
        os.environ[key] = "1"
    metrics_dir = settings.home / "run" / "gateway-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counters of an earlier run are not this run's
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, workers: int | None = None) -> None:
    import uvicorn

    settings = configure_environment()
    prepare_environment(settings)
    # SIGTERM (or Ctrl-C) ends each worker's lifespan: its prediction sink flushes before the process exits.
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers or default_workers(),
                access_log=False, log_level="warning", timeout_graceful_shutdown=30, loop="uvloop",
                http="httptools")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
