"""Where people open what the platform keeps in MLflow: the MLflow UI's address, for links in Prefect artifacts and
alerts. Links go to the UI, never to a file on the server: a browser elsewhere cannot open a server's path."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from modelops.catalog import RunArtifact
from modelops.errors import ModelOpsError
from modelops.settings import Settings

ENV_URL = "MODELOPS_MLFLOW_UI_URL"


def how_to_open(artifact: RunArtifact) -> str:
    """The sentence shown instead of a link when no MLflow UI is known."""
    return (f"kept in MLflow as artifact `{artifact.path}` of run `{artifact.run_id}`; to open it, start the stack "
            f"with `modelops up` and open the MLflow UI it prints (behind a proxy: set {ENV_URL})")


def mlflow_ui_url(settings: Settings) -> str | None:
    """MODELOPS_MLFLOW_UI_URL (the address people reach, e.g. behind a reverse proxy), else the MLflow UI that
    `modelops up` started for this state directory if it answers now, else None."""
    configured = os.environ.get(ENV_URL, "").strip()
    if configured:
        parts = urlsplit(configured)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ModelOpsError(f"{ENV_URL}={configured!r} is not an http(s) address",
                                f"set {ENV_URL} to the MLflow UI's address as a browser reaches it, e.g. "
                                "https://mlflow.example.org, or unset it to use the one `modelops up` started")
        if parts.username or parts.password:
            # It is written into every artifact and alert: a password in it would be published with them.
            raise ModelOpsError(f"{ENV_URL} carries a user name or password",
                                f"set {ENV_URL} to the address alone (https://host[:port][/path]); people sign in "
                                "to the MLflow UI themselves")
        return configured.rstrip("/")
    from modelops.services.stack import running_mlflow_ui_url

    return running_mlflow_ui_url(settings)
