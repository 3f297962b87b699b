"""Approval policies per risk tier (configs/approval-policies.yaml), and the effective policy of one model: its
tier's policy tightened by the model's own spec (`approval:`), which may never loosen it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator

from modelops.errors import SpecError
from modelops.people import Role
from modelops.spec import HIGHER_IS_BETTER, LifecycleSpec, RiskTier, Strict, validated_yaml

POLICIES_FILE = "approval-policies.yaml"


class EvidenceRules(Strict):
    validation_passed: bool = Field(True, description="The validation verdict must be `passed`.")
    security_scan_passed: bool = Field(True, description="The model file's security scan must have passed.")
    data_quality_min_share: float | None = Field(
        None, gt=0, le=1, description="Share of data-quality expectations the holdout met at validation, at least.")
    fairness_passed: bool = Field(True, description="Where the spec has a fairness gate, every protected attribute "
                                                    "must be within its limit.")
    segment_checks_passed: bool = Field(True, description="No segment check (a per-model approve flow's "
                                                          "`segment-check` record) may have failed.")


class HumanApprovals(Strict):
    count: int = Field(0, ge=0, le=5, description="Approvals by distinct people before the version is approved; 0: "
                                                  "approved by rule alone.")
    roles: list[Role] = Field(default_factory=lambda: [Role.approver], min_length=1,
                              description="A vote counts from a person holding one of these roles (and always the "
                                          "approver role).")
    timeout_hours: float = Field(72, gt=0, le=24 * 90, description="Without enough approvals by then, the version "
                                                                    "is rejected and the wait escalated.")


class TierPolicy(Strict):
    require: EvidenceRules = Field(default_factory=EvidenceRules, description="Rules over the recorded evidence.")
    min_metrics: dict[str, float] = Field(default_factory=dict, description="Holdout metric limits (a floor where "
                                                                            "higher is better, else a ceiling).")
    human_approvals: HumanApprovals = Field(default_factory=HumanApprovals, description="People who must approve.")


class ApprovalPolicies(Strict):
    tiers: dict[RiskTier, TierPolicy] = Field(description="One policy per risk tier: low, medium and high.")
    slack_block: str | None = Field(None, description="SlackAlertChannel block approval requests and escalations "
                                                      "go to; default: the model's monitoring.alerts.slack_block.")

    @model_validator(mode="after")
    def _every_tier(self) -> "ApprovalPolicies":
        missing = [tier.value for tier in RiskTier if tier not in self.tiers]
        if missing:
            raise ValueError(f"no policy for risk tier {', '.join(missing)}: every tier needs one")
        return self


def policies_path(config_dir: Path) -> Path:
    return config_dir / POLICIES_FILE


def load_policies(config_dir: Path | None = None) -> ApprovalPolicies:
    from modelops.settings import load_settings

    path = policies_path(config_dir or load_settings().config_dir)
    if not path.is_file():
        raise SpecError(f"{path}: no approval policies", f"create {POLICIES_FILE} in the config directory (copy the "
                                                         "project's configs/approval-policies.yaml)")
    status = path.stat()
    return _parse(path.resolve(), status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=16)
def _parse(path: Path, mtime_ns: int, size: int) -> ApprovalPolicies:
    return validated_yaml(path, ApprovalPolicies)


def _stricter(metric: str, a: float, b: float) -> float:
    return max(a, b) if metric in HIGHER_IS_BETTER else min(a, b)


def effective_policy(spec: LifecycleSpec, policies: ApprovalPolicies | None = None) -> TierPolicy:
    """The model's tier policy tightened by its spec. A spec that tries to loosen it fails, naming both files."""
    tier = (policies or load_policies()).tiers[spec.risk_tier]
    own, explicit = spec.approval, spec.approval.model_fields_set
    where = f"configs/models/{spec.name}.yaml"
    loosen = f"configs/{POLICIES_FILE}, tier {spec.risk_tier.value}"
    humans = tier.human_approvals
    if "automatic_for_tiers" in explicit and spec.risk_tier in own.automatic_for_tiers and humans.count:
        raise SpecError(f"{where}: field 'approval.automatic_for_tiers' approves risk tier {spec.risk_tier.value} "
                        f"automatically, but {loosen} requires {humans.count} human approval(s)",
                        "a spec may tighten its tier's policy, never loosen it: remove the tier from the list")
    if "require_validation_passed" in explicit and not own.require_validation_passed and \
            tier.require.validation_passed:
        raise SpecError(f"{where}: field 'approval.require_validation_passed' is false, but {loosen} requires a "
                        "passed validation", "a spec may tighten its tier's policy, never loosen it: remove the field")
    count = max(humans.count, own.human_approvals or 0, 0 if spec.risk_tier in own.automatic_for_tiers else 1)
    timeout = min(humans.timeout_hours, own.timeout_hours or humans.timeout_hours)
    from modelops.checks import computed_metric_names

    # A tier's floor applies to the models whose task records the metric (roc_auc is no regressor's).
    metrics = {m: v for m, v in tier.min_metrics.items() if m in computed_metric_names(spec.task)}
    for metric, limit in own.min_metrics.items():
        metrics[metric] = _stricter(metric, metrics[metric], limit) if metric in metrics else limit
    return tier.model_copy(update={
        "min_metrics": metrics,
        "human_approvals": humans.model_copy(update={"count": count, "timeout_hours": timeout})})


def check_policies(spec: LifecycleSpec, config_dir: Path | None = None) -> list[str]:
    """Problems `modelops check` reports: the policies file or the spec's loosening of it."""
    try:
        effective_policy(spec, load_policies(config_dir))
    except SpecError as exc:
        return [exc.what]
    return []
