"""The sweep benchmark's synthetic models, made from seeds so that any process (a Dask worker) makes the same ones.

Model m's data comes from seed (SEED, m % MODELS): 5,000 reference and 5,000 current rows x 20 columns (16 numeric,
4 categorical), about 3% of the models shifted. A process keeps each distinct model's prepared reference and current
window once, so the 10,000-model sweep costs the memory of 1,000.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from prefect import flow

from modelops.spec import DriftSpec, Features
from modelops.store.records import GovernanceStore
from tasks.drift_stats import ReferenceStats
from tasks.sweep import SweepInput, store_verdicts, sweep_drift
from tasks.task_runners import chunk_runner

ROWS, NUMERIC, CATEGORICAL, DRIFTING_SHARE, CHUNK = 5000, 16, 4, 0.03, 50
# A task on a Dask worker costs about 0.3 s more than in the flow's thread pool (measured here): bigger chunks there.
DASK_CHUNK = 250
# SWEEP_BENCH_MODELS makes a quick trial run smaller (the environment reaches the Dask workers too).
MODELS = int(os.environ.get("SWEEP_BENCH_MODELS", "1000"))
LARGE = 10 * MODELS  # the large sweep cycles through the MODELS distinct models' data: memory stays that of MODELS
SEED = 0
NUMERIC_COLUMNS = [f"x{i}" for i in range(NUMERIC)]
CATEGORICAL_COLUMNS = [f"c{i}" for i in range(CATEGORICAL)]
LEVELS = np.array([f"l{k}" for k in range(8)], dtype=object)  # shared str objects: a column costs its pointers


def model_name(m: int) -> str:
    return f"model-{m:05d}"


def synthetic_model(m: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Model `m`'s reference and current window, from its own seed: any model is made alone, in any process."""
    rng = np.random.default_rng([SEED, m % MODELS])
    means, scales = rng.normal(0, 5, NUMERIC), rng.uniform(0.5, 3, NUMERIC)
    drifting = rng.random() < DRIFTING_SHARE
    shift = np.zeros(NUMERIC)
    if drifting:
        shift[:6] = scales[:6] * 1.5
    ref = pd.DataFrame(rng.normal(means, scales, (ROWS, NUMERIC)), columns=NUMERIC_COLUMNS)
    cur = pd.DataFrame(rng.normal(means + shift, scales, (ROWS, NUMERIC)), columns=NUMERIC_COLUMNS)
    for column in CATEGORICAL_COLUMNS:
        p = rng.dirichlet(np.ones(len(LEVELS)))
        ref[column] = LEVELS[rng.choice(len(LEVELS), ROWS, p=p)]
        q = rng.dirichlet(np.ones(len(LEVELS))) if drifting else p
        cur[column] = LEVELS[rng.choice(len(LEVELS), ROWS, p=q)]
    return ref, cur


FEATURES = Features(numerical=NUMERIC_COLUMNS, categorical=CATEGORICAL_COLUMNS)
POLICY = DriftSpec(num_method="wasserstein", num_threshold=0.1, cat_method="jensenshannon", cat_threshold=0.1,
                   warn_share=0.1, breach_share=0.25)
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
_PREPARED: dict[int, tuple[ReferenceStats, pd.DataFrame]] = {}


def prepared(m: int) -> tuple[ReferenceStats, pd.DataFrame]:
    """Model m's reference statistics (prepared once per version, as the platform's cache does) and window."""
    key = m % MODELS
    if key not in _PREPARED:
        ref, cur = synthetic_model(key)
        _PREPARED[key] = (ReferenceStats.from_frame(ref, FEATURES), cur)
    return _PREPARED[key]


def prepare_all() -> int:
    """Every distinct model prepared in this process (run on each Dask worker before timing)."""
    for m in range(MODELS):
        prepared(m)
    return len(_PREPARED)


class SeededSource:
    """The sweep's source for the benchmark: picklable and tiny, so a Dask worker receives the names alone."""

    def load(self, model: str) -> SweepInput:
        stats, current = prepared(int(model.rsplit("-", 1)[1]))
        return SweepInput(model, "1", FEATURES, POLICY, stats, current, END, END)


@flow(name="benchmark-sweep")
def benchmark_sweep(models: int, address: str | None, store_url: str, chunk: int = CHUNK) -> int:
    """The sweep's engine on the first `models` synthetic models, chunks on Dask at `address` (None: in process).
    It returns a count, as the platform's sweep flow does: Prefect walks a flow's return value, which for 1,000
    verdicts costs ~1.5 s that the platform never pays. The benchmark reads the verdicts back from the store."""
    verdicts = sweep_drift(SeededSource(), [model_name(m) for m in range(models)], chunk, chunk_runner(address))
    return store_verdicts(GovernanceStore(store_url), verdicts)
