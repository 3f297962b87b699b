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
from typing import Any, Iterator

from modelops.errors import SpecError
from modelops.lifecycle import Stage
from modelops.spec import LifecycleSpec, load_spec, resolve_entry_point

# (model, stage) pairs whose override is running in this context: there the standard flow runs its own body.
_HANDED_OVER: ContextVar[frozenset[tuple[str, Stage]]] = ContextVar("modelops_handed_over", default=frozenset())


def standard_flow(stage: Stage) -> Any:
    import importlib

    return getattr(importlib.import_module(f"flows.{stage.value}"), stage.value)


def override_problem(entry: str, stage: Stage) -> str | None:
    """Why the flow at `entry` cannot stand in for the stage's standard flow, or None when it can: it must import,
    be a Prefect flow, accept every parameter the stage passes (hand_over passes them all) and require no other."""
    from prefect import Flow

    try:
        override = resolve_entry_point(entry)
    except SpecError as exc:
        return exc.what
    if not isinstance(override, Flow):
        return f"it is a {type(override).__name__}, not a Prefect flow (decorate it with @prefect.flow)"
    standard = inspect.signature(standard_flow(stage).fn).parameters
    mine = inspect.signature(override.fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in mine.values())
    missing = [] if takes_any else [name for name in standard if name not in mine]
    extra = [name for name, p in mine.items() if name not in standard and p.default is p.empty
             and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    problems = ([f"does not take {', '.join(missing)}"] if missing else []) + \
               ([f"requires {', '.join(extra)}, which the {stage.value} stage does not pass"] if extra else [])
    return "it " + "; it ".join(problems) if problems else None


def check_override(spec: LifecycleSpec, stage: Stage) -> None:
    """Raise SpecError (naming the spec, the stage and the problem) unless the spec's override for `stage` can stand
    in for the standard flow. No override: nothing to check."""
    entry = spec.flows.get(stage)
    problem = override_problem(entry.flow, stage) if entry else None
    if entry and problem:
        standard = ", ".join(inspect.signature(standard_flow(stage).fn).parameters)
        raise SpecError(f"spec {spec.name!r}, flows.{stage.value} ({entry.flow!r}): {problem}",
                        f"point flows.{stage.value} at a @flow taking the parameters of flows.{stage.value}."
                        f"{stage.value} ({standard}), or remove it to use the standard flow")


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


def authorize_top_level(stage: Stage, model: str | None) -> None:
    """The actor must hold a role that may run `stage` (modelops.people.STAGE_ROLES), checked once per top-level run:
    the stages a retrain runs as sub-flows act on the retrain's authority."""
    from prefect.context import FlowRunContext

    from modelops.people import authorize_stage

    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.parent_task_run_id is None:
        authorize_stage(stage.value, model)


def hand_over(stage: Stage, parameters: dict[str, Any]) -> tuple[bool, Any]:
    """(True, the override's result) when `model`'s spec overrides `stage` and that override is not already running
    for it; (False, None) when the standard body should run. The override runs as a sub-flow with the standard
    flow's parameters (`parameters`, which name the model). First of all, the actor must be allowed to run it."""
    model = parameters["model"]
    if (model, stage) not in _HANDED_OVER.get():
        authorize_top_level(stage, model)
    spec = load_spec(model)
    if stage not in spec.flows or (spec.name, stage) in _HANDED_OVER.get():
        return False, None
    check_override(spec, stage)
    override = resolve_entry_point(spec.flows[stage].flow)
    print(f"{model}: {stage.value} handed over to {spec.flows[stage].flow}")
    with _handed_over(spec.name, stage):
        return True, override(**parameters)
