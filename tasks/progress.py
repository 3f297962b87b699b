"""How far long work is (training, scoring a big batch, a sweep), told to whoever listens: the CLI draws a bar on
its terminal, the stage service passes the steps to the CLI that asked, a test collects them. Nobody listening
(deployment runs, the demo) costs one context lookup per step.

A listener is a plain callback set for a block of code (`reporting_to`); Prefect copies context variables into the
threads of submitted tasks, so steps reported inside tasks reach it too."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class Step:
    """One report: `done` of `total` `unit` (total None: not known yet) of the work named `key`."""

    key: str  # one bar per key: "train", "score", "sweep"
    description: str
    done: int
    total: int | None
    unit: str
    finished: bool = False

    def as_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Step:
        return cls(key=str(data["key"]), description=str(data["description"]), done=int(data["done"]),
                   total=None if data.get("total") is None else int(data["total"]), unit=str(data["unit"]),
                   finished=bool(data.get("finished")))


Listener = Callable[[Step], None]

_LISTENER: ContextVar[Listener | None] = ContextVar("modelops_progress_listener", default=None)


@contextmanager
def reporting_to(listener: Listener | None) -> Iterator[None]:
    """Steps reported inside the block go to `listener` (None: to nobody)."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def listening() -> bool:
    return _LISTENER.get() is not None


def report(step: Step) -> None:
    listener = _LISTENER.get()
    if listener is not None:
        listener(step)


class Tracker:
    """Counts one piece of work; `advance` may be called from the threads of submitted tasks."""

    def __init__(self, key: str, description: str, total: int | None, unit: str) -> None:
        self.key, self.description, self.total, self.unit = key, description, total, unit
        self.done = 0
        self._lock = threading.Lock()
        self._emit()

    def _emit(self, finished: bool = False) -> None:
        report(Step(self.key, self.description, self.done, self.total, self.unit, finished))

    def advance(self, count: int = 1, description: str | None = None) -> None:
        with self._lock:
            # A retried task advances again: never past the total.
            self.done = self.done + count if self.total is None else min(self.done + count, self.total)
            self.description = description or self.description
            self._emit()

    def update(self, done: int, total: int | None = None, description: str | None = None) -> None:
        with self._lock:
            self.done, self.total = done, total if total is not None else self.total
            self.description = description or self.description
            self._emit()

    def finish(self) -> None:
        with self._lock:
            self.total = self.done if self.total is None else self.total
            self._emit(finished=True)


_TRACKERS: ContextVar[dict[str, Tracker] | None] = ContextVar("modelops_progress_trackers", default=None)


@contextmanager
def tracked(key: str, description: str, total: int | None, unit: str) -> Iterator[Tracker]:
    """A tracker for the block that code deeper down (tasks in other threads too) advances with `advance(key)`;
    finished when the block ends without an error."""
    tracker = Tracker(key, description, total, unit)
    token = _TRACKERS.set({**(_TRACKERS.get() or {}), key: tracker})
    try:
        yield tracker
        tracker.finish()
    finally:
        _TRACKERS.reset(token)


def advance(key: str, count: int = 1, description: str | None = None) -> None:
    """Advance the tracker of `key` opened further up, if any."""
    tracker = (_TRACKERS.get() or {}).get(key)
    if tracker is not None:
        tracker.advance(count, description)
