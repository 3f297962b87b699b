"""Models of other kinds on real data go through the same flows from register to monitor: flight-delay as a LightGBM
booster, an ONNX graph and a custom class (the last two are the shipped flight-delay spec with another
training.kind), and an XGBoost bike-demand regressor."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


# The module of the predictor each kind loads as: a retrained version must be of its spec's kind too.
PREDICTOR_MODULES = {"flight-delay-lgbm": "tasks.model_kinds.lightgbm_kind",
                     "flight-delay-onnx": "tasks.model_kinds.onnx_kind", "flight-delay-scorecard": "examples.scorecard"}


def predictor_module(platform: object, model: str, version: str) -> str:
    from modelops.spec import load_spec
    from tasks.integrity import load_verified_model

    return type(load_verified_model(platform, load_spec(model), version, "test").model).__module__


@pytest.mark.parametrize("model", sorted(PREDICTOR_MODULES))
@pytest.mark.usefixtures("kinds_config")
def test_a_flight_delay_model_of_each_kind_goes_from_register_to_monitor_and_retrains(state_home: Path,
                                                                                     model: str) -> None:
    from flows.retrain import retrain
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    assert onboard(model) == "1"
    info = platform.catalog.version(model, "1")
    assert info.aliases == ("champion",) and float(info.tags["holdout_roc_auc"]) > 0.6
    scored, checked = serve_window(platform, load_spec(model), date(2013, 7, 1), date(2013, 7, 15))
    # Probabilities that tell flights apart (a calibrated scorecard may keep all of them under the 0.5 threshold).
    scores = pd.read_parquet(scored.output_path)["score"]
    assert scored.rows == len(scores) > 10_000 and scores.between(0, 1).all() and scores.std() > 0.02
    assert checked.performance_metric == "roc_auc" and 0.5 < checked.performance_value < 1
    # Summer traffic against a winter training window: the seasonal drift every flight-delay kind must see.
    assert checked.drift_share > 0
    audited = [(e.stage, e.outcome) for e in platform.store.audit_trail(model)]
    assert ("validate", "passed") in audited and ("approve", "approved") in audited
    assert any(stage == "deploy" for stage, _ in audited) and any(stage == "monitor" for stage, _ in audited)
    assert predictor_module(platform, model, "1") == PREDICTOR_MODULES[model]

    # The drift asks for retraining: the challenger is trained on recent flights, logged and scanned as the same
    # kind, validated and compared with the champion on the same recent labelled flights.
    outcome = retrain(model=model)
    assert outcome.challenger == "2" and predictor_module(platform, model, "2") == PREDICTOR_MODULES[model]
    if outcome.outcome == "failed-validation":  # the summer model missed a gate (ONNX: log_loss): v1 stays
        assert outcome.failures and outcome.champion_after == "1"
        return
    assert outcome.outcome in ("promoted", "champion-kept") and outcome.champion_value is not None
    gain = outcome.challenger_value - outcome.champion_value  # roc_auc: higher is better
    assert (outcome.outcome == "promoted") == (gain > load_spec(model).retrain.min_improvement)
    assert outcome.champion_after == ("2" if outcome.outcome == "promoted" else "1")


def test_bike_demand_with_xgboost_goes_from_register_to_monitor(state_home: Path) -> None:
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    assert onboard("bike-demand-xgb") == "1"
    info = platform.catalog.version("bike-demand-xgb", "1")
    assert float(info.tags["holdout_mae"]) < 60
    scored, checked = serve_window(platform, load_spec("bike-demand-xgb"), date(2011, 7, 1), date(2011, 7, 15))
    assert scored.rows == 14 * 24 and scored.positive_rate is None
    # Summer demand under a model trained in winter: the same real degradation the scikit-learn model shows.
    assert checked.performance_metric == "mae" and checked.performance_value > float(info.tags["holdout_mae"]) * 1.3


def test_the_gateway_serves_the_lightgbm_champion_as_batch_scoring_scores_it(state_home: Path) -> None:
    import orjson
    from starlette.testclient import TestClient

    from modelops.demo import onboard, write_traffic
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from serving.app import create_app
    from serving.tokens import issue_token
    from tasks.integrity import load_verified_model
    from tasks.scoring import conform_to_signature, predict_scores
    from tests.conftest import wait_for

    platform, spec = get_platform(), load_spec("flight-delay-lgbm")
    assert onboard(spec.name) == "1"
    batch, _ = write_traffic(platform, spec, date(2013, 3, 15), date(2013, 3, 16))
    frame = pd.read_parquet(batch).head(50)[spec.data.features.all]
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]
    _, token = issue_token(platform, "test-app", [spec.name])
    with TestClient(create_app()) as client:
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        answer = client.post(f"/v1/models/{spec.name}/predict", content=orjson.dumps({"rows": rows}),
                             headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    online = np.array([p["score"] for p in answer.json()["predictions"]])
    model = load_verified_model(platform, spec, "1", "test")
    expected = predict_scores(model, conform_to_signature(frame, model.columns, "rows"), spec.task)
    assert np.allclose(online, expected)


def test_a_registered_xgboost_version_reproduces_from_its_recorded_window_code_and_params(state_home: Path) -> None:
    from flows.register import register
    from modelops.platform import get_platform
    from modelops.reproduce import reproduce_version

    version = register(model="bike-demand-xgb").version
    result = reproduce_version(get_platform(), "bike-demand-xgb", version)
    assert result.matched and result.rows > 1000 and result.max_abs_difference <= 1e-6
