"""Two `modelops register` processes started together on the same new inputs make one version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


def test_concurrent_identical_registrations_yield_one_version(state_home: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    from modelops.platform import get_platform

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "MODELOPS_HOME": str(state_home)}
    command = [sys.executable, "-m", "modelops.cli", "register", "bike-demand", "--json"]
    racers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for _ in range(2)]
    outputs = [racer.communicate(timeout=600)[0] for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], outputs
    created = sorted('"created": true' in out for out in outputs)
    assert created == [False, True], outputs
    platform = get_platform()
    assert [v.version for v in platform.catalog.versions("bike-demand")] == ["1"]
    assert [e.version for e in platform.store.audit_trail("bike-demand") if e.stage == "register"] == ["1"]
