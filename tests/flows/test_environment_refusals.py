"""A registered version bound for an environment of its own (its logged requirements pin scikit-learn 1.5.2) gets
none built or started when the platform's own checks already refuse it: its requirements, or its files."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.tasks.model_dirs import tamper

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
MODEL = "flight-delay"


def registered_with(edit: Any) -> tuple[Any, Any, Any]:
    """A really trained flight-delay pipeline, its stored files edited as an outside builder could, registered by
    URI (so the edited files are the pinned ones): (platform, spec, governed version)."""
    from flows.register import register
    from modelops.platform import get_platform
    from modelops.spec import Window, load_spec
    from tasks.training import prepare_training, train_and_log

    platform = get_platform()
    spec = load_spec(MODEL)
    frame, inputs = prepare_training(spec, Window(start=date(2013, 1, 1), end=date(2013, 1, 15)))
    logged = train_and_log(spec, frame, inputs, platform.catalog)
    [stored] = list(platform.settings.artifact_root.rglob("model.skops"))
    edit(stored.parent)
    version = register(model=MODEL, model_uri=logged.model_uri).version
    return platform, spec, platform.store.governed_version(MODEL, version)


def built_environments(home: Path) -> list[str]:
    folder = home / "environments"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_version_failing_the_platform_scan_gets_no_environment(state_home: Path) -> None:
    from tasks.integrity import open_pinned_model

    def edit(folder: Path) -> None:
        (folder / "requirements.txt").write_text("scikit-learn==1.5.2\nskops==0.16.0\n")
        tamper(folder, loader_module="evil_loader")

    platform, spec, governed = registered_with(edit)
    scan, model = open_pinned_model(platform, spec, governed, "test")
    assert model is None and not scan.passed
    assert any("evil_loader" in finding for finding in scan.findings)
    assert built_environments(state_home) == []


def test_a_version_whose_requirements_name_a_wheel_fails_and_gets_no_environment(state_home: Path,
                                                                                 tmp_path: Path) -> None:
    from tasks.integrity import open_pinned_model
    from tests.tasks.test_environment_requirements import crafted_wheel

    line = f"evil @ {crafted_wheel(tmp_path).as_uri()}"

    def edit(folder: Path) -> None:
        (folder / "requirements.txt").write_text(f"scikit-learn==1.5.2\n{line}\n")

    platform, spec, governed = registered_with(edit)
    scan, model = open_pinned_model(platform, spec, governed, "test")
    assert model is None and not scan.passed
    assert any(line in finding for finding in scan.findings)
    assert built_environments(state_home) == []
