"""Prefect's console handler writes to whatever stderr is current: in a process that runs many commands (tests,
notebooks) the stream one command had may be closed by the time a later flow logs."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest


def test_a_log_line_after_the_commands_stderr_was_closed_reaches_the_current_one(
        state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    from modelops.cli import route_logs
    from modelops.settings import load_settings

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    route_logs(load_settings(), debug=False)
    [console] = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)] or [None]
    assert console is not None, "Prefect's console handler is configured"
    console.handle(logging.makeLogRecord({"name": "prefect.test", "levelno": logging.WARNING, "levelname": "WARNING",
                                          "msg": "while the command ran"}))
    assert "while the command ran" in first.getvalue()
    first.close()  # what a test's capture does after the test
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    console.handle(logging.makeLogRecord({"name": "prefect.test", "levelno": logging.WARNING, "levelname": "WARNING",
                                          "msg": "from a flow run later"}))
    assert "from a flow run later" in later.getvalue()
