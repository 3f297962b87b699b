"""The drift sweep of 1,000 and 10,000 models versus a vectorised floor measured in the same run.

Synthetic data (benchmarks/sweep_data.py: 5,000 reference and 5,000 current rows x 20 columns per model, 16 numeric
and 4 categorical; about 3% of the models shifted). The sweep is the platform's own engine (`tasks.sweep`): a Prefect
flow, one task per chunk of models, verdicts stored in the governance store in bulk, run in process and on a Dask
LocalCluster of 1 and 2 workers. The floor computes the same statistics (normed Wasserstein, Jensen-Shannon) in
pure numpy on arrays prepared in advance, each reference sorted once: every model's scores must equal the sweep's.
SWEEP_BENCH_DASK=0 measures the in-process sweep alone (three runs, the median against the target).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


import numpy as np
import pandas as pd

@dataclass(frozen=True)
class FloorReference:
    """What the floor prepares once per version: sorted values, std, sorted categories and their frequencies."""

    numeric: np.ndarray  # rows x columns, each column sorted
    std: np.ndarray
    keys: list[np.ndarray]
    shares: list[np.ndarray]


def floor_reference(ref: pd.DataFrame, numeric: list[str], categorical: list[str]) -> FloorReference:
    values = ref[numeric].to_numpy(dtype="float64")
    keys, shares = [], []
    for column in categorical:
        k, counts = np.unique(ref[column].to_numpy(dtype=object), return_counts=True)
        keys.append(k)
        shares.append(counts / counts.sum())
    return FloorReference(np.sort(values, axis=0), values.std(axis=0), keys, shares)


def floor_scores(ref: FloorReference, numeric: np.ndarray, categorical: list[np.ndarray]) -> np.ndarray:
    """The vectorised floor: normed W1 per numeric column, Jensen-Shannon per categorical one, pure numpy.
    Equal-size samples: W1 is the mean absolute difference of sorted values (all columns at once); other sizes go
    through the two empirical CDFs. Categories are counted by searchsorted + bincount."""
    current = np.sort(numeric, axis=0)
    if len(current) == len(ref.numeric):
        w1 = np.abs(current - ref.numeric).mean(axis=0)
    else:
        w1 = np.array([_w1_cdf(ref.numeric[:, i], current[:, i]) for i in range(current.shape[1])])
    scores = list(w1 / np.maximum(ref.std, 0.001))
    for keys, ref_shares, values in zip(ref.keys, ref.shares, categorical):
        at = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
        known = keys[at] == values
        unseen = np.unique(values[~known], return_counts=True)[1]
        cur = np.concatenate([np.bincount(at[known], minlength=len(keys)), unseen]) / len(values)
        p = np.concatenate([ref_shares, np.zeros(len(unseen))])
        m = (p + cur) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(p > 0, p * np.log(p / m), 0).sum() + np.where(cur > 0, cur * np.log(cur / m), 0).sum()
        scores.append(np.sqrt(kl / 2))
    return np.array(scores)


def _w1_cdf(u: np.ndarray, v: np.ndarray) -> float:
    both = np.sort(np.concatenate([u, v]))
    cdf_u = np.searchsorted(u, both[:-1], "right") / len(u)
    cdf_v = np.searchsorted(v, both[:-1], "right") / len(v)
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(both)))


def floor(prepared: list[tuple[FloorReference, np.ndarray, list[np.ndarray]]], start: int, stop: int
          ) -> tuple[float, np.ndarray]:
    """Models start..stop-1's scores (model m uses prepared[m % len(prepared)]); the time and the scores."""
    first = prepared[0]
    out = np.empty((stop - start, first[1].shape[1] + len(first[2])))
    started = time.perf_counter()
    for m in range(start, stop):
        out[m - start] = floor_scores(*prepared[m % len(prepared)])
    return time.perf_counter() - started, out


