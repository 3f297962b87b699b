"""A second model (a YAML file and a training function) and a model built elsewhere go through the same flows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import mlflow
import mlflow.sklearn
import pytest
from sklearn.linear_model import LogisticRegression

from modelops.errors import NotApprovedError

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


def test_bike_demand_goes_through_the_same_flows(state_home: Path) -> None:
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    assert onboard("bike-demand") == "1"
    info = platform.catalog.version("bike-demand", "1")
    assert info.aliases == ("champion",) and float(info.tags["holdout_mae"]) < 60
    scored, checked = serve_window(platform, load_spec("bike-demand"), date(2011, 7, 1), date(2011, 7, 15))
    assert scored.rows == 14 * 24 and scored.positive_rate is None
    assert checked.performance_metric == "mae" and checked.performance_value is not None
    # Summer demand under a model trained in winter: a real, measurable degradation.
    assert checked.performance_value > float(info.tags["holdout_mae"]) * 1.3
    assert checked.performance_verdict == "breach"
    run, results = platform.store.monitoring_history("bike-demand")[-1]
    assert run.verdict == "breach" and {r.check for r in results} >= {"drift", "drift-column", "performance"}


def test_a_pickled_model_from_elsewhere_is_registered_but_never_deployed(state_home: Path) -> None:
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.validate import validate
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.data import load_window

    platform = get_platform()
    spec = load_spec("flight-delay")
    frame = load_window(spec, spec.training.window)
    features = frame[["sched_dep_hour", "distance"]]
    estimator = LogisticRegression().fit(features, frame["delayed"])
    platform.catalog.activate()
    with mlflow.start_run(experiment_id=platform.catalog.experiment_id("flight-delay")):
        logged = mlflow.sklearn.log_model(estimator, name="model", serialization_format="cloudpickle",
                                          input_example=features.head(3), pip_requirements=["scikit-learn"])

    registered = register(model="flight-delay", model_uri=logged.model_uri)
    assert registered.created and registered.source == "external"
    assert register(model="flight-delay", model_uri=logged.model_uri).created is False

    verdict = validate(model="flight-delay", version=registered.version)
    assert not verdict.passed
    assert any("cloudpickle, which runs arbitrary code" in failure for failure in verdict.failures)
    assert approve(model="flight-delay", version=registered.version).status == "rejected"
    with pytest.raises(NotApprovedError):
        deploy(model="flight-delay", version=registered.version)
    tags = platform.catalog.version("flight-delay", registered.version).tags
    assert tags["security_scan"] == "failed" and tags["lifecycle_state"] == "rejected"
    assert [e.outcome for e in platform.store.audit_trail("flight-delay")] == ["registered", "failed", "rejected"]


def test_a_model_from_elsewhere_is_not_registered_by_the_service_identity(state_home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Four eyes needs an author: a run the Prefect UI starts (the service) names nobody, so it registers no model
    built elsewhere; the same model registered by a named person is."""
    from flows.register import register
    from modelops.errors import ModelOpsError
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.data import load_window

    platform = get_platform()
    spec = load_spec("flight-delay")
    frame = load_window(spec, spec.training.window)
    features = frame[["sched_dep_hour", "distance"]]
    platform.catalog.activate()
    with mlflow.start_run(experiment_id=platform.catalog.experiment_id("flight-delay")):
        logged = mlflow.sklearn.log_model(LogisticRegression().fit(features, frame["delayed"]), name="model",
                                          serialization_format="skops", input_example=features.head(3),
                                          pip_requirements=["scikit-learn"])
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "as-a-runner-sets-it")  # what makes a process the service
    with pytest.raises(ModelOpsError, match="cannot be registered by the service identity"):
        register(model="flight-delay", model_uri=logged.model_uri)
    assert platform.store.governed_versions("flight-delay") == []
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID")
    monkeypatch.setenv("MODELOPS_USER", "alice")
    registered = register(model="flight-delay", model_uri=logged.model_uri)
    assert platform.store.governed_version("flight-delay", registered.version).registered_by == "person:alice"
