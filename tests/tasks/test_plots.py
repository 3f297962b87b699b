"""The monitoring history plot: values read from the governance store, breach limits drawn, a small PNG, and
matplotlib imported only when something is drawn. Targeted values (the real flows are in
tests/flows/test_monitor_reports.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from modelops.spec import load_spec
from modelops.store.records import MonitoringPoint
from tasks.plots import LIMIT_LABEL, history_png, markdown_image, monitoring_series, performance_limit, plot_series

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2011, 4, 1, tzinfo=timezone.utc)


def record_weeks(state_home: Path, shares: list[float], maes: list[float], p95s: list[float]) -> list:
    """bike-demand's monitoring runs, one a week, in a fresh store; returns the store's history."""
    from modelops.platform import get_platform

    store = get_platform().store
    for week, (share, mae, p95) in enumerate(zip(shares, maes, p95s)):
        end = START + timedelta(days=7 * (week + 1))
        store.record_monitoring_run(model="bike-demand", version="1", window_start=end - timedelta(days=7),
                                    window_end=end, rows=500, verdict="ok", report_path=None, points=[
                                        MonitoringPoint("drift", "drifted_share", share, 0.2,
                                                        "breach" if share > 0.2 else "ok"),
                                        MonitoringPoint("performance", "mae", mae, 40.0, "ok"),
                                        MonitoringPoint("service", "latency_p95_ms", p95, 2000.0, "ok")])
    return store.monitoring_history("bike-demand")


def limit_line(axes: object) -> list[float]:
    [line] = [line for line in axes.get_lines() if line.get_label() == LIMIT_LABEL]  # type: ignore[attr-defined]
    return [float(y) for y in line.get_ydata()]


def test_each_panel_draws_its_breach_limit(state_home: Path) -> None:
    spec = load_spec("bike-demand")  # drift breaches above 0.2; mae 30% worse than validation's breaches
    history = record_weeks(state_home, [0.1, 0.3, 0.1], [38.0, 45.0, 55.0], [300.0, 450.0, float("nan")])
    figure = plot_series(monitoring_series(history, spec), "bike-demand")
    drift, performance, latency = figure.axes
    assert limit_line(drift) == [0.2, 0.2, 0.2]
    assert limit_line(performance) == pytest.approx([52.0] * 3)  # 40 * (1 + 0.3): an error's ceiling
    assert limit_line(latency) == [2000.0, 2000.0]  # the window without a latency is left out
    [values] = [line for line in performance.get_lines() if line.get_label() == "value"]
    assert list(values.get_ydata()) == [38.0, 45.0, 55.0]


def test_breached_windows_are_marked(state_home: Path) -> None:
    history = record_weeks(state_home, [0.1, 0.3, 0.25], [38.0] * 3, [300.0] * 3)
    [drift] = [s for s in monitoring_series(history, load_spec("bike-demand")) if s.title.startswith("drift")]
    assert drift.breached == [False, True, True]


def test_a_higher_is_better_metric_breaches_below_its_reference() -> None:
    assert performance_limit("roc_auc", 0.8, 0.05) == pytest.approx(0.76)
    assert performance_limit("mae", 40.0, 0.3) == pytest.approx(52.0)
    assert performance_limit("roc_auc", None, 0.05) is None


def test_the_png_is_small_and_embeds_as_markdown(state_home: Path) -> None:
    history = record_weeks(state_home, [0.1, 0.3], [38.0, 45.0], [300.0, 450.0])
    png = history_png(history, load_spec("bike-demand"))
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n") and 5_000 < len(png) < 80_000
    assert markdown_image(png, "drift [share]").startswith("![drift (share)](data:image/png;base64,iVBOR")


def test_nothing_measured_draws_nothing(state_home: Path) -> None:
    assert history_png([], load_spec("bike-demand")) is None


def test_the_cli_and_the_flows_load_without_matplotlib() -> None:
    code = ("import sys; import modelops.cli, flows.monitor, modelops.compliance, tasks.reports, tasks.plots; "
            "from modelops.cli import main\n"
            "try:\n    main(['report', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
