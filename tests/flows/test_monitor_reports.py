"""What the operator opens from the Prefect UI after monitoring bike-demand on real 2011 rentals: the history plot
inline in the monitor artifact, Evidently's report kept on the version's MLflow run and linked to the MLflow UI (in
the artifact and in the Slack alert), never a path on the server."""

from __future__ import annotations

import base64
import re
import shutil
import struct
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.slack_receiver import SlackReceiver, start_receiver

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "bike-demand"
MLFLOW_UI = "https://mlflow.example.org/tracking"  # as a reverse proxy publishes it
ALERT_BLOCK = "bike-demand-alerts"
IMAGE = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


@pytest.fixture(scope="module")
def receiver() -> Iterator[SlackReceiver]:
    found, server = start_receiver()
    yield found
    server.shutdown()


@pytest.fixture(scope="module")
def monitored(prefect_api: None, tmp_path_factory: pytest.TempPathFactory,
              receiver: SlackReceiver) -> Iterator[dict[str, Any]]:
    """bike-demand onboarded, then a spring window (no drift) and a summer window (drift breaches, alerting Slack)
    scored and monitored, with the MLflow UI's address set as behind a proxy."""
    from blocks.slack import SlackAlertChannel
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    base = tmp_path_factory.mktemp("monitor-reports")
    config_dir = base / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    path = config_dir / "models" / f"{MODEL}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["monitoring"]["on_breach"] = ["alert"]
    raw["monitoring"]["alerts"] = {"slack_block": ALERT_BLOCK, "cooldown_hours": 6}
    path.write_text(yaml.safe_dump(raw))
    SlackAlertChannel(bot_token="xoxb-test", channel="#ops", api_base_url=receiver.api_base_url).save(
        ALERT_BLOCK, overwrite=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(base / "state"))
        patch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
        patch.setenv("MODELOPS_MLFLOW_UI_URL", MLFLOW_UI + "/")
        platform, spec = get_platform(), load_spec(MODEL)
        version = onboard(MODEL)
        _, spring = serve_window(platform, spec, date(2011, 3, 16), date(2011, 3, 30))
        _, summer = serve_window(platform, spec, date(2011, 7, 1), date(2011, 7, 15))
        yield {"version": version, "spring": spring, "summer": summer, "home": base / "state",
               "platform": platform, "spec": spec}


def latest_artifact(key: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [artifact] = client.read_latest_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return artifact


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (its signature, then the IHDR chunk)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_the_monitor_artifact_shows_the_history_plot_inline(monitored: dict[str, Any]) -> None:
    markdown = latest_artifact(f"monitor-{MODEL}").data
    [encoded] = IMAGE.findall(markdown)
    png = base64.b64decode(encoded)
    width, height = png_size(png)
    assert 300 <= width <= 1200 and 200 <= height <= 1000
    assert 5_000 < len(png) < 100_000  # a few tens of KB


def test_the_monitor_artifact_names_no_server_path(monitored: dict[str, Any]) -> None:
    markdown = latest_artifact(f"monitor-{MODEL}").data
    assert monitored["summer"].report_path  # the report was written on the server...
    assert "file://" not in markdown and str(monitored["home"]) not in markdown  # ...and its path is not shown


def test_the_evidently_report_is_an_artifact_of_the_versions_training_run(monitored: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    platform, summer = monitored["platform"], monitored["summer"]
    run_id, artifact_path = summer.report_artifact.removeprefix("runs:/").split("/", 1)
    assert run_id == platform.catalog.version(MODEL, monitored["version"]).run_id
    assert artifact_path.startswith("monitoring/run-") and artifact_path.endswith(".html")
    page = platform.catalog.download_run_artifacts(run_id, artifact_path, tmp_path).read_text()
    assert page == Path(summer.report_path).read_text()
    assert "window.drawDashboard(" in page and "Drifted Columns" in page  # Evidently's own dashboard


def test_the_report_link_is_the_mlflow_ui_page_of_that_run_and_path(monitored: dict[str, Any]) -> None:
    platform, summer = monitored["platform"], monitored["summer"]
    run_id, artifact_path = summer.report_artifact.removeprefix("runs:/").split("/", 1)
    experiment = platform.catalog.client.get_run(run_id).info.experiment_id
    expected = f"{MLFLOW_UI}/#/experiments/{experiment}/runs/{run_id}/artifacts/{artifact_path}"
    assert summer.report_url == expected
    assert f"[open it in the MLflow UI]({expected})" in latest_artifact(f"monitor-{MODEL}").data


def test_the_breach_alert_links_the_report_in_the_mlflow_ui(monitored: dict[str, Any],
                                                             receiver: SlackReceiver) -> None:
    summer = monitored["summer"]
    assert summer.alerts_sent  # the summer window breached (drift repeats within its cool-down: not re-sent)
    sent = [str(m["blocks"]) for m in receiver.messages if "2011-07-01 .. 2011-07-15" in str(m["blocks"])]
    assert len(sent) == len(summer.alerts_sent)
    assert all(f"<{summer.report_url}|Evidently report>" in blocks and "file://" not in blocks for blocks in sent)


def test_the_compliance_report_draws_the_monitoring_history(monitored: dict[str, Any]) -> None:
    from modelops.compliance import compliance_report, to_html, to_markdown

    report = compliance_report(monitored["platform"], monitored["spec"])
    history = to_markdown(report).split("## Monitoring history")[1].split("## Open findings")[0]
    [encoded] = IMAGE.findall(history)
    png_size(base64.b64decode(encoded))
    assert f'src="data:image/png;base64,{encoded}"' in to_html(report)


def test_the_report_flow_publishes_the_plot(monitored: dict[str, Any]) -> None:
    from flows.report import report

    published = report(model=MODEL)
    assert len(IMAGE.findall(published.markdown)) == 1
    assert latest_artifact(f"compliance-{MODEL}").data == published.markdown
