"""The score flow refuses a real batch that would log wrong data, and keeps a failed-batch record of it."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from modelops.errors import DataError

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


def test_a_batch_with_an_impossible_date_is_refused_and_recorded_as_failed(state_home: Path) -> None:
    from modelops.demo import onboard, write_traffic
    from flows.score import score
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    platform = get_platform()
    spec = load_spec("flight-delay")
    assert onboard("flight-delay") == "1"
    batch, _ = write_traffic(platform, spec, date(2013, 2, 15), date(2013, 2, 16))
    frame = pd.read_parquet(batch)
    frame["scheduled_departure"] = frame["scheduled_departure"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame.loc[12, "scheduled_departure"] = "2013-02-31 08:00:00"  # a typed-in date that does not exist
    spoiled = state_home / "impossible-date.csv"
    frame.to_csv(spoiled, index=False)

    with pytest.raises(DataError, match=r"timestamp column 'scheduled_departure' has no ISO 8601 timestamp in "
                                        rf"1 of {len(frame)} row\(s\), first '2013-02-31 08:00:00' at row 12"):
        score(model="flight-delay", input_path=str(spoiled))

    [failed] = platform.store.prediction_batches("flight-delay", include_failed=True)
    assert failed.status == "failed" and failed.rows == len(frame) and failed.source == str(spoiled.resolve())
    assert "'scheduled_departure'" in (failed.error or "") and "'2013-02-31 08:00:00'" in (failed.error or "")
    # it counts in the window of the times it does carry, not in today's
    assert failed.first_event_at == datetime(2013, 2, 15, tzinfo=timezone.utc)
    assert failed.last_event_at.date() == date(2013, 2, 15)
    assert platform.store.prediction_batches("flight-delay") == []  # no batch logged as scored
