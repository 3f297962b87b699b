"""The stage service: stage commands in a fraction of a second's overhead while `modelops up` runs.

A CLI process spends seconds importing Prefect, MLflow, pandas and the flows before a stage starts. This service
imports them once and then forks a child per request (a "zygote"): the child inherits the warm imports, runs the
requested stage flow in-process against the stack's Prefect server exactly as the CLI would (same flow, same
parameters, its flow runs named after the child as their owner) and answers with the result or the error as one
line of JSON. The parent opens no database connection and starts no Python thread, so every fork starts clean:
its one native thread is pyarrow's jemalloc background thread, and jemalloc's own atfork handlers leave its
allocator consistent in the child; there are no Python threads, locks held across the fork or open database
connections to inherit. It reaps its children and, when one dies without answering, answers for it and closes the
runs it left open. A child whose client goes away (Ctrl-C) interrupts its stage, as Ctrl-C does in a CLI process.

The socket lives in the owner-only state directory and is owner-only itself (and checks its peer's uid): anyone
who can reach it runs stages as the platform's owner. Never a TCP port. The CLI checks the other way round too:
the socket and its folder must be its own, and the process answering must be the one `modelops up` recorded.
The parent never waits long on one client: a request must arrive whole within READ_TIMEOUT_SECONDS, its answers
are short and sent with a timeout.

This module's top level stays light: the CLI imports it to talk to the service without importing Prefect.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.errors import ModelOpsError
from tasks.progress import Listener, Step, reporting_to

if TYPE_CHECKING:
    from modelops.settings import Settings

SERVICE_NAME = "stage-service"
# The CLI's stage commands: the only requests the service runs.
STAGE_COMMANDS = ("register", "validate", "approve", "deploy", "score", "monitor", "retrain", "retire", "sweep")
# Parameters naming local files: a CLI resolves them against its own working directory before sending. Not
# output_path: a relative one is relative to the output root, which the service shares with the CLI.
PATH_PARAMETERS = ("input_path",)
# Imported once in the service, inherited by every child.
WARM_MODULES = ("prefect", "prefect.client.orchestration", "prefect.logging.handlers", "mlflow", "mlflow.sklearn",
                "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
                "sqlalchemy", "alembic.command", "alembic.config", "anyio._backends._asyncio", "pandas", "sklearn", "skops.io", "modelops.platform", "modelops.recovery",
                "modelops.cli", "modelops.cli_output", *(f"flows.{stage}" for stage in STAGE_COMMANDS))
# Packages whose every module is imported too: per-model flows and the demo's training code, which specs name.
WARM_PACKAGES = ("flows.models", "examples")
MAX_REQUEST_BYTES = 64 * 1024
PROGRESS_KEY = "progress"  # a request asking for its run's steps; each step line of the answer
# A Unix socket's path must fit in sockaddr_un.sun_path (108 bytes on Linux, with its terminating NUL).
MAX_SOCKET_PATH = 107
# The whole request must arrive within this (the CLI sends it at once): a stalled client cannot hold the parent.
READ_TIMEOUT_SECONDS = 5.0
# The parent's answers are short; a client that does not read them is given up on after this.
SEND_TIMEOUT_SECONDS = 5.0
# Strings of a request echoed in an error (a stage name, unknown keys) and an error's what/fix are cut to this.
MAX_ECHO = 1024
POLL_SECONDS = 0.2


def socket_path(settings: Settings) -> Path:
    return settings.home / "run" / "stages.sock"


def log_path(settings: Settings) -> Path:
    return settings.home / "logs" / f"{SERVICE_NAME}.log"


# --- the CLI's side -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """The service's socket and the pid `modelops up` recorded for it: only that process may answer there."""
    path: Path
    pid: int


def effective_settings(settings: Settings) -> dict[str, str]:
    """What a stage run depends on besides its parameters: the service answers a ping with its own, and a CLI whose
    settings differ runs the stage itself."""
    values = {field.name: str(getattr(settings, field.name)) for field in fields(settings)}
    return {**values, "outputs_dir": str(settings.outputs_dir)}


