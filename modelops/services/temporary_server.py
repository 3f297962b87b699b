"""A temporary Prefect API server owned by one CLI process, which dies with it.

Without PREFECT_API_URL, Prefect starts a temporary server of its own as a plain child process; when the CLI is
killed (kill -9, the OOM killer) that server lives on as an orphan. The CLI starts this one instead and points
Prefect at it. It is the same app (`create_app(ephemeral=True)`: the API without UI or background services, on
Prefect's database under PREFECT_HOME), but it watches its owner: on Linux the kernel signals it the moment the
owner dies (PR_SET_PDEATHSIG); a watchdog thread covers other systems and the instant before that was armed.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

from modelops.errors import ModelOpsError
from modelops.services.stack import (
    Service, free_port, running_api_url, spawn, stop_services, wait_healthy,
)
from modelops.settings import Settings

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# How long a server whose owner died may take to shut down cleanly (it may still be migrating its database).
SHUTDOWN_GRACE_SECONDS = 15.0
SERVER_MODULE = "modelops.services.temporary_server"


def use_owned_api(settings: Settings) -> str | None:
    """Point Prefect at a temporary API server this process owns, unless an API is configured (PREFECT_API_URL, in
    the environment or the active Prefect profile), the server of `modelops up` runs for this state directory (it
    is used: starting a server costs seconds, and only there do triggers act on the events a command emits) or
    ephemeral mode is off (then Prefect reports the missing URL itself). Returns the URL of the server started, if
    one was."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value():
        return None
    running = running_api_url(settings)
    if running:
        _point_prefect_at(running)
        return None
    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    process, url = _start(settings)
    # Stopped at exit, as Prefect stops its own: Prefect drains its log and event workers before atexit handlers
    # run, so nothing in flight is lost.
    atexit.register(stop_services, [Service.of("prefect-temporary-server", process, url, "")],
                    grace_seconds=SHUTDOWN_GRACE_SECONDS)
    _point_prefect_at(url)
    return url


def _point_prefect_at(url: str) -> None:
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()  # Prefect read its settings at import, before the URL existed


def _start(settings: Settings, timeout: float = 90, attempts: int = 3) -> tuple[subprocess.Popen, str]:
    log = settings.home / "logs" / "prefect-temporary-server.log"
    for _ in range(attempts):
        port = free_port()
        process = spawn([sys.executable, "-m", SERVER_MODULE, "--owner-pid", str(os.getpid()), "--port", str(port)],
                        dict(os.environ), log)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/api/health", process, log, timeout)
            return process, f"http://127.0.0.1:{port}/api"
        except ModelOpsError:
            if process.poll() is None:  # it hung rather than exited: another port would not help
                process.kill()
                process.wait()
                raise
            # It exited: another process may have taken the free port between probe and bind. Try another one.
    raise ModelOpsError(f"the temporary Prefect API server exited on start {attempts} times", f"read its log: {log}")


def die_with_owner(owner_pid: int) -> None:
    """Arrange for this process to stop when `owner_pid`, its parent, is gone."""
    if sys.platform.startswith("linux"):
        # The kernel's "parent" is the thread that started this process: the CLI starts it from its main thread.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    threading.Thread(target=_watch_owner, args=(owner_pid,), name="owner-watchdog", daemon=True).start()


def _watch_owner(owner_pid: int, poll_seconds: float = 0.5) -> None:
    # An orphan is re-parented (to init or a subreaper): a changed parent pid means the owner is gone. This also
    # catches an owner that died before prctl above was armed.
    while os.getppid() == owner_pid:
        time.sleep(poll_seconds)
    os.kill(os.getpid(), signal.SIGTERM)  # a clean shutdown first: uvicorn finishes what it was doing
    time.sleep(SHUTDOWN_GRACE_SECONDS)
    os._exit(1)


def serve(owner_pid: int, port: int) -> None:
    die_with_owner(owner_pid)
    import uvicorn
    from prefect.server.api.server import create_app

    # ephemeral=True: the API only, no UI and no background services, as in Prefect's own temporary server.
    uvicorn.run(create_app(ephemeral=True, final=True), host="127.0.0.1", port=port, log_level="error",
                lifespan="on")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a temporary Prefect API that stops when its owner dies")
    parser.add_argument("--owner-pid", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    serve(options.owner_pid, options.port)
