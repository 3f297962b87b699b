"""Where the platform keeps its state, and which systems of record it talks to.

Everything lives under one state directory (`.modelops/` by default, `MODELOPS_HOME` to move it): the MLflow
registry and artifacts, the governance database, Prefect's home, prediction logs, reports and outputs.
Each system of record's URL can be pointed elsewhere (PostgreSQL, a remote MLflow server) by environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    config_dir: Path
    tracking_uri: str
    governance_url: str

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def artifact_root(self) -> Path:
        return self.home / "mlflow-artifacts"

    @property
    def prediction_log_dir(self) -> Path:
        return self.home / "prediction-logs"

    @property
    def labels_dir(self) -> Path:
        return self.home / "ground-truth"

    @property
    def outputs_dir(self) -> Path:
        """The output root: batch outputs are written only under it (MODELOPS_OUTPUT_ROOT moves it)."""
        configured = os.environ.get("MODELOPS_OUTPUT_ROOT")
        return Path(configured).expanduser().resolve() if configured else self.home / "outputs"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def inbox_dir(self) -> Path:
        return self.home / "inbox"


def load_settings() -> Settings:
    home = Path(os.environ.get("MODELOPS_HOME", ".modelops")).expanduser().resolve()
    config_dir = Path(os.environ.get("MODELOPS_CONFIG_DIR", "configs")).expanduser().resolve()
    tracking_uri = os.environ.get("MODELOPS_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    governance_url = os.environ.get("MODELOPS_GOVERNANCE_URL") or f"sqlite:///{home / 'governance.db'}"
    return Settings(home=home, config_dir=config_dir, tracking_uri=tracking_uri, governance_url=governance_url)


def configure_environment(settings: Settings | None = None) -> Settings:
    """Point Prefect, MLflow and Great Expectations at the state directory.

    Must run before `prefect` is imported: Prefect reads PREFECT_HOME once, at import.
    Values already set in the environment win, so a deployment can point at a real Prefect server.
    """
    settings = settings or load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(settings.prefect_home),
        # Without this every log line carries a harmless "database is locked" traceback.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # Nothing is deserialised through MLflow's loaders: the platform loads only files its scan passed.
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        # MLflow and git: no interactive prompts, no telemetry.
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    _quiet_libraries()
    return settings


def _quiet_libraries() -> None:
    import warnings

    # Integer columns are intended: scoring input is conformed to the signature before prediction.
    warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