@dataclass(frozen=True)
class Stored:
    """What the sweep stored for one model: its drift verdict and each column's score and verdict."""

    model: str
    verdict: str
    scores: list[float]
    drifted: list[bool]


def run_sweep(models: int, address: str | None, store_url: str) -> tuple[float, list[Stored]]:
    """The platform's sweep flow on `models` synthetic models: one task per chunk (on Dask at `address`), verdicts
    stored; the time, then what the store holds of it (read after timing)."""
    from benchmarks.sweep_data import CHUNK, DASK_CHUNK, benchmark_sweep, model_name
    from modelops.store.records import GovernanceStore

    started = time.perf_counter()
    benchmark_sweep(models, address, store_url, DASK_CHUNK if address else CHUNK)
    swept = time.perf_counter() - started
    names = [model_name(m) for m in range(models)]
    newest = GovernanceStore(store_url).newest_monitoring(names)
    stored = []
    for name in names:
        run, results = newest[(name, "sweep")]
        columns = [r for r in results if r.check == "drift-column"]
        stored.append(Stored(name, run.verdict, [float(r.value) for r in columns],
                             [r.verdict == "breach" for r in columns]))
    return swept, stored


def same_scores(stored: list[Stored], floor_out: np.ndarray) -> float:
    """The largest relative difference between the stored column scores and the floor's, over every model."""
    got = np.array([s.scores for s in stored])
    return float(np.max(np.abs(got - floor_out) / np.maximum(np.abs(floor_out), 1e-12)))


def maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="modelops-bench-sweep-"))
    os.environ["MODELOPS_HOME"] = str(state)
    from modelops.settings import configure_environment

    configure_environment()
    from prefect.testing.utilities import prefect_test_harness

    # One Prefect API for the benchmark and the Dask workers (its address travels with each task's context); an
    # ephemeral API per process would make each worker start its own server.
    with prefect_test_harness(server_startup_timeout=120):
        return compare(state)


