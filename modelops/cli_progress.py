"""The CLI's progress bars: the steps long work reports (tasks.progress: training, scoring, sweeps) drawn on stderr,
whether the stage runs in this process or in the stage service (which passes the steps back over its socket).

Drawn with rich when stderr is a terminal (and neither --json, NO_COLOR nor TERM=dumb says otherwise); with
`score --progress` on a pipe or file, as one plain text line rewritten per chunk. stdout never gets any of it."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Iterator

from tasks.progress import Listener, Step

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def bar_text(done: int, total: int | None, unit: str, seconds: float, rate_of: int, width: int = 30) -> str:
    """`rate_of` of the `done` were done in `seconds` (a resumed run counts only its own)."""
    rate = rate_of / seconds if seconds > 0 else 0.0
    if not total:
        return f"{done:,} {unit} ({rate:,.0f} {unit}/s)"
    fraction = max(0.0, min(done / total, 1.0))
    filled = int(round(fraction * width))
    return (f"[{'#' * filled}{'.' * (width - filled)}] {fraction:6.1%} {done:,} of {total:,} {unit} "
            f"({rate:,.0f} {unit}/s)")


class PlainBar:
    """One text line per piece of work, rewritten in place ("\\r"), ended by a newline when it finishes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.first: dict[str, tuple[float, int]] = {}  # key -> (when, done) at its first step
        self.lock = threading.Lock()

    def __call__(self, step: Step) -> None:
        with self.lock:
            started, done_before = self.first.setdefault(step.key, (time.perf_counter(), step.done))
            text = bar_text(step.done, step.total, step.unit, time.perf_counter() - started, step.done - done_before)
            self.stream.write(f"\r{step.description}: {text}" + ("\n" if step.finished else ""))
            self.stream.flush()
            if step.finished:
                del self.first[step.key]

    def close(self) -> None:
        pass


class RichBars:
    """A rich bar per piece of work on the terminal; started at the first step (a command without long work draws
    nothing), stopped by `close`."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def _started(self) -> Progress:
        if self.progress is None:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            # Prefect's log lines (written to sys.stderr) print above the bars; stdout is left alone.
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=Console(file=self.stream), redirect_stdout=False, redirect_stderr=True)
            self.progress.start()
        return self.progress

    def __call__(self, step: Step) -> None:
        with self.lock:
            progress = self._started()
            task = self.tasks.get(step.key)
            if task is None:
                task = self.tasks[step.key] = progress.add_task(step.description, total=step.total, unit=step.unit)
            progress.update(task, completed=step.done, total=step.total, description=step.description)
            if step.finished:
                del self.tasks[step.key]  # the same key again later (retrain's two trainings) is a new bar

    def close(self) -> None:
        with self.lock:
            if self.progress is not None:
                self.progress.stop()


def bars_for(args: argparse.Namespace, stream: IO[str] | None = None) -> PlainBar | RichBars | None:
    """Rich bars on a terminal's stderr unless --json; a plain line with `score --progress` elsewhere (even with
    --json: asked for by name, and stdout stays JSON alone); else none."""
    from modelops.cli_render import styled

    stream = sys.stderr if stream is None else stream
    asked = bool(getattr(args, "progress", None))
    if styled(stream) and not getattr(args, "json", False):
        return RichBars(stream)
    return PlainBar(stream) if asked else None


@contextmanager
def progress_shown(args: argparse.Namespace) -> Iterator[Listener | None]:
    """The listener for the command's steps (None: no bars), closed at the end."""
    bars = bars_for(args)
    try:
        yield bars
    finally:
        if bars is not None:
            bars.close()
