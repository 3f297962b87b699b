"""Time windows of monitoring and retraining: half-open [start, end) spans of timezone-aware UTC datetimes, the
default window of a monitoring run, the drift reference windows a spec can choose, and the as-of moment of a
retrain. One home for the arithmetic, so that the monitor, the sweep and retrain agree on every boundary."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import NamedTuple

from modelops.platform import Platform
from modelops.spec import LifecycleSpec, ReferenceKind, Window
from modelops.store.records import as_utc

# Windows end just after the newest event they must hold: the end is exclusive.
_PAST_NEWEST = timedelta(seconds=1)


class TimeWindow(NamedTuple):
    """[start, end): unpacks as (start, end) where the code passes the two bounds."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M}"

    def dates(self) -> Window:
        """The whole days a date-based loader must read to cover this window (trim the rows afterwards)."""
        last = (self.end - timedelta(microseconds=1)).date()
        return Window(start=self.start.date(), end=last + timedelta(days=1))


def just_after(moment: datetime) -> datetime:
    """The exclusive end of a window that must hold `moment`."""
    return moment + _PAST_NEWEST


def window_ending(end: datetime, days: int) -> TimeWindow:
    return TimeWindow(end - timedelta(days=days), end)


def preceding(window: TimeWindow) -> TimeWindow:
    """The window of the same length right before this one."""
    return TimeWindow(window.start - window.length, window.start)


def years_earlier(moment: datetime, years: int = 1) -> datetime:
    """The same calendar moment `years` earlier; 29 February becomes 28 February."""
    target = moment.year - years
    try:
        return moment.replace(year=target)
    except ValueError:  # 29 February in a year that has none
        return moment.replace(year=target, day=28)


def year_earlier(window: TimeWindow) -> TimeWindow:
    """The same period of the calendar one year before."""
    return TimeWindow(years_earlier(window.start), years_earlier(window.end))


def reference_window(kind: ReferenceKind, current: TimeWindow) -> TimeWindow | None:
    """Where the drift reference of a window lies in time; None for the training reference (a version's own)."""
    if kind is ReferenceKind.preceding:
        return preceding(current)
    if kind is ReferenceKind.year_ago:
        return year_earlier(current)
    return None


def default_window(platform: Platform, spec: LifecycleSpec, version: str, window_end: datetime | None,
                   window_days: int | None) -> TimeWindow | None:
    """`window_days` (default: the spec's monitoring.window_days) ending at `window_end`, which defaults to just
    after the newest logged prediction of the version; None when the version has logged nothing."""
    if window_end is None:
        batches = platform.store.prediction_batches(spec.name, version)
        if not batches:
            return None
        window_end = just_after(max(b.last_event_at for b in batches))
    return window_ending(window_end, window_days or spec.monitoring.window_days)


def labelled_as_of(platform: Platform, model: str, version: str | None) -> datetime | None:
    """Just after the newest labelled prediction of a version: the most recent data a retrain can learn from and
    compare on; None when there is none."""
    from tasks.prediction_log import labelled_predictions

    labelled = labelled_predictions(platform, model, version, None, None) if version else None
    if labelled is None or labelled.empty:
        return None
    return just_after(as_utc(labelled["event_time"].max().to_pydatetime()))


class RetrainWindows(NamedTuple):
    train: Window  # whole days before the comparison window
    compare: TimeWindow  # the newest labelled traffic, on which challenger and champion are compared


def retrain_windows(as_of: datetime, train_days: int, compare_days: int) -> RetrainWindows:
    compare = window_ending(as_of, compare_days)
    train_end: date = compare.start.date()
    return RetrainWindows(Window(start=train_end - timedelta(days=train_days), end=train_end), compare)
