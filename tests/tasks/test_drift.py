from __future__ import annotations

import numpy as np
import pandas as pd

from modelops.spec import DriftSpec, Features
from tasks.drift import column_drifted, run_drift_report, share_verdict
from tasks.verdicts import BREACH, OK, WARN


def test_distance_methods_drift_above_threshold_p_values_below() -> None:
    assert column_drifted("wasserstein", 0.2, 0.1) and not column_drifted("wasserstein", 0.05, 0.1)
    assert column_drifted("ks", 0.01, 0.05) and not column_drifted("ks", 0.5, 0.05)


def test_share_verdicts() -> None:
    policy = DriftSpec(warn_share=0.1, breach_share=0.3)
    assert share_verdict(0.0, policy) == OK
    assert share_verdict(0.2, policy) == WARN
    assert share_verdict(0.3, policy) == BREACH


def test_evidently_drift_finds_the_shifted_columns_and_agrees_with_its_own_count() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    reference = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n),
                              "kind": rng.choice(["x", "y", "z"], size=n)})
    current = pd.DataFrame({"a": rng.normal(2.0, size=n), "b": rng.normal(size=n), "c": rng.normal(size=n),
                            "kind": rng.choice(["x", "y", "z"], size=n, p=[0.8, 0.1, 0.1])})
    features = Features(numerical=["a", "b", "c"], categorical=["kind"])
    policy = DriftSpec(num_method="wasserstein", num_threshold=0.1, cat_method="jensenshannon", cat_threshold=0.1,
                       warn_share=0.2, breach_share=0.5)
    result, snapshot = run_drift_report(reference, current, features, policy)
    assert sorted(result.drifted_columns) == ["a", "kind"]
    assert result.share == 0.5 and result.verdict == BREACH
    assert {c.method for c in result.columns} == {"wasserstein", "jensenshannon"}
    evidently_count = next(m["value"] for m in snapshot.dict()["metrics"]
                           if m["config"]["type"].endswith(":DriftedColumnsCount"))
    assert evidently_count["count"] == len(result.drifted_columns)
    assert result.worst(1)[0].column == "a"

    same, _ = run_drift_report(reference, reference.sample(frac=1.0, random_state=1), features, policy)
    assert same.drifted_columns == [] and same.verdict == OK
