"""How far a chunked scoring run is: a progress artifact in the Prefect UI (0-100 %), and rows read of the input's
rows (tasks.progress) for whoever listens (the CLI's bar)."""

from __future__ import annotations

from uuid import UUID

from tasks.progress import Tracker


def artifact_key(model: str) -> str:
    # The one key rule of every stage's artifacts, imported here only when a run publishes: the CLI imports this
    # module for its bar and must not import Prefect with it.
    from tasks.stage_artifacts import artifact_key as stage_key

    return stage_key("score-progress", model)


class ScoreProgress:
    """One run's progress: `advance` after each chunk with the share of the input read and the rows read so far
    (chunks a killed run completed included: they are done)."""

    def __init__(self, model: str, label: str, resumed_chunks: int) -> None:
        self.artifact: UUID | None = None
        self.description = f"Scoring {label} with {model}" + (
            f", resumed after {resumed_chunks} completed chunk(s)" if resumed_chunks else "")
        self.model = model
        self.tracker: Tracker | None = None

    def start(self) -> None:
        from prefect.artifacts import create_progress_artifact

        self.artifact = create_progress_artifact(0.0, key=artifact_key(self.model), description=self.description)
        self.tracker = Tracker("score", f"scoring with {self.model}", None, "rows")

    def advance(self, fraction: float | None, rows_read: int) -> None:
        from prefect.artifacts import update_progress_artifact

        if self.artifact is not None and fraction is not None:
            update_progress_artifact(self.artifact, round(100 * fraction, 2))
        if self.tracker is not None:
            # Parquet knows its rows; a CSV's share is of its bytes, so its total is an estimate until the end.
            total = round(rows_read / fraction) if fraction else None
            self.tracker.update(rows_read, max(total, rows_read) if total is not None else None)

    def finish(self) -> None:
        from prefect.artifacts import update_progress_artifact

        if self.artifact is not None:
            update_progress_artifact(self.artifact, 100.0)
        if self.tracker is not None:
            self.tracker.total = self.tracker.done  # a CSV's estimate gives way to the rows it had
            self.tracker.finish()
