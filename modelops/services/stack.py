"""`modelops up` / `modelops down`: start the Prefect server, the stage runner and the MLflow UI on loopback,
record exactly what was started (pids, ports, logs) under the state directory, and stop exactly that."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from modelops.errors import ModelOpsError
from modelops.files import replace_atomically
from modelops.recovery import _start_ticks
from modelops.recovery import pid_alive as _alive
from modelops.settings import Settings, private_to_us, project_dir


@dataclass
class Service:
    name: str
    pid: int
    url: str
    log: str
    # The arguments it was started with and its start time (clock ticks after boot): after a reboot the pid may
    # belong to someone else, even to the same command started again.
    cmdline: str = ""
    started: str = ""

    @classmethod
    def of(cls, name: str, process: subprocess.Popen, url: str, log: str) -> "Service":
        """The record of a process just started."""
        return cls(name, process.pid, url, log, arguments(process), _start_ticks(process.pid))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _services_file(settings: Settings) -> Path:
    return settings.home / "run" / "services.json"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _ours(service: Service) -> bool:
    """Alive and still the process we started (its arguments in its command line, started when it was), not a
    stranger that reused the pid. Interpreters prefix the command line, hence a containment test. A record
    without both proves nothing and is never ours."""
    return (bool(service.cmdline and service.started) and _alive(service.pid)
            and service.cmdline in _cmdline(service.pid) and _start_ticks(service.pid) == service.started)


def running_services(settings: Settings) -> list[Service]:
    """What `up` recorded, read only from a run/ folder and file that no one else could have written."""
    path = _services_file(settings)
    if not path.is_file():
        return []
    private_to_us(path.parent, "the state directory's run/ folder")
    private_to_us(path, "the stack's record of its processes")
    return [Service(**item) for item in json.loads(path.read_text())]


def running_api_url(settings: Settings) -> str | None:
    """The Prefect API of the server `modelops up` started for this state directory, if it is still ours and
    answers its health check now; else None."""
    url = answering_service_url(settings, "prefect-server", "/api/health")
    return f"{url}/api" if url else None


def running_mlflow_ui_url(settings: Settings) -> str | None:
    """The MLflow UI `modelops up` started for this state directory, if it is still ours and answers now."""
    return answering_service_url(settings, "mlflow-ui", "/health")


def answering_service_url(settings: Settings, name: str, health_path: str) -> str | None:
    """The URL of the service `up` recorded under `name`, if it is still ours and answers `health_path` with 200
    now; else None."""
    service = next((s for s in running_services(settings) if s.name == name), None)
    if service is None or not _ours(service):
        return None
    try:
        with urllib.request.urlopen(f"{service.url}{health_path}", timeout=2) as response:
            return service.url if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ModelOpsError(f"{url}: the process exited with code {process.returncode}",
                                f"read its log: {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise ModelOpsError(f"{url} did not become healthy within {timeout:.0f} s", f"read its log: {log}")


def arguments(process: subprocess.Popen) -> str:
    return " ".join(str(a) for a in process.args[1:])  # type: ignore[index]


def spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    # A session of its own: `down` stops the whole process group, children (flow runs, workers) included.
    return subprocess.Popen(command, env=env, cwd=cwd or project_dir(), stdout=handle, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def up(settings: Settings, prefect_port: int = 4200, mlflow_port: int = 5000, with_mlflow: bool = True,
       poll_seconds: int = 1, gateway_port: int | None = 8080, gateway_workers: int | None = None,
       with_streaming: bool = True, workers: int = 0, with_postgres: bool = False) -> list[Service]:
    """Start the stack (or report the one already running for this state directory). With `workers`, the stage
    deployments go to a work pool served by that many Prefect workers (modelops.services.workers), not the runner.
    With PostgreSQL (asked for, or set up by an earlier `up --postgres` of this state directory) it starts first and
    holds the governance store, MLflow's tracking store and the Prefect server's database."""
    existing = running_services(settings)
    if existing and all(_ours(s) for s in existing):
        return existing
    if existing:
        down(settings)
    ports = [prefect_port] + ([mlflow_port] if with_mlflow else []) + ([gateway_port] if gateway_port else [])
    for port in ports:
        if _port_in_use(port):
            raise ModelOpsError(f"port {port} on 127.0.0.1 is already in use", "stop what uses it or pick another "
                                "with --prefect-port / --mlflow-port / --gateway-port")
    from modelops.platform import get_platform
    from modelops.services import postgres

    bin_dir = Path(sys.executable).parent
    logs = settings.home / "logs"
    started: list[Service] = []
    database_env: dict[str, str] = {}
    if with_postgres or postgres.recorded_urls(settings.home):
        database, settings, database_env = postgres.start_for_stack(settings, logs / "postgres.log")
        started.append(database)
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    base_env = {**service_env(settings), **database_env}
    browser = ui_addresses(api_url, base_env)
    # Links the stages write (alerts, artifacts) point at the UI people open: the proxy's when one is set.
    base_env["PREFECT_UI_URL"] = browser["PREFECT_UI_URL"]
    try:
        # Create (or migrate) the catalog's and the store's databases here, under the state lock, before any server
        # opens them: `mlflow server` runs MLflow's migrations outside that lock, and two processes migrating one
        # SQLite file at once leave it half-migrated.
        get_platform()
        server_log = logs / "prefect-server.log"
        server = spawn([str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                        str(prefect_port)], {**base_env, "PREFECT_SERVER_API_HOST": "127.0.0.1",
                                             **browser}, server_log)
        started.append(Service.of("prefect-server", server, f"http://127.0.0.1:{prefect_port}", str(server_log)))
        wait_healthy(f"{api_url}/health", server, server_log, timeout=90)

        stage_env = {**base_env, "PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": str(poll_seconds),
                     "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_LOCAL_STORAGE_PATH": str(settings.runner_results)}
        if workers:
            from modelops.services.workers import start_stage_workers

            started += start_stage_workers(settings, workers, stage_env, poll_seconds)
        else:
            runner_log = logs / "stage-runner.log"
            runner = spawn([sys.executable, "-m", "modelops.services.runner"], stage_env, runner_log)
            started.append(Service.of("stage-runner", runner, api_url, str(runner_log)))
            _wait_for_deployments(api_url, runner, runner_log)

        from modelops.services import stage_service

        service_log = stage_service.log_path(settings)
        service = spawn([sys.executable, "-m", "modelops.services.stage_service"],
                        {**base_env, "PREFECT_API_URL": api_url}, service_log)
        started.append(Service.of(stage_service.SERVICE_NAME, service, stage_service.socket_path(settings).as_uri(),
                                  str(service_log)))
        _wait_for_socket(stage_service.socket_path(settings), service, service_log)

        if with_mlflow:
            mlflow_log = logs / "mlflow-ui.log"
            # The store's URL goes in the environment, not the command line: a production URL may carry a password,
            # and every local user can read a process's command line (and services.json records it).
            mlflow = spawn([str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                            "--workers", "1"],
                           {**base_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                            "MLFLOW_BACKEND_STORE_URI": settings.tracking_uri}, mlflow_log)
            started.append(Service.of("mlflow-ui", mlflow, f"http://127.0.0.1:{mlflow_port}", str(mlflow_log)))
            wait_healthy(f"http://127.0.0.1:{mlflow_port}/health", mlflow, mlflow_log, timeout=90)
        if gateway_port:
            started.append(start_gateway(base_env, logs / "gateway.log", gateway_port, gateway_workers))
        if with_streaming:
            started += start_streaming(settings, base_env, logs)
    except BaseException:
        stop_services(started)
        raise
    record_services(settings, started)
    return started


def ui_addresses(api_url: str, env: dict[str, str]) -> dict[str, str]:
    """Where a browser finds the Prefect API and UI. The UI asks its server's /ui-settings for the API address,
    which Prefect derives from its own default port (4200), not from --port: on any other port every page says
    "Can't connect to Server API" unless told. Behind a reverse proxy set PREFECT_UI_API_URL (and PREFECT_UI_URL,
    for links) to the addresses the browser uses before `modelops up`; they are kept as given."""
    ui_api = env.get("PREFECT_UI_API_URL") or env.get("PREFECT_SERVER_UI_API_URL") or api_url
    ui = env.get("PREFECT_UI_URL") or ui_api.removesuffix("/").removesuffix("/api")
    return {"PREFECT_UI_API_URL": ui_api, "PREFECT_SERVER_UI_API_URL": ui_api, "PREFECT_UI_URL": ui}


def service_env(settings: Settings) -> dict[str, str]:
    """The environment of every service process: this state directory and configs, this virtual environment's
    commands first, and no inherited Prefect API address (each service is told the one it uses)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MODELOPS_HOME": str(settings.home), "MODELOPS_CONFIG_DIR": str(settings.config_dir),
           "PREFECT_HOME": str(settings.prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PREFECT_API_URL", None)
    return env


def start_gateway(env: dict[str, str], log: Path, port: int, workers: int | None) -> Service:
    """The online gateway (serving.server), healthy once every deployed version is loaded (or refused)."""
    command = [sys.executable, "-m", "serving.server", "--host", "127.0.0.1", "--port", str(port)]
    gateway = spawn(command + (["--workers", str(workers)] if workers else []), env, log)
    service = Service.of("gateway", gateway, f"http://127.0.0.1:{port}", str(log))
    try:
        wait_healthy(f"{service.url}/readyz", gateway, log, timeout=120)
    except BaseException:
        stop_services([service])
        raise
    return service


def start_streaming(settings: Settings, env: dict[str, str], logs: Path) -> list[Service]:
    """The embedded Redis (unless MODELOPS_REDIS_URL names one) and deploy.stream.consumers consumers per model whose
    deploy.targets include stream, each ready once its metrics answer (its served versions are loaded by then).
    Consumer names are stable (<model>-<n>): a consumer started again re-reads what it had not acknowledged."""
    from modelops.services.redis_server import ENV_URL, redis_url, start_embedded, wait_ready
    from modelops.spec import load_all_specs

    streaming = [spec for spec in load_all_specs(settings.config_dir) if "stream" in spec.deploy.targets]
    started: list[Service] = []
    try:
        if not env.get(ENV_URL):
            log = logs / "redis.log"
            holder: list[subprocess.Popen] = []

            def launch(command: list[str], path: Path) -> subprocess.Popen:
                holder.append(spawn(command, env, path))
                return holder[0]
            try:
                start_embedded(settings, log, launch=launch)
            finally:
                if holder:
                    started.append(Service.of("redis", holder[0], redis_url(settings), str(log)))
        else:
            wait_ready(redis_url(settings))
        for spec in streaming:
            for index in range(spec.deploy.stream.consumers):
                name, port = f"{spec.name}-{index + 1}", free_port()
                log = logs / f"stream-{name}.log"
                process = spawn([sys.executable, "-m", "serving.streaming", "--model", spec.name, "--consumer", name,
                                 "--metrics-port", str(port)], {**env, "OMP_NUM_THREADS": "1"}, log)
                service = Service.of(f"stream-{name}", process, f"http://127.0.0.1:{port}/metrics", str(log))
                started.append(service)
                wait_healthy(service.url, process, log, timeout=120)
    except BaseException:
        stop_services(started)
        raise
    return started


def record_services(settings: Settings, services: list[Service]) -> None:
    """services.json, written through a new file renamed over it: a symlink planted in its place is replaced, never
    followed."""
    text = json.dumps([asdict(s) for s in services], indent=2).encode()
    replace_atomically(_services_file(settings), lambda handle: handle.write(text))


def _wait_for_deployments(api_url: str, runner: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """The runner is ready once every stage deployment it renders exists on the server."""
    from modelops.services.deployments import rendered_config

    expected = len(rendered_config()["deployments"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runner.poll() is not None:
            raise ModelOpsError(f"the stage runner exited with code {runner.returncode}", f"read its log: {log}")
        request = urllib.request.Request(f"{api_url}/deployments/count", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if int(response.read()) >= expected:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(1)
    raise ModelOpsError(f"the stage deployments did not appear within {timeout:.0f} s", f"read its log: {log}")


def _wait_for_socket(path: Path, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """The stage service is ready once it has imported everything and answers a ping on its socket."""
    from modelops.services.stage_service import answers_ping

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ModelOpsError(f"the stage service exited with code {process.returncode}", f"read its log: {log}")
        if answers_ping(path, process.pid):
            return
        time.sleep(0.5)
    raise ModelOpsError(f"the stage service did not answer on {path} within {timeout:.0f} s", f"read its log: {log}")


# PostgreSQL's SIGTERM is a smart shutdown that waits for every client (a CLI process's pooled connections too);
# SIGINT is its fast shutdown: sessions ended, a checkpoint written, nothing committed lost.
STOP_SIGNALS = {"postgres": signal.SIGINT}


def stop_services(services: list[Service], grace_seconds: float = 20) -> list[str]:
    """Stop each service that is still ours; the names of those stopped. One this user may not signal (another
    user's, as when root ran `up`) is left running and reported once the others are stopped."""
    stopped, refused = [], []
    for service in reversed(services):
        if not _ours(service):
            continue
        try:
            os.killpg(service.pid, STOP_SIGNALS.get(service.name, signal.SIGTERM))
        except ProcessLookupError:
            continue
        except PermissionError:
            refused.append(f"{service.name} (pid {service.pid})")
            continue
        # Ownership was checked before signalling; from here on wait for the pid itself (a zombie child of
        # ours has an empty command line until reaped).
        deadline = time.monotonic() + grace_seconds
        while _alive(service.pid) and time.monotonic() < deadline:
            _reap(service.pid)
            time.sleep(0.2)
        if _alive(service.pid):
            os.killpg(service.pid, signal.SIGKILL)
            # SIGKILL is not instant: wait until the process is gone (and reaped, when it is our child), or the
            # caller would find it still there - a zombie of ours stays until reaped.
            deadline = time.monotonic() + grace_seconds
            while _alive(service.pid) and time.monotonic() < deadline:
                _reap(service.pid)
                time.sleep(0.05)
        stopped.append(service.name)
    if refused:
        raise ModelOpsError(f"not allowed to stop {', '.join(refused)}: another user's processes",
                            "run `modelops down` as the user who ran `modelops up`")
    return stopped


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def down(settings: Settings) -> list[str]:
    """Stop what `up` started for this state directory, and nothing else."""
    services = running_services(settings)
    stopped = stop_services(services)  # raises, keeping the record, when some were another user's to stop
    _services_file(settings).unlink(missing_ok=True)
    return stopped
