"""The online gateway over a real platform: flight-delay onboarded on real 2013 flights, v1 serving as champion and
v2 (trained on a later window) approved and waiting. In-process tests use Starlette's TestClient (the app's
lifespan, serving table and prediction sink all run); the process tests start `serving.server` with two workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import orjson
import pandas as pd
import pytest
import yaml

from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
ROOT = Path(__file__).resolve().parents[2]
MODEL = "flight-delay"


@dataclass
class Served:
    platform: Any
    config_dir: Path
    token: str
    rows: list[dict[str, Any]]  # real flights of March 2013, the model's inputs only
    candidate: str  # v2, approved, not deployed

    def set_deploy(self, **deploy: Any) -> None:
        path = self.config_dir / "models" / f"{MODEL}.yaml"
        raw = yaml.safe_load(path.read_text())
        raw["deploy"].update(deploy)
        path.write_text(yaml.safe_dump(raw))


def real_rows(platform: Any, count: int) -> list[dict[str, Any]]:
    from modelops.demo import write_traffic
    from modelops.spec import load_spec

    spec = load_spec(MODEL)
    batch, _ = write_traffic(platform, spec, date(2013, 3, 15), date(2013, 3, 16))
    frame = pd.read_parquet(batch).head(count)
    columns = spec.data.features.all
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame[columns].to_dict(orient="records")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from flows.approve import approve
    from flows.register import register
    from flows.validate import validate
    from modelops.demo import onboard
    from modelops.platform import get_platform
    from serving.tokens import issue_token

    folder = tmp_path_factory.mktemp("gateway")
    config_dir = folder / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(folder / "state"))
        patch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
        platform = get_platform()
        assert onboard(MODEL) == "1"
        candidate = register(model=MODEL, train_start=date(2013, 1, 15), train_end=date(2013, 3, 1),
                             chain=False).version
        assert validate(model=MODEL, version=candidate).passed
        assert approve(model=MODEL, version=candidate).status == "approved"
        _, token = issue_token(platform, "test-app", [MODEL])
        yield Served(platform, config_dir, token, real_rows(platform, 200), candidate)


@pytest.fixture
def client(served: Served) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from serving.app import create_app

    with TestClient(create_app()) as test_client:
        assert wait_for(lambda: test_client.get("/readyz").status_code == 200)
        yield test_client


def auth(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.token}"}


def predict(client: Any, served: Served, rows: list[dict[str, Any]], path: str = f"/v1/models/{MODEL}/predict",
            **extra: Any) -> Any:
    return client.post(path, content=orjson.dumps({"rows": rows, **extra}), headers=auth(served))


def serving_now(client: Any, served: Served) -> dict[str, Any]:
    return client.get("/readyz", headers=auth(served)).json()["serving"][MODEL]


def metric(client: Any, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# --- answers ------------------------------------------------------------------------------------------------------

def test_the_champion_answers_naming_its_version_with_a_prediction_id_per_row(client: Any, served: Served) -> None:
    answer = predict(client, served, served.rows[:3])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["version"], body["role"]) == (MODEL, "1", "champion")
    assert answer.headers["X-Model-Version"] == "1"
    ids = [p["prediction_id"] for p in body["predictions"]]
    assert len(set(ids)) == 3 and all(0 <= p["score"] <= 1 and p["prediction"] in (0, 1) for p in body["predictions"])


def test_online_scores_equal_batch_scores_of_the_same_rows(client: Any, served: Served) -> None:
    from tasks.integrity import load_verified_model
    from tasks.scoring import conform_to_signature, predict_scores
    from modelops.spec import load_spec

    spec = load_spec(MODEL)
    model = load_verified_model(served.platform, spec, "1", "test")
    expected = predict_scores(model, conform_to_signature(pd.DataFrame(served.rows[:50]), model.columns, "t"),
                              spec.task)
    answer = predict(client, served, served.rows[:50]).json()
    assert [p["score"] for p in answer["predictions"]] == pytest.approx(expected.tolist(), abs=1e-12)


# --- ONNX: recorded at validation, scored through onnxruntime only from the recorded bytes ------------------------

def onnx_file(served: Served, version: str) -> Path:
    """Where the validation run of a version keeps its ONNX model (the platform's own artifact store)."""
    from urllib.parse import unquote, urlparse

    run_id = served.platform.store.governed_version(MODEL, version).validation_run_id
    uri = served.platform.catalog.client.get_run(run_id).info.artifact_uri
    return Path(unquote(urlparse(uri).path)) / "onnx" / "model.onnx"


def holdout_rows(served: Served, version: str, count: int) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Real rows of a version's validation holdout: as a client sends them, and as the native model reads them."""
    from modelops.spec import load_spec
    from tasks.data import load_window
    from tasks.validation import holdout_window_of

    spec = load_spec(MODEL)
    window = holdout_window_of(spec, served.platform.store.governed_version(MODEL, version))
    frame = load_window(spec, window)[spec.data.features.all].sample(count, random_state=1)
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]
    return rows, frame


