"""Per-model flows: flight-delay's segment check before approval and bike-demand's own retraining, end to end on
real data; how overrides are checked and handed over; the task graph of approve, deploy and retire runs."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import flow

from flows.parameters import ModelName, Version
from modelops.errors import CatalogError, SpecError
from modelops.lifecycle import Stage
from modelops.spec import FlowOverride, load_spec

ROOT = Path(__file__).resolve().parents[2]
OVERRIDE_RAN: list[str] = []


def _configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, edit: Any) -> None:
    """A copy of the shipped configs with one spec edited, used for the rest of the test."""
    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    path = config_dir / "models" / f"{model}.yaml"
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))


@flow(name="retire-through-the-standard-flow")
def retire_through_standard(model: ModelName, version: Version, reason: str = "", dry_run: bool = True,
                            allow_champion: bool = False) -> Any:
    from flows.retire import retire

    OVERRIDE_RAN.append(model)
    return retire(model=model, version=version, reason=reason, dry_run=dry_run, allow_champion=allow_champion)


def not_a_flow(model: str, version: str) -> None:
    return None


def _with_override(stage: Stage, entry: str) -> Any:
    spec = load_spec("bike-demand")
    return spec.model_copy(update={"flows": {stage: FlowOverride(flow=entry)}})


def test_an_override_that_does_not_import_names_spec_stage_and_problem() -> None:
    from flows.dispatch import check_override

    with pytest.raises(SpecError, match=r"spec 'bike-demand', flows.approve .*cannot import 'flows.models.nope'"):
        check_override(_with_override(Stage.approve, "flows.models.nope:approve"), Stage.approve)


def test_an_override_that_is_not_a_flow_is_refused() -> None:
    from flows.dispatch import check_override

    with pytest.raises(SpecError, match="flows.approve .*not a Prefect flow"):
        check_override(_with_override(Stage.approve, "tests.flows.test_per_model_flows:not_a_flow"), Stage.approve)


def test_an_override_without_the_stage_parameters_is_refused() -> None:
    from flows.dispatch import check_override

    with pytest.raises(SpecError, match="flows.approve .*does not take version"):
        check_override(_with_override(Stage.approve, "flows.models.bike_demand:retrain"), Stage.approve)


def test_a_standard_flow_may_stand_in_for_its_own_stage() -> None:
    from flows.dispatch import override_problem

    assert override_problem("flows.approve:approve", Stage.approve) is None


def test_the_shipped_overrides_pass_the_check() -> None:
    from flows.dispatch import check_override

    for model in ("flight-delay", "bike-demand"):
        spec = load_spec(model)
        assert spec.flows
        for stage in spec.flows:
            check_override(spec, stage)


def test_a_spec_flow_entry_may_be_a_plain_string() -> None:
    assert FlowOverride.model_validate("flows.models.bike_demand:retrain").settings == {}


@pytest.mark.usefixtures("prefect_api", "state_home")
def test_an_override_calling_the_standard_flow_gets_the_standard_body(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.retire import retire

    _configs(tmp_path, monkeypatch, "bike-demand", lambda raw: raw.__setitem__(
        "flows", {"retire": "tests.flows.test_per_model_flows:retire_through_standard"}))
    OVERRIDE_RAN.clear()
    # The standard body ran (it refuses an unknown version) after the override did, once: no loop.
    with pytest.raises(CatalogError, match="has no governance record"):
        retire(model="bike-demand", version="7")
    assert OVERRIDE_RAN == ["bike-demand"]


@pytest.mark.usefixtures("prefect_api", "state_home")
def test_an_entry_point_that_does_not_import_leaves_no_registered_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.register import register
    from modelops.platform import get_platform

    _configs(tmp_path, monkeypatch, "bike-demand",
             lambda raw: raw["training"].__setitem__("entry_point", "examples.no_such_module:train"))
    with pytest.raises(SpecError, match="cannot import 'examples.no_such_module'"):
        register(model="bike-demand")
    assert "bike-demand" not in get_platform().catalog.model_names()


def _onboarded(model: str) -> str:
    from flows.register import register
    from flows.validate import validate

    version = register(model=model).version
    assert validate(model=model, version=version).passed
    return version


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api", "state_home")
def test_flight_delay_passes_its_segment_check_and_is_approved() -> None:
    from flows.approve import approve
    from modelops.platform import get_platform

    version = _onboarded("flight-delay")
    outcome = approve(model="flight-delay", version=version)
    assert outcome.status == "approved", outcome.reasons
    checks = [e for e in get_platform().store.audit_trail("flight-delay") if e.action == "segment-check"]
    assert [c.outcome for c in checks] == ["passed"]
    assert set(checks[0].evidence["roc_auc"]) == {"EWR", "JFK", "LGA"}


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api", "state_home")
def test_flight_delay_with_a_segment_below_the_floor_is_rejected_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.approve import approve
    from modelops.platform import get_platform

    _configs(tmp_path, monkeypatch, "flight-delay",
             lambda raw: raw["flows"]["approve"]["settings"].__setitem__("min_segment_roc_auc", 0.99))
    version = _onboarded("flight-delay")
    outcome = approve(model="flight-delay", version=version)
    assert outcome.status == "rejected"
    assert any(r.startswith("segment check: holdout roc_auc of origin JFK is") for r in outcome.reasons)
    trail = get_platform().store.audit_trail("flight-delay")
    check = next(e for e in trail if e.action == "segment-check")
    assert check.outcome == "failed" and "JFK" in check.evidence["below"]
    decision = next(e for e in trail if e.action == "apply-policy")
    assert decision.outcome == "rejected" and any("origin JFK" in r for r in decision.evidence["reasons"])
    assert get_platform().store.approval_status("flight-delay", version) == "rejected"


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api", "state_home")
def test_bike_demand_retrains_on_the_newest_weeks_and_is_compared_by_the_standard_steps() -> None:
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.retrain import retrain
    from modelops.demo import serve_window
    from modelops.platform import get_platform

    platform = get_platform()
    champion = _onboarded("bike-demand")
    approve(model="bike-demand", version=champion)
    deploy(model="bike-demand", version=champion)
    serve_window(platform, load_spec("bike-demand"), date(2011, 7, 1), date(2011, 7, 15))

    outcome = retrain(model="bike-demand")
    assert outcome.procedure == "bike-demand: the newest 4 weeks before the comparison window"
    assert outcome.outcome in ("promoted", "champion-kept") and outcome.champion_value is not None
    challenger = platform.store.governed_version("bike-demand", outcome.challenger)
    assert (challenger.train_end - challenger.train_start).days == 28
    trail = {e.action: e for e in platform.store.audit_trail("bike-demand") if e.stage == "retrain"}
    assert trail["nominate-challenger"].evidence["procedure"] == outcome.procedure
    assert trail["compare-with-champion"].evidence["procedure"] == outcome.procedure


def _task_names(flow_run_id: Any) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0] for run in runs}


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api", "state_home")
def test_approve_deploy_and_retire_runs_have_task_runs() -> None:
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.retire import retire

    version = _onboarded("bike-demand")
    approved = approve(model="bike-demand", version=version, return_state=True)
    deployed = deploy(model="bike-demand", version=version, return_state=True)
    other = register(model="bike-demand", train_start=date(2011, 2, 1)).version
    retired = retire(model="bike-demand", version=other, dry_run=False, return_state=True)
    assert {"apply-approval-policy", "record-approval"} <= _task_names(approved.state_details.flow_run_id)
    assert {"record-deployment", "mirror-serving"} <= _task_names(deployed.state_details.flow_run_id)
    assert "retire-version" in _task_names(retired.state_details.flow_run_id)
