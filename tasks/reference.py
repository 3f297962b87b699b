"""The data a monitoring window's drift is judged against, by the spec's `monitoring.reference.kind`:

- training: a sample of the version's training window stored at validation (its statistics cached per version);
- preceding: the model's logged traffic in the window of the same length right before the judged one;
- year_ago: the same period one year earlier, from the prediction log where the log holds that period, else
  through the spec's data loader (the monitor only: the sweep does not call loaders).

A windowed reference with fewer rows than `monitoring.min_rows` cannot judge drift: it carries a note saying so.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd

from modelops.errors import DataError
from modelops.platform import Platform
from modelops.spec import LifecycleSpec, ReferenceKind
from modelops.store.records import GovernedVersion
from tasks.data import load_window
from tasks.drift_stats import ReferenceStats
from tasks.prediction_log import logged_predictions
from tasks.validation import training_window_of
from tasks.windows import TimeWindow, reference_window

# The log "holds" a period when its traffic starts within a day of the period's start and reaches within a day of
# its end: a log that began mid-period would make a reference of part of the season.
_COVERAGE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class DriftReference:
    kind: ReferenceKind
    description: str  # what an operator reads: which data, from where
    window: TimeWindow | None = None  # None: the version's training reference
    frame: pd.DataFrame | None = None  # the rows of a windowed reference
    note: str = ""  # set when drift cannot be judged against it

    @property
    def judgeable(self) -> bool:
        return not self.note

    def stats(self, platform: Platform, spec: LifecycleSpec, governed: GovernedVersion) -> ReferenceStats:
        if self.frame is None:
            return reference_stats(platform, spec, governed)
        return ReferenceStats.from_frame(self.frame, spec.data.features)

    def sample(self, platform: Platform, spec: LifecycleSpec, governed: GovernedVersion) -> pd.DataFrame:
        """The rows themselves, for Evidently's report."""
        return reference_sample(platform, spec, governed) if self.frame is None else self.frame


def drift_reference(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion, current: TimeWindow,
                    use_loader: bool = True) -> DriftReference:
    kind = spec.monitoring.reference.kind
    window = reference_window(kind, current)
    if window is None:
        return DriftReference(kind, f"training sample of v{governed.version}")
    frame = traffic_in(platform, spec.name, window)
    source = "prediction log"
    if kind is ReferenceKind.year_ago and not log_holds(platform, spec.name, window):
        if use_loader:
            frame, source = loaded_rows(spec, window), "data loader"
        else:
            source = "prediction log; the sweep does not call loaders: run monitor for this model"
    description = f"{kind.value} {window.label()} ({source})"
    needed = spec.monitoring.min_rows
    note = (f"drift not judged: the {description} reference has {len(frame)} rows < {needed}"
            if len(frame) < needed else "")
    return DriftReference(kind, description, window, frame, note)


def traffic_in(platform: Platform, model: str, window: TimeWindow) -> pd.DataFrame:
    """The model's logged traffic in a window, whichever version served it (inputs do not depend on the version);
    a request scored by several versions (shadow, challenger) counts once."""
    logged = logged_predictions(platform, model, None, *window)
    return logged.drop_duplicates(subset="prediction_id", keep="last").reset_index(drop=True)


def log_holds(platform: Platform, model: str, window: TimeWindow) -> bool:
    batches = platform.store.prediction_batches(model, None, *window)
    return bool(batches) and min(b.first_event_at for b in batches) < window.start + _COVERAGE_SLACK and \
        max(b.last_event_at for b in batches) >= window.end - _COVERAGE_SLACK


def loaded_rows(spec: LifecycleSpec, window: TimeWindow) -> pd.DataFrame:
    """Rows of [start, end) through the spec's loader; none when the data does not reach that far back."""
    try:
        frame = load_window(spec, window.dates())
    except DataError:  # no rows in that period: the reference is empty, and the note says so
        return pd.DataFrame(columns=spec.data.features.all)
    stamps = pd.to_datetime(frame[spec.data.timestamp_column], utc=True)
    inside = (stamps >= pd.Timestamp(window.start)) & (stamps < pd.Timestamp(window.end))
    return frame.loc[inside.to_numpy()].reset_index(drop=True)


# --- the training reference, prepared once per version -------------------------------------------------------
def reference_sample(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion) -> pd.DataFrame:
    """The training-data sample stored at validation, else the training window itself."""
    run_id = governed.validation_run_id
    if run_id:
        with tempfile.TemporaryDirectory(dir=_scratch(platform)) as folder:
            try:
                local = platform.catalog.download_run_artifacts(run_id, "reference", Path(folder))
                files = sorted(local.glob("*.parquet"))
                if files:
                    return pd.read_parquet(files[0])
            except OSError:
                pass
    return load_window(spec, training_window_of(spec, governed))


def reference_stats(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion) -> ReferenceStats:
    """Cleaned reference statistics of a version, computed on first use and kept under the state directory."""
    path = platform.settings.home / "reference-stats" / spec.name / f"v{governed.version}.npz"
    if not path.is_file():
        ReferenceStats.from_frame(reference_sample(platform, spec, governed), spec.data.features).save(path)
    return ReferenceStats.load(path)


def _scratch(platform: Platform) -> Path:
    folder = platform.settings.home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
