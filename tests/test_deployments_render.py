"""prefect.yaml is rendered from the specs; the stage runner serves the render of the configured config directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from modelops.generated import differences, generated_files
from modelops.services.deployments import render_prefect_yaml, runner_deployments
from modelops.spec import load_all_specs

ROOT = Path(__file__).resolve().parents[1]


def _config_dir_with_model(tmp_path: Path, name: str, cron: str) -> Path:
    """A config directory holding one spec: flight-delay's, renamed and with its own monitor cron."""
    models = tmp_path / "configs" / "models"
    models.mkdir(parents=True)
    raw = yaml.safe_load((ROOT / "configs" / "models" / "flight-delay.yaml").read_text())
    raw["name"], raw["monitoring"]["cron"] = name, cron
    (models / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return tmp_path / "configs"


def _monitor_crons(deployments: list) -> dict[str, str]:
    monitor = next(d for d in deployments if d.name == "monitor")
    return {s.parameters["model"]: s.schedule.cron for s in monitor.schedules}


def test_the_committed_prefect_yaml_is_the_render_of_the_specs() -> None:
    rendered = render_prefect_yaml(load_all_specs(ROOT / "configs"))
    assert (ROOT / "prefect.yaml").read_text() == rendered, "run `modelops deployments --write` and commit"


def test_the_render_keeps_the_comments_of_the_template() -> None:
    rendered = render_prefect_yaml(load_all_specs(ROOT / "configs"))
    assert "# Only breaches that ask for retraining carry this label" in rendered
    assert "# models/flight-delay.yaml: monitoring.cron" in rendered


def test_without_specs_the_monitor_deployment_has_no_schedules() -> None:
    monitor = next(d for d in yaml.safe_load(render_prefect_yaml([]))["deployments"] if d["name"] == "monitor")
    assert monitor["schedules"] == []


def test_a_model_in_the_configured_config_dir_is_scheduled_by_the_runner(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(_config_dir_with_model(tmp_path, "rain-alarm", "15 3 * * 1")))
    deployments = runner_deployments()
    assert [d.name for d in deployments] == ["register", "validate", "approve", "deploy", "score", "monitor", "sweep",
                                             "retrain", "retire", "report", "kpis"]
    assert _monitor_crons(deployments) == {"rain-alarm": "15 3 * * 1"}


def test_check_names_the_file_and_the_line_that_differ(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "flows", project / "flows")
    config_dir = _config_dir_with_model(tmp_path, "rain-alarm", "15 3 * * 1")
    files = generated_files(project, config_dir)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace('"15 3 * * 1"', '"0 6 * * *"'))
    messages = differences(files)
    assert len(messages) == 1
    assert "prefect.yaml differs" in messages[0]
    assert '-      - cron: "0 6 * * *"' in messages[0] and '+      - cron: "15 3 * * 1"' in messages[0]


def test_the_deployments_command_exits_1_when_prefect_yaml_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    project = tmp_path / "project"
    shutil.copytree(ROOT / "flows", project / "flows")
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(_config_dir_with_model(tmp_path, "rain-alarm", "15 3 * * 1")))
    monkeypatch.chdir(project)
    assert main(["deployments", "--write"]) == 0
    assert main(["deployments", "--check"]) == 0
    (project / "prefect.yaml").write_text((project / "prefect.yaml").read_text().replace("15 3", "16 3"))
    assert main(["deployments", "--check"]) == 1
    assert "prefect.yaml differs" in capsys.readouterr().err
