"""What an operator sees in the Prefect UI of each stage run: one task run per validation gate, and the artifacts
each stage publishes (read back through Prefect's API), over a real day of flight-delay on 2013 flights:
onboarded, re-validated, a dry-run retirement, July traffic, a retrain that promotes its challenger, and a newcomer
that waits beside the new champion for labels to be compared on."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any, Iterator
from uuid import UUID

import pytest
import yaml

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "flight-delay"
GATES = ["gate-security-scan", "gate-schema", "gate-holdout-metrics", "gate-data-quality", "gate-fairness"]


def newest(key: str, flow_run_id: UUID | None = None) -> Any:
    """The newest artifact under `key` (of one flow run, when given)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    run = ArtifactFilterFlowRunId(any_=[flow_run_id]) if flow_run_id else None
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]),
                                                                     flow_run_id=run),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    assert found, f"no artifact {key}"
    return found[0]


def task_run_names(flow_run_id: UUID) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [run.name.rsplit("-", 1)[0] for run in runs]  # a task run's name is its task's name and a suffix


def run(flow: Any, **parameters: Any) -> tuple[Any, UUID]:
    """A flow run's result and its id."""
    state = flow(**parameters, return_state=True)
    return state.result(), state.state_details.flow_run_id


@pytest.fixture(scope="module")
def day(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The stages run once in a state directory of this module; each step's artifacts are read right after it
    (a later run publishes under the same keys)."""
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.retire import retire
    from flows.retrain import retrain
    from flows.validate import validate
    from modelops.demo import serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    base = tmp_path_factory.mktemp("stage-artifacts")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(base / "state"))
        seen: dict[str, Any] = {}
        version = register(model=MODEL).version
        seen["validated"], seen["validate_run"] = run(validate, model=MODEL, version=version)
        seen["gates"] = newest(f"validation-{MODEL}", seen["validate_run"])
        seen["summary"] = newest(f"validation-{MODEL}-summary", seen["validate_run"])
        seen["reused"], reuse_run = run(validate, model=MODEL, version=version)
        seen["reused_gates"] = newest(f"validation-{MODEL}", reuse_run)
        seen["reused_summary"] = newest(f"validation-{MODEL}-summary", reuse_run)
        seen["approved"] = approve(model=MODEL, version=version)
        seen["approval"] = newest(f"approval-{MODEL}")
        deploy(model=MODEL, version=version)
        seen["deployment"] = newest(f"deployment-{MODEL}")
        seen["dry_run"] = retire(model=MODEL, version=version, dry_run=True, allow_champion=True)
        seen["dry_retirement"] = newest(f"retirement-{MODEL}")
        serve_window(get_platform(), load_spec(MODEL), date(2013, 7, 1), date(2013, 8, 1))
        seen["retrained"] = retrain(model=MODEL)
        for kind in ("retrain", "deployment", "retirement"):
            seen[f"after_retrain_{kind}"] = newest(f"{kind}-{MODEL}")
        # a newcomer beside the serving champion: deployed as challenger, compared at once when labels are there
        newcomer = register(model=MODEL, train_start=date(2013, 1, 15), train_end=date(2013, 3, 1)).version
        assert validate(model=MODEL, version=newcomer).passed
        assert approve(model=MODEL, version=newcomer).status == "approved"
        seen["newcomer"] = deploy(model=MODEL, version=newcomer)
        seen["comparison"] = newest(f"comparison-{MODEL}")
        yield seen


def rows_of(artifact: Any) -> list[dict[str, Any]]:
    assert artifact.type == "table"
    return json.loads(artifact.data)


def test_a_validate_run_shows_one_task_run_per_gate(day: dict[str, Any]) -> None:
    names = task_run_names(day["validate_run"])
    assert sorted(n for n in names if n.startswith("gate-")) == sorted(GATES)


def test_the_gate_table_holds_each_checks_value_limit_and_verdict(day: dict[str, Any]) -> None:
    rows = rows_of(day["gates"])
    by_check = {(r["gate"], r["check"]): r for r in rows}
    auc = by_check[("holdout-metrics", "roc_auc")]
    assert auc["value"] == pytest.approx(day["validated"].metrics["roc_auc"]) and auc["limit"] == "≥ 0.6"
    assert auc["verdict"] == "pass"
    assert by_check[("holdout-metrics", "log_loss")]["limit"] == "≤ 0.6"
    assert by_check[("holdout-metrics", "f1")]["verdict"] == "not gated"  # measured, no threshold in the spec
    quality = by_check[("data-quality", "share of expectations met")]
    assert quality["limit"] == "≥ 0.9" and quality["value"] >= 0.9 and quality["verdict"] == "pass"
    assert by_check[("security-scan", "pinned files and scan findings")]["value"] == 0
    assert {r["gate"] for r in rows} >= {"security-scan", "schema", "holdout-metrics", "data-quality", "fairness"}
    assert set(rows[0]) == {"gate", "check", "value", "limit", "verdict", "detail"}


def test_the_validation_summary_gives_the_verdict_and_the_holdout(day: dict[str, Any]) -> None:
    summary = day["summary"].data
    assert summary.startswith(f"# {MODEL} v1: validation PASSED")
    assert "Holdout 2013-02-15..2013-03-01" in summary and "reused" not in summary


def test_a_reused_verdict_is_published_again_saying_so(day: dict[str, Any]) -> None:
    assert day["reused"].reused
    assert "earlier validation is reused" in day["reused_summary"].data
    assert rows_of(day["reused_gates"]) == rows_of(day["gates"])
    assert day["reused_gates"].id != day["gates"].id


def test_the_approval_artifact_names_decision_decider_and_reasons(day: dict[str, Any]) -> None:
    text = day["approval"].data
    assert text.startswith(f"# {MODEL} v1: APPROVED")
    assert "recorded by: policy:approval" in text
    assert all(f"- {reason}" in text for reason in day["approved"].reasons)


def test_the_first_deployment_says_what_serves_where(day: dict[str, Any]) -> None:
    from modelops.spec import load_spec

    text = day["deployment"].data
    targets = ", ".join(load_spec(MODEL).deploy.targets)
    assert text.startswith(f"# {MODEL} v1 serves as @champion")
    assert f"| v1 | champion | {targets} | champion | - |" in text
    assert "no version served as @champion before" in text


def test_a_dry_run_retirement_says_what_it_would_do(day: dict[str, Any]) -> None:
    assert day["dry_retirement"].data.startswith(f"# dry run: would retire {MODEL} v1")
    assert day["dry_run"].dry_run and not day["dry_run"].changed


def test_the_retrain_artifact_compares_both_versions_on_the_same_traffic(day: dict[str, Any]) -> None:
    retrained = day["retrained"]
    text = day["after_retrain_retrain"].data
    assert retrained.outcome == "promoted"
    assert text.startswith(f"# {MODEL}: challenger v2 vs champion v1: promoted")
    assert f"| v1 | champion | {retrained.champion_value:.4f}" in text
    assert f"| v2 | challenger | {retrained.challenger_value:.4f}" in text
    assert "against the gate > 0.01 (the challenger wins)" in text


def test_the_promotion_deployment_names_the_version_it_replaced(day: dict[str, Any]) -> None:
    text = day["after_retrain_deployment"].data
    assert text.startswith(f"# {MODEL} v2 serves as @champion") and "replacing v1." in text


def test_the_replaced_champion_retirement_is_published(day: dict[str, Any]) -> None:
    text = day["after_retrain_retirement"].data
    assert text.startswith(f"# {MODEL} v1 retired") and "replaced by v2 after retraining" in text


def test_a_challenger_waiting_for_labels_says_so_in_the_comparison(day: dict[str, Any]) -> None:
    """The new champion v2 has scored nothing yet: there are no labelled predictions of it to compare on."""
    from modelops.platform import get_platform

    deployed = day["newcomer"]
    text = day["comparison"].data
    assert deployed.role == "challenger" and not deployed.promoted
    assert get_platform().store.serving_version(MODEL, "challenger") == deployed.version
    assert text.startswith(f"# {MODEL}: challenger v{deployed.version} vs champion v2: waiting")
    assert "too few labelled predictions yet: the challenger waits" in text
    assert f"| v{deployed.version} | " in text  # its validation holdout metrics beside the champion's


# --- a rejected version -------------------------------------------------------------------------------------
@pytest.mark.usefixtures("prefect_api")
def test_a_rejected_version_names_the_failing_segment_and_why(state_home: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The biased model of tests/flows/test_bias.py: its demographic parity across origins breaks the limit."""
    from flows.approve import approve
    from flows.register import register
    from flows.validate import validate

    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    path = config_dir / "models" / f"{MODEL}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["data"]["protected_attributes"] = ["origin"]
    raw["validation"]["fairness"] = {"limits": {"demographic_parity_difference": 0.2}}
    raw["training"]["entry_point"] = "tests.flows.biased_model:train_biased"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))

    version = register(model=MODEL).version
    verdict, run_id = run(validate, model=MODEL, version=version)
    assert not verdict.passed
    [fairness] = [r for r in rows_of(newest(f"validation-{MODEL}", run_id)) if r["gate"] == "fairness"]
    assert fairness["check"] == "demographic_parity_difference" and fairness["verdict"] == "fail"
    assert fairness["value"] > 0.5 and fairness["limit"] == 0.2 and fairness["detail"].startswith("attribute origin")
    summary = newest(f"validation-{MODEL}-summary", run_id).data
    assert "## Why it was rejected" in summary and "- fairness: demographic_parity_difference on origin" in summary
    assert approve(model=MODEL, version=version).status == "rejected"
    approval = newest(f"approval-{MODEL}").data
    assert approval.startswith(f"# {MODEL} v{version}: REJECTED") and "validation has not passed" in approval
