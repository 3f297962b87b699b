"""Window arithmetic of monitoring and retraining (tasks.windows)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from modelops.spec import ReferenceKind, Window
from tasks.windows import (
    TimeWindow, just_after, preceding, reference_window, retrain_windows, window_ending, year_earlier, years_earlier,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


JULY = TimeWindow(utc(2013, 7, 1), utc(2013, 7, 15))


def test_a_window_ending_at_a_moment_spans_the_days_before_it() -> None:
    assert window_ending(utc(2013, 7, 15), 14) == JULY
    assert JULY.length.days == 14


def test_the_preceding_window_has_the_same_length_and_ends_where_the_window_starts() -> None:
    assert preceding(JULY) == TimeWindow(utc(2013, 6, 17), utc(2013, 7, 1))
    odd = TimeWindow(utc(2013, 3, 1, 12), utc(2013, 3, 2, 18))
    assert preceding(odd) == TimeWindow(utc(2013, 2, 28, 6), utc(2013, 3, 1, 12))


def test_a_year_earlier_is_the_same_calendar_period() -> None:
    assert year_earlier(JULY) == TimeWindow(utc(2012, 7, 1), utc(2012, 7, 15))
    # a window across a leap day keeps its calendar days, so it may be a day shorter a year earlier
    assert year_earlier(TimeWindow(utc(2012, 2, 20), utc(2012, 3, 5))) == TimeWindow(utc(2011, 2, 20), utc(2011, 3, 5))


def test_the_29th_of_february_becomes_the_28th_a_year_earlier() -> None:
    assert years_earlier(utc(2012, 2, 29, 10)) == utc(2011, 2, 28, 10)
    assert years_earlier(utc(2016, 2, 29), 4) == utc(2012, 2, 29)


def test_each_reference_kind_places_its_window() -> None:
    assert reference_window(ReferenceKind.training, JULY) is None
    assert reference_window(ReferenceKind.preceding, JULY) == preceding(JULY)
    assert reference_window(ReferenceKind.year_ago, JULY) == year_earlier(JULY)


def test_a_loader_reads_the_whole_days_that_cover_a_window() -> None:
    assert JULY.dates() == Window(start=date(2013, 7, 1), end=date(2013, 7, 15))
    partial = TimeWindow(utc(2013, 7, 1, 6), utc(2013, 7, 3, 0, 0, 1))
    assert partial.dates() == Window(start=date(2013, 7, 1), end=date(2013, 7, 4))


def test_a_window_that_must_hold_the_newest_event_ends_just_after_it() -> None:
    newest = utc(2013, 7, 14, 23, 59, 59)
    window = window_ending(just_after(newest), 14)
    assert window.start <= newest < window.end and window.end == utc(2013, 7, 15)


def test_retrain_compares_on_the_newest_days_and_trains_on_the_whole_days_before() -> None:
    windows = retrain_windows(utc(2013, 8, 1, 12), train_days=60, compare_days=14)
    assert windows.compare == TimeWindow(utc(2013, 7, 18, 12), utc(2013, 8, 1, 12))
    assert windows.train == Window(start=date(2013, 5, 19), end=date(2013, 7, 18))
