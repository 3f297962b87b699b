"""Approval policies per risk tier (configs/approval-policies.yaml): validated with errors naming the file and the
field, and a model's spec may tighten its tier's policy but never loosen it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from modelops.approval_policy import effective_policy, load_policies
from modelops.errors import SpecError
from modelops.spec import LifecycleSpec, RiskTier, load_spec

ROOT = Path(__file__).resolve().parents[1]


def _policies(tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    path = config_dir / "approval-policies.yaml"
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))
    return config_dir


def _high(spec: LifecycleSpec, **approval: object) -> LifecycleSpec:
    raw = spec.model_dump(mode="json", exclude_unset=True)
    raw["risk_tier"] = "high"
    raw["approval"] = {**raw.get("approval", {}), **approval}
    return LifecycleSpec.model_validate(raw)


def test_the_shipped_policies_load_with_a_policy_for_every_tier() -> None:
    policies = load_policies(ROOT / "configs")
    assert set(policies.tiers) == set(RiskTier)
    assert policies.tiers[RiskTier.high].human_approvals.count >= 1


def test_a_policies_file_missing_a_tier_names_the_file_and_the_reason(tmp_path: Path) -> None:
    config_dir = _policies(tmp_path, lambda raw: raw["tiers"].pop("medium"))
    with pytest.raises(SpecError, match=r"approval-policies.yaml: field '<file>': .*no policy for risk tier medium"):
        load_policies(config_dir)


def test_a_bad_field_in_the_policies_file_is_named_with_its_path(tmp_path: Path) -> None:
    config_dir = _policies(tmp_path, lambda raw: raw["tiers"]["high"]["human_approvals"].update(count=-1))
    with pytest.raises(SpecError, match=r"approval-policies.yaml: field 'tiers.high.human_approvals.count'"):
        load_policies(config_dir)


def test_an_unknown_role_in_the_policies_file_is_refused(tmp_path: Path) -> None:
    config_dir = _policies(tmp_path, lambda raw: raw["tiers"]["high"]["human_approvals"].update(roles=["boss"]))
    with pytest.raises(SpecError, match=r"field 'tiers.high.human_approvals.roles.0'"):
        load_policies(config_dir)


def test_a_spec_that_approves_its_high_tier_automatically_is_refused_naming_both_files() -> None:
    spec = _high(load_spec("flight-delay"), automatic_for_tiers=["low", "medium", "high"])
    with pytest.raises(SpecError, match=r"flight-delay.yaml: field 'approval.automatic_for_tiers'.*requires 1 human"):
        effective_policy(spec, load_policies(ROOT / "configs"))


def test_a_spec_cannot_switch_off_the_validation_rule() -> None:
    spec = _high(load_spec("bike-demand"), require_validation_passed=False)
    with pytest.raises(SpecError, match=r"'approval.require_validation_passed' is false"):
        effective_policy(spec, load_policies(ROOT / "configs"))


def test_a_spec_tightens_approvals_floors_and_timeout_but_a_looser_floor_does_not_win() -> None:
    spec = _high(load_spec("bike-demand"), human_approvals=2, timeout_hours=4, min_metrics={"r2": 0.4, "mae": 50})
    policy = effective_policy(spec, load_policies(ROOT / "configs"))
    assert policy.human_approvals.count == 2 and policy.human_approvals.timeout_hours == 4
    assert policy.min_metrics == {"r2": 0.5, "mae": 50}  # the tier's r2 floor 0.5 stands; the spec adds mae
    assert "roc_auc" not in policy.min_metrics  # a classifier's floor does not apply to a regressor


def test_a_spec_not_automatic_for_its_tier_needs_a_person_even_where_the_tier_needs_none() -> None:
    spec = load_spec("bike-demand")  # low tier, automatic_for_tiers: [low]
    raw = spec.model_dump(mode="json", exclude_unset=True)
    raw["risk_tier"] = "medium"
    policy = effective_policy(LifecycleSpec.model_validate(raw), load_policies(ROOT / "configs"))
    assert policy.human_approvals.count == 1


def test_modelops_check_reports_a_spec_that_loosens_its_policy(tmp_path: Path) -> None:
    from modelops.checks import policy_problems

    config_dir = _policies(tmp_path, lambda raw: None)
    path = config_dir / "models" / "bike-demand.yaml"
    raw = yaml.safe_load(path.read_text())
    raw.update(risk_tier="high", approval={**raw["approval"], "automatic_for_tiers": ["low", "high"]})
    path.write_text(yaml.safe_dump(raw))
    [problem] = policy_problems(LifecycleSpec.model_validate(raw), path)
    assert problem.field == "approval" and "requires 1 human approval(s)" in problem.what
