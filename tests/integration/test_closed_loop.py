"""The closed loop on a live stack: `modelops up` starts a real Prefect server (temporary SQLite database on a
free loopback port), the runner serving prefect.yaml's stage deployments and the MLflow UI. A registered model
chains to @champion by triggers; a reference-period window triggers nothing; a window with real seasonal drift
breaches, alerts once and starts exactly one retrain, which validates and promotes the challenger.

The whole loop runs twice: on the laptop default (SQLite files, one stage runner) and on the scale-out engines
(`modelops up --postgres --workers 2`: PostgreSQL holds the store, MLflow and Prefect; two Prefect workers on the
stage work pool run every stage)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from tests.live_stack import live_stack, run_states, stage_runs, wait_until
from tests.slack_receiver import SlackReceiver, start_receiver

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


class LiveStack:
    def __init__(self, api_url: str, receiver: SlackReceiver, services: list[Any]) -> None:
        self.api_url = api_url
        self.receiver = receiver
        self.services = services

    def runs(self, deployment: str) -> list[Any]:
        return stage_runs(deployment)


# How each run of the loop starts its stack, and the stage services `down` must then have stopped.
ENGINES = {"sqlite-runner": ({}, ["stage-runner"]),
           "postgres-workers": ({"with_postgres": True, "workers": 2},
                                ["postgres", "modelops-worker-1", "modelops-worker-2"])}


@pytest.fixture(scope="module", params=list(ENGINES))
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    from modelops.services.stack import free_port
    from modelops.settings import load_settings
    from modelops.spec import load_all_specs

    options, engine_services = ENGINES[request.param]
    receiver, http_server = start_receiver()
    try:
        with live_stack(tmp_path_factory.mktemp("live") / "state", gateway_port=free_port(),
                        gateway_workers=2, **options) as (api_url, services, stopped):
            from blocks.slack import SlackAlertChannel

            # the block flight-delay's spec names; its token is a secret of the live server, not of the spec
            SlackAlertChannel(bot_token="xoxb-integration", channel="#modelops-alerts",
                              api_base_url=receiver.api_base_url).save("modelops-alerts", overwrite=True)
            config_dir = load_settings().config_dir
            yield LiveStack(api_url, receiver, services)
    finally:
        http_server.shutdown()
    # One consumer per consumer slot of each shipped spec served on a stream (flight-delay-lgbm's).
    consumers = [f"stream-{spec.name}-{index + 1}" for spec in load_all_specs(config_dir)
                 if "stream" in spec.deploy.targets for index in range(spec.deploy.stream.consumers)]
    assert consumers and sorted(stopped) == sorted(["gateway", "mlflow-ui", "prefect-server", "redis",
                                                    "stage-service", *engine_services, *consumers])
    from modelops.recovery import pid_alive

    assert [f"{s.name} (pid {s.pid})" for s in services if pid_alive(s.pid)] == []


def feed_window(start: date, end: date) -> None:
    """Production traffic of a window scored by the champion, then its ground truth arriving."""
    from modelops.demo import write_traffic
    from flows.score import score
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.prediction_log import record_ground_truth

    platform, spec = get_platform(), load_spec("flight-delay")
    batch, labels = write_traffic(platform, spec, start, end)
    score(model="flight-delay", input_path=str(batch))
    record_ground_truth(platform, spec, pd.read_parquet(labels), str(labels))


def run_monitor(end: date, days: int) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment("monitor/monitor", timeout=900, parameters={
        "model": "flight-delay", "window_end": f"{end.isoformat()}T00:00:00+00:00", "window_days": days})


def test_the_stack_serves_every_stage_with_its_schedule_or_trigger(live: LiveStack) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
        automations = {a.name: a for a in client.read_automations()}
    assert set(deployments) == {"register", "validate", "approve", "deploy", "score", "monitor", "sweep", "retrain",
                                "retire", "report", "kpis"}
    assert {s.schedule.cron for s in deployments["kpis"].schedules} == {"30 5 * * *"}
    from modelops.spec import load_all_specs

    # one monitor schedule per shipped spec (its monitoring.cron), on the one monitor deployment
    assert {s.schedule.cron for s in deployments["monitor"].schedules} == {
        spec.monitoring.cron for spec in load_all_specs()}
    assert len({spec.monitoring.cron for spec in load_all_specs()}) == len(load_all_specs()) >= 2
    assert {name.split("__")[0] for name in automations} == {"validate", "approve", "deploy", "retrain"}
    mlflow_ui = next(s.url for s in live.services if s.name == "mlflow-ui")
    with urllib.request.urlopen(f"{mlflow_ui}/health", timeout=5) as response:
        assert response.status == 200
    with urllib.request.urlopen(live.api_url.removesuffix("/api"), timeout=5) as response:
        assert response.status == 200  # the Prefect UI


def test_drift_closes_the_loop_without_a_human_and_the_reference_period_does_not(live: LiveStack) -> None:
    from prefect.deployments import run_deployment

    from modelops.platform import get_platform

    platform = get_platform()
    # registered -> validate -> approve -> deploy, by triggers alone
    run_deployment("register/register", parameters={"model": "flight-delay"}, timeout=0)
    wait_until(lambda: platform.catalog.version_for_alias("flight-delay", "champion"), 900, "v1 to become champion")
    # The alias moves inside the deploy run, which then finishes: wait for its final state, then judge it.
    wait_until(lambda: all(r.state and r.state.is_final() for r in live.runs("deploy")), 300, "the deploy run")
    assert [r.state_name for r in live.runs("deploy")] == ["Completed"]

    # a window from the reference period: no drift, nothing triggered, nothing alerted
    feed_window(date(2013, 2, 15), date(2013, 3, 1))
    assert run_monitor(date(2013, 3, 1), 14).state.is_completed()
    winter = platform.store.recent_monitoring("flight-delay", 1)[-1]
    assert winter.verdict == "ok"
    time.sleep(8)  # time enough for a trigger to have fired
    assert live.runs("retrain") == [] and live.receiver.messages == []

    # real seasonal drift: two monitors at once breach; one alert, exactly one retrain
    feed_window(date(2013, 7, 1), date(2013, 8, 1))
    first = run_deployment("monitor/monitor", timeout=0, parameters={
        "model": "flight-delay", "window_end": "2013-08-01T00:00:00+00:00", "window_days": 31})
    second = run_deployment("monitor/monitor", timeout=0, parameters={
        "model": "flight-delay", "window_end": "2013-08-01T00:00:00+00:00", "window_days": 31})
    wait_until(lambda: run_states([first.id, second.id]) == ["Completed", "Completed"], 900, "both monitors")
    # the monitor stage's own runs (the hourly sweep may judge the model too, as kind "sweep")
    summer = [r for r in platform.store.recent_monitoring("flight-delay", 10)
              if r.window_end.month == 8 and r.kind == "monitor"]
    assert len(summer) == 2 and all(r.verdict == "breach" for r in summer)

    retrains = wait_until(lambda: [r for r in live.runs("retrain") if r.state and r.state.is_final()], 900,
                          "the retrain run to finish")
    time.sleep(5)
    retrains = live.runs("retrain")
    assert len(retrains) == 1
    assert retrains[0].parameters == {"model": "flight-delay"} and retrains[0].state_name == "Completed"

    challenger = platform.catalog.version("flight-delay", "2")
    assert challenger.tags["validation_status"] == "passed" and challenger.tags["parent_version"] == "1"
    assert platform.catalog.aliases("flight-delay") == {"champion": "2"}
    assert platform.store.governed_version("flight-delay", "1").retired

    drift_alerts = [m for m in live.receiver.messages if "drift BREACH" in m["text"]]
    assert len(drift_alerts) == 1 and drift_alerts[0]["channel"] == "#modelops-alerts"
    assert "flight-delay v1" in drift_alerts[0]["text"]
    # the challenger's own registered/validated/approved events did not restart the onboarding chain
    assert [r.parameters["version"] for r in live.runs("validate")] == ["1"]


def test_the_gateway_up_started_serves_the_champion_the_loop_promoted_and_refuses_the_retired_one(
        live: LiveStack) -> None:
    """The gateway started with the stack, before any model existed; the loop deployed v1, then promoted v2 and
    retired v1, all without restarting it."""
    import orjson

    from modelops.platform import get_platform
    from serving.tokens import issue_token

    platform = get_platform()
    _, token = issue_token(platform, "integration", ["flight-delay"])
    gateway = next(s.url for s in live.services if s.name == "gateway")
    row = {"sched_dep_hour": 7, "day_of_week": 2, "distance": 1089, "temp": 39.9, "dewp": 28.0, "humid": 64.3,
           "wind_speed": 12.7, "precip": 0, "visib": 10, "carrier": "UA", "origin": "EWR"}

    def post(path: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(f"{gateway}{path}", data=orjson.dumps({"rows": [row]}), method="POST",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())

    def accepted() -> dict[str, Any] | None:
        status, answer = post("/v1/models/flight-delay/predict")
        return answer if status == 200 else None

    # the token reaches every worker at its next refresh of the serving table
    answer = wait_until(accepted, 120, "the gateway to accept the new token")
    assert (answer["version"], answer["role"]) == ("2", "champion")
    status, refusal = post("/v1/models/flight-delay/versions/1/predict")
    assert status == 404 and "retired" in refusal["error"]["message"]
