"""Per-model flows: a spec's `flows:` section names, per stage, a flow of its own for that model. Each standard
stage flow hands such a model over to it (`hand_over`), so deployment triggers, schedules, the CLI and retrain's
sub-flow calls all honour the override without a deployment of its own.

An override usually adds to the standard procedure rather than replacing it: it calls the stage's standard body
(`flows.<stage>.standard_<stage>`), or the standard flow itself, which then runs its standard body for that model
instead of handing over again (no loop)."""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

from modelops.errors import SpecError
from modelops.lifecycle import Stage
from modelops.spec import LifecycleSpec, load_spec, resolve_entry_point

# (model, stage) pairs whose override is running in this context: there the standard flow runs its own body.
_HANDED_OVER: ContextVar[frozenset[tuple[str, Stage]]] = ContextVar("modelops_handed_over", default=frozenset())


def standard_flow(stage: Stage) -> Any:
    import importlib

    return getattr(importlib.import_module(f"flows.{stage.value}"), stage.value)


def _parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(fn).parameters)


def check_override(spec: LifecycleSpec, stage: Stage) -> None:
    """Raise SpecError (naming the spec, the stage and the problem) unless the spec's override for `stage` imports,
    is a Prefect flow and takes the standard stage flow's parameters. No override: nothing to check."""
    from prefect import Flow

    entry = spec.flows.get(stage)
    if entry is None:
        return
    where = f"spec {spec.name!r}, flows.{stage.value} ({entry.flow!r})"
    try:
        override = resolve_entry_point(entry.flow)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc.what}", exc.fix) from exc
    if not isinstance(override, Flow):
        raise SpecError(f"{where}: {entry.flow} is not a Prefect flow", "decorate it with @prefect.flow")
    standard = _parameters(standard_flow(stage).fn)
    mine = _parameters(override.fn)
    missing = [name for name in standard if name not in mine]
    extra = [name for name, p in mine.items() if name not in standard and p.default is inspect.Parameter.empty]
    if missing or extra:
        problems = ([f"does not take {', '.join(missing)}"] if missing else []) + \
                   ([f"requires {', '.join(extra)}, which the {stage.value} stage does not pass"] if extra else [])
        raise SpecError(f"{where}: {'; '.join(problems)}",
                        f"give it the parameters of flows.{stage.value}.{stage.value}: {', '.join(standard)}")


def flow_settings(spec: LifecycleSpec, stage: Stage) -> dict[str, Any]:
    """The settings the spec gives the per-model flow of `stage` ({} when none)."""
    entry = spec.flows.get(stage)
    return dict(entry.settings) if entry else {}


@contextmanager
def _handed_over(model: str, stage: Stage) -> Iterator[None]:
    token = _HANDED_OVER.set(_HANDED_OVER.get() | {(model, stage)})
    try:
        yield
    finally:
        _HANDED_OVER.reset(token)


def hand_over(stage: Stage, parameters: dict[str, Any]) -> tuple[bool, Any]:
    """(True, the override's result) when `model`'s spec overrides `stage` and that override is not already running
    for it; (False, None) when the standard body should run. The override runs as a sub-flow with the standard
    flow's parameters (`parameters`, which name the model)."""
    model = parameters["model"]
    spec = load_spec(model)
    if stage not in spec.flows or (spec.name, stage) in _HANDED_OVER.get():
        return False, None
    check_override(spec, stage)
    override = resolve_entry_point(spec.flows[stage].flow)
    print(f"{model}: {stage.value} handed over to {spec.flows[stage].flow}")
    with _handed_over(spec.name, stage):
        return True, override(**parameters)
