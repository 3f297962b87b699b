"""Faults: a CLI stage killed with kill -9 leaves nothing behind (no orphan API server, no flow run or MLflow run
left RUNNING once the next command starts), and the state directory is its owner's only."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.e2e
SLOW = 300.0  # seconds: a loaded two-core machine trains, starts servers and migrates databases slowly
KillCli = Callable[[subprocess.Popen], None]


def _cli_env(home: Path) -> dict[str, str]:
    """A CLI of its own: its state directory, Prefect's home inside it, no Prefect API configured."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MODELOPS_TRACKING_URI", "MODELOPS_GOVERNANCE_URL")}
    env.update(MODELOPS_HOME=str(home), MODELOPS_CONFIG_DIR=str(ROOT / "configs"),
               PREFECT_HOME=str(home / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _start_cli(home: Path, *args: str) -> subprocess.Popen:
    log = (home.parent / f"cli-{args[0]}.log").open("ab")
    # The umask of a usual shell: the CLI must make its files private itself.
    return subprocess.Popen([sys.executable, "-m", "modelops.cli", *args], env=_cli_env(home), cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, umask=0o022)


def _run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelops.cli", *args], env={**_cli_env(home), **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=SLOW, umask=0o022)


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields from 3 on: state, ppid, ...


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead orphan stays in the table until init reaps it)."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _api_server_of(cli_pid: int) -> tuple[int, int] | None:
    """(pid, port) of the Prefect API server the CLI started as its child, whoever's code started it."""
    for entry in Path("/proc").iterdir():
        fields = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is None or fields[1] != str(cli_pid):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "--port" in argv and any("prefect" in a or "temporary_server" in a for a in argv):
            return int(entry.name), int(argv[argv.index("--port") + 1])
    return None


def _flow_runs(port: int, state: str) -> list[dict[str, Any]]:
    body = json.dumps({"flow_runs": {"state": {"type": {"any_": [state]}}}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/flow_runs/filter", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return []


@pytest.fixture
def kill_cli() -> Iterator[KillCli]:
    """kill -9 a CLI; at teardown, stop an API server that outlived it (only when the fault is back), so a failing
    run leaves no orphan either."""
    servers: list[int] = []

    def kill(cli: subprocess.Popen) -> None:
        server = _api_server_of(cli.pid)
        servers.extend([server[0]] if server else [])
        cli.send_signal(signal.SIGKILL)
        cli.wait()

    yield kill
    for pid in servers:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _read_only(path: Path) -> sqlite3.Connection:
    # Read-only: polling must not create or migrate a database the CLI is still setting up.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def _query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    try:
        with _read_only(path) as db:
            return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # no such table yet
        return []


def test_killed_stage_leaves_no_api_server_and_its_flow_run_crashes(tmp_path: Path, kill_cli: KillCli) -> None:
    home = tmp_path / "state"
    cli = _start_cli(home, "register", "flight-delay")
    try:
        server = wait_for(lambda: _api_server_of(cli.pid), timeout=SLOW, interval=0.2)
        assert server, "the CLI did not start a Prefect API server"
        running = wait_for(lambda: _flow_runs(server[1], "RUNNING"), timeout=SLOW, interval=0.2)
        assert running, "the register flow run never reached RUNNING"
    finally:
        kill_cli(cli)

    assert wait_for(lambda: not _running(server[0]), timeout=60, interval=0.2), \
        f"the API server (pid {server[0]}) outlived the CLI that started it"

    recovered = _run_cli(home, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert f"flow run {running[0]['name']!r} marked Crashed" in recovered.stderr
    states = _query(home / "prefect" / "prefect.db", "SELECT state_type FROM flow_run WHERE name = ?",
                    running[0]["name"])
    assert states == [("CRASHED",)]


def test_register_killed_while_logging_leaves_no_running_mlflow_run(tmp_path: Path, kill_cli: KillCli) -> None:
    from mlflow import MlflowClient

    home = tmp_path / "state"
    cli = _start_cli(home, "register", "flight-delay")
    running = "SELECT run_uuid FROM runs WHERE status = 'RUNNING'"
    try:
        open_runs = wait_for(lambda: _query(home / "mlflow.db", running), timeout=SLOW, interval=0.05)
        assert open_runs, "register never started its MLflow run"
    finally:
        kill_cli(cli)
    killed_run = open_runs[0][0]

    registered = _run_cli(home, "register", "flight-delay")  # the next start of a stage
    assert registered.returncode == 0, registered.stderr
    assert f"MLflow run {killed_run} marked KILLED" in registered.stderr
    # the registry URI too: otherwise it falls back to whatever tracking URI an earlier test made global
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_run(killed_run).info.status == "KILLED"
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  "attributes.status = 'RUNNING'")
    version = client.get_model_version("flight-delay", "1")
    assert version.run_id != killed_run and client.get_run(version.run_id).info.status == "FINISHED"


def _modes(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode) for path in [root, *root.rglob("*")]}


def test_a_state_directory_used_by_the_cli_is_its_owners_only(tmp_path: Path) -> None:
    home = tmp_path / "state"
    saved = _run_cli(home, "slack-block", "--channel", "#alerts", SLACK_BOT_TOKEN="xoxb-not-a-real-token")
    assert saved.returncode == 0, saved.stderr
    audit = _run_cli(home, "audit", "flight-delay")  # opens the governance store
    assert audit.returncode == 0, audit.stderr

    modes = _modes(home)
    for name in ("governance.db", "mlflow.db", "prefect/prefect.db"):
        assert modes[name] == 0o600, name
    assert modes["."] == 0o700 and modes["prefect"] == 0o700
    readable_by_others = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not readable_by_others
    # Prefect keeps the key of the saved token in that same database (README, Security): no key file elsewhere.
    assert _query(home / "prefect" / "prefect.db", "SELECT key FROM configuration WHERE key = 'ENCRYPTION_KEY'")


def test_an_older_readable_state_directory_is_tightened_on_start(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.settings import configure_environment, load_settings

    home, prefect_home = tmp_path / "state", tmp_path / "state" / "prefect"
    prefect_home.mkdir(parents=True)
    files = [home / "governance.db", home / "governance.db-wal", home / "mlflow.db", prefect_home / "prefect.db",
             prefect_home / "profiles.toml"]
    for path in files:
        path.write_bytes(b"")
        path.chmod(0o644)
    hook = home / "hook.sh"  # not a database: keeps its mode (the folder already keeps others out)
    hook.write_bytes(b"")
    hook.chmod(0o755)
    for folder in (home, prefect_home):
        folder.chmod(0o755)
    monkeypatch.setenv("MODELOPS_HOME", str(home))
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))

    configure_environment(load_settings())

    modes = _modes(home)
    assert {name: oct(mode) for name, mode in modes.items() if name != "hook.sh"} == {
        ".": "0o700", "prefect": "0o700", **{str(p.relative_to(home)): "0o600" for p in files}}
    assert modes["hook.sh"] == 0o755
