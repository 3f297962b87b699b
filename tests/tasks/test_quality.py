from __future__ import annotations

import numpy as np
import pandas as pd

from modelops.spec import DataQualitySpec, Features
from tasks.quality import build_expectations, run_expectations

FEATURES = Features(numerical=["temp"], categorical=["carrier"])


def training_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"temp": rng.normal(40, 10, 2000), "carrier": rng.choice(["UA", "AA", "DL"], 2000)})


def test_suite_learned_from_training_data_passes_on_similar_data() -> None:
    suite = build_expectations(training_frame(), FEATURES, DataQualitySpec())
    result = run_expectations(suite, training_frame().sample(500, random_state=3))
    assert result.success and result.success_share == 1.0 and result.evaluated == len(suite)


def test_out_of_range_values_nulls_and_unseen_categories_fail_with_details() -> None:
    suite = build_expectations(training_frame(), FEATURES, DataQualitySpec())
    bad = pd.DataFrame({"temp": [400.0] * 50 + [None] * 50, "carrier": ["ZZ"] * 100})
    result = run_expectations(suite, bad)
    assert not result.success
    failed = {(f["expectation"], f["column"]) for f in result.failures}
    assert failed == {("expect_column_values_to_be_between", "temp"), ("expect_column_values_to_not_be_null", "temp"),
                      ("expect_column_values_to_be_in_set", "carrier")}
    in_set = next(f for f in result.failures if f["column"] == "carrier")
    assert in_set["partial_unexpected"][0] == "ZZ"


def test_integer_coded_categories_meet_the_suite_learned_from_them() -> None:
    from tasks.drift import typed_features

    features = Features(numerical=["temp"], categorical=["weathersit"])
    frame = pd.DataFrame({"temp": np.linspace(0, 1, 400), "weathersit": [1, 2, 3, 4] * 100})
    typed = typed_features(frame, features)
    suite = build_expectations(typed, features, DataQualitySpec())
    assert run_expectations(suite, typed).success
    unseen = typed_features(frame.assign(weathersit=9), features)
    assert not run_expectations(suite, unseen).success
