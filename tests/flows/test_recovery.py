"""Edge cases a production loop meets: time zones, an empty column, a stage re-run after a crash, a rollback,
and a version that fails re-validation."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelops.errors import NotApprovedError

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
ROOT = Path(__file__).resolve().parents[2]


def test_time_zones_an_empty_column_and_stage_recovery(state_home: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.demo import onboard, write_traffic
    from flows.deploy import deploy
    from flows.monitor import monitor
    from flows.register import register
    from flows.score import score
    from flows.validate import validate
    from flows.approve import approve
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.prediction_log import logged_predictions

    platform = get_platform()
    spec = load_spec("flight-delay")
    assert onboard("flight-delay") == "1"

    # local New York timestamps with their offset are logged as UTC, and windows in any zone select correctly
    batch, _ = write_traffic(platform, spec, date(2013, 2, 15), date(2013, 3, 1))
    frame = pd.read_parquet(batch)
    frame["scheduled_departure"] = frame["scheduled_departure"].dt.tz_localize("UTC").dt.tz_convert(
        "America/New_York")
    local = state_home / "local-times.parquet"
    frame.to_parquet(local)
    score(model="flight-delay", input_path=str(local))
    logged = logged_predictions(platform, "flight-delay", "1", None, None)
    assert logged["event_time"].dt.tz is None
    assert logged["event_time"].min() == frame["scheduled_departure"].min().tz_convert("UTC").tz_localize(None)
    plus_two = timezone(timedelta(hours=2))
    end = datetime(2013, 3, 1, 2, 0, tzinfo=plus_two)  # = 2013-03-01 00:00 UTC
    checked = monitor(model="flight-delay", window_end=end, window_days=14)
    assert checked.rows == len(frame)

    # a feature that arrives empty: a data-quality breach, the other columns still judged for drift
    empty = state_home / "no-temp.parquet"
    pd.read_parquet(batch).assign(temp=np.nan).to_parquet(empty)
    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
    score(model="flight-delay", input_path=str(empty), version="1")
    broken = monitor(model="flight-delay", window_end=end, window_days=14)
    assert broken.checks["data_quality"] in ("warn", "breach")
    run, results = platform.store.monitoring_history("flight-delay")[-1]
    assert next(r.value for r in results if r.metric == "success_share") < 1.0
    assert next(r for r in results if r.metric.startswith("dewp:")).verdict in ("ok", "breach")  # still judged
    assert not any(r.metric.startswith("temp:") for r in results)  # no values: not judged for drift

    # deploy stopped after moving the alias: re-running it writes the missing record, once. Here a person
    # promotes v2 by decision (the spec allows it), so no comparison is needed first.
    path = config_dir / "models" / "flight-delay.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["deploy"]["promotion"] = "comparison_or_decision"
    path.write_text(yaml.safe_dump(raw))
    second = register(model="flight-delay", train_start=date(2013, 1, 15), train_end=date(2013, 3, 1)).version
    assert validate(model="flight-delay", version=second).passed
    assert approve(model="flight-delay", version=second).status == "approved"
    platform.catalog.set_alias("flight-delay", "champion", second)  # what the crashed run had done
    before = [e for e in platform.store.audit_trail("flight-delay") if e.stage == "deploy"]
    promote = dict(model="flight-delay", version=second, role="champion", reason="recovery drill")
    assert deploy(**promote).changed  # the deployment is recorded now
    after = [e for e in platform.store.audit_trail("flight-delay") if e.stage == "deploy"]
    assert len(after) == len(before) + 1 and after[-1].version == second
    assert deploy(**promote).changed is False
    assert len([e for e in platform.store.audit_trail("flight-delay") if e.stage == "deploy"]) == len(after)

    # a rollback and a redeploy are real actions: each is recorded
    deploy(model="flight-delay", version="1", role="champion")  # a rollback to a former champion
    deploy(model="flight-delay", version=second, role="champion")
    deploys = [e.version for e in platform.store.audit_trail("flight-delay") if e.stage == "deploy"]
    assert deploys[-3:] == [second, "1", second]

    # a stricter policy makes a fresh validation fail: the approval is revoked and the version cannot serve
    raw = yaml.safe_load(path.read_text())
    raw["validation"]["metric_thresholds"]["roc_auc"] = {"min": 0.99}
    path.write_text(yaml.safe_dump(raw))
    assert not validate(model="flight-delay", version="1", force=True).passed
    assert platform.store.approval_status("flight-delay", "1") == "rejected"
    assert platform.catalog.version("flight-delay", "1").tags["approval_status"] == "rejected"
    with pytest.raises(NotApprovedError):
        score(model="flight-delay", input_path=str(batch), version="1")
    with pytest.raises(NotApprovedError):
        deploy(model="flight-delay", version="1")
    # the serving champion's state is not rewritten by someone else's validation
    assert platform.catalog.version("flight-delay", second).tags["lifecycle_state"] == "serving"
