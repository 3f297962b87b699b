"""`modelops down` stops only what `up` started."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from modelops.errors import ModelOpsError

from modelops.recovery import _start_ticks
from modelops.services.stack import Service, _cmdline, _ours, down, record_services, running_services
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
                                   "cmdline": "31", "started": _start_ticks(ours.pid)}]))
    assert down(settings) == ["stage-runner"]
    assert not Path(f"/proc/{ours.pid}").exists()  # stopped and reaped, long before its 31 s


def _own_process() -> Service:
    """This test's own process, recorded as `up` records what it starts."""
    pid = os.getpid()
    return Service("stage-runner", pid, "-", "x", _cmdline(pid), _start_ticks(pid))


def test_a_live_process_is_ours_only_with_its_recorded_command_line_and_start_time() -> None:
    assert _ours(_own_process())


def test_a_record_without_a_command_line_is_never_ours() -> None:
    assert not _ours(replace(_own_process(), cmdline=""))


def test_a_reused_pid_with_the_same_command_line_but_another_start_time_is_not_ours() -> None:
    record = _own_process()
    assert not _ours(replace(record, started=str(int(record.started) + 1)))


def test_up_replaces_a_symlink_planted_as_services_json_instead_of_writing_through_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, config_dir=tmp_path, tracking_uri="sqlite://", governance_url="sqlite://",
                        project_dir=tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "run" / "services.json").symlink_to(victim)
    record_services(settings, [_own_process()])
    assert victim.read_text() == "untouched"
    assert not (tmp_path / "run" / "services.json").is_symlink()
    assert [s.pid for s in running_services(settings)] == [os.getpid()]


def test_a_services_record_in_a_run_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, config_dir=tmp_path, tracking_uri="sqlite://", governance_url="sqlite://",
                        project_dir=tmp_path)
    record_services(settings, [_own_process()])
    (tmp_path / "run").chmod(0o777)
    with pytest.raises(ModelOpsError, match="run/ folder .* is writable by other users"):
        running_services(settings)


def test_the_ui_is_told_the_api_address_of_the_port_up_was_given() -> None:
    from modelops.services.stack import ui_addresses

    addresses = ui_addresses("http://127.0.0.1:4300/api", {})
    assert addresses["PREFECT_UI_API_URL"] == "http://127.0.0.1:4300/api"
    assert addresses["PREFECT_UI_URL"] == "http://127.0.0.1:4300"


def test_behind_a_reverse_proxy_the_addresses_people_set_are_kept() -> None:
    from modelops.services.stack import ui_addresses

    addresses = ui_addresses("http://127.0.0.1:4300/api", {"PREFECT_UI_API_URL": "https://ops.example.test/prefect/api"})
    assert addresses["PREFECT_UI_API_URL"] == "https://ops.example.test/prefect/api"
    assert addresses["PREFECT_UI_URL"] == "https://ops.example.test/prefect"
