"""Where links to MLflow point: MODELOPS_MLFLOW_UI_URL, else the MLflow UI `modelops up` started (if it answers),
else no link but a sentence saying how to open the report."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from modelops.catalog import RunArtifact
from modelops.errors import ModelOpsError
from modelops.mlflow_ui import ENV_URL, mlflow_ui_url
from modelops.recovery import _start_ticks
from modelops.services.stack import Service, _cmdline, record_services
from modelops.settings import Settings
from tasks.report_artifacts import report_line

ARTIFACT = RunArtifact("3", "0123abcd", "monitoring/run-7/drift-20110701-20110715.html")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv(ENV_URL, raising=False)
    return Settings(home=tmp_path, config_dir=tmp_path, tracking_uri="sqlite://", governance_url="sqlite://",
                    project_dir=tmp_path)


@pytest.fixture
def health_server() -> Iterator[str]:
    """An HTTP server answering /health as MLflow's does."""
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def recorded_mlflow_ui(settings: Settings, url: str) -> Service:
    """This test's process recorded as the mlflow-ui service `up` started (its command line and start time)."""
    pid = os.getpid()
    service = Service("mlflow-ui", pid, url, "x", _cmdline(pid), _start_ticks(pid))
    record_services(settings, [service])
    return service


def test_the_configured_address_wins_and_names_the_artifact_page(settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_URL, "https://mlflow.example.org/tracking/")
    assert mlflow_ui_url(settings) == "https://mlflow.example.org/tracking"
    assert ARTIFACT.ui_page(mlflow_ui_url(settings) or "") == (
        "https://mlflow.example.org/tracking/#/experiments/3/runs/0123abcd/artifacts/"
        "monitoring/run-7/drift-20110701-20110715.html")


def test_a_configured_address_that_is_not_http_is_refused(settings: Settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_URL, "mlflow.example.org:5000")
    with pytest.raises(ModelOpsError, match=f"{ENV_URL}=.* is not an http\\(s\\) address"):
        mlflow_ui_url(settings)


def test_the_mlflow_ui_up_started_is_used_while_it_answers(settings: Settings, health_server: str) -> None:
    recorded_mlflow_ui(settings, health_server)
    assert mlflow_ui_url(settings) == health_server


def test_a_recorded_mlflow_ui_that_does_not_answer_gives_no_address(settings: Settings, health_server: str) -> None:
    recorded_mlflow_ui(settings, health_server + "/gone")  # answers 404 where /health should be
    assert mlflow_ui_url(settings) is None


def test_a_recorded_mlflow_ui_that_is_not_ours_gives_no_address(settings: Settings, health_server: str) -> None:
    service = recorded_mlflow_ui(settings, health_server)
    record_services(settings, [replace(service, started="1")])  # the pid now belongs to another process start
    assert mlflow_ui_url(settings) is None


def test_without_an_mlflow_ui_the_line_says_how_to_open_the_report() -> None:
    line = report_line(ARTIFACT, None) or ""
    assert "`modelops up`" in line and ENV_URL in line and ARTIFACT.path in line and "file://" not in line


def test_with_an_mlflow_ui_the_line_links_the_report_page() -> None:
    assert report_line(ARTIFACT, "http://x/#/a") == "Evidently report: [open it in the MLflow UI](http://x/#/a)"


def test_an_mlflow_ui_address_with_a_password_is_refused_before_it_reaches_an_artifact(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_URL, "https://admin:s3cret@mlflow.example.org")
    with pytest.raises(ModelOpsError, match="user name or password") as refused:
        mlflow_ui_url(settings)
    assert "s3cret" not in str(refused.value)


def test_a_bracket_in_the_mlflow_ui_address_does_not_end_the_report_link_early() -> None:
    line = report_line(ARTIFACT, "https://ops.example.org/mlflow(eu)/#/a")
    assert line == "Evidently report: [open it in the MLflow UI](https://ops.example.org/mlflow%28eu%29/#/a)"