def test_validation_recorded_an_equal_onnx_conversion_of_the_champion(served: Served) -> None:
    import hashlib

    record = served.platform.store.newest_record(MODEL, "1", "validate", "run-gates")
    onnx = record.evidence["onnx"]
    report = served.platform.catalog.load_artifact_dict(record.evidence["validation_run_id"], "validation/report.json")
    assert onnx["converted"] is True and onnx["flavor"] == "sklearn", onnx
    assert 0 <= onnx["max_abs_difference"] <= 1e-6
    assert onnx["rows_compared"] == report["holdout_rows"] > 1000  # the whole holdout
    assert hashlib.sha256(onnx_file(served, "1").read_bytes()).hexdigest() == onnx["sha256"]


def test_the_gateway_scores_holdout_rows_through_onnx_as_the_native_model_does(client: Any, served: Served) -> None:
    from modelops.spec import load_spec
    from tasks.integrity import load_verified_model

    rows, frame = holdout_rows(served, "1", 300)
    answer = predict(client, served, rows)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Model-Runtime"] == "onnxruntime"
    native = load_verified_model(served.platform, load_spec(MODEL), "1", "test").model.estimator
    expected = native.predict_proba(frame)[:, 1]
    predictions = answer.json()["predictions"]
    assert [p["score"] for p in predictions] == pytest.approx(expected.tolist(), abs=1e-6)
    assert [p["prediction"] for p in predictions] == (expected >= 0.5).astype(int).tolist()


def test_a_changed_onnx_file_is_refused_audited_and_the_native_model_serves(served: Served) -> None:
    from starlette.testclient import TestClient

    from serving.app import create_app

    path = onnx_file(served, "1")
    original = path.read_bytes()
    path.write_bytes(original.replace(b"TreeEnsemble", b"TreeEnsembIe"))  # one letter: another model
    try:
        with TestClient(create_app()) as other:
            assert wait_for(lambda: other.get("/readyz").status_code == 200)
            answer = predict(other, served, served.rows[:5])
            assert answer.status_code == 200 and answer.headers["X-Model-Runtime"] == "native"
    finally:
        path.write_bytes(original)
    [finding] = [e for e in served.platform.store.audit_trail(MODEL)
                 if e.stage == "integrity" and e.action == "verify-onnx-file"]
    assert finding.version == "1" and finding.outcome == "tampered"
    assert finding.evidence["recorded"] != finding.evidence["found"]
    assert any(d.check == "integrity-onnx-file" for d in served.platform.store.alert_deliveries(MODEL))


