"""Run the real `modelops` CLI with stdout or stderr on a pseudo-terminal (stdlib pty), as a person's shell would:
what reaches the terminal, and what the other stream got."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def terminal_env(**environment: str) -> dict[str, str]:
    """This process's environment for a colour terminal (NO_COLOR dropped unless given) and this checkout's code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    return {**env, **environment}


def run_on_terminal(argv: list[str], env: dict[str, str], terminal: str = "stdout",
                    timeout: float = 600) -> tuple[int, bytes, bytes]:
    """`modelops argv` with `terminal` ("stdout" or "stderr") on a pseudo-terminal and the other stream piped: the
    exit code, the terminal's bytes (line ends as "\\n") and the piped stream's bytes."""
    leader, follower = pty.openpty()
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, terminal: follower}
    process = subprocess.Popen([sys.executable, "-m", "modelops.cli", *argv], cwd=ROOT, env=env, **streams)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the terminal (EIO)
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, shown.replace(b"\r\n", b"\n"), (err if terminal == "stdout" else out) or b""
