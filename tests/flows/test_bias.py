"""Bias by protected attribute (fairlearn): limits from the spec, judged at validation and in monitoring."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from modelops.errors import SpecError
from modelops.spec import Window, load_spec, parse_spec
from tasks.bias import measure_bias
from tasks.data import load_window
from tests.slack_receiver import SlackReceiver, start_receiver

ROOT = Path(__file__).resolve().parents[2]


def spec_file(tmp_path: Path, model: str, change: Any) -> Path:
    """A copy of the configs with `change(raw)` applied to one model's spec."""
    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir, dirs_exist_ok=True)
    path = config_dir / "models" / f"{model}.yaml"
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw))
    return path


def protect(attributes: list[str], fairness: dict[str, Any] | None) -> Any:
    def change(raw: dict[str, Any]) -> None:
        raw["data"]["protected_attributes"] = attributes
        if fairness is not None:
            raw["validation"]["fairness"] = fairness
    return change


# --- the spec: listing protected attributes makes the check compulsory ---------------------------------------
def test_protected_attributes_without_limits_are_a_spec_error_naming_the_field(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "flight-delay", protect(["origin"], None))
    with pytest.raises(SpecError, match=r"field 'validation'.*data.protected_attributes lists \['origin'\] but "
                                        r"validation.fairness sets no limit"):
        parse_spec(path)


def test_a_limit_the_task_cannot_measure_is_a_spec_error(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "bike-demand", protect(["workingday"], {"limits": {"demographic_parity_difference": 0.2}}))
    with pytest.raises(SpecError, match=r"\['demographic_parity_difference'\] cannot be measured on a regression "
                                        r"model; use \['mae_gap'\]"):
        parse_spec(path)


def test_the_old_single_metric_form_says_what_replaced_it(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "flight-delay", protect(["origin"], {"metric": "demographic_parity_difference",
                                                                     "max_difference": 0.2}))
    with pytest.raises(SpecError, match="replaced by limits"):
        parse_spec(path)


# --- the measures, on real data ------------------------------------------------------------------------------
def test_a_regressors_mae_gap_is_the_spread_of_group_errors_relative_to_the_overall_error(tmp_path: Path) -> None:
    spec = parse_spec(spec_file(tmp_path, "bike-demand", protect(["workingday"], {"limits": {"mae_gap": 0.5}})))
    frame = load_window(spec, Window(start=date(2011, 4, 1), end=date(2011, 4, 15)))
    # a deliberately crude model: the mean rentals of the hour of day, whatever the day
    scores = frame["hr"].map(frame.groupby("hr")["bikers"].mean()).to_numpy()
    [measure] = measure_bias(spec, frame, frame["bikers"].to_numpy(), scores)
    errors = (frame["bikers"] - scores).abs()
    by_day_kind = errors.groupby(frame["workingday"]).mean()
    expected = (by_day_kind.max() - by_day_kind.min()) / errors.mean()
    assert measure.metric == "mae_gap" and measure.groups == 2
    assert measure.value == pytest.approx(expected) and measure.value > 0.05


def test_a_gap_over_too_few_groups_cannot_be_computed_and_fails(tmp_path: Path) -> None:
    spec = parse_spec(spec_file(tmp_path, "bike-demand", protect(["holiday"], {"limits": {"mae_gap": 0.5},
                                                                               "min_group_rows": 30})))
    # 1-14 April 2011 has one holiday (Emancipation Day, 15 April, is outside): one group only
    frame = load_window(spec, Window(start=date(2011, 4, 1), end=date(2011, 4, 15)))
    [measure] = measure_bias(spec, frame, frame["bikers"].to_numpy(), frame["bikers"].to_numpy() + 1.0)
    assert measure.value is None and "two needed" in measure.note
    assert "fairness: mae_gap on holiday cannot be computed on the holdout" in measure.reason("the holdout")


# --- validation and monitoring, end to end -------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api")
def test_a_model_that_depends_on_a_protected_attribute_is_rejected_with_the_metric_in_the_reason(
        state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.approve import approve
    from flows.register import register
    from flows.validate import validate

    def biased(raw: dict[str, Any]) -> None:
        protect(["origin"], {"limits": {"demographic_parity_difference": 0.2}})(raw)
        raw["training"]["entry_point"] = "tests.flows.biased_model:train_biased"
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(spec_file(tmp_path, "flight-delay", biased).parents[1]))

    version = register(model="flight-delay").version
    verdict = validate(model="flight-delay", version=version)
    assert not verdict.passed
    reason = next(f for f in verdict.failures if f.startswith("fairness:"))
    assert reason.startswith("fairness: demographic_parity_difference on origin is ") and "> limit 0.2" in reason
    assert verdict.fairness["origin"]["demographic_parity_difference"]["value"] > 0.5
    assert approve(model="flight-delay", version=version).status == "rejected"


@pytest.fixture
def receiver() -> Iterator[SlackReceiver]:
    found, server = start_receiver()
    yield found
    server.shutdown()


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api")
def test_bias_that_grows_in_production_breaches_alerts_and_asks_for_retraining(
        state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: SlackReceiver) -> None:
    """Across carriers, the winter model's positive rates differ by 0.20 on its holdout and by 0.28 in July:
    within the limit at validation, past it in production."""
    from blocks.slack import SlackAlertChannel
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.validate import validate
    from modelops import events
    from modelops.demo import serve_window
    from modelops.platform import get_platform

    fairness = {"limits": {"demographic_parity_difference": 0.25}, "min_group_rows": 200}

    def protected_and_alerting(raw: dict[str, Any]) -> None:
        protect(["carrier"], fairness)(raw)
        # A block of this test's own: the shipped name would outlive the receiver for later tests of the session.
        raw["monitoring"]["alerts"]["slack_block"] = "bias-alerts"
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(spec_file(tmp_path, "flight-delay",
                                                            protected_and_alerting).parents[1]))
    SlackAlertChannel(bot_token="xoxb-bias-test", channel="#model-risk",
                      api_base_url=receiver.api_base_url).save("bias-alerts", overwrite=True)
    version = register(model="flight-delay").version
    validated = validate(model="flight-delay", version=version)
    assert validated.passed, validated.failures
    assert validated.fairness["carrier"]["demographic_parity_difference"]["value"] < 0.25
    assert approve(model="flight-delay", version=version).status == "approved"
    deploy(model="flight-delay", version=version)

    platform = get_platform()
    spec = load_spec("flight-delay")
    _, summer = serve_window(platform, spec, date(2013, 7, 1), date(2013, 8, 1))
    assert summer.checks["bias"] == "breach"
    gap = next(v for v in summer.values if v["metric"] == "demographic_parity_difference:carrier")
    assert gap["value"] > 0.25 and gap["limit"] == 0.25 and gap["verdict"] == "breach"
    assert events.BIAS_DETECTED in summer.events and summer.retrain_requested
    alert = next(m for m in receiver.messages if "bias BREACH" in m["text"])
    assert alert["channel"] == "#model-risk" and "demographic_parity_difference:carrier" in str(alert["blocks"])
    assert "bias" in summer.alerts_sent
