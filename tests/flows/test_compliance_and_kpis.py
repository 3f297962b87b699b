"""The compliance report of a model and the life cycle KPIs, over a real life cycle of bike-demand: onboarded,
monitored, retrained, a newer version deployed by hand and rolled back, monitored again."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
import yaml

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "bike-demand"
DESCRIPTION = 'Hourly rentals <script>alert("x")</script> & more | piped'


@pytest.fixture(scope="module")
def lifecycle(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.retrain import retrain
    from flows.validate import validate
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    base = tmp_path_factory.mktemp("governance")
    config_dir = base / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    path = config_dir / "models" / f"{MODEL}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["description"] = DESCRIPTION
    raw["data"]["protected_attributes"] = ["workingday"]
    raw["validation"]["fairness"] = {"limits": {"mae_gap": 1.0}}
    raw.setdefault("deploy", {})["promotion"] = "comparison_or_decision"  # the owner promotes by hand below
    path.write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(base / "state"))
        patch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
        platform, spec = get_platform(), load_spec(MODEL)
        first = onboard(MODEL)
        serve_window(platform, spec, date(2011, 4, 1), date(2011, 4, 15))
        retrained = retrain(model=MODEL)
        previous = retrained.champion_after
        newer = register(model=MODEL, train_start=date(2011, 1, 1), train_end=date(2011, 4, 1)).version
        assert validate(model=MODEL, version=newer).passed
        assert approve(model=MODEL, version=newer).status == "approved"
        deploy(model=MODEL, version=newer, role="champion", reason="the owner's decision")
        deploy(model=MODEL, version=previous, role="champion")  # rolled back
        _, monitored = serve_window(platform, spec, date(2011, 4, 15), date(2011, 4, 29))
        yield {"first": first, "challenger": retrained.challenger, "newer": newer, "champion": previous,
               "verdict": monitored.verdict, "home": str(base / "state")}


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    from modelops.cli import main

    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


# --- the compliance report ----------------------------------------------------------------------------------
def test_the_report_shows_the_model_card_evidence_and_history(lifecycle: dict[str, str],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    text = run_cli("report", MODEL, capsys=capsys)
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["Model card", "Data", "Versions and holdout metrics", "Fairness", "Approvals", "Deployments",
                        "Monitoring history", "Open findings"]
    assert "| owner | mobility-planning |" in text and "| risk tier | low |" in text
    assert r"& more \| piped" in text  # a pipe in a value does not break its table row
    assert f"| v{lifecycle['newer']} | apply-policy | approved | policy:approval |" in text
    assert "validation passed" in text.split("## Approvals")[1]
    assert "| workingday | mae_gap |" in text
    assert f"Serving now: v{lifecycle['champion']} as champion." in text
    history = text.split("## Monitoring history")[1].split("## Open findings")[0]
    assert "2 monitoring runs" in history and "2011-04-15..2011-04-29" in history


def test_the_html_report_escapes_what_people_wrote(lifecycle: dict[str, str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "card.html"
    assert "wrote the html compliance report" in run_cli("report", MODEL, "--output", str(out), capsys=capsys)
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h2>Approvals</h2>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page


def test_open_findings_name_an_overdue_revalidation(lifecycle: dict[str, str]) -> None:
    from modelops.compliance import compliance_report
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    later = datetime.now(timezone.utc) + timedelta(days=400)  # the spec's revalidate_days is 365
    [findings] = compliance_report(get_platform(), load_spec(MODEL), as_of=later).sections[-1].blocks
    assert any(f.startswith(f"OVERDUE: champion v{lifecycle['champion']} was due for revalidation")
               for f in findings)


def test_the_report_flow_publishes_the_markdown_artifact(lifecycle: dict[str, str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.report import report

    result = report(model=MODEL)
    with get_client(sync_client=True) as client:
        [artifact] = client.read_latest_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"compliance-{MODEL}"])))
    assert artifact.type == "markdown" and artifact.data == result.markdown
    assert "# Compliance report: bike-demand" in artifact.data


# --- the KPIs -----------------------------------------------------------------------------------------------
def test_kpis_count_lead_times_approvals_retrains_and_rollbacks(lifecycle: dict[str, str],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    kpis = json.loads(run_cli("kpis", "--json", capsys=capsys))
    served = {lifecycle["first"], lifecycle["newer"], lifecycle["champion"]}
    assert kpis["lead_time"]["count"] == len(served) and kpis["lead_time"]["median_hours"] > 0
    # v1, the challenger and the newer one were validated; each was decided, the challenger only if it won
    assert kpis["approval_wait"]["count"] >= 2
    month = f"{datetime.now(timezone.utc):%Y-%m}"
    assert kpis["per_month"] == {month: {"retrains": 1, "rollbacks": 1}}


def test_kpis_tell_whether_the_serving_champion_is_monitored_and_within_thresholds(
        lifecycle: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    kpis = json.loads(run_cli("kpis", "--json", capsys=capsys))
    [serving] = kpis["serving"]
    assert serving["version"] == lifecycle["champion"] and serving["monitored"] is True
    assert serving["verdict"] == lifecycle["verdict"]
    assert kpis["within_thresholds"] == (0 if lifecycle["verdict"] == "breach" else 1)
    assert kpis["monitored_share"] == 1.0 and kpis["past_revalidation"] == []


def test_kpis_name_models_past_their_revalidation_date(lifecycle: dict[str, str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    later = (datetime.now(timezone.utc) + timedelta(days=400)).isoformat()
    text = run_cli("kpis", "--as-of", later, capsys=capsys)
    row = next(line for line in text.splitlines() if line.startswith("past revalidation date"))
    assert row.split()[-3:] == ["1:", MODEL, f"v{lifecycle['champion']}"]
    assert "PAST" in text.split("Serving champions:")[1]


def test_the_kpis_flow_publishes_its_artifacts(lifecycle: dict[str, str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.kpis import kpis

    found = kpis()
    with get_client(sync_client=True) as client:
        artifacts = client.read_latest_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["modelops-kpis", "modelops-kpis-serving"])))
    by_key = {a.key: a for a in artifacts}
    assert "lead time registration -> serving" in by_key["modelops-kpis"].data
    assert json.loads(by_key["modelops-kpis-serving"].data)[0]["model"] == MODEL
    assert found["serving_models"] == 1
