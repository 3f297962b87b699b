"""Concurrency limits of configs/platform.yaml: rendered into prefect.yaml per stage, applied by the runner's and the
workers' deployments, one global limit per model for retrains; a bad file names what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelops.errors import SpecError
from modelops.services.concurrency import Concurrency, load_platform_settings
from modelops.services.deployments import render_prefect_yaml

ROOT = Path(__file__).resolve().parents[1]


def _stage(rendered: str, name: str) -> dict:
    return next(d for d in yaml.safe_load(rendered)["deployments"] if d["name"] == name)


def test_a_stage_limit_is_rendered_as_an_enqueueing_deployment_limit_and_a_stage_left_out_is_unbounded() -> None:
    rendered = render_prefect_yaml([], Concurrency(stages={"retrain": 3}))
    assert _stage(rendered, "retrain")["concurrency_limit"] == {"limit": 3, "collision_strategy": "ENQUEUE"}
    assert "concurrency_limit" not in _stage(rendered, "kpis")


def test_the_runner_applies_the_limits_of_the_configured_platform_file(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.services.deployments import runner_deployments

    config_dir = tmp_path / "configs"
    (config_dir / "models").mkdir(parents=True)
    (config_dir / "platform.yaml").write_text("concurrency:\n  stages: {retrain: 2}\n")
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
    limits = {d.name: (d.concurrency_limit, d.concurrency_options) for d in runner_deployments()}
    assert limits["retrain"][0] == 2 and limits["retrain"][1].collision_strategy.value == "ENQUEUE"
    assert limits["kpis"] == (None, None)


def test_the_shipped_platform_file_bounds_retrains_per_stage_and_per_model() -> None:
    concurrency = load_platform_settings(ROOT / "configs").concurrency
    assert concurrency.stages["retrain"] >= 1 and concurrency.retrain_per_model == 1


def test_an_unknown_stage_in_the_platform_file_is_refused_naming_the_file_and_the_stage(tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text("concurrency:\n  stages: {retrian: 2}\n")
    with pytest.raises(SpecError, match=r"platform\.yaml.*no stage deployment named retrian"):
        load_platform_settings(tmp_path)


def test_each_model_gets_its_retrain_limit_and_applying_again_updates_it(prefect_api: None) -> None:
    from prefect.client.orchestration import get_client

    from modelops.services.concurrency import ensure_model_limits

    ensure_model_limits(["storm-a", "storm-b"], Concurrency(retrain_per_model=2))
    ensure_model_limits(["storm-a"], Concurrency(retrain_per_model=1))
    with get_client(sync_client=True) as client:
        limits = {name: client.read_global_concurrency_limit_by_name(name).limit
                  for name in ("retrain-storm-a", "retrain-storm-b")}
    assert limits == {"retrain-storm-a": 1, "retrain-storm-b": 2}


def test_a_model_unknown_to_up_gets_its_retrain_limit_at_its_first_retrain_and_a_set_limit_is_kept(
        prefect_api: None) -> None:
    from prefect.client.orchestration import get_client

    from modelops.services.concurrency import ensure_model_limits, ensure_retrain_limit

    ensure_model_limits(["storm-kept"], Concurrency(retrain_per_model=3))
    ensure_retrain_limit("storm-new")  # a spec added after `up`: no limit yet
    ensure_retrain_limit("storm-kept")
    with get_client(sync_client=True) as client:
        limits = {name: client.read_global_concurrency_limit_by_name(name).limit
                  for name in ("retrain-storm-new", "retrain-storm-kept")}
    assert limits == {"retrain-storm-new": load_platform_settings(ROOT / "configs").concurrency.retrain_per_model,
                      "retrain-storm-kept": 3}
