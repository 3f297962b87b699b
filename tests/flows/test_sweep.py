from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from modelops import events

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


def test_sweep_judges_every_model_and_follows_up_breaches_like_the_monitor(state_home: Path) -> None:
    from modelops.demo import onboard, serve_window
    from flows.sweep import sweep
    from modelops.platform import get_platform
    from modelops.spec import load_all_specs, load_spec

    platform = get_platform()
    onboard("flight-delay")
    onboard("bike-demand")
    _, flights = serve_window(platform, load_spec("flight-delay"), date(2013, 7, 1), date(2013, 7, 15))
    _, bikes = serve_window(platform, load_spec("bike-demand"), date(2011, 3, 16), date(2011, 3, 30))
    deliveries_before = len(platform.store.alert_deliveries("flight-delay"))

    swept = sweep()
    assert flights.drift_verdict == "breach"
    # every shipped spec is looked at; only the two onboarded ones have a champion to judge
    assert swept.models == len(load_all_specs()) and swept.judged == 2
    assert swept.breached == [m for m, r in (("bike-demand", bikes), ("flight-delay", flights))
                              if r.drift_verdict == "breach"]

    sweep_runs = {run.model: (run, results) for run, results in
                  (platform.store.monitoring_history(m)[-1] for m in ("flight-delay", "bike-demand"))}
    run, results = sweep_runs["flight-delay"]
    share = next(r.value for r in results if r.metric == "drifted_share")
    assert run.verdict == "breach" and share == pytest.approx(flights.drift_share)
    assert sweep_runs["bike-demand"][0].verdict == bikes.drift_verdict

    trail = [e for e in platform.store.audit_trail("flight-delay") if e.stage == "monitor"]
    assert trail[-1].outcome == "breach:drift" and trail[-1].event == events.DRIFT_DETECTED
    assert trail[-1].evidence["occasion"].startswith("sweep-")
    assert Path(trail[-1].evidence["report"]).is_file()
    # the monitor asked for a retrain minutes ago: the sweep's breach does not ask again
    assert "already requested" in trail[-1].evidence["retrain"]
    # no Slack block exists here, so the monitor's alert was not delivered and its claim released: the sweep
    # tries again, and records that attempt too
    deliveries = platform.store.alert_deliveries("flight-delay")
    assert len(deliveries) == deliveries_before + 1 and not deliveries[-1].delivered
