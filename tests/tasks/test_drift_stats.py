"""The sweep's drift statistics must give Evidently's verdicts: checked on real data, for every fast method."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.spec import DriftSpec, Window, load_spec
from tasks.data import load_window
from tasks.drift import run_drift_report, typed_features
from tasks.drift_stats import ReferenceStats, fast_drift

POLICIES = {
    "wasserstein+jensenshannon": DriftSpec(num_method="wasserstein", num_threshold=0.1, cat_method="jensenshannon",
                                           cat_threshold=0.1),
    "ks+psi": DriftSpec(num_method="ks", num_threshold=0.05, cat_method="psi", cat_threshold=0.1),
    "psi+psi": DriftSpec(num_method="psi", num_threshold=0.1, cat_method="psi", cat_threshold=0.1),
    "jensenshannon+jensenshannon": DriftSpec(num_method="jensenshannon", num_threshold=0.1,
                                             cat_method="jensenshannon", cat_threshold=0.1),
}
WINDOWS = {
    "flight-delay": [(date(2013, 2, 15), date(2013, 3, 1)), (date(2013, 7, 17), date(2013, 7, 31))],
    "bike-demand": [(date(2011, 3, 16), date(2011, 3, 30)), (date(2011, 7, 1), date(2011, 7, 15))],
}


@pytest.mark.parametrize("model", sorted(WINDOWS))
@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_fast_verdicts_equal_evidently_on_real_data(model: str, policy_name: str) -> None:
    spec = load_spec(model)
    policy = POLICIES[policy_name]
    reference = load_window(spec, spec.training.window)
    stats = ReferenceStats.from_frame(reference, spec.data.features)
    for start, end in WINDOWS[model]:
        current = load_window(spec, Window(start=start, end=end))
        expected, _ = run_drift_report(reference, current, spec.data.features, policy)
        got = fast_drift(stats, current, spec.data.features, policy)
        assert [c.column for c in got.columns] == [c.column for c in expected.columns]
        assert [c.drifted for c in got.columns] == [c.drifted for c in expected.columns], (start, end)
        np.testing.assert_allclose([c.score for c in got.columns], [c.score for c in expected.columns], rtol=1e-9)
        assert got.share == expected.share and got.verdict == expected.verdict


def test_reference_statistics_survive_a_round_trip(tmp_path: Path) -> None:
    spec = load_spec("flight-delay")
    reference = load_window(spec, spec.training.window)
    saved = ReferenceStats.from_frame(reference, spec.data.features).save(tmp_path / "v1.npz")
    loaded = ReferenceStats.load(saved)
    current = load_window(spec, Window(start=date(2013, 7, 1), end=date(2013, 7, 15)))
    direct = fast_drift(ReferenceStats.from_frame(reference, spec.data.features), current, spec.data.features,
                        spec.monitoring.drift)
    assert fast_drift(loaded, current, spec.data.features, spec.monitoring.drift) == direct


def test_a_column_without_values_is_left_out_of_the_drift_verdict() -> None:
    spec = load_spec("flight-delay")
    reference = load_window(spec, spec.training.window)
    current = load_window(spec, Window(start=date(2013, 7, 1), end=date(2013, 7, 2))).assign(temp=np.nan)
    result = fast_drift(ReferenceStats.from_frame(reference, spec.data.features), pd.DataFrame(current),
                        spec.data.features, spec.monitoring.drift)
    assert result.unjudged == ["temp"] and "temp" not in [c.column for c in result.columns]
    assert len(result.columns) == len(spec.data.features.all) - 1


def test_a_cache_file_of_the_first_format_gives_the_same_verdicts(tmp_path: Path) -> None:
    """Format 1 (before sorted values were kept) stored each column's finite values in the data's order and the
    categories in count order; a version cached then must be judged exactly as one cached now."""
    spec = load_spec("flight-delay")
    features = spec.data.features
    reference = load_window(spec, spec.training.window)
    typed = typed_features(reference, features)
    arrays = {f"num:{c}": typed[c].to_numpy(dtype="float64") for c in features.numerical}
    arrays = {k: v[np.isfinite(v)] for k, v in arrays.items()}
    for column in features.categorical:
        counts = typed[column].dropna().value_counts()
        arrays[f"catkeys:{column}"] = counts.index.to_numpy(dtype=str)
        arrays[f"catcounts:{column}"] = counts.to_numpy(dtype="int64")
    np.savez(tmp_path / "v1.npz", **arrays)
    current = load_window(spec, Window(start=date(2013, 7, 1), end=date(2013, 7, 15)))
    direct = fast_drift(ReferenceStats.from_frame(reference, features), current, features, spec.monitoring.drift)
    assert fast_drift(ReferenceStats.load(tmp_path / "v1.npz"), current, features, spec.monitoring.drift) == direct
