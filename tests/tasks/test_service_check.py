"""The service check judges latency only on enough scoring micro-batches (monitoring.sla.min_batches)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelops.spec import load_spec
from tasks.monitoring import service_check
from tasks.verdicts import BREACH, OK, SKIPPED


def logged(batch_latencies_ms: list[float], rows_per_batch: int = 10) -> pd.DataFrame:
    """A prediction log where every row carries the latency of the micro-batch it was scored in."""
    scored_files = [f"file{i // 4}" for i in range(len(batch_latencies_ms))]  # four micro-batches per scored file
    return pd.DataFrame({"batch_id": np.repeat(scored_files, rows_per_batch),
                         "latency_ms": np.repeat(batch_latencies_ms, rows_per_batch)})


def test_a_cold_batch_among_too_few_does_not_breach_latency() -> None:
    spec = load_spec("flight-delay")
    check = service_check(logged([9000.0, 40.0, 35.0]), failed_rows=0, spec=spec)
    assert check.verdict == OK
    assert "latency not judged: 3 scoring batches < 20" in check.summary
    assert check.values["scoring_batches"] == (3.0, 20.0)


def test_slow_batches_breach_once_there_are_enough_of_them() -> None:
    spec = load_spec("flight-delay")
    check = service_check(logged([40.0 + i for i in range(17)] + [9000.0, 9100.0, 9200.0]), failed_rows=0, spec=spec)
    assert check.verdict == BREACH and "over 20 1000-row scoring batches" in check.summary
    assert check.values["latency_p95_ms"][0] > spec.monitoring.sla.latency_p95_ms


def test_the_error_rate_is_judged_even_when_latency_is_not() -> None:
    check = service_check(logged([40.0, 45.0]), failed_rows=5, spec=load_spec("flight-delay"))
    assert check.verdict == BREACH and "latency not judged: 2 scoring batches < 20" in check.summary


def test_latency_values_not_judged_are_stored_as_skipped_not_as_the_checks_verdict() -> None:
    from tasks.monitoring import MonitorReport

    check = service_check(logged([9000.0, 40.0, 35.0]), failed_rows=0, spec=load_spec("flight-delay"))
    report = MonitorReport("flight-delay", "1", pd.Timestamp("2013-07-01"), pd.Timestamp("2013-07-15"), 30,
                           {"service": check})
    verdicts = {point.metric: point.verdict for point in report.points()}
    assert verdicts["latency_p95_ms"] == verdicts["scoring_batches"] == SKIPPED
    assert verdicts["error_rate"] == OK
