"""The operator's day in the Prefect UI, checked in a real browser (headless Chromium) against a stack that
`modelops up` started on free ports: flight-delay registered through its deployment and chained to champion by
triggers, two windows of real 2013 flights scored and monitored (February: ok; July: drift, which retrains).
Each test reads a rendered page, not the API behind it, and leaves a screenshot in the folder the run names."""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from tasks.validation import GATE_TASK_NAMES
from tests.live_stack import live_stack, stage_runs, wait_until
from tests.ui.browser import FLAGS, INSTALL_HINT, find_chromium

CHROMIUM = find_chromium()
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(CHROMIUM is None, reason=f"no Chromium: {INSTALL_HINT}")]
MODEL = "flight-delay"
STAGES = ["register", "validate", "approve", "deploy", "score", "monitor", "sweep", "retrain", "retire", "report",
          "kpis"]
# Pages render after their API calls answer; the machine may be busy with the stack's own flow runs.
RENDER_MS = 60_000


@dataclass
class OperatorDay:
    api_url: str
    mlflow_url: str
    runs: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def all_final(deployment: str, count: int) -> bool:
    runs = stage_runs(deployment)
    return len(runs) >= count and all(r.state and r.state.is_final() for r in runs)


def serve_and_monitor(start: date, end: date) -> None:
    """A window's traffic scored through the score deployment, its labels arriving, then the monitor deployment."""
    from prefect.deployments import run_deployment

    from modelops.demo import write_traffic
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.prediction_log import record_ground_truth

    platform, spec = get_platform(), load_spec(MODEL)
    batch, labels = write_traffic(platform, spec, start, end)
    scored = run_deployment("score/score", timeout=900, parameters={"model": MODEL, "input_path": str(batch)})
    assert scored.state.is_completed(), scored.state
    record_ground_truth(platform, spec, pd.read_parquet(labels), str(labels))
    checked = run_deployment("monitor/monitor", timeout=900, parameters={
        "model": MODEL, "window_end": f"{end.isoformat()}T00:00:00+00:00", "window_days": (end - start).days})
    assert checked.state.is_completed(), checked.state


@pytest.fixture(scope="module")
def operator_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorDay]:
    from prefect.deployments import run_deployment

    with live_stack(tmp_path_factory.mktemp("ui") / "state", gateway_port=None,
                    with_streaming=False) as (api_url, services, _):
        day = OperatorDay(api_url, next(s.url for s in services if s.name == "mlflow-ui"))
        # registered -> validate -> approve -> deploy, by triggers alone, as an operator's click on "Run" starts it
        run_deployment("register/register", parameters={"model": MODEL}, timeout=0)
        wait_until(lambda: all_final("deploy", 1), 900, "the chain to deploy v1")
        serve_and_monitor(date(2013, 2, 15), date(2013, 3, 1))
        serve_and_monitor(date(2013, 7, 1), date(2013, 8, 1))
        # the July breach retrains by trigger: let it finish, so that the pages show a quiet stack
        wait_until(lambda: all_final("retrain", 1), 900, "the retrain the July drift triggered")
        day.runs = {stage: stage_runs(stage) for stage in STAGES}
        yield day


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")  # the run's summary names it


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(RENDER_MS)
    try:
        yield page
    finally:
        context.close()


def test_the_ui_asks_for_the_api_on_the_port_up_was_given(operator_day: OperatorDay) -> None:
    with urllib.request.urlopen(f"{operator_day.ui_url}/ui-settings", timeout=10) as response:
        settings = json.loads(response.read())
    assert settings["api_url"] == operator_day.api_url


def test_the_deployments_page_lists_every_stage_deployment(operator_day: OperatorDay, page: Any,
                                                           screenshots: Path) -> None:
    page.goto(f"{operator_day.ui_url}/deployments")
    page.get_by_text(f"{len(STAGES)} Deployments").wait_for()
    search = page.get_by_placeholder("Search deployments")
    for stage in STAGES:  # the list is paged: find each one as an operator would
        search.fill(stage)
        page.get_by_role("link", name=stage, exact=True).first.wait_for()
        if operator_day.runs[stage]:  # its runs show as the deployment's activity
            page.locator(".flow-runs-bar-chart__bar-flow-run").first.wait_for()
    assert page.get_by_text("Can't connect to Server API").count() == 0
    search.fill("")
    page.get_by_role("link", name="approve", exact=True).first.wait_for()
    page.locator(".flow-runs-bar-chart__bar-flow-run").first.wait_for()
    page.screenshot(path=screenshots / "deployments.png")