def test_mlflow_scoring_protocol_clients_get_predictions(client: Any, served: Served) -> None:
    columns = list(served.rows[0])
    body = {"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns] for row in served.rows[:2]]}}
    answer = client.post(f"/v1/models/{MODEL}/invocations", content=orjson.dumps(body), headers=auth(served))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 2 and answer.json()["model_version"] == "1"


def test_open_inference_protocol_v2_clients_get_outputs(client: Any, served: Served) -> None:
    rows = served.rows[:4]
    metadata = client.get(f"/v2/models/{MODEL}", headers=auth(served)).json()
    inputs = [{"name": item["name"], "shape": [len(rows)], "datatype": item["datatype"],
               "data": [row[item["name"]] for row in rows]} for item in metadata["inputs"]]
    answer = client.post(f"/v2/models/{MODEL}/infer", content=orjson.dumps({"id": "r-1", "inputs": inputs}),
                         headers=auth(served))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (MODEL, "1", "r-1")
    assert {o["name"]: o["shape"] for o in body["outputs"]} == {"prediction": [4], "score": [4],
                                                                "prediction_id": [4]}


def test_ground_truth_recorded_by_the_returned_id_joins_the_online_prediction(client: Any, served: Served) -> None:
    from modelops.spec import load_spec
    from tasks.prediction_log import labelled_predictions, record_ground_truth

    answer = predict(client, served, served.rows[:5]).json()
    ids = [p["prediction_id"] for p in answer["predictions"]]
    gateway_sink_flush(client)
    spec = load_spec(MODEL)
    labels = pd.DataFrame({spec.data.id_column: ids, spec.data.target: [1, 0, 1, 0, 1]})
    record_ground_truth(served.platform, spec, labels, "test labels")
    joined = labelled_predictions(served.platform, MODEL, "1", None, None)
    assert set(ids) <= set(joined["prediction_id"])
    assert joined.set_index("prediction_id").loc[ids, "label"].tolist() == [1, 0, 1, 0, 1]


def gateway_sink_flush(client: Any) -> None:
    """Write what the sink spooled (the lifespan's close does this too, on shutdown)."""
    client.app.state.gateway.sink.flush()


def test_monitoring_judges_online_traffic_with_its_request_latency(client: Any, served: Served) -> None:
    """Online requests carrying their flights' own ids and departure times land in the window monitoring reads:
    one latency per request, enough requests for the SLA to be judged, drift computed on the online rows."""
    from datetime import datetime, timezone

    from modelops.demo import write_traffic
    from modelops.spec import load_spec
    from tasks.integrity import require_governed
    from tasks.monitoring import monitor_window

    spec = load_spec(MODEL)
    batch, _ = write_traffic(served.platform, spec, date(2013, 4, 1), date(2013, 4, 3))
    frame = pd.read_parquet(batch).head(600)
    frame[spec.data.timestamp_column] = frame[spec.data.timestamp_column].astype(str)
    columns = [*spec.data.features.all, spec.data.id_column, spec.data.timestamp_column]
    records = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
               for row in frame[columns].to_dict(orient="records")]
    for start in range(0, 600, 20):
        assert predict(client, served, records[start:start + 20]).status_code == 200
    gateway_sink_flush(client)
    report = monitor_window(served.platform, spec, require_governed(served.platform, MODEL, "1"),
                            datetime(2013, 4, 1, tzinfo=timezone.utc), datetime(2013, 4, 3, tzinfo=timezone.utc))
    service = report.checks["service"]
    assert report.rows == 600 and service.values["scoring_batches"][0] == 30
    assert service.value_verdicts["latency_p95_ms"] != "skipped" and service.values["latency_p95_ms"][0] > 0
    assert "drift" in report.checks


# --- refusals -----------------------------------------------------------------------------------------------------

def test_a_request_without_a_token_gets_401_and_is_counted(client: Any, served: Served) -> None:
    before = metric(client, "modelops_gateway_errors_total", model=MODEL, kind="auth-missing")
    answer = client.post(f"/v1/models/{MODEL}/predict", content=orjson.dumps({"rows": served.rows[:1]}))
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert metric(client, "modelops_gateway_errors_total", model=MODEL, kind="auth-missing") == before + 1


