"""flight-delay through every stage on real 2013 flights, asserting registry state, audit rows and events."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from modelops import events
from modelops.errors import NotApprovedError, RetiredVersionError, SchemaMismatchError
from tests.conftest import model_events, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


def test_flight_delay_life_cycle(state_home: Path) -> None:
    from mlflow import MlflowClient

    from modelops.demo import serve_window, write_traffic
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.retrain import retrain
    from flows.score import score
    from flows.validate import validate
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    assert platform.settings.home == state_home.resolve()
    spec = load_spec("flight-delay")
    client = MlflowClient(tracking_uri=platform.settings.tracking_uri, registry_uri=platform.settings.tracking_uri)

    # register: a version with signature, requirements and lineage tags; the same inputs twice make one version
    first = register(model="flight-delay")
    assert first.created and first.version == "1"
    assert register(model="flight-delay").created is False
    assert len(client.search_model_versions("name='flight-delay'")) == 1
    tags = client.get_model_version("flight-delay", "1").tags
    assert tags["owner"] == spec.owner and tags["risk_tier"] == "medium"
    assert len(tags["data_hash"]) == 64 and tags["code_version"] and tags["train_end"] == "2013-02-15"

    # deploying before approval is refused
    with pytest.raises(NotApprovedError, match="not approved"):
        deploy(model="flight-delay", version="1")

    validated = validate(model="flight-delay", version="1")
    assert validated.passed, validated.failures
    assert validated.metrics["roc_auc"] > 0.6
    audit_rows = len(platform.store.audit_trail("flight-delay"))
    assert validate(model="flight-delay", version="1").reused
    assert len(platform.store.audit_trail("flight-delay")) == audit_rows
    tags = client.get_model_version("flight-delay", "1").tags
    assert tags["security_scan"] == "passed" and tags["validation_status"] == "passed"

    assert approve(model="flight-delay", version="1").status == "approved"
    assert deploy(model="flight-delay", version="1").changed
    assert not deploy(model="flight-delay", version="1").changed
    assert client.get_registered_model("flight-delay").aliases == {"champion": 1}

    # scoring input that does not match the signature fails, naming the column
    batch, _labels = write_traffic(platform, spec, date(2013, 2, 15), date(2013, 2, 16))
    frame = pd.read_parquet(batch)
    missing = state_home / "missing.csv"
    frame.drop(columns=["temp"]).to_csv(missing, index=False)
    with pytest.raises(SchemaMismatchError, match=r"missing column\(s\) \['temp'\]"):
        score(model="flight-delay", input_path=str(missing))
    mistyped = state_home / "mistyped.parquet"
    frame.assign(distance="far").to_parquet(mistyped)
    with pytest.raises(SchemaMismatchError, match="column 'distance' has type object .* expects double"):
        score(model="flight-delay", input_path=str(mistyped))

    # winter traffic: no drift; summer traffic: seasonal drift breaches and emits drift-detected
    winter_scored, winter = serve_window(platform, spec, date(2013, 2, 15), date(2013, 3, 1))
    assert winter_scored.rows > 10_000 and Path(winter_scored.output_path).is_file()
    assert winter.drift_verdict == "ok" and events.DRIFT_DETECTED not in winter.events
    # the two batches refused above count as failed rows: the service check breaches on its error rate
    assert winter.checks == {"service": "breach", "performance": "ok", "drift": "ok", "data_quality": "ok"}
    assert winter.events == [events.SLA_BREACHED] and not winter.retrain_requested
    run, results = platform.store.monitoring_history("flight-delay")[-1]
    error_rate = next(r for r in results if r.metric == "error_rate")
    assert error_rate.verdict == "breach" and 0.05 < error_rate.value < 0.2 and error_rate.threshold == 0.01
    assert winter.performance_value is not None and winter.performance_value > 0.6
    _, summer = serve_window(platform, spec, date(2013, 7, 1), date(2013, 8, 1))
    assert summer.drift_verdict == "breach" and {"temp", "dewp"} <= set(summer.drifted_columns)
    assert summer.events == [events.DRIFT_DETECTED] and Path(summer.report_path).is_file()
    assert summer.retrain_requested and summer.checks["service"] == "ok"
    # no Slack block exists here: the alert is not delivered, and that is recorded, not swallowed
    assert summer.alerts_failed and "cannot be loaded" in summer.alerts_failed[0]
    assert not platform.store.alert_deliveries("flight-delay")[-1].delivered

    # retrain: challenger on recent data beats the champion on the same labelled traffic and replaces it
    outcome = retrain(model="flight-delay")
    assert outcome.outcome == "promoted" and outcome.challenger == "2" and outcome.retired == "1"
    assert outcome.challenger_value > outcome.champion_value
    assert client.get_registered_model("flight-delay").aliases == {"champion": 2}
    retired = client.get_model_version("flight-delay", "1")
    assert retired.tags["lifecycle_state"] == "retired" and retired.aliases == []
    assert platform.catalog.download_model("flight-delay", "1", state_home / "keep").joinpath("MLmodel").is_file()
    with pytest.raises(RetiredVersionError, match="retired"):
        score(model="flight-delay", input_path=str(batch), version="1")

    # the audit trail holds every stage, in order
    trail = platform.store.audit_trail("flight-delay")
    stages = [entry.stage for entry in trail]
    order = ["register", "validate", "approve", "deploy", "score", "monitor", "retrain", "retire"]
    assert [stage for stage in order if stage in stages] == order
    assert [stages.index(stage) for stage in order] == sorted(stages.index(stage) for stage in order)
    assert trail[-1].stage == "retire" and trail[-1].version == "1"
    assert all(entry.actor for entry in trail)

    # and every stage's event reached Prefect, with the version in the payload
    expected = {events.REGISTERED, events.VALIDATED, events.APPROVED, events.DEPLOYED, events.SCORED,
                events.SLA_BREACHED, events.DRIFT_DETECTED, events.RETRAINED, events.PROMOTED, events.RETIRED}
    seen = wait_for(lambda: expected <= {e.event for e in model_events("flight-delay")} and model_events(
        "flight-delay"), timeout=30)
    assert seen, f"events missing: {expected - {e.event for e in model_events('flight-delay')}}"
    retired_event = next(e for e in seen if e.event == events.RETIRED)
    assert retired_event.payload["version"] == "1" and retired_event.resource.id == "modelops.model.flight-delay"
