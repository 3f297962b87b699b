"""How far a chunked scoring run is: a progress artifact in the Prefect UI (0-100 %) and, when the CLI asks for it,
a one-line bar on its stderr."""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, TextIO
from uuid import UUID

# The stream the CLI wants a bar on (its stderr on a terminal, or with --progress); None elsewhere (deployments,
# the stage service, tests): a bar is for a person watching a terminal.
TERMINAL_BAR: ContextVar[TextIO | None] = ContextVar("modelops_terminal_bar", default=None)


@contextmanager
def bar_on(stream: TextIO | None) -> Iterator[None]:
    token = TERMINAL_BAR.set(stream)
    try:
        yield
    finally:
        TERMINAL_BAR.reset(token)


def artifact_key(model: str) -> str:
    # The one key rule of every stage's artifacts, imported here only when a run publishes: the CLI imports this
    # module for its bar and must not import Prefect with it.
    from tasks.stage_artifacts import artifact_key as stage_key

    return stage_key("score-progress", model)


def bar_text(fraction: float | None, rows: int, seconds: float, width: int = 30) -> str:
    rate = rows / seconds if seconds > 0 else 0.0
    if fraction is None:
        return f"scored {rows:,} rows ({rate:,.0f} rows/s)"
    filled = int(round(max(0.0, min(fraction, 1.0)) * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction:6.1%} {rows:,} rows ({rate:,.0f} rows/s)"


class ScoreProgress:
    """One run's progress: `advance` after each chunk with the rows scored so far and the share of the input read."""

    def __init__(self, model: str, label: str, resumed_chunks: int) -> None:
        self.started = time.perf_counter()
        self.stream = TERMINAL_BAR.get()
        self.artifact: UUID | None = None
        self.description = f"Scoring {label} with {model}" + (
            f", resumed after {resumed_chunks} completed chunk(s)" if resumed_chunks else "")
        self.model = model

    def start(self) -> None:
        from prefect.artifacts import create_progress_artifact

        self.artifact = create_progress_artifact(0.0, key=artifact_key(self.model), description=self.description)

    def advance(self, fraction: float | None, rows: int) -> None:
        from prefect.artifacts import update_progress_artifact

        if self.artifact is not None and fraction is not None:
            update_progress_artifact(self.artifact, round(100 * fraction, 2))
        if self.stream is not None:
            self.stream.write("\r" + bar_text(fraction, rows, time.perf_counter() - self.started))
            self.stream.flush()

    def finish(self) -> None:
        from prefect.artifacts import update_progress_artifact

        if self.artifact is not None:
            update_progress_artifact(self.artifact, 100.0)
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
