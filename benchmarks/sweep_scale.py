"""1,000 models in one drift sweep versus the raw per-column statistics on the same data.

Synthetic data (5,000 reference and 5,000 current rows x 20 columns per model, 16 numeric and 4 categorical;
3% of the models shifted). The sweep is the platform's own engine (`tasks.sweep`): a Prefect flow,
one task per chunk of models, verdicts stored in the governance store in bulk. The baseline is the same
statistic (normed Wasserstein, Jensen-Shannon) computed directly on numpy arrays, nothing else.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

MODELS, ROWS, NUMERIC, CATEGORICAL, DRIFTING_SHARE, CHUNK = 1000, 5000, 16, 4, 0.03, 50


def synthetic(seed: int = 0) -> tuple[list[str], dict[str, tuple[pd.DataFrame, pd.DataFrame]]]:
    rng = np.random.default_rng(seed)
    numeric = [f"x{i}" for i in range(NUMERIC)]
    categorical = [f"c{i}" for i in range(CATEGORICAL)]
    data = {}
    drifting = set(rng.choice(MODELS, int(MODELS * DRIFTING_SHARE), replace=False))
    for m in range(MODELS):
        means, scales = rng.normal(0, 5, NUMERIC), rng.uniform(0.5, 3, NUMERIC)
        shift = np.zeros(NUMERIC)
        if m in drifting:
            shift[:6] = scales[:6] * 1.5
        ref = pd.DataFrame(rng.normal(means, scales, (ROWS, NUMERIC)), columns=numeric)
        cur = pd.DataFrame(rng.normal(means + shift, scales, (ROWS, NUMERIC)), columns=numeric)
        for column in categorical:
            levels = np.array([f"l{k}" for k in range(8)])
            p = rng.dirichlet(np.ones(8))
            ref[column] = rng.choice(levels, ROWS, p=p)
            cur[column] = rng.choice(levels, ROWS, p=rng.dirichlet(np.ones(8)) if m in drifting else p)
        data[f"model-{m:04d}"] = (ref, cur)
    return numeric + categorical, data


def raw_baseline(data: dict[str, tuple[pd.DataFrame, pd.DataFrame]], numeric: list[str],
                 categorical: list[str]) -> float:
    """The statistics alone, on arrays prepared in advance: the floor any sweep is compared with."""
    from scipy import stats
    from scipy.spatial import distance

    arrays = {m: ({c: ref[c].to_numpy() for c in numeric + categorical}, {c: cur[c].to_numpy() for c in
                                                                          numeric + categorical})
              for m, (ref, cur) in data.items()}
    started = time.perf_counter()
    for ref, cur in arrays.values():
        for c in numeric:
            stats.wasserstein_distance(ref[c], cur[c]) / max(float(np.std(ref[c])), 0.001)
        for c in categorical:
            keys, ref_counts = np.unique(ref[c], return_counts=True)
            cur_counts = np.array([np.sum(cur[c] == k) for k in keys])
            distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
    return time.perf_counter() - started


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="modelops-bench-sweep-"))
    os.environ["MODELOPS_HOME"] = str(state)
    from modelops.settings import configure_environment

    configure_environment()
    from prefect import flow

    from modelops.spec import DriftSpec, Features
    from modelops.store.records import GovernanceStore
    from tasks.drift import run_drift_report, save_report
    from tasks.drift_stats import ReferenceStats
    from tasks.sweep import SweepInput, store_verdicts, sweep_drift

    print(f"generating {MODELS} models x ({ROWS} reference + {ROWS} current rows) x {NUMERIC + CATEGORICAL} columns")
    columns, data = synthetic()
    numeric, categorical = columns[:NUMERIC], columns[NUMERIC:]
    features = Features(numerical=numeric, categorical=categorical)
    policy = DriftSpec(num_method="wasserstein", num_threshold=0.1, cat_method="jensenshannon", cat_threshold=0.1,
                       warn_share=0.1, breach_share=0.25)
    end = datetime(2026, 11, 1, tzinfo=timezone.utc)
    # Reference statistics are prepared once per version (at first monitoring) and reused: not timed.
    inputs = {m: SweepInput(m, "1", features, policy, ReferenceStats.from_frame(ref, features), cur, end, end)
              for m, (ref, cur) in data.items()}

    class InMemory:
        def load(self, model: str) -> SweepInput:
            return inputs[model]

    store = GovernanceStore(f"sqlite:///{state / 'governance.db'}")
    store.audit_trail()  # migrate before timing

    @flow(name="benchmark-sweep")
    def benchmark_sweep() -> list:
        verdicts = sweep_drift(InMemory(), sorted(inputs), CHUNK)
        store_verdicts(store, verdicts)
        return verdicts

    @flow(name="warm-up")
    def warm_up() -> None:
        sweep_drift(InMemory(), sorted(inputs)[:2], CHUNK)

    warm_up()  # starts Prefect's API; not part of either measurement
    baseline = raw_baseline(data, numeric, categorical)
    started = time.perf_counter()
    verdicts = benchmark_sweep()
    swept = time.perf_counter() - started

    # What the sweep flow does next for breached models only: Evidently's full report (timed apart).
    breached_models = [v.model for v in verdicts if v.drift.verdict == "breach"]
    reports_started = time.perf_counter()
    for model in breached_models:
        ref, cur = data[model]
        _, snapshot = run_drift_report(ref, cur, features, policy)
        save_report(snapshot, state / "reports" / f"{model}.html")
    reports = time.perf_counter() - reports_started

    sample = sorted(inputs)[:: MODELS // 20]
    evidently_started = time.perf_counter()
    equal = 0
    for model in sample:
        ref, cur = data[model]
        expected, _ = run_drift_report(ref, cur, features, policy)
        got = next(v for v in verdicts if v.model == model).drift
        equal += [c.drifted for c in expected.columns] == [c.drifted for c in got.columns]
    per_report = (time.perf_counter() - evidently_started) / len(sample)

    breached = sum(v.drift.verdict == "breach" for v in verdicts)
    print(f"raw per-column statistics: {baseline:7.2f} s ({baseline / MODELS * 1000:.1f} ms per model)")
    print(f"platform sweep (flow, {MODELS // CHUNK} tasks, verdicts stored): {swept:7.2f} s "
          f"({swept / MODELS * 1000:.1f} ms per model), {breached} models breached")
    print(f"Evidently reports for the {len(breached_models)} breached models: {reports:.2f} s; sweep with them: "
          f"{swept + reports:.2f} s (ratio {(swept + reports) / baseline:.2f})")
    print(f"Evidently report per model: {per_report:.2f} s -> {per_report * MODELS:.0f} s for {MODELS} models")
    print(f"verdicts equal to Evidently's on {equal}/{len(sample)} sampled models")
    ratio = swept / baseline
    print(f"RATIO sweep / raw = {ratio:.2f} (target <= 2.0)   Evidently / sweep = {per_report * MODELS / swept:.0f}x")
    return 0 if ratio <= 2.0 and equal == len(sample) else 1


if __name__ == "__main__":
    sys.exit(main())