def compare(state: Path) -> int:
    from distributed import Client, LocalCluster

    from benchmarks import sweep_data as data
    from modelops.store.records import GovernanceStore
    from tasks.drift import run_drift_report, save_report

    models, large = data.MODELS, data.LARGE
    numeric, categorical = data.NUMERIC_COLUMNS, data.CATEGORICAL_COLUMNS
    print(f"{models} distinct models x ({data.ROWS} reference + {data.ROWS} current rows) x "
          f"{len(numeric) + len(categorical)} columns; the {large}-model sweep cycles through them; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    # Prepared once per version, not timed: the platform's reference statistics and the floor's own.
    data.prepare_all()
    floor_inputs = []
    for m in range(models):
        ref, cur = data.synthetic_model(m)
        floor_inputs.append((floor_reference(ref, numeric, categorical), cur[numeric].to_numpy(dtype="float64"),
                             [cur[c].to_numpy(dtype=object) for c in categorical]))
        del ref

    store_url = f"sqlite:///{state / 'governance.db'}"
    GovernanceStore(store_url).audit_trail()  # migrate before timing
    run_sweep(2, None, store_url)  # warms Prefect's client up; not part of any measurement
    ok = True

    def measure(label: str, count: int, address: str | None) -> tuple[float, float, list]:
        nonlocal ok
        # Half the floor's models before the sweep, half after: a machine shared with other work changes speed
        # within minutes, and both halves then see the same conditions as the sweep on average.
        before, floor_first = floor(floor_inputs, 0, count // 2)
        swept, verdicts = run_sweep(count, address, store_url)
        after, floor_second = floor(floor_inputs, count // 2, count)
        floor_time, floor_out = before + after, np.concatenate([floor_first, floor_second])
        difference = same_scores(verdicts, floor_out)
        ratio = swept / floor_time
        ok &= difference <= 1e-9
        print(f"{label:<28} {count:>6} models: floor {floor_time:6.2f} s ({floor_time / count * 1000:4.1f} ms/model), "
              f"sweep {swept:6.2f} s ({swept / count * 1000:4.1f} ms/model)  RATIO {ratio:.2f}  "
              f"max relative score difference {difference:.1e}  load {os.getloadavg()[0]:.1f}", flush=True)
        return ratio, swept, verdicts

    # The target's ratio is the median of three runs: one run on a shared machine moved by 0.3x from run to run.
    in_process = [measure(f"in-process, run {run}", models, None) for run in (1, 2, 3)]
    ratio_default, _, verdicts = sorted(in_process, key=lambda measured: measured[0])[1]
    ok &= ratio_default <= 1.5
    if os.environ.get("SWEEP_BENCH_DASK", "1") == "0":  # a quick look at the in-process figure alone
        print(f"RATIO sweep / vectorised floor at {models} models, in process, median of 3 = {ratio_default:.2f} "
              "(target <= 1.5)")
        return 0 if ok else 1
    timings: dict[int, tuple[float, float]] = {}
    peaks: list[float] = []
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.run(data.prepare_all)  # each worker prepares the models' data once, as the platform caches it
            run_sweep(2, cluster.scheduler_address, store_url)  # workers import the platform: not timed
            timings[workers] = measure(f"Dask, {workers} worker(s)", models, cluster.scheduler_address)[:2]
            if workers == 2:
                # Peak RSS (a high-water mark) after the 1,000 and after the 10,000: what the sweep adds per model
                # beyond the synthetic data every process holds.
                peaks = [maxrss_mb() + sum(client.run(maxrss_mb).values())]
                measure(f"Dask, {workers} worker(s)", large, cluster.scheduler_address)
                peaks.append(maxrss_mb() + sum(client.run(maxrss_mb).values()))
    (ratio_1, swept_1), (ratio_2, swept_2) = timings[1], timings[2]
    print(f"scaling 1 -> 2 Dask workers at {models} models: sweep {swept_1:.2f} s -> {swept_2:.2f} s (speed-up "
          f"{swept_1 / swept_2:.2f}x); ratio to the floor {ratio_1:.2f} -> {ratio_2:.2f}")
    print(f"peak memory (max RSS, benchmark process + 2 workers, each holding the {models} models' data): "
          f"{peaks[0]:.0f} MB after {models} models, {peaks[1]:.0f} MB after {large}")

    # What the sweep flow does next for breached models only: Evidently's full report (timed apart).
    breached_models = [v.model for v in verdicts if v.verdict == "breach"]
    reports_started = time.perf_counter()
    for model in breached_models:
        ref, cur = data.synthetic_model(int(model.rsplit("-", 1)[1]))
        _, snapshot = run_drift_report(ref, cur, data.FEATURES, data.POLICY)
        save_report(snapshot, state / "reports" / f"{model}.html")
    reports = time.perf_counter() - reports_started
    print(f"Evidently reports for the {len(breached_models)} breached models: {reports:.2f} s")

    sample = verdicts[:: models // 20]
    evidently_started = time.perf_counter()
    equal = 0
    for verdict in sample:
        ref, cur = data.synthetic_model(int(verdict.model.rsplit("-", 1)[1]))
        expected, _ = run_drift_report(ref, cur, data.FEATURES, data.POLICY)
        equal += [c.drifted for c in expected.columns] == verdict.drifted
    per_report = (time.perf_counter() - evidently_started) / len(sample)
    print(f"Evidently report per model: {per_report:.2f} s -> {per_report * models:.0f} s for {models} models; "
          f"verdicts equal to Evidently's on {equal}/{len(sample)} sampled models")
    print(f"RATIO sweep / vectorised floor at {models} models, in process, median of 3 = {ratio_default:.2f} "
          "(target <= 1.5)")
    return 0 if ok and equal == len(sample) else 1


if __name__ == "__main__":
    sys.exit(main())