def latest_artifact_id(key: str) -> str:
    """The newest artifact under `key` (the Artifacts page shows a key's history; the test opens the newest)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    assert found, f"no artifact with key {key!r}"
    return str(found[0].id)


def open_artifact(page: Any, day: OperatorDay, key: str) -> None:
    page.goto(f"{day.ui_url}/artifacts/artifact/{latest_artifact_id(key)}")
    page.get_by_text(key, exact=True).first.wait_for()


def test_a_validate_run_shows_one_task_per_gate(operator_day: OperatorDay, page: Any, screenshots: Path) -> None:
    [run] = operator_day.runs["validate"]
    page.goto(f"{operator_day.ui_url}/runs/flow-run/{run.id}")
    page.get_by_text("Task Runs", exact=True).first.click()
    for gate in GATE_TASK_NAMES.values():  # the validate flow runs each gate as a task of its own
        page.get_by_text(gate).first.wait_for()
    page.screenshot(path=screenshots / "validate-run-tasks.png")


def rendered_images(page: Any) -> list[dict[str, Any]]:
    """Every image the page shows, with the size the browser decoded (0 for one that failed to load)."""
    return page.eval_on_selector_all("img", "els => els.map(e => ({alt: e.alt, width: e.naturalWidth, "
                                            "height: e.naturalHeight, complete: e.complete}))")


def test_the_monitor_artifact_renders_its_table_and_plot(operator_day: OperatorDay, page: Any,
                                                         screenshots: Path) -> None:
    page.set_viewport_size({"width": 1400, "height": 1250})  # the whole artifact in one screenshot
    open_artifact(page, operator_day, f"monitor-{MODEL}")
    page.get_by_text(f"{MODEL} v1: BREACH").first.wait_for()
    # the checks' table, with July's drifted columns named
    for cell in ("service", "performance", "data_quality", "drift", "temp", "dewp"):
        page.get_by_role("cell", name=cell, exact=True).first.wait_for()
    page.wait_for_function("[...document.images].every(i => i.complete)")
    plots = [i for i in rendered_images(page) if "over time" in i["alt"]]
    assert len(plots) == 1 and plots[0]["width"] >= 300 and plots[0]["height"] >= 200, rendered_images(page)
    assert "file://" not in page.content()
    page.screenshot(path=screenshots / "monitor-artifact.png")


def test_the_evidently_link_of_the_monitor_artifact_opens_the_report(operator_day: OperatorDay, page: Any,
                                                                      screenshots: Path) -> None:
    open_artifact(page, operator_day, f"monitor-{MODEL}")
    link = page.get_by_role("link", name="open it in the MLflow UI")
    href = link.get_attribute("href")
    assert href and href.startswith(operator_day.mlflow_url), href
    page.goto(href)  # where the link leads (it may open a new tab)
    # MLflow's UI shows the HTML artifact in a sandboxed frame: Evidently's report, July's drift in it
    report = page.frame_locator("iframe").first
    report.get_by_text("Dataset Drift is detected").first.wait_for()
    report.get_by_text("temp", exact=True).first.wait_for()
    page.screenshot(path=screenshots / "evidently-report.png")


def test_the_validation_artifacts_render_each_gate_against_its_limit(operator_day: OperatorDay, page: Any,
                                                                      screenshots: Path) -> None:
    from modelops.spec import load_spec
    from tasks.stage_artifacts import bound_text

    limits = load_spec(MODEL).validation.metric_thresholds
    open_artifact(page, operator_day, f"validation-{MODEL}")
    for header in ("gate", "check", "value", "limit", "verdict", "detail"):
        page.get_by_role("columnheader", name=header, exact=True).first.wait_for()
    for metric, bound in limits.items():  # each holdout metric the spec gates, its limit shown as written
        # (a table artifact's cells are Markdown articles, which carry no accessible name: found by their text)
        row = page.locator("tr").filter(has=page.get_by_text(metric, exact=True))
        row.get_by_text(bound_text(bound), exact=True).wait_for()
        row.get_by_text("pass", exact=True).wait_for()
    page.screenshot(path=screenshots / "validation-artifact.png")
    open_artifact(page, operator_day, f"validation-{MODEL}-summary")
    # the newest verdict: the retrain's challenger's, July's drift having retrained
    page.get_by_text(re.compile(rf"{MODEL} v\d+: validation PASSED")).first.wait_for()
