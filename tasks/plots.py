"""Monitoring history as a picture: drift share, the performance metric and p95 latency per window, each with its
breach limit drawn, rendered on the server (matplotlib's Agg backend) as a small PNG that a Markdown artifact shows
inline as a data: URI (the Prefect UI renders those). matplotlib is imported only when a plot is drawn."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from modelops.spec import HIGHER_IS_BETTER, LifecycleSpec
from tasks.verdicts import BREACH

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LIMIT_LABEL = "breach limit"
PLOTTED_RUNS = 60  # the newest monitoring runs drawn; older ones are in the store (and the compliance tables)
_DPI = 72
_SIZE = (7.0, 5.6)  # inches: about 500 x 400 pixels, a few tens of KB


@dataclass(frozen=True)
class Series:
    """One monitored value over time: a value and its breach limit (None where not measured) per window end."""

    title: str
    times: list[datetime]
    values: list[float | None]
    limits: list[float | None]
    breached: list[bool]


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def performance_limit(metric: str, reference: float | None, breach_drop: float) -> float | None:
    """The value at which the metric breaches: `breach_drop` worse than the validation holdout (tasks.performance
    judges the relative drop: a floor for metrics where higher is better, a ceiling for errors)."""
    if reference is None:
        return None
    margin = breach_drop * abs(reference)
    return reference - margin if metric in HIGHER_IS_BETTER else reference + margin


def monitoring_series(history: Sequence[tuple[Any, Sequence[Any]]], spec: LifecycleSpec) -> list[Series]:
    """Drift share, the spec's performance metric and p95 latency from the store's monitoring history
    (GovernanceStore.monitoring_history: runs oldest first, each with its results), by window end."""
    metric = spec.monitoring.performance.metric
    breach_drop = spec.monitoring.performance.breach_drop
    wanted = {("drift", "drifted_share"): "drift share (drifted columns)",
              ("performance", metric): f"{metric} on labelled predictions",
              ("service", "latency_p95_ms"): "latency p95 (ms, per scoring batch)"}
    series = {key: Series(title, [], [], [], []) for key, title in wanted.items()}
    for run, results in history[-PLOTTED_RUNS:]:
        for result in results:
            found = series.get((result.check, result.metric))
            if found is None or _number(result.value) is None:
                continue
            limit = _number(result.threshold)
            if result.check == "performance":  # its stored threshold is the holdout value it is compared with
                limit = performance_limit(metric, limit, breach_drop)
            found.times.append(run.window_end)
            found.values.append(_number(result.value))
            found.limits.append(limit)
            found.breached.append(result.verdict == BREACH)
    return list(series.values())


def plot_series(series: Sequence[Series], title: str) -> "Figure":
    """One panel per series, sharing the time axis: the values (breaches marked) and the breach limit, dashed."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    axes = figure.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    figure.suptitle(title, fontsize=11)
    for ax, item in zip(axes, series):
        ax.set_title(item.title, fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if not item.values:
            ax.text(0.5, 0.5, "not measured yet", ha="center", va="center", transform=ax.transAxes, color="grey")
            continue
        ax.plot(item.times, item.values, marker="o", markersize=3, color="tab:blue", label="value")
        marked = [(t, v) for t, v, hit in zip(item.times, item.values, item.breached) if hit]
        if marked:
            ax.plot(*zip(*marked), linestyle="none", marker="x", markersize=7, color="tab:red", label="breach")
        if any(limit is not None for limit in item.limits):
            limits = [math.nan if limit is None else limit for limit in item.limits]
            ax.plot(item.times, limits, drawstyle="steps-post", linestyle="--", color="tab:red", linewidth=1,
                    label=LIMIT_LABEL)
        ax.legend(fontsize=7, loc="best")
    locator = AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes[-1].set_xlabel("window end (UTC)", fontsize=8)
    return figure


def png_bytes(figure: "Figure") -> bytes:
    """The figure as a PNG, drawn by the Agg canvas (no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def history_png(history: Sequence[tuple[Any, Sequence[Any]]], spec: LifecycleSpec) -> bytes | None:
    """The model's monitoring history as a PNG; None when nothing was measured yet."""
    series = monitoring_series(history, spec)
    if not any(item.values for item in series):
        return None
    return png_bytes(plot_series(series, f"{spec.name}: monitoring over time"))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def markdown_image(png: bytes, alt: str) -> str:
    """A Markdown image carrying the PNG itself (the Prefect UI shows data: URIs; there is no file to link)."""
    return f"![{alt.replace(']', ')').replace('[', '(')}]({data_uri(png)})"
