"""The stage service on a live stack: `modelops up` (Prefect server, stage runner, stage service; no MLflow UI) on a
free loopback port and a temporary state directory. Stage commands of the CLI go through the service: the CLI
process imports neither Prefect nor MLflow, the flow run (with its task runs) is owned by the service's child, and
errors come back as the CLI prints them."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("prefect", "mlflow", "pandas", "sklearn")


class Stack:
    def __init__(self, home: Path, api_url: str, service_pid: int) -> None:
        from modelops.services.stage_service import Endpoint

        self.home = home
        self.api_url = api_url
        self.service_pid = service_pid
        self.endpoint = Endpoint(home / "run" / "stages.sock", service_pid)

    def settings(self) -> Any:
        """This state directory's settings as a CLI with this test's environment loads them."""
        from modelops.settings import load_settings

        saved = os.environ.get("MODELOPS_HOME")
        os.environ["MODELOPS_HOME"] = str(self.home)
        try:
            return load_settings()
        finally:
            if saved is None:
                os.environ.pop("MODELOPS_HOME", None)
            else:
                os.environ["MODELOPS_HOME"] = saved

    def connect(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(60)
        conn.connect(str(self.endpoint.path))
        return conn

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`modelops <args>` in a fresh process, as a person types it, reporting every module it imports."""
        env = {**os.environ, "MODELOPS_HOME": str(self.home), "PYTHONPATH": str(ROOT)}
        env.pop("PREFECT_API_URL", None)
        return subprocess.run([sys.executable, "-X", "importtime", "-m", "modelops.cli", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)

    def flow_runs(self, name: str) -> list[Any]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name])))

    def task_runs(self, flow_run_id: Any) -> list[Any]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def imported(result: subprocess.CompletedProcess[str]) -> set[str]:
    """Top-level packages a `-X importtime` run imported."""
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def message_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if not line.startswith("import time:")]


def owner_pid(flow_run: Any) -> int:
    from modelops.recovery import Owner

    owner = Owner.from_flow_run_tags(flow_run.tags)
    assert owner is not None, flow_run.tags
    return owner.pid


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from modelops.services.stack import down, free_port, up
    from modelops.settings import load_settings

    home = tmp_path_factory.mktemp("svc") / "state"
    saved = os.environ.get("MODELOPS_HOME")
    os.environ["MODELOPS_HOME"] = str(home)
    settings = load_settings()
    try:
        services = {s.name: s for s in up(settings, prefect_port=free_port(), with_mlflow=False, gateway_port=None,
                                                  with_streaming=False)}
        live = Stack(home, services["stage-runner"].url, services["stage-service"].pid)
        for command in (("register", "flight-delay"), ("validate", "flight-delay", "--version", "1")):
            done = live.cli(*command)
            assert done.returncode == 0, message_lines(done)
        yield live
    finally:
        stopped = down(settings)
        if saved is None:
            os.environ.pop("MODELOPS_HOME", None)
        else:
            os.environ["MODELOPS_HOME"] = saved
    assert "stage-service" in stopped
    assert not (home / "run" / "stages.sock").exists()


def test_approve_runs_in_the_stage_service_as_a_prefect_flow_run_with_task_runs(stack: Stack) -> None:
    before = {run.id for run in stack.flow_runs("approve")}
    result = stack.cli("approve", "flight-delay", "--version", "1")
    assert result.returncode == 0, message_lines(result)
    assert result.stdout.startswith("flight-delay v1: approved")
    assert not imported(result) & set(HEAVY)  # the CLI only talked to the service
    # The stack's own trigger may also approve v1 (its validated event): that run comes from the deployment.
    new = [run for run in stack.flow_runs("approve") if run.id not in before and run.deployment_id is None]
    assert len(new) == 1 and new[0].state.is_completed()
    # Owned by the service's child (so a killed child's run is recovered), which the service logged.
    child = owner_pid(new[0])
    assert child not in (stack.service_pid, os.getpid())
    assert f"approve (pid {child}): ok" in (stack.home / "logs" / "stage-service.log").read_text()
    task_names = {run.name.rsplit("-", 1)[0] for run in stack.task_runs(new[0].id)}
    assert task_names and all(run.state.is_completed() for run in stack.task_runs(new[0].id)), task_names