def test_a_wrong_token_gets_401(client: Any, served: Served) -> None:
    forged = served.token[:-4] + ("AAAA" if not served.token.endswith("AAAA") else "BBBB")
    answer = client.post(f"/v1/models/{MODEL}/predict", content=orjson.dumps({"rows": served.rows[:1]}),
                         headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401 and served.token not in answer.text


def test_a_token_scoped_to_another_model_gets_403(client: Any, served: Served) -> None:
    from serving.tokens import issue_token

    _, other = issue_token(served.platform, "bike-app", ["bike-demand"])
    # the serving table reloads tokens at its next refresh
    assert wait_for(lambda: client.post(f"/v1/models/{MODEL}/predict", content=orjson.dumps(
        {"rows": served.rows[:1]}), headers={"Authorization": f"Bearer {other}"}).status_code == 403)


def test_a_broken_spec_file_does_not_keep_a_revoked_token_working(client: Any, served: Served) -> None:
    """One unparsable spec must not freeze the gateway's view of the store: revocations still take effect."""
    from serving.tokens import issue_token, revoke_token

    token_id, token = issue_token(served.platform, "short-lived", [MODEL])
    headers = {"Authorization": f"Bearer {token}"}
    body = orjson.dumps({"rows": served.rows[:1]})
    assert wait_for(lambda: client.post(f"/v1/models/{MODEL}/predict", content=body, headers=headers)
                    .status_code == 200)
    broken = served.config_dir / "models" / "zz-typo.yaml"
    broken.write_text("name: [unclosed\n")
    try:
        revoke_token(served.platform, token_id)
        assert wait_for(lambda: client.post(f"/v1/models/{MODEL}/predict", content=body, headers=headers)
                        .status_code == 401)
        assert predict(client, served, served.rows[:1]).status_code == 200  # the model itself still serves
    finally:
        broken.unlink()


def test_bad_input_gets_422_naming_the_field(client: Any, served: Served) -> None:
    answer = predict(client, served, [{**served.rows[0], "distance": "far"}])
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "rows[0].distance"


def test_an_unknown_model_gets_404(client: Any, served: Served) -> None:
    answer = predict(client, served, served.rows[:1], path="/v1/models/no-such-model/predict")
    assert answer.status_code in (403, 404)  # the token is scoped: it may not even learn whether it exists


def test_an_unvalidated_version_is_never_served_whatever_the_mlflow_alias_says(client: Any, served: Served) -> None:
    from flows.register import register

    stray = register(model=MODEL, train_start=date(2013, 1, 20), train_end=date(2013, 3, 5), chain=False).version
    served.platform.catalog.set_alias(MODEL, "champion", stray)  # someone with MLflow access moves the alias
    try:
        assert predict(client, served, served.rows[:1]).json()["version"] == "1"
        pinned = predict(client, served, served.rows[:1], path=f"/v1/models/{MODEL}/versions/{stray}/predict")
        assert pinned.status_code == 404 and "not approved" in pinned.json()["error"]["message"]
    finally:
        served.platform.catalog.set_alias(MODEL, "champion", "1")


# --- champion / challenger ----------------------------------------------------------------------------------------

def test_shadow_scores_a_copy_logged_under_the_challenger_while_only_the_champion_answers(
        client: Any, served: Served) -> None:
    from flows.deploy import deploy
    from tasks.prediction_log import logged_predictions

    served.set_deploy(strategy="shadow")
    deploy(model=MODEL, version=served.candidate, role="challenger")
    try:
        assert wait_for(lambda: serving_now(client, served)["challenger"] == served.candidate)
        ids = [f"shadow-{i}" for i in range(20)]
        answers = [predict(client, served, [{**row, "flight_id": i}]).json()
                   for row, i in zip(served.rows[:20], ids)]
        assert {a["version"] for a in answers} == {"1"}
        assert wait_for(lambda: metric(client, "modelops_gateway_rows_total", model=MODEL, version=served.candidate,
                                       role="shadow") >= 20)
        gateway_sink_flush(client)
        shadow_log = logged_predictions(served.platform, MODEL, served.candidate, None, None)
        assert set(ids) <= set(shadow_log.loc[shadow_log["role"] == "shadow", "prediction_id"])
    finally:
        served.set_deploy(strategy="champion")


def test_a_split_sends_the_challengers_share_and_the_same_key_always_to_the_same_version(
        client: Any, served: Served) -> None:
    from flows.deploy import deploy

    served.set_deploy(strategy="champion_challenger", challenger_traffic_share=0.5)
    deploy(model=MODEL, version=served.candidate, role="challenger")
    try:
        assert wait_for(lambda: serving_now(client, served)["challenger"] == served.candidate)
        versions = {key: predict(client, served, served.rows[:1], routing_key=f"customer-{key}").json()["version"]
                    for key in range(40)}
        assert set(versions.values()) == {"1", served.candidate}
        again = {key: predict(client, served, served.rows[:1], routing_key=f"customer-{key}").json()["version"]
                 for key in range(40)}
        assert again == versions
        assert metric(client, "modelops_gateway_requests_total", model=MODEL, version=served.candidate,
                      role="challenger") > 0
    finally:
        served.set_deploy(strategy="champion")


# --- fuzzing ------------------------------------------------------------------------------------------------------

def test_fuzzing_the_gateway_from_its_own_openapi_finds_no_server_error(client: Any, served: Served) -> None:
    """Valid and invalid bodies, headers and paths generated from /openapi.json, with and without the token."""
    import json

    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(client.get("/openapi.json", headers=auth(served)).json())
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        # a GET without parameters has no invalid form
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.method.upper() == "POST" else [])
        for mode in modes:
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                nonlocal sent
                for token in (auth(served), {}):
                    request = case.as_transport_kwargs(base_url=str(client.base_url), headers=token)
                    request.pop("cookies", None)
                    if "json" in request:  # big integers and odd text: Python's encoder writes them all
                        request["content"] = json.dumps(request.pop("json")).encode()
                    if "data" in request:
                        request["content"] = request.pop("data")
                    response = client.request(**request)
                    sent += 1
                    if response.status_code >= 500:
                        failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                        f"{response.text[:200]}")

            fuzz()
    assert sent > 300 and failures == []


