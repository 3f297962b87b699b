"""The design card's layout: flows/, tasks/ and blocks/ are top-level folders of this repository. Their generic
import names are the cost of that layout; this guard answers it: in the project's environment each name resolves
to this repository's folder, from any working directory, so nothing installed shadows them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["register", "validate", "approve", "deploy", "score", "monitor", "sweep", "retrain", "retire"]


def test_flows_tasks_and_blocks_are_this_repositorys_folders(tmp_path: Path) -> None:
    code = "import flows, tasks, blocks; print(flows.__file__); print(tasks.__file__); print(blocks.__file__)"
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert found.stdout.split() == [str(ROOT / name / "__init__.py") for name in ("flows", "tasks", "blocks")]


def test_one_flow_file_per_stage_named_after_its_flow() -> None:
    import importlib

    for stage in STAGES:
        assert (ROOT / "flows" / f"{stage}.py").is_file(), stage
        assert getattr(importlib.import_module(f"flows.{stage}"), stage).name == stage
