"""The scoring worker and the pipe it speaks, run for real: the worker script started by the platform's own Python
as an environment's (no build needed), a real process on a real pipe."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tasks.environments import Environment, child_environment
from tasks.worker_client import WorkerProcess


def platform_python_environment() -> Environment:
    """The platform's own virtual environment standing in for a built one: same layout (bin/python)."""
    return Environment("platform", Path(sys.prefix), (), {}, built=False)


def test_the_worker_sees_none_of_the_platforms_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_secret")
    monkeypatch.setenv("MODELOPS_APPROVER_TOKEN", "secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:secret@db/modelops")
    monkeypatch.setenv("UV_INDEX_URL", "https://user:secret@index.example/simple")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    worker = WorkerProcess(platform_python_environment(), tmp_path / "worker.log", "env-test")
    worker.start()
    try:
        reply, _ = worker.request({"op": "hello"})
    finally:
        worker.stop()
    keys = set(reply["environment_keys"])
    assert not keys & {"PREFECT_API_KEY", "MODELOPS_APPROVER_TOKEN", "DATABASE_URL", "UV_INDEX_URL"}
    assert "OMP_NUM_THREADS" in keys and "PATH" in keys  # what it needs still arrives


def test_a_build_gets_uvs_settings_but_no_other_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_secret")
    monkeypatch.setenv("UV_INDEX_URL", "https://index.example/simple")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    built = child_environment(build=True)
    assert built["UV_INDEX_URL"] == "https://index.example/simple" and "HTTPS_PROXY" in built
    assert "PREFECT_API_KEY" not in built
