"""The verdict ladders and their combination (tasks.verdicts)."""

from __future__ import annotations

from tasks.verdicts import BREACH, OK, SKIPPED, WARN, falling_verdict, limit_verdict, rising_verdict, worst_verdict


def test_the_stored_verdict_names_do_not_change() -> None:
    assert (OK, WARN, BREACH, SKIPPED) == ("ok", "warn", "breach", "skipped")


def test_a_rising_value_warns_and_breaches_at_its_limits() -> None:
    assert [rising_verdict(v, 0.02, 0.05) for v in (0.0, 0.02, 0.049, 0.05)] == [OK, WARN, WARN, BREACH]
    assert rising_verdict(float("nan"), 0.02, 0.05) == SKIPPED


def test_a_falling_value_warns_and_breaches_below_its_limits() -> None:
    assert [falling_verdict(v, 1.0, 0.9) for v in (1.0, 0.95, 0.9, 0.89)] == [OK, WARN, WARN, BREACH]


def test_a_maximum_is_breached_only_when_exceeded() -> None:
    assert [limit_verdict(v, 0.01, 0.8) for v in (0.008, 0.009, 0.01, 0.011)] == [OK, WARN, WARN, BREACH]


def test_the_worst_judged_verdict_wins_and_skipped_only_when_nothing_was_judged() -> None:
    assert worst_verdict(OK, SKIPPED, WARN) == WARN
    assert worst_verdict(SKIPPED, BREACH, OK) == BREACH
    assert worst_verdict(SKIPPED, SKIPPED) == SKIPPED and worst_verdict() == SKIPPED
