"""What the CLI prints: each stage's outcome with its reasons and values, --json, a fresh verdict on --force, full
audit evidence, two clean lines for an error (its traceback in the log), and the server of `modelops up` reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from modelops.cli_output import breach_note, stage_text

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bike-demand"


# --- the summaries, on result data (fields a flow adds later show up when present) ----------------------------
def test_retrain_summary_lists_the_validation_failures() -> None:
    text = stage_text("retrain", {"model": "m", "champion_before": "1", "challenger": "2",
                                  "outcome": "failed-validation", "champion_after": "1",
                                  "failures": ["metric mae 4.1 > max 3.0", "fairness: gap 0.31 > 0.2"]})
    assert "retrain failed-validation" in text
    assert "- metric mae 4.1 > max 3.0" in text and "- fairness: gap 0.31 > 0.2" in text


def test_monitor_summary_shows_every_value_against_its_limit() -> None:
    text = stage_text("monitor", {"model": "m", "version": "3", "verdict": "breach", "rows": 40,
                                  "checks": {"service": "breach", "drift": "ok"},
                                  "values": [{"check": "service", "metric": "latency_p95_ms", "value": 2450.0,
                                              "limit": 2000.0, "verdict": "breach"}]})
    row = next(line for line in text.splitlines() if "latency_p95_ms" in line)
    assert row.split() == ["service", "latency_p95_ms", "2450", "2000", "breach"]
    assert "checks: service breach, drift ok" in text


def test_validate_summary_shows_fairness_per_attribute() -> None:
    text = stage_text("validate", {"model": "m", "version": "1", "passed": False, "failures": ["fairness: x"],
                                   "metrics": {"roc_auc": 0.71},
                                   "fairness": {"sex": {"demographic_parity_difference": {"value": 0.31, "limit": 0.2},
                                                        "equalized_odds_difference": {"value": None, "limit": 0.3,
                                                                                      "note": "1 group(s)"}}}})
    assert "sex: demographic_parity_difference=0.31 (limit 0.2) FAILED" in text
    assert "sex: equalized_odds_difference=- (limit 0.3) NOT COMPUTED (1 group(s))" in text


def test_validate_summary_reads_fairness_recorded_before_per_metric_limits() -> None:
    text = stage_text("validate", {"model": "m", "version": "1", "passed": True, "failures": [],
                                   "fairness": {"origin": {"metric": "demographic_parity_difference", "value": 0.07,
                                                           "limit": 0.2}}})
    assert "origin: demographic_parity_difference=0.07 (limit 0.2) ok" in text


def test_breach_note_names_the_ways_to_act_when_nothing_listens() -> None:
    note = breach_note("monitor", {"model": "flight-delay", "retrain_requested": True}, own_server=True)
    assert note is not None and "nothing is listening" in note
    assert "`modelops retrain flight-delay`" in note and "`modelops up`" in note


def test_breach_note_is_silent_when_a_server_acts_on_the_event() -> None:
    assert breach_note("monitor", {"model": "flight-delay", "retrain_requested": True}, own_server=False) is None


# --- against real Prefect and MLflow ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onboarded(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bike-demand v1 registered and validated once, in a state directory of this module."""
    from modelops.cli import main

    home = tmp_path_factory.mktemp("cli-output") / "state"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(home))
        assert main(["register", MODEL]) == 0
        assert main(["validate", MODEL, "--version", "1"]) == 0
        yield home