# --- a real server ------------------------------------------------------------------------------------------------

def free_port() -> int:
    from modelops.services.stack import free_port as pick

    return pick()


@dataclass
class Server:
    process: subprocess.Popen
    url: str

    def post(self, path: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(self.url + path, data=orjson.dumps(body), method="POST",
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read() or b"{}")


def start_server(served: Served, log: Path) -> Server:
    port = free_port()
    env = {**os.environ, "MODELOPS_HOME": str(served.platform.settings.home),
           "MODELOPS_CONFIG_DIR": str(served.config_dir)}
    process = subprocess.Popen([sys.executable, "-m", "serving.server", "--port", str(port), "--workers", "2"],
                               cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return process.poll() is not None
    assert wait_for(ready, timeout=120) and process.poll() is None, log.read_text()[-3000:]
    return Server(process, url)


def test_a_promote_moves_traffic_to_the_new_version_with_no_failed_request(served: Served, tmp_path: Path) -> None:
    from flows.deploy import deploy

    served.set_deploy(promotion="comparison_or_decision")  # an operator promotes v2 by a recorded decision
    server = start_server(served, tmp_path / "gateway.log")
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def keep_sending() -> None:
        row = 0
        while not stop.is_set():
            status, body = server.post(f"/v1/models/{MODEL}/predict", {"rows": [served.rows[row % 200]]}, served.token)
            answers.append((time.monotonic(), status, body.get("version", "")))
            row += 1

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        assert wait_for(lambda: len(answers) > 20)
        promoted_at = time.monotonic()
        deploy(model=MODEL, version=served.candidate, role="champion", reason="operator's promote drill")
        assert wait_for(lambda: any(v == served.candidate for _, _, v in answers[-5:]), timeout=60)
        switched_at = next(t for t, _, v in answers if v == served.candidate)
        deploy(model=MODEL, version="1", role="champion")  # roll back: v1 answers again
        assert wait_for(lambda: all(v == "1" for _, _, v in answers[-5:]), timeout=60)
    finally:
        stop.set()
        sender.join()
        served.set_deploy(promotion="comparison")
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
    assert [status for _, status, _ in answers if status != 200] == []
    print(f"promote took effect after {switched_at - promoted_at:.2f} s; {len(answers)} requests, none failed")


def test_sigterm_flushes_every_acknowledged_prediction_to_the_log(served: Served, tmp_path: Path) -> None:
    from tasks.prediction_log import logged_predictions

    server = start_server(served, tmp_path / "gateway.log")
    ids = [f"sigterm-{i}" for i in range(300)]
    for row, prediction_id in zip(served.rows * 2, ids):
        status, _ = server.post(f"/v1/models/{MODEL}/predict", {"rows": [{**row, "flight_id": prediction_id}]},
                                served.token)
        assert status == 200
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0
    logged = logged_predictions(served.platform, MODEL, None, None, None)
    assert set(ids) <= set(logged["prediction_id"])
