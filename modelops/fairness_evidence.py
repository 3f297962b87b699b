"""Reading the fairness evidence recorded at validation, in every shape it was ever recorded in."""

from __future__ import annotations

from typing import Any, Mapping


def measured_gaps(metrics: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """(metric, measured) of one attribute's fairness evidence; versions validated before per-metric limits
    recorded one metric per attribute ({metric, value, limit}) and read the same."""
    if isinstance(metrics, Mapping) and "metric" in metrics:
        return [(str(metrics["metric"]), metrics)]
    return [(m, v) for m, v in metrics.items() if isinstance(v, Mapping)] if isinstance(metrics, Mapping) else []
