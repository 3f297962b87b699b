"""Batch throughput of a model in its own environment: scored through its worker from the platform (frame encoded,
piped, decoded, scored, the output piped back) against the same model's own `predict_proba` in that environment
on the same rows (timed inside the worker around the model call alone, in the same requests).

Real data: flight-delay pinned to scikit-learn 1.5.2 (examples/specs/flight-delay-sklearn15.yaml), trained in its
environment on January to mid-February 2013 and scoring March to December 2013. Also the environment's build time,
cold (empty uv cache) and from uv's shared download cache (a second build of the same packages). Target: worker
throughput >= 0.9x the model's own.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

TARGET = 0.9
REPEATS = 5


def main() -> int:
    from examples.flight_delay import load_frame
    from modelops.spec import parse_spec
    from tasks.environments import (
        ensure_environment, environment_requirements, environments_dir, parse_requirements,
    )
    from tasks.worker_client import IsolatedModel, train_in_environment

    root = Path(__file__).resolve().parents[1]
    spec = parse_spec(root / "examples" / "specs" / "flight-delay-sklearn15.yaml")
    lines = environment_requirements(parse_requirements(spec.training.pip_requirements, spec.name))
    with tempfile.TemporaryDirectory(prefix="modelops-envbench-") as folder:
        home = Path(folder)
        started = time.perf_counter()
        environment = ensure_environment(home, lines, spec.name)
        cold = time.perf_counter() - started
        shutil.rmtree(environment.path)  # the environment gone, uv's download cache kept
        started = time.perf_counter()
        environment = ensure_environment(home, lines, spec.name)
        cached = time.perf_counter() - started
        started = time.perf_counter()
        ensure_environment(home, lines, spec.name)
        hit = time.perf_counter() - started
        print(f"environment build: {cold:.1f} s cold, {cached:.1f} s from uv's cache, {hit * 1000:.2f} ms when built "
              f"({environments_dir(home)})")

        columns = spec.data.features.all
        train = load_frame(date(2013, 1, 1), date(2013, 2, 15))
        data, trusted, _, versions = train_in_environment(
            environment, home / "worker.log", spec.name, entry_point=spec.training.entry_point, code_path=root,
            features=train[columns], target=train[spec.data.target], params=dict(spec.training.params),
            predict_fn="predict_proba", example_rows=5)
        batch = load_frame(date(2013, 3, 1), date(2014, 1, 1))[columns]
        model = IsolatedModel(environment, data, hashlib.sha256(data).hexdigest(), trusted, "predict_proba",
                              home / "worker.log", spec.name)
        try:
            model.predict(batch)  # warm-up
            best_total, best_model = float("inf"), float("inf")
            for _ in range(REPEATS):
                model.model_seconds = 0.0
                started = time.perf_counter()
                model.predict(batch)
                total = time.perf_counter() - started
                if total < best_total:
                    best_total, best_model = total, model.model_seconds
        finally:
            model.close()
    ratio = best_model / best_total
    print(f"scikit-learn {versions['scikit-learn']} in its environment, {len(batch):,} rows (best of {REPEATS}):")
    print(f"  through the worker: {best_total:.3f} s ({len(batch) / best_total:,.0f} rows/s)")
    print(f"  its own predict_proba in the environment: {best_model:.3f} s ({len(batch) / best_model:,.0f} rows/s)")
    print(f"  ratio {ratio:.2f}x (target {TARGET}x)")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
