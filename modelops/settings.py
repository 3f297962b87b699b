"""Where the platform keeps its state, and which systems of record it talks to.

Everything lives under one state directory (`.modelops/` by default, `MODELOPS_HOME` to move it): the MLflow
registry and artifacts, the governance database, Prefect's home, prediction logs, reports and outputs.
Each system of record's URL can be pointed elsewhere (PostgreSQL, a remote MLflow server) by environment.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from modelops.errors import ModelOpsError


@dataclass(frozen=True)
class Settings:
    home: Path
    config_dir: Path
    tracking_uri: str
    governance_url: str
    # The folder holding flows/, tasks/ and prefect.yaml: the working directory (or MODELOPS_PROJECT_DIR), never
    # derived from where the package is installed (a wheel install has no flows/ beside it).
    project_dir: Path

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def runner_results(self) -> Path:
        """Where the stage runner keeps each flow run's return value (PREFECT_LOCAL_STORAGE_PATH of the runner), so
        that `make demo` through the stack reads it from the same folder whatever PREFECT_HOME its own shell has."""
        return self.prefect_home / "storage"

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


def project_dir() -> Path:
    """The project: the folder holding configs/, prefect.yaml and the flows. MODELOPS_PROJECT_DIR, else the current
    directory; never derived from where the platform's package is installed (a wheel lives in site-packages)."""
    return Path(os.environ.get("MODELOPS_PROJECT_DIR") or os.getcwd()).expanduser().resolve()


def load_settings() -> Settings:
    root = project_dir()
    home = (root / Path(os.environ.get("MODELOPS_HOME", ".modelops")).expanduser()).resolve()
    config_dir = (root / Path(os.environ.get("MODELOPS_CONFIG_DIR", "configs")).expanduser()).resolve()
    # The environment wins; else the state directory's own PostgreSQL when `modelops up --postgres` set one up;
    # else SQLite files in the state directory.
    recorded = _recorded_postgres(home) or {}
    tracking_uri = (os.environ.get("MODELOPS_TRACKING_URI") or recorded.get("tracking_uri")
                    or f"sqlite:///{home / 'mlflow.db'}")
    governance_url = (os.environ.get("MODELOPS_GOVERNANCE_URL") or recorded.get("governance_url")
                      or f"sqlite:///{home / 'governance.db'}")
    return Settings(home=home, config_dir=config_dir, tracking_uri=tracking_uri, governance_url=governance_url,
                    project_dir=root)


def _recorded_postgres(home: Path) -> dict[str, str] | None:
    from modelops.services.postgres import recorded_urls

    return recorded_urls(home)


def configure_environment(settings: Settings | None = None) -> Settings:
    """Point Prefect, MLflow and Great Expectations at the state directory.

    Must run before `prefect` is imported: Prefect reads PREFECT_HOME once, at import.
    Values already set in the environment win, so a deployment can point at a real Prefect server.
    """
    settings = settings or load_settings()
    _private_files_from_now_on()
    settings.home.mkdir(parents=True, exist_ok=True)
    # Whoever else can write the state directory can replace the databases, the stack's record of its processes
    # and the stage service's socket: refuse it rather than run stages through what they planted.
    private_to_us(settings.home, "the state directory", follow_symlinks=True)
    defaults = {
        "PREFECT_HOME": str(settings.prefect_home),
        # prefect.yaml's pull step: deployments run their flows from the project folder.
        "MODELOPS_PROJECT_DIR": str(settings.project_dir),
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
    make_private(settings.home, Path(os.environ["PREFECT_HOME"]))
    _quiet_libraries()
    return settings


def private_to_us(path: Path, what: str, follow_symlinks: bool = False) -> None:
    """Refuse `path` unless this user owns it and neither its group nor others may write it (a symlink is refused
    too unless `follow_symlinks`: the link itself could have been planted)."""
    status = path.stat() if follow_symlinks else path.lstat()
    if stat.S_ISLNK(status.st_mode):
        raise ModelOpsError(f"{what} {path} is a symbolic link", f"remove {path}; `modelops up` recreates it")
    if status.st_uid != os.geteuid():
        raise ModelOpsError(f"{what} {path} belongs to another user (uid {status.st_uid})",
                            "use a state directory of your own: set MODELOPS_HOME to a folder you own")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ModelOpsError(f"{what} {path} is writable by other users (mode {stat.S_IMODE(status.st_mode):o})",
                            f"check that nothing in it was put there by someone else, then `chmod go-w {path}`; or "
                            "set MODELOPS_HOME to a new folder")


def _private_files_from_now_on() -> None:
    """Files and folders this process (and every server it starts) creates are its owner's only: the databases hold
    the registry, the audit trail and Prefect's secret blocks together with the key that decrypts them."""
    os.umask(os.umask(0o077) | 0o077)


# SQLite databases with their journals, and Prefect's profiles (which may hold an API key).
PRIVATE_FILES = ("*.db", "*.db-*", "*.toml")


def make_private(*folders: Path) -> None:
    """Owner-only access to each folder and the databases and profiles at its top: tightens a state directory that
    an older version, or another umask, left readable by others. Other files keep their modes (an executable stays
    one), the folder's mode already keeps others out."""
    for folder in folders:
        if not folder.is_dir():
            continue
        _chmod_if_owned(folder, _private_folder_mode(folder))
        for pattern in PRIVATE_FILES:
            for path in folder.glob(pattern):
                if path.is_file() and not path.is_symlink():
                    _chmod_if_owned(path, 0o600)


def _private_folder_mode(folder: Path) -> int:
    """Owner-only, except that a state directory whose embedded PostgreSQL runs as another user (root's `up
    --postgres`: PostgreSQL refuses root) lets others pass through (search only: nothing can be listed or read), or
    that server could not reach its data directory by its absolute path."""
    try:
        return 0o711 if (folder / "postgres").stat().st_uid != os.geteuid() else 0o700
    except FileNotFoundError:
        return 0o700


def _chmod_if_owned(path: Path, mode: int) -> None:
    try:
        status = path.stat()
        # Only the owner may chmod; a shared folder someone else owns is left as it is.
        if status.st_uid == os.geteuid() and status.st_mode & 0o777 != mode:
            path.chmod(mode)
    except FileNotFoundError:  # a database's journal that SQLite removed meanwhile
        pass


def _quiet_libraries() -> None:
    import warnings

    # Integer columns are intended: scoring input is conformed to the signature before prediction.
    warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
