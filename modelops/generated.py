"""Files generated from the specs and the spec's models, committed so that people, editors and Prefect read them:
prefect.yaml (rendered from configs/models/), the spec's JSON Schema and its reference page.
`modelops deployments --write` writes them; `--check` and a test fail when a committed one differs."""

from __future__ import annotations

import difflib
from pathlib import Path

from modelops.errors import ModelOpsError
from modelops.services.concurrency import load_platform_settings
from modelops.services.deployments import render_prefect_yaml
from modelops.spec import load_all_specs
from modelops.spec_reference import REFERENCE_FILE, SCHEMA_FILE, json_schema, reference_markdown

MAX_DIFF_LINES = 40


def generated_files(project_dir: Path, config_dir: Path) -> dict[Path, str]:
    """Each generated file's path and the text it must have."""
    if not (project_dir / "flows").is_dir():
        raise ModelOpsError(f"{project_dir} is not the project's folder (no flows/ in it)",
                            "run the command from the folder that holds prefect.yaml and flows/")
    return {project_dir / "prefect.yaml": render_prefect_yaml(load_all_specs(config_dir),
                                                              load_platform_settings(config_dir).concurrency),
            config_dir / SCHEMA_FILE: json_schema(),
            project_dir / REFERENCE_FILE: reference_markdown()}


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def differences(files: dict[Path, str]) -> list[str]:
    """One message per file whose committed text differs from its generated text: the file and a unified diff."""
    out = []
    for path, text in files.items():
        current = path.read_text() if path.is_file() else None
        if current == text:
            continue
        if current is None:
            out.append(f"{display_path(path)} is missing")
            continue
        diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), f"{display_path(path)} (committed)",
                                         f"{display_path(path)} (generated)", lineterm="", n=1))
        more = len(diff) - MAX_DIFF_LINES
        out.append(f"{display_path(path)} differs from what is generated:\n" + "\n".join(diff[:MAX_DIFF_LINES])
                   + (f"\n... {more} more diff lines" if more > 0 else ""))
    return out


def write_files(files: dict[Path, str]) -> list[Path]:
    """Write the files that differ; return them."""
    written = []
    for path, text in files.items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written
