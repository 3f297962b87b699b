"""Chunks on Dask (MODELOPS_DASK_ADDRESS): the sweep's verdicts are those of the flow's own runner, computed on a
real Dask cluster; an address nobody answers at is refused before anything is judged or stored."""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tasks.task_runners import DASK_ADDRESS, TaskRunnerError

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


def stored_sweep(platform: Any, model: str) -> list[tuple[str, str, float, str]]:
    run, results = platform.store.monitoring_history(model)[-1]
    assert run.kind == "sweep"
    return [(r.check, r.metric, r.value, r.verdict) for r in results]


def test_the_sweep_on_a_dask_cluster_gives_the_verdicts_of_the_flows_own_runner(
        state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    from flows.sweep import sweep
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    onboard("bike-demand")
    serve_window(platform, load_spec("bike-demand"), date(2011, 7, 1), date(2011, 7, 15))
    monkeypatch.delenv(DASK_ADDRESS, raising=False)
    in_process = sweep(models=["bike-demand"])
    expected = stored_sweep(platform, "bike-demand")

    with LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        monkeypatch.setenv(DASK_ADDRESS, cluster.scheduler_address)
        on_dask = sweep(models=["bike-demand"])
        # the chunk was a task of this cluster's scheduler, not of the flow's thread pool
        assert "drift_chunk" in cluster.scheduler.task_prefixes
    assert on_dask == in_process and on_dask.judged == 1
    assert stored_sweep(platform, "bike-demand") == expected
    assert len([r for r, _ in platform.store.monitoring_history("bike-demand") if r.kind == "sweep"]) == 2


def test_a_dask_scheduler_that_does_not_answer_is_refused_before_anything_is_judged(
        state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.sweep import sweep
    from modelops.platform import get_platform

    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(DASK_ADDRESS, f"tcp://127.0.0.1:{port}")
    with pytest.raises(TaskRunnerError, match=f"Dask scheduler at tcp://127.0.0.1:{port}.*does not answer") as raised:
        sweep(models=["bike-demand"])
    assert DASK_ADDRESS in raised.value.fix
    assert get_platform().store.monitoring_history("bike-demand") == []


@pytest.mark.parametrize("address", ["local:0", "local:two", "scheduler-without-port"])
def test_a_malformed_dask_setting_says_what_to_write(address: str) -> None:
    from tasks.task_runners import chunk_runner

    with pytest.raises(TaskRunnerError, match="local:N|host and port"):
        chunk_runner(address)


def test_a_batch_scored_on_a_dask_cluster_gives_the_outputs_of_the_flows_own_process(
        state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    from distributed import LocalCluster

    from flows.score import score
    from modelops.demo import onboard, write_traffic
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    assert onboard("flight-delay") == "1"
    batch, _ = write_traffic(get_platform(), load_spec("flight-delay"), date(2013, 2, 15), date(2013, 2, 18))
    monkeypatch.delenv(DASK_ADDRESS, raising=False)
    in_process = score(model="flight-delay", input_path=str(batch), output_path="here.parquet", batch_rows=1000)
    with LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        monkeypatch.setenv(DASK_ADDRESS, cluster.scheduler_address)
        on_dask = score(model="flight-delay", input_path=str(batch), output_path="dask.parquet", batch_rows=1000)
        assert "score_frame" in cluster.scheduler.task_prefixes  # each chunk was scored by the cluster's worker
    assert on_dask.chunks == in_process.chunks > 1 and on_dask.rows == in_process.rows
    columns = ["prediction_id", "prediction", "score", "version"]
    pd.testing.assert_frame_equal(pd.read_parquet(on_dask.output_path)[columns],
                                  pd.read_parquet(in_process.output_path)[columns])


def test_an_error_raised_on_a_worker_reaches_the_flow_with_what_and_fix_apart() -> None:
    import pickle

    from modelops.errors import SchemaMismatchError

    crossed = pickle.loads(pickle.dumps(SchemaMismatchError("column x is missing", "add column x")))
    assert type(crossed) is SchemaMismatchError
    assert (crossed.what, crossed.fix) == ("column x is missing", "add column x")