@pytest.mark.e2e
def test_validate_says_a_reused_verdict_is_reused_and_names_force(onboarded: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    capsys.readouterr()
    assert main(["validate", MODEL, "--version", "1"]) == 0
    out = capsys.readouterr().out
    assert "verdict of an earlier validation" in out
    assert f"modelops validate {MODEL} --version 1 --force" in out


@pytest.mark.e2e
def test_validate_force_gives_a_fresh_verdict(onboarded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main
    from modelops.platform import get_platform

    before = [e for e in get_platform().store.audit_trail(MODEL) if e.stage == "validate"]
    capsys.readouterr()
    assert main(["validate", MODEL, "--version", "1", "--force", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reused"] is False and result["version"] == "1"
    after = [e for e in get_platform().store.audit_trail(MODEL) if e.stage == "validate"]
    assert len(after) == len(before) + 1


@pytest.mark.e2e
def test_audit_shows_the_evidence_in_full(onboarded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main
    from modelops.platform import get_platform

    validation = next(e for e in get_platform().store.audit_trail(MODEL) if e.stage == "validate")
    capsys.readouterr()
    assert main(["audit", MODEL]) == 0
    text = capsys.readouterr().out
    # The run id is one of the last items of the evidence: before, it fell beyond the cut at 110 characters.
    assert validation.evidence["validation_run_id"] in text
    assert main(["audit", MODEL, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert next(e for e in entries if e["stage"] == "validate")["evidence"]["metrics"] == validation.evidence[
        "metrics"]


@pytest.mark.e2e
def test_status_json_gives_every_version(onboarded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    models = {m["model"]: m for m in json.loads(capsys.readouterr().out)}
    assert [v["version"] for v in models[MODEL]["versions"]] == ["1"]
    assert models[MODEL]["versions"][0]["validation"] == "passed"


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api")
def test_an_error_in_a_flow_prints_two_lines_and_logs_the_traceback(
        state_home: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    assert main(["approve", MODEL, "--version", "999"]) == 2
    err = capfd.readouterr().err
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith(("error:", "fix:"))] == ["error", "fix"]
    assert "Traceback" not in err and "Encountered exception" not in err and "Finished in state" not in err
    log = (state_home / "logs" / "cli.log").read_text()
    assert "Traceback" in log and "v999 has no governance record" in log


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api")
def test_debug_shows_the_traceback(state_home: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    assert main(["approve", MODEL, "--version", "999", "--debug"]) == 2
    err = capfd.readouterr().err
    assert "Traceback" in err and "error: " in err


def test_an_unexpected_error_names_the_log_with_its_traceback(state_home: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    state_home.mkdir(parents=True)
    (state_home / "governance.db").write_bytes(b"not a database, " * 256)  # a broken store is no input error
    assert main(["status"]) == 1
    err = [line for line in capfd.readouterr().err.splitlines() if line.startswith(("error:", "fix:"))]
    assert err[0].startswith("error: unexpected ") and str(state_home / "logs" / "cli.log") in err[1]
    assert "Traceback" in (state_home / "logs" / "cli.log").read_text()


@pytest.mark.e2e
def test_the_cli_uses_the_running_server_of_modelops_up(tmp_path: Path) -> None:
    """services.json names a running Prefect server: the CLI's flow run lands there, and no temporary server of
    its own is started (that one would write its own log, and keep its runs in another Prefect home)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from modelops.services.stack import Service, free_port, spawn, stop_services, wait_healthy
    from modelops.services.temporary_server import SERVER_MODULE

    home = tmp_path / "state"
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "server-prefect"), "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "server.log"
    server = spawn([sys.executable, "-m", SERVER_MODULE, "--owner-pid", str(os.getpid()), "--port", str(port)],
                   env, log)
    service = Service.of("prefect-server", server, f"http://127.0.0.1:{port}", str(log))
    try:
        wait_healthy(f"{service.url}/api/health", server, log, timeout=90)
        (home / "run").mkdir(parents=True)
        (home / "run" / "services.json").write_text(json.dumps([service.__dict__]))
        cli = subprocess.run([sys.executable, "-m", "modelops.cli", "approve", MODEL, "--version", "999"],
                             env={**env, "MODELOPS_HOME": str(home), "PREFECT_HOME": str(tmp_path / "cli-prefect")},
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert cli.returncode == 2, cli.stderr
        assert "Encountered exception" not in cli.stderr and "Traceback" not in cli.stderr
        with temporary_settings({PREFECT_API_URL: f"{service.url}/api"}):
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs()
        assert [(r.name != "", r.parameters.get("version")) for r in runs] == [(True, "999")]
        assert not (home / "logs" / "prefect-temporary-server.log").exists()
    finally:
        stop_services([service], grace_seconds=10)
