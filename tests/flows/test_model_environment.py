"""A model pinned to another scikit-learn (examples/specs/flight-delay-sklearn15.yaml: 1.5.2, the platform runs
1.9.1) on real 2013 flights: its environment is built with uv from its requirements (once: the module shares it),
it is trained there, registered, validated, approved and deployed, and scored by batch scoring and by the gateway
through its scoring worker, which reports the versions it runs."""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import orjson
import pandas as pd
import pytest
import sklearn
import yaml

from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
ROOT = Path(__file__).resolve().parents[2]
MODEL = "flight-delay-sklearn15"
PINNED = "1.5.2"


@dataclass
class Pinned:
    platform: Any
    home: Path
    version: str
    token: str


def live_workers() -> list[Any]:
    from tasks import worker_client

    return [w for w in list(worker_client._LIVE) if w.pid is not None]


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pinned]:
    """The example onboarded once: register (its environment built, training in it), validate, approve, deploy."""
    from modelops.demo import onboard
    from modelops.platform import get_platform
    from serving.tokens import issue_token

    folder = tmp_path_factory.mktemp("environment")
    config_dir = folder / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    shutil.copy(ROOT / "examples" / "specs" / f"{MODEL}.yaml", config_dir / "models" / f"{MODEL}.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(folder / "state"))
        patch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
        platform = get_platform()
        version = onboard(MODEL)
        _, token = issue_token(platform, "env-test", [MODEL])
        yield Pinned(platform, folder / "state", version, token)


def spec_requirements() -> list[str]:
    from modelops.spec import load_spec
    from tasks.environments import environment_requirements, parse_requirements

    return environment_requirements(parse_requirements(load_spec(MODEL).training.pip_requirements, "spec"))


def test_the_environment_is_built_once_and_found_in_the_cache(pinned: Pinned) -> None:
    from tasks.environments import ensure_environment, environments_dir

    built = [p for p in environments_dir(pinned.home).iterdir() if not p.name.startswith(".")]
    assert len(built) == 1  # registering, validating and deploying all used one environment
    again = ensure_environment(pinned.home, spec_requirements(), MODEL)
    assert again.built is False and again.path == built[0]
    assert again.versions["scikit-learn"] == PINNED != sklearn.__version__


def test_the_model_is_trained_by_the_pinned_scikit_learn(pinned: Pinned) -> None:
    info = pinned.platform.catalog.version(MODEL, pinned.version)
    run = pinned.platform.catalog.client.get_run(info.run_id)
    assert f"scikit-learn=={PINNED}" in run.data.tags["environment_versions"]
    with_files = pinned.platform.catalog.download_model(MODEL, pinned.version, pinned.home / "tmp" / "check")
    mlmodel = yaml.safe_load((with_files / "MLmodel").read_text())
    assert mlmodel["flavors"]["sklearn"]["sklearn_version"] == PINNED
    assert f"scikit-learn=={PINNED}" in (with_files / "requirements.txt").read_text()


def test_validation_scanned_it_for_its_environment_and_the_platform_alone_would_refuse_it(pinned: Pinned) -> None:
    from modelops.spec import load_spec
    from tasks.model_kinds import ScanContext
    from tasks.security import scan_model_dir

    record = pinned.platform.store.newest_record(MODEL, pinned.version, "validate", "run-gates")
    assert record.outcome == "passed" and record.evidence["security"] is True, record.evidence
    report = pinned.platform.catalog.load_artifact_dict(record.evidence["validation_run_id"], "validation/report.json")
    assert report["security"]["passed"] and f"scikit-learn=={PINNED}" in report["security"]["environment"]
    # The same files judged in the platform's own process: 1.9.1 has no class of that name, so no load there.
    folder = pinned.platform.catalog.download_model(MODEL, pinned.version, pinned.home / "tmp" / "platform-scan")
    here = scan_model_dir(folder, load_spec(MODEL).validation.security, ScanContext())
    assert not here.passed and any("_RemainderColsList does not resolve" in f for f in here.findings)


def test_batch_scoring_scores_through_the_worker_and_logs_predictions(pinned: Pinned) -> None:
    from flows.score import score
    from modelops.demo import write_traffic
    from modelops.spec import load_spec
    from tasks.integrity import load_verified_model
    from tasks.prediction_log import logged_predictions
    from tasks.schema import conform_to_signature
    from tasks.scoring import predict_scores

    spec = load_spec(MODEL)
    batch, _ = write_traffic(pinned.platform, spec, date(2013, 3, 1), date(2013, 3, 4))
    before = {w.pid for w in live_workers()}
    scored = score(model=MODEL, input_path=str(batch))
    assert {w.pid for w in live_workers()} == before  # its worker stopped with the batch
    frame = pd.read_parquet(batch)
    outputs = pd.read_parquet(scored.output_path)
    assert scored.rows == len(frame) == len(outputs) > 2000
    logged = logged_predictions(pinned.platform, MODEL, pinned.version, None, None)
    assert set(outputs["prediction_id"]) <= set(logged["prediction_id"])
    model = load_verified_model(pinned.platform, spec, pinned.version, "test")
    try:
        assert model.model.runtime == "worker"
        assert model.model.versions["scikit-learn"] == PINNED != sklearn.__version__
        expected = predict_scores(model, conform_to_signature(frame, model.columns, "t"), spec.task)
    finally:
        model.close()
    assert outputs["score"].to_numpy() == pytest.approx(expected, abs=1e-12)


def test_monitoring_judges_a_window_its_worker_scored(pinned: Pinned) -> None:
    from modelops.demo import serve_window
    from modelops.spec import load_spec

    # July traffic scored through the worker, its labels recorded, the window monitored like any model's.
    scored, checked = serve_window(pinned.platform, load_spec(MODEL), date(2013, 7, 1), date(2013, 7, 15))
    assert scored.rows > 10_000 and checked.version == pinned.version
    assert checked.performance_metric == "roc_auc" and 0.5 < checked.performance_value < 1
    assert checked.drift_share is not None and checked.drift_share > 0


def test_reproducing_it_trains_again_in_its_environment_and_matches(pinned: Pinned) -> None:
    from modelops.reproduce import reproduce_version

    result = reproduce_version(pinned.platform, MODEL, pinned.version)
    assert result.matched and result.max_abs_difference == 0.0, result
    assert result.code_same and result.params_verified and "+env-" in result.code_version_now


@pytest.fixture
def gateway(pinned: Pinned) -> Iterator[tuple[Any, Any]]:
    from starlette.testclient import TestClient

    from serving.app import create_app
    from serving.table import ServingTable

    table = ServingTable(pinned.platform)
    with TestClient(create_app(table)) as client:
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        yield client, table


def rows(pinned: Pinned, count: int) -> list[dict[str, Any]]:
    from modelops.demo import write_traffic
    from modelops.spec import load_spec

    spec = load_spec(MODEL)
    batch, _ = write_traffic(pinned.platform, spec, date(2013, 3, 10), date(2013, 3, 11))
    frame = pd.read_parquet(batch).head(count)
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame[[*spec.data.features.all, spec.data.id_column]].to_dict(orient="records")]