def _peer(conn: socket.socket) -> tuple[int, int] | None:
    """The pid and uid of the process at the other end (on the client's side: the one that listens)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid


def _connect(endpoint: Endpoint, timeout: float | None) -> socket.socket:
    """A connection to the service, refused unless the socket and its folder are this user's alone and the process
    listening is the one `up` started: whoever could plant a socket would otherwise read the request and forge the
    answer."""
    from modelops.settings import private_to_us

    path = endpoint.path
    private_to_us(path.parent, "the stage service's folder")
    status = path.lstat()
    if not stat.S_ISSOCK(status.st_mode) or status.st_uid != os.geteuid():
        raise ModelOpsError(f"{path} is not a socket of this user's", f"`modelops down`, remove {path}, `modelops up`")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        conn.connect(str(path))
        peer = _peer(conn)
        if peer is not None and peer != (endpoint.pid, os.geteuid()):
            raise ModelOpsError(f"the process listening on {path} (pid {peer[0]}, uid {peer[1]}) is not the stage "
                                f"service `modelops up` started (pid {endpoint.pid})",
                                f"`modelops down`, find out who started pid {peer[0]}, then `modelops up`")
    except BaseException:
        conn.close()
        raise
    return conn


def _exchange(endpoint: Endpoint, request: dict[str, Any], timeout: float | None,
              on_progress: Listener | None = None) -> dict[str, Any]:
    """Send the request; the answer is its last line, after the progress lines of a run that asked for them."""
    with _connect(endpoint, timeout) as conn:
        conn.sendall(json.dumps(request).encode() + b"\n")
        with conn.makefile("rb") as answer:
            while True:
                line = answer.readline()
                if not line:
                    raise ConnectionError("the stage service closed the connection without an answer")
                decoded = dict(json.loads(line))
                if PROGRESS_KEY not in decoded:
                    return decoded
                if on_progress is not None:
                    on_progress(Step.from_data(decoded[PROGRESS_KEY]))


def ping(endpoint: Endpoint, timeout: float = 2.0) -> dict[str, Any] | None:
    """The service's answer to a ping ({"ok": true, "pid", "settings"}), or None when it does not answer now."""
    try:
        answer = _exchange(endpoint, {"op": "ping"}, timeout)
    except (OSError, ValueError):
        return None
    return answer if answer.get("ok") else None


def answers_ping(path: Path, pid: int, timeout: float = 2.0) -> bool:
    return ping(Endpoint(path, pid), timeout) is not None


def running_socket(settings: Settings) -> Endpoint | None:
    """The stage service `modelops up` started for this state directory, when it is still ours, serves the Prefect
    API this process would use, runs stages with the same settings (state directory, configs, catalog, store,
    project, output root) and answers now; else None (the CLI runs the stage itself)."""
    from modelops.services.stack import _ours, running_services

    services = {s.name: s for s in running_services(settings)}
    # The stack's Prefect API: its server's, whether a runner or workers (`up --workers`) execute the stages.
    service, server = services.get(SERVICE_NAME), services.get("prefect-server")
    if service is None or server is None or not _ours(service):
        return None
    configured = os.environ.get("PREFECT_API_URL")
    if configured and configured.rstrip("/") != f"{server.url}/api":
        return None  # this process was pointed at another Prefect API: run there, not through the stack
    endpoint = Endpoint(socket_path(settings), service.pid)
    answer = ping(endpoint)
    if answer is None or answer.get("settings") != effective_settings(settings):
        return None  # not answering, or configured otherwise than this process: run here, as configured here
    return endpoint


