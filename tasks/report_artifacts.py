"""Evidently's HTML report kept where a browser can open it: as an artifact of the monitored version's MLflow run,
linked to the MLflow UI's page of that artifact (modelops.mlflow_ui)."""

from __future__ import annotations

from pathlib import Path

from modelops.catalog import RunArtifact
from modelops.mlflow_ui import how_to_open
from modelops.platform import Platform
from tasks import as_task

REPORT_LINK = "Evidently report"


def version_run_id(platform: Platform, model: str, version: str) -> str | None:
    """The run the version's reports belong to: its training run, else (a version registered without one, such as
    an endpoint) its validation run."""
    from tasks.integrity import require_governed

    run_id = platform.catalog.version(model, version).run_id
    return run_id or require_governed(platform, model, version).validation_run_id


def keep_report(platform: Platform, model: str, version: str, report_path: str | None,
                folder: str) -> RunArtifact | None:
    """Log the report file as `monitoring/<folder>/<file>` on the version's run; None without a report or a run.
    The file stays where the monitor wrote it (the CLI names it)."""
    if not report_path:
        return None
    run_id = version_run_id(platform, model, version)
    if run_id is None:
        return None
    return platform.catalog.log_run_file(run_id, Path(report_path), f"monitoring/{folder}")


def report_links(mlflow_ui: str | None, artifact: RunArtifact | None) -> dict[str, str]:
    """{"Evidently report": its page in the MLflow UI at `mlflow_ui` (modelops.mlflow_ui.mlflow_ui_url)}, or
    nothing (no report kept, or no MLflow UI known)."""
    return {REPORT_LINK: artifact.ui_page(mlflow_ui)} if artifact and mlflow_ui else {}


def report_line(artifact: RunArtifact | None, url: str | None) -> str | None:
    """The Markdown line naming the report: a link to its MLflow UI page `url`, else how to open it; None when no
    report was kept."""
    if artifact is None:
        return None
    return (f"{REPORT_LINK}: [open it in the MLflow UI]({link_destination(url)})" if url
            else f"{REPORT_LINK}: {how_to_open(artifact)}.")


_LINK_BREAKERS = str.maketrans({c: f"%{ord(c):02X}" for c in "() <>[]"})


def link_destination(url: str) -> str:
    """`url` as a Markdown link destination: the characters that would end it early or open another construct,
    percent-encoded (the address itself means the same)."""
    return url.translate(_LINK_BREAKERS)


keep_report_task = as_task(keep_report, retries=1)
