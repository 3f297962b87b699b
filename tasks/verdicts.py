"""Verdicts of monitoring: their names, the ladders that turn a value and its limits into one, and the worst-of
combination. The stored strings ("ok", "warn", "breach", "skipped") are part of the governance store's records."""

from __future__ import annotations

import math

OK, WARN, BREACH, SKIPPED = "ok", "warn", "breach", "skipped"
VERDICTS = (SKIPPED, OK, WARN, BREACH)  # mildest first; skipped means not judged, never better than ok
_SEVERITY = {verdict: rank for rank, verdict in enumerate(VERDICTS)}


def worst_verdict(*verdicts: str) -> str:
    """The worst judged verdict; skipped only when nothing was judged."""
    judged = [v for v in verdicts if v != SKIPPED]
    return max(judged, key=_SEVERITY.__getitem__) if judged else SKIPPED


def rising_verdict(value: float, warn_at: float, breach_at: float) -> str:
    """For a value that is worse when larger (a drop, a drifted share): breach at or above `breach_at`, warn at or
    above `warn_at`. A missing value (NaN) is not judged."""
    if math.isnan(value):
        return SKIPPED
    return BREACH if value >= breach_at else WARN if value >= warn_at else OK


def falling_verdict(value: float, warn_below: float, breach_below: float) -> str:
    """For a value that is worse when smaller (a share of expectations met): breach below `breach_below`, warn
    below `warn_below`."""
    if math.isnan(value):
        return SKIPPED
    return BREACH if value < breach_below else WARN if value < warn_below else OK


def limit_verdict(value: float, limit: float, warn_ratio: float) -> str:
    """For a value with a maximum allowed (an SLA): breach past the limit, warn past `warn_ratio` of it; reaching
    the limit exactly is still within it."""
    if math.isnan(value):
        return SKIPPED
    return BREACH if value > limit else WARN if value > limit * warn_ratio else OK
