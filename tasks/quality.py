"""Data-quality expectations learned from training data, run with Great Expectations 1.x.

The suite is plain JSON (Great Expectations' own format), stored with the version at validation and run again on
every holdout and monitoring window.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from modelops.spec import DataQualitySpec, Features
from tasks import as_task


@dataclass(frozen=True)
class QualityResult:
    success: bool
    success_share: float
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)


def build_expectations(frame: pd.DataFrame, features: Features, policy: DataQualitySpec) -> list[dict[str, Any]]:
    """Expectations a healthy batch meets, learned from `frame`: columns present, nulls no more frequent than in
    training, numbers inside the (widened) training range, categories seen in training."""
    low_q, high_q = policy.range_quantiles
    expectations: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": features.all, "exact_match": False}},
    ]
    for column in features.all:
        null_share = float(frame[column].isna().mean())
        expectations.append({"type": "expect_column_values_to_not_be_null",
                             "kwargs": {"column": column, "mostly": round(max(0.0, min(policy.mostly, 1 - null_share
                                                                                       - 0.01)), 4)}})
    for column in features.numerical:
        values = frame[column].dropna().astype("float64")
        if values.empty:
            continue
        low, high = float(values.quantile(low_q)), float(values.quantile(high_q))
        margin = (high - low) * policy.range_margin
        expectations.append({"type": "expect_column_values_to_be_between",
                             "kwargs": {"column": column, "min_value": low - margin, "max_value": high + margin,
                                        "mostly": policy.mostly}})
    for column in features.categorical:
        seen = sorted(str(v) for v in frame[column].dropna().unique())
        expectations.append({"type": "expect_column_values_to_be_in_set",
                             "kwargs": {"column": column, "value_set": seen, "mostly": policy.mostly}})
    return expectations


def run_expectations(expectations: list[dict[str, Any]], frame: pd.DataFrame) -> QualityResult:
    import logging

    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    # GX sets levels on its own loggers at import and announces every ephemeral docs folder at INFO.
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
        logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    # A data source name can be added to a context once: a unique name per run keeps this re-entrant.
    name = f"modelops-{uuid.uuid4().hex[:8]}"
    batch = context.data_sources.add_pandas(name).add_dataframe_asset("window").add_batch_definition_whole_dataframe(
        "all-rows")
    suite = gx.ExpectationSuite(name=name)
    for item in expectations:
        suite.add_expectation_configuration(ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"]))
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    prepared = frame.copy()
    for column in prepared.columns:
        if prepared[column].dtype == object:
            prepared[column] = prepared[column].astype(str).where(prepared[column].notna(), None)
    result = definition.run(batch_parameters={"dataframe": prepared})
    failures = []
    for item in result.results:
        if not item.success:
            observed = item.result or {}
            failures.append({"expectation": item.expectation_config.type,
                             "column": item.expectation_config.kwargs.get("column"),
                             "unexpected_percent": observed.get("unexpected_percent"),
                             "partial_unexpected": [str(v) for v in (observed.get("partial_unexpected_list") or [])[:5]]})
    stats = result.statistics
    evaluated = int(stats.get("evaluated_expectations", 0))
    share = float(stats.get("success_percent") or 0.0) / 100 if evaluated else 1.0
    return QualityResult(success=bool(result.success), success_share=share, evaluated=evaluated, failures=failures)


run_expectations_task = as_task(run_expectations)