def test_a_modelops_error_in_the_service_comes_back_as_error_and_fix_lines_with_exit_code_2(stack: Stack) -> None:
    result = stack.cli("approve", "flight-delay", "--version", "99")
    assert result.returncode == 2
    assert not imported(result) & set(HEAVY)
    lines = message_lines(result)
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: flight-delay v99 has no governance record")
    assert lines[1].startswith("fix:   register versions through the platform")


def test_the_socket_is_owner_only_in_an_owner_only_folder(stack: Stack) -> None:
    path = stack.home / "run" / "stages.sock"
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_request_for_anything_but_a_stage_command_is_refused(stack: Stack) -> None:
    from modelops.services.stage_service import _exchange

    answer = _exchange(stack.endpoint, {"op": "run", "stage": "rm", "params": {}}, timeout=30)
    assert answer["ok"] is False and answer["code"] == 2
    assert answer["what"] == "'rm' is not a stage command"
    assert "approve" in answer["fix"]


def answer_lines(stack: Stack, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every line the service sends for a raw request, until it closes the connection."""
    with stack.connect() as conn:
        conn.sendall(json.dumps(request).encode() + b"\n")
        with conn.makefile("rb") as answer:
            return [json.loads(line) for line in answer]


def test_a_run_that_asks_for_progress_gets_its_steps_before_the_answer(stack: Stack) -> None:
    from modelops.services.stage_service import run_stage
    from tasks.progress import Step

    lines = answer_lines(stack, {"op": "run", "stage": "sweep", "params": {}, "progress": True})
    assert lines[-1]["ok"] is True and all(set(line) == {"progress"} for line in lines[:-1])
    steps = [Step.from_data(line["progress"]) for line in lines[:-1]]
    models = lines[-1]["result"]["models"]
    assert [step.done for step in steps if step.key == "sweep"] == list(range(models + 1)) + [models]
    # the client's side: the same steps through its listener, the answer as before
    heard: list[Step] = []
    answer = run_stage(stack.endpoint, "sweep", {}, heard.append)
    assert answer["ok"] is True and [step.done for step in heard] == [step.done for step in steps]


def test_a_cli_on_a_terminal_draws_the_services_progress_and_prints_the_result_alone(stack: Stack) -> None:
    from tests.terminal import ANSI, run_on_terminal, terminal_env

    env = terminal_env(MODELOPS_HOME=str(stack.home))
    env.pop("PREFECT_API_URL", None)
    code, terminal, stdout = run_on_terminal(["sweep"], env, terminal="stderr")
    shown = ANSI.sub(b"", terminal).decode()
    assert code == 0, shown[-2000:]
    swept = stdout.decode()
    models = int(swept.split(" of ", 1)[1].split(" ", 1)[0])  # "sweep: J of N models judged; ..."
    assert f"{models}/{models} models" in shown and "sweeping" in shown
    assert swept.startswith("sweep: ") and "\x1b" not in swept and f"/{models}" not in swept


def test_a_run_that_does_not_ask_for_progress_gets_its_answer_alone(stack: Stack) -> None:
    [answer] = answer_lines(stack, {"op": "run", "stage": "sweep", "params": {}})
    assert answer["ok"] is True and answer["result"]["models"] >= 3


def interruptible_as_from_a_terminal() -> None:
    """In the CLI's process before it starts: Ctrl-C at its default and not blocked, as a terminal starts a command.
    Both survive exec, and this test run may have inherited SIGINT ignored (a shell without job control ignores it
    in what it starts in the background): the CLI would then never see its Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextmanager
def register_running_in_the_service(stack: Stack, train_end: str) -> Iterator[tuple[subprocess.Popen[str], Any]]:
    """A `modelops register` CLI whose flow run is running in the service's child: (the CLI, the flow run). The CLI
    is killed on the way out if the test left it running."""
    env = {**os.environ, "MODELOPS_HOME": str(stack.home), "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    before = {run.id for run in stack.flow_runs("register")}
    cli = subprocess.Popen([sys.executable, "-m", "modelops.cli", "register", "flight-delay", "--train-end",
                            train_end], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=interruptible_as_from_a_terminal)
    try:
        running = wait_for(lambda: [r for r in stack.flow_runs("register")
                                    if r.id not in before and r.state.is_running()], timeout=120, interval=0.1)
        assert running, "the register flow run never started"
        yield cli, running[0]
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_a_killed_child_gets_a_clear_error_and_its_flow_run_is_marked_crashed(stack: Stack) -> None:
    with register_running_in_the_service(stack, "2013-02-20") as (cli, run):
        child = owner_pid(run)
        os.kill(child, signal.SIGKILL)
        _, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 1
    assert f"error: the stage service's worker for `register` (pid {child}) was killed by signal 9" in stderr
    crashed = wait_for(lambda: [r for r in stack.flow_runs("register")
                                if r.id == run.id and r.state.is_crashed()], timeout=60)
    assert crashed, "the killed child's flow run was not recovered"


# --- the CLI's settings -----------------------------------------------------------------------------------------
def test_a_cli_with_the_stacks_settings_uses_the_service(stack: Stack) -> None:
    from modelops.services.stage_service import running_socket

    assert running_socket(stack.settings()) == stack.endpoint


@pytest.mark.parametrize("variable", ["MODELOPS_OUTPUT_ROOT", "MODELOPS_CONFIG_DIR", "MODELOPS_GOVERNANCE_URL",
                                      "MODELOPS_TRACKING_URI", "MODELOPS_PROJECT_DIR"])
def test_a_cli_configured_otherwise_than_the_stack_runs_the_stage_itself(stack: Stack, variable: str,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.services.stage_service import running_socket

    value = f"sqlite:///{tmp_path / 'other.db'}" if variable.endswith(("_URL", "_URI")) else str(tmp_path)
    monkeypatch.setenv(variable, value)
    assert running_socket(stack.settings()) is None


def test_a_relative_output_path_stays_relative_to_the_output_root(tmp_path: Path) -> None:
    from modelops.services.stage_service import stage_parameters

    sent = stage_parameters({"output_path": "daily/scores.parquet", "input_path": "batch.csv"}, tmp_path)
    assert sent == {"output_path": "daily/scores.parquet", "input_path": str(tmp_path / "batch.csv")}


# --- one client cannot hold the service -----------------------------------------------------------------------
def test_a_client_that_never_reads_a_large_error_answer_does_not_stop_the_service_answering(stack: Stack) -> None:
    from modelops.services.stage_service import MAX_ECHO, _exchange

    hog = stack.connect()
    try:
        # A 32,000-character stage name: echoed in full and JSON-escaped it would overflow the socket's buffer.
        hog.sendall(json.dumps({"op": "run", "stage": "é" * 32000}, ensure_ascii=False).encode() + b"\n")
        assert _exchange(stack.endpoint, {"op": "ping"}, timeout=60)["ok"] is True
        with hog.makefile("rb") as stream:
            answer = json.loads(stream.readline())
    finally:
        hog.close()
    assert answer["ok"] is False and len(answer["what"]) < 2 * MAX_ECHO
    assert answer["what"].startswith("'éé") and answer["what"].endswith(" characters)")  # cut, saying so


def test_a_client_trickling_its_request_is_cut_off_at_the_read_deadline(stack: Stack) -> None:
    from modelops.services.stage_service import _exchange

    hog = stack.connect()
    stop = threading.Event()
    cut_off: list[BaseException] = []

    def trickle() -> None:
        hog.sendall(b"{")
        try:
            while not stop.wait(0.5):  # a byte well within any per-read timeout, for as long as it is accepted
                hog.sendall(b" ")
        except OSError as exc:
            cut_off.append(exc)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        answer = _exchange(stack.endpoint, {"op": "ping"}, timeout=60)
        with hog.makefile("rb") as stream:
            refusal = json.loads(stream.readline())
        assert wait_for(lambda: cut_off, timeout=60), "the service kept reading the trickling request"
    finally:
        stop.set()
        sender.join()
        hog.close()
    assert answer["ok"] is True
    assert refusal["what"] == "the request did not arrive within 5 s"


# --- the CLI talks only to the service `up` started ---------------------------------------------------------------
def test_a_listener_that_is_not_the_recorded_service_gets_no_request(stack: Stack, tmp_path: Path) -> None:
    from modelops.errors import ModelOpsError
    from modelops.services.stage_service import Endpoint, _exchange

    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    impostor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    impostor.bind(str(run / "stages.sock"))
    impostor.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = impostor.accept()
        with conn:
            conn.settimeout(60)
            received.append(conn.recv(1 << 16))  # b"" once the client hung up without sending

    listener = threading.Thread(target=serve)
    listener.start()
    try:
        with pytest.raises(ModelOpsError, match=rf"\(pid {os.getpid()}, .*is not the stage service .*\(pid "
                                                rf"{stack.service_pid}\)"):
            _exchange(Endpoint(run / "stages.sock", stack.service_pid), {"op": "run", "stage": "approve",
                                                                        "params": {}}, timeout=30)
        listener.join(timeout=60)
    finally:
        impostor.close()
    assert received == [b""]


def test_the_service_is_not_used_while_its_run_folder_is_writable_by_others(stack: Stack) -> None:
    from modelops.errors import ModelOpsError
    from modelops.services.stage_service import running_socket

    run = stack.home / "run"
    run.chmod(0o733)
    try:
        with pytest.raises(ModelOpsError, match="is writable by other users"):
            running_socket(stack.settings())
    finally:
        run.chmod(0o700)


def test_a_state_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    from modelops.errors import ModelOpsError
    from modelops.settings import Settings, configure_environment

    home = tmp_path / "shared"
    home.mkdir()
    home.chmod(0o777)
    settings = Settings(home=home, config_dir=tmp_path, tracking_uri="sqlite://", governance_url="sqlite://",
                        project_dir=tmp_path)
    with pytest.raises(ModelOpsError) as refused:
        configure_environment(settings)
    assert refused.value.what == f"the state directory {home} is writable by other users (mode 777)"
    assert f"chmod go-w {home}" in refused.value.fix


# --- a client that goes away --------------------------------------------------------------------------------------
def test_ctrl_c_in_the_cli_interrupts_the_stage_in_the_service(stack: Stack) -> None:
    with register_running_in_the_service(stack, "2013-02-21") as (cli, run):
        child = owner_pid(run)
        # The child is held still while the Ctrl-C travels (CLI, socket, the child's watch): a register that finishes
        # on a loaded machine before the interrupt reaches it would prove nothing.
        os.kill(child, signal.SIGSTOP)
        try:
            [still] = [r for r in stack.flow_runs("register") if r.id == run.id]
            assert still.state.is_running(), f"the register run ended ({still.state.name}) before it was held"
            cli.send_signal(signal.SIGINT)
            # The CLI leaves on its own, the child still held (a CLI that waited for its child would fail here); the
            # child then finds its client gone as soon as it moves again.
            try:
                cli.wait(timeout=120)
            except subprocess.TimeoutExpired:
                signals = [line for line in Path(f"/proc/{cli.pid}/status").read_text().splitlines()
                           if line.startswith(("State", "SigIgn", "SigBlk", "SigCgt"))]
                pytest.fail(f"the CLI (pid {cli.pid}) did not leave within 120 s of its Ctrl-C ({signals})")
        finally:
            os.kill(child, signal.SIGCONT)
        _, stderr = cli.communicate(timeout=120)
        assert cli.returncode != 0 and "KeyboardInterrupt" in stderr, (cli.returncode, stderr)
        ended = wait_for(lambda: [r for r in stack.flow_runs("register") if r.id == run.id
                                  and r.state.is_final()], timeout=120)
    assert ended and not ended[0].state.is_completed(), ended
    log = stack.home / "logs" / "stage-service.log"
    assert wait_for(lambda: f"register (pid {child}): interrupted" in log.read_text(), timeout=60)