def stage_parameters(params: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """The parameters as the service must see them: local paths made absolute (its working directory differs)."""
    resolved = dict(params)
    for key in PATH_PARAMETERS:
        if isinstance(resolved.get(key), str):
            resolved[key] = os.path.abspath(cwd / resolved[key])
    uri = resolved.get("model_uri")
    if isinstance(uri, str) and ":" not in uri:  # a plain local path, not runs:/ models:/ file:// ...
        resolved["model_uri"] = os.path.abspath(cwd / uri)
    return resolved


def run_stage(endpoint: Endpoint, stage: str, params: dict[str, Any],
              on_progress: Listener | None = None) -> dict[str, Any]:
    """Ask the service to run one stage; its answer: {"ok": true, "result": ...} or {"ok": false, "what", "fix",
    "code", "type", "traceback"}. With `on_progress`, the run's steps (tasks.progress) reach it as they happen."""
    from modelops.platform import current_actor

    # The actor as this process sees it (MODELOPS_USER included): the service's child acts as it.
    request = {"op": "run", "stage": stage, "params": params, "actor": current_actor()}
    if on_progress is not None:
        request[PROGRESS_KEY] = True
    try:
        return _exchange(endpoint, request, timeout=None, on_progress=on_progress)
    except (OSError, ValueError) as exc:
        raise ModelOpsError(f"the stage service at {endpoint.path} failed to answer ({exc})",
                            "read its log (<state home>/logs/stage-service.log); `modelops down` then `modelops up` "
                            "restarts it, and without it the CLI runs stages itself") from exc


# --- requests -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageRequest:
    stage: str
    params: dict[str, Any]
    actor: str | None
    progress: bool = False  # send the run's steps as {"progress": {...}} lines before the answer


def checked_request(raw: Any) -> StageRequest:
    """A request the service runs: a known stage command, parameters of its flow with plain values that pass the
    flow's own validation, and nothing else."""
    from inspect import signature

    from modelops.cli import stage_flow

    if not isinstance(raw, dict) or raw.get("op") != "run":
        raise ModelOpsError("the request is not a stage request", 'send {"op": "run", "stage": ..., "params": {...}}')
    unknown_keys = sorted(set(raw) - {"op", "stage", "params", "actor", PROGRESS_KEY})
    if unknown_keys:
        raise ModelOpsError(f"the request has unknown fields: {', '.join(unknown_keys)}",
                            f"send only op, stage, params, actor and {PROGRESS_KEY}")
    stage, params, actor = raw.get("stage"), raw.get("params", {}), raw.get("actor")
    if stage not in STAGE_COMMANDS:
        raise ModelOpsError(f"{stage!r} is not a stage command", f"use one of: {', '.join(STAGE_COMMANDS)}")
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise ModelOpsError("the request's params are not an object of named parameters",
                            f"send the parameters of `modelops {stage}` by name")
    if actor is not None and not isinstance(actor, str):
        raise ModelOpsError("the request's actor is not a string", "send modelops.platform.current_actor() or null")
    flow = stage_flow(stage)
    allowed = set(signature(flow.fn).parameters)
    strangers = sorted(set(params) - allowed)
    if strangers:
        raise ModelOpsError(f"{stage} has no parameter {', '.join(strangers)}",
                            f"see `modelops {stage} --help` (parameters: {', '.join(sorted(allowed))})")
    # Plain values only: the flow's validation would resolve a {"$ref": ...} block reference over the API, which
    # must not happen in the parent (no connections, no threads before a fork).
    odd = sorted(k for k, v in params.items() if not isinstance(v, (str, int, float, bool)))
    if odd:
        raise ModelOpsError(f"parameters {', '.join(odd)} of {stage} are not plain values",
                            "send strings, numbers or booleans, as the CLI does")
    flow.validate_parameters(params)
    return StageRequest(stage=stage, params=params, actor=actor, progress=raw.get(PROGRESS_KEY) is True)


def clip(text: str, limit: int = MAX_ECHO) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def error_answer(exc: BaseException, stage: str, settings: Settings,
                 traceback_limit: int | None = None) -> dict[str, Any]:
    """The error as the CLI reports it (modelops.cli.error_summary), with the traceback logged and sent along (its
    last `traceback_limit` characters: the parent keeps its answers short)."""
    import traceback

    from modelops.cli import error_summary, log_exception

    log = log_exception(settings, [f"({SERVICE_NAME})", clip(stage)], exc)
    what, fix, code = error_summary(exc, stage, log)
    trace = "".join(traceback.format_exception(exc))
    if traceback_limit is not None and len(trace) > traceback_limit:
        trace = f"...\n{trace[-traceback_limit:]}"
    return {"ok": False, "what": clip(what), "fix": clip(fix), "code": code, "type": type(exc).__name__,
            "traceback": trace}


# --- the service ----------------------------------------------------------------------------------------------
def warm_imports() -> None:
    import importlib
    import pkgutil

    for module in WARM_MODULES:
        importlib.import_module(module)
    for name in WARM_PACKAGES:
        package = importlib.import_module(name)
        for found in pkgutil.iter_modules(package.__path__, f"{name}."):
            importlib.import_module(found.name)


def project_modules(project: Path) -> list[str]:
    """The files of the project's modules this process imported."""
    files = (getattr(module, "__file__", None) for module in list(sys.modules.values()))
    return sorted(f for f in files if f and Path(f).is_relative_to(project))


def code_stamp(files: list[str]) -> dict[str, int]:
    """Their modification times: children run the code imported at start, so a change to any of them means the
    service must restart to run what the files now say."""
    stamp = {}
    for file in files:
        try:
            stamp[file] = os.stat(file).st_mtime_ns
        except OSError:
            stamp[file] = -1
    return stamp


class CodeChanged(Exception):
    """A module the service imported at start changed on disk."""


@dataclass
class Child:
    """A forked child: a stage run answering on `conn`, or (no request) a recovery of runs left open."""
    conn: socket.socket | None = None
    request: StageRequest | None = None


def progress_sender(conn: socket.socket) -> Listener:
    """In a child: each step of the run as a line to the client, before its answer. Steps come from the flow's
    threads (submitted tasks) and are sent whole, one at a time."""
    lock = threading.Lock()

    def send(step: Step) -> None:
        with lock:
            _send(conn, {PROGRESS_KEY: step.as_data()}, timeout=None)

    return send


def _send(conn: socket.socket, answer: dict[str, Any], timeout: float | None = SEND_TIMEOUT_SECONDS) -> None:
    """Answer; the parent with a timeout (a client that does not read must not hold it), a child without."""
    try:
        conn.settimeout(timeout)
        conn.sendall(json.dumps(answer, default=str).encode() + b"\n")
    except OSError:  # the CLI went away, or does not read: nobody to tell
        pass


def bind_owner_only(path: Path) -> socket.socket:
    """Listen on `path`, created owner-only (mode 0600, in a 0700 folder) before anyone can connect."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ModelOpsError(f"the stage service's socket path {path} is longer than {MAX_SOCKET_PATH} bytes",
                            "use a shorter MODELOPS_HOME")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.is_socket():
        path.unlink()  # left by a service that was killed: `up` only starts one when none of ours runs
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    listener.listen(16)
    return listener


def _peer_is_owner(conn: socket.socket) -> bool:
    peer = _peer(conn)
    return peer is None or peer[1] == os.geteuid()  # without SO_PEERCRED the socket's mode is the guard


def _read_request(conn: socket.socket) -> Any:
    """One line of JSON, whole within READ_TIMEOUT_SECONDS however it trickles in."""
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ModelOpsError(f"the request did not arrive within {READ_TIMEOUT_SECONDS:.0f} s",
                                "send the whole request at once, as one line")
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(MAX_REQUEST_BYTES + 1)
        except TimeoutError:
            continue  # the deadline check above says so
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ModelOpsError(f"the request is longer than {MAX_REQUEST_BYTES} bytes", "send one stage's parameters")
    return json.loads(data.partition(b"\n")[0])


class StageService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.code = code_stamp(project_modules(settings.project_dir))
        self.pid = os.getpid()
        self.children: dict[int, Child] = {}
        self.listener: socket.socket | None = None

    def serve(self) -> Child:
        """Serve until stopped; returns only in a forked child, with the work that child must do."""
        self.listener = bind_owner_only(socket_path(self.settings))
        print(f"{SERVICE_NAME}: pid {self.pid} listening on {socket_path(self.settings)}", flush=True)
        job = self._fork(Child())  # runs left open while no service was running
        while job is None:
            readable, _, _ = select.select([self.listener], [], [], POLL_SECONDS)
            if readable:
                conn, _ = self.listener.accept()
                job = self._handle(conn)
            if job is None and self._reap():
                job = self._fork(Child())
        self.listener.close()
        return job

    def _handle(self, conn: socket.socket) -> Child | None:
        stage = "request"
        try:
            if not _peer_is_owner(conn):
                conn.close()
                return None
            raw = _read_request(conn)
            if isinstance(raw, dict) and raw.get("op") == "ping":
                _send(conn, {"ok": True, "pid": self.pid, "settings": effective_settings(self.settings)})
                conn.close()
                return None
            stage = clip(str(raw.get("stage"))) if isinstance(raw, dict) else stage
            if code_stamp(list(self.code)) != self.code:
                # The CLI runs this one itself (with the code as it is now); the service restarts in place (same
                # pid and command line, so `modelops down` still knows it) with the new code.
                _send(conn, {"ok": False, "restarting": True})
                conn.close()
                raise CodeChanged
            request = checked_request(raw)
        except CodeChanged:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad request is answered, the service serves on
            _send(conn, error_answer(exc, stage, self.settings, traceback_limit=4 * MAX_ECHO))
            conn.close()
            return None
        return self._fork(Child(conn=conn, request=request))

    def _fork(self, child: Child) -> Child | None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # how a gone client interrupts the stage
            for other in self.children.values():  # other CLIs' connections are not this child's to hold
                if other.conn is not None:
                    other.conn.close()
            self.children.clear()
            return child
        self.children[pid] = child
        return None

    def _reap(self) -> bool:
        """Collect finished children, answering for any that died without answering; True when one did (its
        runs need closing)."""
        recover = False
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            child = self.children.pop(pid, None)
            if child is None or child.conn is None or child.request is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                _send(child.conn, {"ok": False, "type": "StageServiceChildDied", "code": 1,
                                   "what": f"the stage service's worker for `{child.request.stage}` (pid {pid}) {how} "
                                           "without answering",
                                   "fix": f"read {log_path(self.settings)}; the flow and MLflow runs it left open "
                                          "are being marked Crashed/KILLED; run the command again"})
                recover = True
            child.conn.close()
        return recover


@dataclass
class ClientWatch:
    ended: threading.Event  # set by the child once the stage ended: stop watching
    gone: threading.Event  # set by the watch when the client went away (before it interrupts the stage)


def interrupt_when_client_leaves(conn: socket.socket) -> ClientWatch:
    """Watch the connection while the stage runs: when the client closes it (Ctrl-C, killed), interrupt this
    process with SIGINT, as Ctrl-C interrupts a stage running in a CLI process."""
    ended, client_gone = threading.Event(), threading.Event()

    def watch() -> None:
        while not ended.is_set():
            readable, _, _ = select.select([conn], [], [], POLL_SECONDS)
            if not readable:
                continue
            try:
                gone = not conn.recv(1, socket.MSG_PEEK)
            except OSError:
                gone = True
            if gone and not ended.is_set():
                client_gone.set()
                os.kill(os.getpid(), signal.SIGINT)
            return  # gone, or the client sent more than its request (ignored): nothing more to watch

    threading.Thread(target=watch, name="client-watch", daemon=True).start()
    return ClientWatch(ended, client_gone)


def run_child(settings: Settings, child: Child) -> int:
    """In a forked child: run the stage (or the recovery) exactly as the CLI does and answer."""
    import prefect

    from modelops.cli import route_logs, stage_result
    from modelops.recovery import Owner, recover_orphaned_runs

    route_logs(settings, debug=False)
    request = child.request
    if child.conn is None or request is None:
        for line in recover_orphaned_runs():
            print(f"recovered: {line}", flush=True)
        return 0
    if request.actor:
        os.environ.pop("MODELOPS_USER", None)  # the request's actor, not the service's environment, is acting
        os.environ["MODELOPS_ACTOR"] = request.actor
    started = time.monotonic()
    watch = interrupt_when_client_leaves(child.conn)
    try:
        try:
            with prefect.tags(*Owner.current().flow_run_tags()), reporting_to(
                    progress_sender(child.conn) if request.progress else None):
                answer = {"ok": True, "result": stage_result(request.stage, request.params), "pid": os.getpid()}
        except Exception as exc:  # noqa: BLE001 - every error is answered the way the CLI reports it
            answer = error_answer(exc, request.stage, settings)
        watch.ended.set()
        if not watch.gone.is_set():
            _send(child.conn, answer, timeout=None)
    except (KeyboardInterrupt, OSError):  # interrupted, or the client went away while the answer was on its way
        watch.ended.set()
        watch.gone.set()
    # Prefect may turn the interrupt into an error of its own (the run Crashed): what matters is the gone client.
    if watch.gone.is_set():
        print(f"{request.stage} (pid {os.getpid()}): interrupted after {time.monotonic() - started:.2f} s, its "
              "client went away", flush=True)
        return 130  # the parent then closes the MLflow runs it left open
    child.conn.close()
    print(f"{request.stage} (pid {os.getpid()}): {'ok' if answer['ok'] else 'error'} in "
          f"{time.monotonic() - started:.2f} s", flush=True)
    return 0  # the interpreter's exit then drains Prefect's event and log workers, as a CLI process's does


def main() -> int:
    from modelops.settings import configure_environment

    settings = configure_environment()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if not os.environ.get("PREFECT_API_URL"):
        print("PREFECT_API_URL is not set: the stage service is started by `modelops up`", file=sys.stderr)
        return 2
    import gc

    warm_imports()
    service = StageService(settings)
    gc.freeze()  # the warm objects stay out of the children's collections: fewer of their pages get copied
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        child = service.serve()
    except CodeChanged:
        print(f"{SERVICE_NAME}: the project's code changed since start: restarting", flush=True)
        os.execv(sys.executable, [sys.executable, "-m", "modelops.services.stage_service"])
    finally:
        if os.getpid() == service.pid:
            socket_path(settings).unlink(missing_ok=True)
    return run_child(settings, child)


if __name__ == "__main__":
    sys.exit(main())