def ask(client: Any, pinned: Pinned, body_rows: list[dict[str, Any]]) -> Any:
    return client.post(f"/v1/models/{MODEL}/predict", content=orjson.dumps({"rows": body_rows}),
                       headers={"Authorization": f"Bearer {pinned.token}"})


def test_the_gateway_serves_it_through_its_worker_which_stops_with_the_gateway(pinned: Pinned) -> None:
    from starlette.testclient import TestClient

    from serving.app import create_app
    from serving.table import ServingTable
    from tasks.prediction_log import logged_predictions

    sent = rows(pinned, 20)
    table = ServingTable(pinned.platform)
    with TestClient(create_app(table)) as client:
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        answer = ask(client, pinned, sent)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Model-Runtime"] == "worker"
        served = table.current.routes[MODEL].champion
        assert served.predictor.model.versions["scikit-learn"] == PINNED != sklearn.__version__
        worker = served.predictor.model.worker
        pid = worker.pid
        assert pid is not None and os.path.exists(f"/proc/{pid}")
    assert worker.pid is None  # the gateway stopped it
    logged = logged_predictions(pinned.platform, MODEL, pinned.version, None, None)
    assert {str(r["flight_id"]) for r in sent} <= set(logged["prediction_id"])


def test_a_killed_worker_is_started_again_and_the_request_answered(pinned: Pinned,
                                                                   gateway: tuple[Any, Any]) -> None:
    client, table = gateway
    sent = rows(pinned, 5)
    assert ask(client, pinned, sent).status_code == 200
    model = table.current.routes[MODEL].champion.predictor.model
    killed = model.worker.pid
    os.kill(killed, signal.SIGKILL)
    answer = ask(client, pinned, sent)
    assert answer.status_code == 200, answer.text
    assert model.restarts == 1 and model.worker.pid not in (None, killed)


def test_a_requirement_that_cannot_be_installed_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    from modelops.errors import ModelEnvironmentError
    from tasks.environments import ensure_environment, environments_dir

    lines = ["numpy==2.1.3", "pandas==2.2.3", "scikit-learn==0.0.1", "skops==0.16.0"]
    with pytest.raises(ModelEnvironmentError) as raised:
        ensure_environment(tmp_path, lines, "broken-model")
    assert "scikit-learn==0.0.1" in raised.value.what and "pin a version of scikit-learn" in raised.value.fix
    left = [p.name for p in environments_dir(tmp_path).iterdir() if not p.name.startswith(".")]
    building = [p.name for p in environments_dir(tmp_path).iterdir() if p.name.startswith(".building")]
    assert left == [] and building == []


def test_registering_with_a_requirement_that_cannot_be_installed_registers_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.register import register
    from modelops.errors import ModelEnvironmentError
    from modelops.platform import get_platform

    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    raw = yaml.safe_load((ROOT / "examples" / "specs" / f"{MODEL}.yaml").read_text())
    raw["training"]["pip_requirements"] = ["scikit-learn==0.0.1", "skops==0.16.0"]
    (config_dir / "models" / f"{MODEL}.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
    with pytest.raises(ModelEnvironmentError) as raised:
        register(model=MODEL)
    assert "scikit-learn==0.0.1" in raised.value.what
    assert get_platform().store.governed_versions(MODEL) == []
