"""`modelops check`: what a spec says, verified against what it names, before anything is registered.

Loading a spec already checks its shape (modelops.spec). Here each spec's loader is called on a short window and
the columns it returns are checked against the data section; every metric name against those the platform
computes for the task; the monitor cron; the entry points; and every per-model flow override. Every problem of
every spec is reported, each naming the spec file, the field and how to fix it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from modelops.errors import SpecError
from modelops.spec import LifecycleSpec, parse_spec, resolve_entry_point

SAMPLE_DAYS = 3  # enough rows to see every column's type, few enough to stay fast


@dataclass(frozen=True)
class Problem:
    spec_file: Path
    field: str
    what: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.spec_file}: {self.field}: " if self.field else ""
        return f"{where}{self.what}\n    fix: {self.fix}"


def computed_metric_names(task: str) -> set[str]:
    """The metrics the platform computes for a task: those tasks.metrics.compute_metrics returns."""
    from tasks.metrics import compute_metrics

    return set(compute_metrics(task, np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.9])))  # type: ignore[arg-type]


def _suggestion(name: str, choices: set[str] | list[str]) -> str:
    close = difflib.get_close_matches(name, sorted(map(str, choices)), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def metric_problems(spec: LifecycleSpec, path: Path) -> list[Problem]:
    known = computed_metric_names(spec.task)
    used = [*((f"validation.metric_thresholds.{m}", m) for m in spec.validation.metric_thresholds),
            *((f"approval.min_metrics.{m}", m) for m in spec.approval.min_metrics),
            ("monitoring.performance.metric", spec.monitoring.performance.metric)]
    return [Problem(path, field, f"{name!r} is not a metric the platform computes for {spec.task}",
                    f"{_suggestion(name, known)}use one of {sorted(known)}")
            for field, name in used if name not in known]


def cron_problems(spec: LifecycleSpec, path: Path) -> list[Problem]:
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=spec.monitoring.cron, timezone="UTC")
    except ValidationError:
        return [Problem(path, "monitoring.cron", f"{spec.monitoring.cron!r} is not a valid cron expression",
                        "write five fields: minute (0-59) hour (0-23) day-of-month month day-of-week, "
                        "e.g. '0 6 * * *' for 06:00 UTC daily")]
    return []


def _sample(spec: LifecycleSpec, path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    try:
        loader = resolve_entry_point(spec.data.loader)
    except SpecError as exc:
        return None, [Problem(path, "data.loader", exc.what, exc.fix)]
    start = spec.training.window.start
    end = min(spec.training.window.end, start + timedelta(days=SAMPLE_DAYS))
    try:
        frame = loader(start, end)
    except Exception as exc:  # anything the engineer's loader raises is the problem to report
        return None, [Problem(path, "data.loader", f"{spec.data.loader}({start}, {end}) raised "
                              f"{type(exc).__name__}: {exc}", "fix the loader; it must return rows of [start, end)")]
    if not isinstance(frame, pd.DataFrame):
        return None, [Problem(path, "data.loader", f"{spec.data.loader} returned {type(frame).__name__}, not a "
                              "pandas DataFrame", "make the loader return a DataFrame")]
    if frame.empty:
        return None, [Problem(path, "training.window", f"{spec.data.loader} has no rows in {start}..{end}, the "
                              "first days of training.window", "start the training window where the data has rows")]
    return frame, []


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def column_problems(spec: LifecycleSpec, path: Path, frame: pd.DataFrame) -> list[Problem]:
    data = spec.data
    named = [("data.id_column", data.id_column), ("data.timestamp_column", data.timestamp_column),
             ("data.target", data.target), *(("data.features.numerical", c) for c in data.features.numerical),
             *(("data.features.categorical", c) for c in data.features.categorical),
             *(("data.protected_attributes", c) for c in data.protected_attributes)]
    columns = list(map(str, frame.columns))
    problems = [Problem(path, field, f"column {column!r} is not in what {data.loader} returns",
                        f"{_suggestion(column, columns)}name one of its columns: {columns}")
                for field, column in named if column not in frame.columns]
    present = {column for _, column in named if column in frame.columns}
    if data.id_column in present and frame[data.id_column].isna().any():
        problems.append(Problem(path, "data.id_column", f"column {data.id_column!r} has empty ids",
                                "name a column that identifies every row"))
    if data.timestamp_column in present and not pd.api.types.is_datetime64_any_dtype(frame[data.timestamp_column]):
        try:
            pd.to_datetime(frame[data.timestamp_column], errors="raise")
        except (ValueError, TypeError) as exc:
            problems.append(Problem(path, "data.timestamp_column", f"column {data.timestamp_column!r} is not "
                                    f"parseable as timestamps ({exc})", "return datetimes or ISO 8601 text"))
    problems += [Problem(path, "data.features.numerical", f"column {column!r} has type {frame[column].dtype}, "
                         "not numeric", "list it under data.features.categorical or make the loader return numbers")
                 for column in data.features.numerical if column in present and not _is_numeric(frame[column])]
    if data.target in present:
        problems += _target_problems(spec, path, frame[data.target])
    return problems


def _target_problems(spec: LifecycleSpec, path: Path, target: pd.Series) -> list[Problem]:
    values = target.dropna()
    if spec.task == "regression":
        if not _is_numeric(target):
            return [Problem(path, "data.target", f"column {spec.data.target!r} has type {target.dtype}: a regression "
                            "target must be numeric", "name a numeric column or make the task classification")]
        return []
    labels = set(values.unique().tolist())
    if not labels <= {0, 1}:  # True/False compare equal to 1/0
        shown = sorted(map(str, labels))[:5]
        return [Problem(path, "data.target", f"column {spec.data.target!r} holds {shown}: a classification "
                        "target must be binary 0/1", "make the loader return 0/1 (1 = the positive class)")]
    return []


def flow_problems(spec: LifecycleSpec, path: Path) -> list[Problem]:
    from flows.dispatch import check_override

    problems = []
    for stage in spec.flows:
        try:
            check_override(spec, stage)
        except SpecError as exc:
            # The problem without the spec's name, which the report already shows.
            problems.append(Problem(path, f"flows.{stage.value}", exc.what.partition("): ")[2], exc.fix))
    return problems


def check_spec(path: Path) -> tuple[LifecycleSpec | None, list[Problem]]:
    """The spec in `path` (None when it does not load) and every problem found in it."""
    try:
        spec = parse_spec(path)
    except SpecError as exc:  # its message already names the file and the field
        return None, [Problem(path, "", exc.what, exc.fix)]
    problems = [*cron_problems(spec, path), *metric_problems(spec, path)]
    for field, entry in (("training.entry_point", spec.training.entry_point),
                         ("training.model_class", spec.training.model_class)):
        try:
            if entry is not None:
                resolve_entry_point(entry)
        except SpecError as exc:
            problems.append(Problem(path, field, exc.what, exc.fix))
    frame, sample_problems = _sample(spec, path)
    problems += sample_problems
    if frame is not None:
        problems += column_problems(spec, path, frame)
    return spec, problems + flow_problems(spec, path) + policy_problems(spec, path)


def policy_problems(spec: LifecycleSpec, path: Path) -> list[Problem]:
    """The approval policies file's problems, or the spec's loosening of its tier's policy."""
    from modelops.approval_policy import check_policies

    return [Problem(path, "approval", what, "fix the field named; a spec may tighten its tier's approval policy "
                                            "(configs/approval-policies.yaml), never loosen it")
            for what in check_policies(spec, path.parent.parent)]


def check_config_dir(config_dir: Path) -> list[tuple[Path, LifecycleSpec | None, list[Problem]]]:
    """Every spec file of configs/models/ in name order, with its problems."""
    files = sorted((config_dir / "models").glob("*.yaml"))
    if not files:
        raise SpecError(f"{config_dir / 'models'}: no life cycle specs (*.yaml)",
                        "add one (see configs/models/flight-delay.yaml) or point MODELOPS_CONFIG_DIR at your configs")
    return [(path, *check_spec(path)) for path in files]
