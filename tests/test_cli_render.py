"""What the CLI prints for people: the same blocks as plain text (pipes, NO_COLOR, TERM=dumb) or as rich tables and
trees with coloured verdicts on a terminal; and the progress bars' choice of form."""

from __future__ import annotations

import argparse
import io
import os
import pty
import re

import pytest

from modelops.cli_output import stage_blocks, stage_text
from modelops.cli_progress import PlainBar, RichBars, bars_for
from modelops.cli_render import Table, Tree, plain_text, print_rich, show, styled
from tasks.progress import Step, advance, reporting_to, tracked

ANSI = re.compile(r"\x1b\[[0-9;]*m")
MONITORED = {"model": "m", "version": "3", "verdict": "breach", "rows": 40, "values": [
    {"check": "drift", "metric": "drift_share", "value": 0.6, "limit": 0.5, "verdict": "breach"},
    {"check": "performance", "metric": "roc_auc", "value": 0.71, "limit": 0.65, "verdict": "ok"},
    {"check": "latency", "metric": "p99_ms", "value": 80.0, "limit": 100.0, "verdict": "warn"}]}


def terminal() -> tuple[io.StringIO, object]:
    from rich.console import Console

    out = io.StringIO()
    return out, Console(file=out, force_terminal=True, color_system="standard", width=120)


def test_a_breach_verdict_is_red_an_ok_green_and_a_warn_yellow_on_a_terminal() -> None:
    out, console = terminal()
    print_rich(stage_blocks("monitor", MONITORED), console)
    text = out.getvalue()
    # standard colours: 31 red (bold: 1;31), 32 green, 33 yellow, each closed by a reset
    assert re.search(r"\x1b\[1;31mbreach\x1b\[0m", text), text
    assert re.search(r"\x1b\[32mok\x1b\[0m", text)
    assert re.search(r"\x1b\[33mwarn\x1b\[0m", text)
    assert "drift_share" in ANSI.sub("", text)  # the values table is there, as a table


def test_off_a_terminal_the_blocks_print_as_the_plain_text_the_cli_always_printed() -> None:
    out = io.StringIO()
    show(stage_blocks("monitor", MONITORED), stream=out)
    assert out.getvalue() == stage_text("monitor", MONITORED) + "\n"
    assert "\x1b" not in out.getvalue()
    assert stage_text("monitor", MONITORED).splitlines()[1:5] == [
        "  values:",
        "    check        metric       value  limit  verdict",
        "    drift        drift_share  0.6    0.5    breach",
        "    performance  roc_auc      0.71   0.65   ok"]


def test_a_plain_table_keeps_its_layout_rule_and_the_details_under_each_row() -> None:
    table = Table(["when", "what"], [["09:00", "validate"], ["10:00", "approve"]], heading="m",
                  details=[["gates: passed"], []])
    assert plain_text([table]) == ("== m\nwhen   what\n-----  --------\n09:00  validate\n    gates: passed\n"
                                   "10:00  approve")


def test_a_tree_is_drawn_with_the_same_branches_in_plain_text_and_with_colour_on_a_terminal() -> None:
    tree = Tree(("m v1 (serving)", [("validation passed", []), ("approvals", [("rejected by ann", [])])]))
    assert plain_text([tree]) == "m v1 (serving)\n├─ validation passed\n└─ approvals\n   └─ rejected by ann"
    out, console = terminal()
    print_rich([tree], console)
    assert re.search(r"\x1b\[32mpassed\x1b\[0m", out.getvalue())
    assert re.search(r"\x1b\[1;31mrejected\x1b\[0m", out.getvalue())


@pytest.mark.parametrize("environment", [{}, {"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_a_real_terminal_gets_colour_unless_no_color_or_a_dumb_terminal_says_otherwise(
        environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as stream:
        assert styled(stream) is (not environment)
        assert styled(io.StringIO()) is False  # never for a file or a pipe
    os.close(leader)


def test_bars_are_rich_on_a_terminal_plain_when_asked_for_off_it_and_absent_with_json(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as tty:
        assert isinstance(bars_for(argparse.Namespace(json=False), tty), RichBars)
        assert bars_for(argparse.Namespace(json=True), tty) is None
    os.close(leader)
    piped = io.StringIO()
    assert bars_for(argparse.Namespace(json=False), piped) is None
    assert isinstance(bars_for(argparse.Namespace(json=True, progress=True), piped), PlainBar)


def test_steps_advanced_deep_down_reach_the_listener_in_order_and_end_finished() -> None:
    steps: list[Step] = []
    with reporting_to(steps.append), tracked("sweep", "sweeping", 3, "models"):
        for _ in range(4):  # a retried task advances once too often: never past the total
            advance("sweep")
    advance("sweep")  # outside the block: nobody listens, nothing breaks
    assert [s.done for s in steps] == [0, 1, 2, 3, 3, 3]
    assert steps[-1].finished and not any(s.finished for s in steps[:-1])


def test_the_plain_bar_rewrites_one_line_and_ends_it_when_the_work_finishes() -> None:
    out = io.StringIO()
    bar = PlainBar(out)
    bar(Step("score", "scoring", 0, 200, "rows"))
    bar(Step("score", "scoring", 200, 200, "rows", finished=True))
    lines = out.getvalue().split("\r")
    assert lines[1].startswith("scoring: [") and not lines[1].endswith("\n")
    assert "100.0% 200 of 200 rows (" in lines[2] and lines[2].endswith("rows/s)\n")
