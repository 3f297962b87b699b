"""`modelops down` stops only what `up` started."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from modelops.services.stack import down, running_services
from modelops.settings import Settings


def test_down_never_signals_a_process_that_reused_a_recorded_pid(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, config_dir=tmp_path, tracking_uri="sqlite://", governance_url="sqlite://",
                        project_dir=tmp_path)
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        record = tmp_path / "run" / "services.json"
        record.parent.mkdir(parents=True)
        # As after a reboot: the pid we recorded now belongs to an unrelated process.
        record.write_text(json.dumps([{"name": "prefect-server", "pid": stranger.pid, "url": "http://127.0.0.1:1",
                                       "log": "x", "cmdline": "server start --host 127.0.0.1 --port 4200"}]))
        assert [s.name for s in running_services(settings)] == ["prefect-server"]
        assert down(settings) == []
        assert stranger.poll() is None and not record.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_down_stops_what_it_started(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, config_dir=tmp_path, tracking_uri="sqlite://", governance_url="sqlite://",
                        project_dir=tmp_path)
    ours = subprocess.Popen(["sleep", "31"], start_new_session=True)
    while b"sleep" not in Path(f"/proc/{ours.pid}/cmdline").read_bytes():  # until the child has exec'd
        time.sleep(0.01)
    record = tmp_path / "run" / "services.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps([{"name": "stage-runner", "pid": ours.pid, "url": "-", "log": "x",
                                   "cmdline": "31"}]))
    assert down(settings) == ["stage-runner"]
    assert not Path(f"/proc/{ours.pid}").exists()  # stopped and reaped, long before its 31 s
