"""The design card's layout: flows/, tasks/ and blocks/ are top-level folders of this repository. Their generic
import names are the cost of that layout; this guard answers it: in the project's environment each name resolves
to this repository's folder, from any working directory, so nothing installed shadows them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["register", "validate", "approve", "deploy", "score", "monitor", "sweep", "retrain", "retire"]


def test_flows_tasks_and_blocks_are_this_repositorys_folders(tmp_path: Path) -> None:
    names = ("flows", "tasks", "blocks", "serving")
    code = f"import {', '.join(names)}; " + "; ".join(f"print({name}.__file__)" for name in names)
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert found.stdout.split() == [str(ROOT / name / "__init__.py") for name in names]


def test_one_flow_file_per_stage_named_after_its_flow() -> None:
    import importlib

    for stage in STAGES:
        assert (ROOT / "flows" / f"{stage}.py").is_file(), stage
        assert getattr(importlib.import_module(f"flows.{stage}"), stage).name == stage


def test_no_module_derives_the_project_folder_from_its_own_file_location() -> None:
    """A wheel install puts the packages in site-packages, with no flows/ or prefect.yaml beside them: the project
    folder comes from settings (the working directory or MODELOPS_PROJECT_DIR). Package data beside a module (the
    migrations' alembic.ini) is the one legitimate use of __file__."""
    offenders = []
    for package in ("modelops", "flows", "tasks", "blocks", "serving"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                # The module's own location turned into a path (Path(__file__), dirname(__file__)); reading other
                # modules' __file__ (the stage service watching for code changes) derives nothing from ours.
                if re.search(r"(Path|dirname|abspath|realpath)\(__file__", line) and "alembic.ini" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
