"""What a model environment may install: only exact releases of the packages a scikit-learn model saved with skops
needs. Requirements come from the spec or from the requirements.txt an outside builder logged, and installing a
package runs its code (a wheel's .pth file runs at every interpreter start), so everything else is refused before
anything is built."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import skops

from modelops.errors import ModelEnvironmentError
from tasks.environments import ensure_environment, parse_requirements
from tasks.worker_client import environment_for, environment_plan

OTHER_SKLEARN = "scikit-learn==1.5.2"  # the platform runs 1.9.1: `auto` wants an environment for it


def crafted_wheel(folder: Path) -> Path:
    """A wheel shipping a .pth file, as an attacker's would. Its .pth holds only a path line (no `import`), so it
    would run nothing even if it were installed; the point is that it never gets that far."""
    wheel = folder / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("evil.pth", "evil-path-only\n")
        archive.writestr("evil/__init__.py", "")
        archive.writestr("evil-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n")
        archive.writestr("evil-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                     "Tag: py3-none-any\n")
        archive.writestr("evil-1.0.dist-info/RECORD", "")
    return wheel


def test_a_direct_reference_to_a_wheel_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    line = f"evil @ {crafted_wheel(tmp_path).as_uri()}"
    with pytest.raises(ModelEnvironmentError) as raised:
        environment_for(tmp_path / "home", "auto", [OTHER_SKLEARN, line], "sklearn", "skops", "crafted")
    assert line in raised.value.what and "not of the form 'name==version'" in raised.value.what
    assert not (tmp_path / "home" / "environments").exists()  # no folder, no uv, no install


def test_a_package_off_the_allow_list_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ModelEnvironmentError) as raised:
        parse_requirements([OTHER_SKLEARN, "requests==2.32.3"], "crafted requirements.txt")
    assert "'requests==2.32.3'" in raised.value.what
    assert "scikit-learn, skops, numpy, scipy, pandas, joblib, threadpoolctl" in raised.value.what


@pytest.mark.parametrize("line", [
    "scikit-learn @ git+https://example.invalid/scikit-learn.git",
    "scikit-learn @ file:///tmp/scikit_learn-1.5.2-py3-none-any.whl",
    "--index-url https://example.invalid/simple",
    "-r other-requirements.txt",
    "--extra-index-url=https://example.invalid/simple",
    "numpy==2.1.3; python_version >= '3.8'",
    "pandas[performance]==2.2.3",
    "numpy>=2.1",
    "numpy==2.*",
    "numpy===2.1.3",
    "numpy",
])
def test_anything_but_an_exact_release_is_refused(line: str) -> None:
    with pytest.raises(ModelEnvironmentError) as raised:
        parse_requirements([OTHER_SKLEARN, line], "requirements.txt")
    assert repr(line) in raised.value.what


def test_skops_older_than_the_platforms_is_refused() -> None:
    with pytest.raises(ModelEnvironmentError) as raised:
        parse_requirements([OTHER_SKLEARN, "skops==0.9.0"], "requirements.txt")
    assert "skops==0.9.0 is older than the platform's skops" in raised.value.what
    assert f"skops=={skops.__version__}" in raised.value.fix


def test_mlflow_and_cloudpickle_lines_are_left_out() -> None:
    parsed = parse_requirements(["mlflow==3.1.0", "mlflow-skinny @ https://example.invalid/x.whl",
                                 "cloudpickle==3.1.1  # MLflow's", OTHER_SKLEARN, "# a comment", ""], "logged")
    assert [str(r) for r in parsed] == [OTHER_SKLEARN]


def test_a_model_on_the_platforms_libraries_installs_nothing_whatever_its_other_lines() -> None:
    # `auto` and no loader pinned at another version: the platform's process, so the lines are never installed.
    assert environment_plan("auto", ["mlflow==3.1.0", "scikit-learn==1.9.1", "skops", "requests"], "sklearn",
                            "skops", "platform model") is None


def test_building_refuses_a_line_that_did_not_come_through_the_checks(tmp_path: Path) -> None:
    with pytest.raises(ModelEnvironmentError) as raised:
        ensure_environment(tmp_path, ["numpy==2.1.3", "requests==2.32.3"], "direct")
    assert "'requests==2.32.3'" in raised.value.what
    assert not (tmp_path / "environments").exists()


def planted_environment(home: Path, lines: list[str], marker: str) -> Path:
    """An environment folder under the key of `lines` whose environment.json says `marker`."""
    from tasks.environments import environment_key, environments_dir

    folder = environments_dir(home) / environment_key(lines)[:32]
    folder.mkdir()
    (folder / "environment.json").write_text(marker)
    return folder


def test_an_environment_recording_another_key_is_not_reused(tmp_path: Path) -> None:
    import json

    lines = ["numpy==2.1.3"]
    folder = planted_environment(tmp_path, lines, json.dumps({"key": "0" * 64, "requirements": ["numpy==2.1.3"],
                                                               "versions": {"numpy": "2.1.3"}}))
    with pytest.raises(ModelEnvironmentError) as raised:
        ensure_environment(tmp_path, lines, "reused")
    assert "records key 0000000000000000" in raised.value.what and str(folder) in raised.value.fix


def test_a_malformed_environment_marker_is_named(tmp_path: Path) -> None:
    lines = ["numpy==2.1.3"]
    folder = planted_environment(tmp_path, lines, '{"key": ')
    with pytest.raises(ModelEnvironmentError) as raised:
        ensure_environment(tmp_path, lines, "reused")
    assert f"{folder} has a malformed environment.json" in raised.value.what
