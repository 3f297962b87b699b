"""Reusable stage tasks. Each module keeps its logic in plain typed functions (testable without Prefect) and
exposes thin Prefect task wrappers named `<function>_task`."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def as_task(fn: F, *, retries: int = 0, name: str | None = None) -> Any:
    """Wrap a plain function as a Prefect task, named `name` in the UI (default: the function's name with dashes).
    Inputs are data frames and models: hashing them for Prefect's cache would cost more than the work, and stages
    are idempotent by design, so caching is off."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, name=name or fn.__name__.replace("_", "-"), cache_policy=NO_CACHE, retries=retries)
