"""A newcomer version never jumps the queue: beside a serving champion it enters as @challenger and becomes champion
only by winning the comparison on recent labelled traffic, by a rollback, or by a person's recorded decision where
the spec allows one."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
ROOT = Path(__file__).resolve().parents[2]
MODEL = "flight-delay"


@pytest.fixture
def configs(state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
    return config_dir


def set_promotion(config_dir: Path, promotion: str) -> None:
    path = config_dir / "models" / f"{MODEL}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["deploy"]["promotion"] = promotion
    path.write_text(yaml.safe_dump(raw))


def approved_newcomer(train_start: date, train_end: date) -> str:
    """A second version registered, validated and approved by the chain's stages (not deployed yet)."""
    from flows.approve import approve
    from flows.register import register
    from flows.validate import validate

    version = register(model=MODEL, train_start=train_start, train_end=train_end).version
    assert validate(model=MODEL, version=version).passed
    assert approve(model=MODEL, version=version).status == "approved"
    return version


def serving(platform: Any) -> tuple[str | None, str | None]:
    return platform.store.serving_version(MODEL, "champion"), platform.store.serving_version(MODEL, "challenger")


def test_the_chain_deploys_a_newcomer_as_challenger_beside_the_serving_champion(configs: Path) -> None:
    from flows.deploy import deploy
    from modelops.demo import onboard
    from modelops.platform import get_platform

    platform = get_platform()
    assert onboard(MODEL) == "1"  # the first version of a model goes straight to champion
    newcomer = approved_newcomer(date(2013, 1, 15), date(2013, 3, 1))
    # What the deploy trigger passes (prefect.yaml): the model and version, no role.
    trigger = next(d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
                   if d["name"] == "deploy")["triggers"][0]
    assert set(trigger["parameters"]) == {"model", "version"}
    deployed = deploy(model=MODEL, version=newcomer)
    assert deployed.role == "challenger" and not deployed.promoted
    assert serving(platform) == ("1", newcomer)
    assert platform.catalog.version_for_alias(MODEL, "champion") == "1"
    assert not platform.store.governed_version(MODEL, "1").retired
    assert [e.action for e in platform.store.audit_trail(MODEL) if e.version == newcomer and e.stage == "deploy"] \
        == ["serve-as-challenger"]


def test_a_monitor_run_promotes_the_challenger_that_wins_the_comparison(configs: Path) -> None:
    from flows.deploy import deploy
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    onboard(MODEL)
    summer = approved_newcomer(date(2013, 5, 19), date(2013, 7, 18))  # as the demo's retrain
    assert deploy(model=MODEL, version=summer).role == "challenger"  # no labels yet: it waits
    _, monitored = serve_window(platform, load_spec(MODEL), date(2013, 7, 1), date(2013, 8, 1))
    assert monitored.challenger is not None and monitored.challenger.outcome == "promoted"
    assert serving(platform) == (summer, None)
    assert platform.store.governed_version(MODEL, "1").retired  # retirement.retire_replaced_champion
    compared = next(e for e in platform.store.audit_trail(MODEL) if e.action == "compare-with-champion")
    assert compared.version == summer and compared.evidence["champion_version"] == "1"
    assert compared.outcome == "challenger-wins" and compared.evidence["improvement"] > 0.01


def test_a_challenger_that_loses_the_comparison_stops_serving(configs: Path) -> None:
    from flows.deploy import deploy
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    onboard(MODEL)
    serve_window(platform, load_spec(MODEL), date(2013, 7, 1), date(2013, 8, 1))
    # No version can beat the champion by this margin: the comparison keeps the champion.
    path = configs / "models" / f"{MODEL}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["retrain"]["min_improvement"] = 0.5
    path.write_text(yaml.safe_dump(raw))
    challenger = approved_newcomer(date(2013, 1, 15), date(2013, 3, 1))
    deployed = deploy(model=MODEL, version=challenger)  # labels are there: compared at once
    assert deployed.role == "challenger" and not deployed.promoted
    assert serving(platform) == ("1", None)
    compared = next(e for e in platform.store.audit_trail(MODEL) if e.action == "compare-with-champion")
    assert compared.outcome == "champion-kept" and compared.evidence["improvement"] <= 0.5
    ended = [e for e in platform.store.audit_trail(MODEL) if e.action == "end-challenger"]
    assert ended[-1].version == challenger and "lost the comparison" in ended[-1].evidence["reason"]


def test_a_hand_promotion_needs_the_specs_permission_and_a_recorded_reason(configs: Path) -> None:
    from flows.deploy import deploy
    from modelops.demo import onboard
    from modelops.platform import get_platform
    from tasks.promotion import PromotionRefusedError

    platform = get_platform()
    onboard(MODEL)
    newcomer = approved_newcomer(date(2013, 1, 15), date(2013, 3, 1))
    with pytest.raises(PromotionRefusedError) as refused:
        deploy(model=MODEL, version=newcomer, role="champion", reason="looks better to me")
    assert "has not won a comparison with the serving champion v1" in refused.value.what
    assert "deploy.promotion is 'comparison'" in refused.value.what
    set_promotion(configs, "comparison_or_decision")
    with pytest.raises(PromotionRefusedError, match="has not won a comparison"):
        deploy(model=MODEL, version=newcomer, role="champion")  # a decision needs its reason
    assert serving(platform) == ("1", None)
    deployed = deploy(model=MODEL, version=newcomer, role="champion", reason="labels arrive after 90 days")
    assert deployed.role == "champion" and serving(platform) == (newcomer, None)
    decision = [e for e in platform.store.audit_trail(MODEL) if e.action == "serve-as-champion"][-1]
    assert decision.version == newcomer and decision.evidence["decision_reason"] == "labels arrive after 90 days"
