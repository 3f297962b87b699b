"""The main job (`make demo`): flight-delay from nothing through every stage on real 2013 flights, then
bike-demand through the same flows to show that a model is a YAML file and a training function."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd

from modelops.demo_serving import serve_online_and_on_a_stream
from modelops.demo_runs import InProcess, StageRuns, demo_stage_runs
from modelops.platform import Platform, get_platform
from modelops.reporting import format_table, status_text
from modelops.spec import LifecycleSpec, Window, load_spec
from tasks.data import load_window
from tasks.prediction_log import record_ground_truth, write_parquet_atomically


def write_traffic(platform: Platform, spec: LifecycleSpec, start: date, end: date) -> tuple[Path, Path]:
    """Production traffic of a window as a batch file (inputs only) and, separately, its later ground truth."""
    frame = load_window(spec, Window(start=start, end=end))
    folder = platform.settings.inbox_dir / spec.name
    stem = f"{start:%Y-%m-%d}--{end:%Y-%m-%d}"
    batch = folder / f"traffic-{stem}.parquet"
    labels = folder / f"labels-{stem}.parquet"
    write_parquet_atomically(frame.drop(columns=[spec.data.target]), batch)
    write_parquet_atomically(frame[[spec.data.id_column, spec.data.target]], labels)
    return batch, labels


def _day_after(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)


def serve_window(platform: Platform, spec: LifecycleSpec, start: date, end: date,
                 runs: StageRuns | None = None):  # type: ignore[no-untyped-def]
    """Score a window's traffic with the champion, let its labels arrive, and monitor that window."""
    runs = runs or InProcess()
    batch, labels = write_traffic(platform, spec, start, end)
    scored = runs.score(spec.name, str(batch))
    record_ground_truth(platform, spec, pd.read_parquet(labels), str(labels))
    checked = runs.monitor(spec.name, _day_after(end), (end - start).days)
    return scored, checked


def segment_check_text(platform: Platform, model: str, version: str) -> str:
    """What flight-delay's own approval flow checked, from its audit record."""
    checks = [e for e in platform.store.audit_trail(model) if e.action == "segment-check" and e.version == version]
    if not checks:
        return "no segment check recorded"
    evidence = checks[-1].evidence
    values = ", ".join(f"{segment} {value:.3f}" for segment, value in sorted(evidence["roc_auc"].items()))
    return f"segment check {checks[-1].outcome}: roc_auc by {evidence['column']} {values} (floor {evidence['floor']})"


def onboard(model: str) -> str:
    """register -> validate -> approve -> deploy in this process; returns the serving version."""
    return InProcess().onboard(model)


NON_SKLEARN_MODEL = "flight-delay-lgbm"
SERVED_DAY = date(2013, 3, 15)
DEMO_MODELS = ["flight-delay", "bike-demand", NON_SKLEARN_MODEL]
DEMO_METRICS = {"flight-delay": "roc_auc", "bike-demand": "mae", NON_SKLEARN_MODEL: "roc_auc"}
DEMO_PERSON = "demo"
DEMO_ROLES = ["modelops_engineer", "data_scientist", "operator"]


@contextmanager
def acting_as_demo_person(platform: Platform) -> Iterator[str]:
    """The person the demo acts as: MODELOPS_USER, else `demo`, bootstrapped as the first person of a new state
    directory (roles to run every stage; nobody approves by hand here: the demo's models are low and medium risk)."""
    from modelops.people import add_person

    before = os.environ.get("MODELOPS_USER")
    name = before or DEMO_PERSON
    os.environ["MODELOPS_USER"] = name
    try:
        if not platform.store.has_people():
            add_person(platform, name, DEMO_ROLES)
        yield name
    finally:
        if before is None:
            os.environ.pop("MODELOPS_USER", None)


def run_demo() -> int:
    platform = get_platform()
    with acting_as_demo_person(platform) as person:
        print(f"State directory: {platform.settings.home}")
        print(f"Acting as: {person} (see `modelops people list`)")
        runs = demo_stage_runs(platform.settings)
        print(f"Stages run {runs.description}")
        return _run_demo(platform, runs)


def _run_demo(platform: Platform, runs: StageRuns) -> int:
    started = time.perf_counter()
    spec = load_spec("flight-delay")
    timeline: list[list[str]] = []
    earlier = platform.store.serving_version(spec.name, "champion")
    if earlier is not None:
        # The story starts from nothing: run again, its winter model would be a newcomer beside the summer champion
        # (a challenger that loses), and no drift would follow. Redo nothing; show where the first run ended.
        print(f"{spec.name} already serves v{earlier}: the demo ran in this state directory before, and nothing is "
              f"redone. To run it from the beginning, remove {platform.settings.home} or set MODELOPS_HOME to an "
              "empty directory.\n")
        print(status_text(platform, DEMO_MODELS, DEMO_METRICS))
        return 0

    first = runs.onboard(spec.name)
    timeline.append(["register..deploy", f"v{first}", "trained on 2013-01-01..2013-02-15, now @champion"])
    timeline.append(["approve (own flow)", f"v{first}", segment_check_text(platform, spec.name, first)])
    winter_scored, winter = serve_window(platform, spec, date(2013, 2, 15), date(2013, 3, 1), runs)
    timeline.append(["score+monitor Feb 15-28", f"v{first}",
                     f"{winter_scored.rows} flights, drift share {winter.drift_share:.2f} -> {winter.verdict}"])
    summer_scored, summer = serve_window(platform, spec, date(2013, 7, 1), date(2013, 8, 1), runs)
    timeline.append(["score+monitor July", f"v{first}",
                     f"{summer_scored.rows} flights, drift share {summer.drift_share:.2f} "
                     f"({', '.join(summer.drifted_columns)}) -> {summer.verdict}"])
    if summer.alerts_sent:
        timeline.append(["alert", f"v{first}", f"Slack alert sent for {', '.join(summer.alerts_sent)}"])
    elif summer.alerts_failed:
        timeline.append(["alert", f"v{first}", "not delivered, recorded: no Slack block 'modelops-alerts' "
                                               "(README: Alerts)"])
    if summer.drift_verdict != "breach":
        print("Expected seasonal drift in July was not detected: nothing to retrain.")
        return 1
    outcome = runs.retrain(spec.name, breach=summer)
    if outcome.champion_value is not None:
        timeline.append(["retrain (drift-detected)", f"v{outcome.challenger}",
                         f"{outcome.metric} on recent labelled flights: challenger {outcome.challenger_value:.4f} vs "
                         f"champion v{outcome.champion_before} {outcome.champion_value:.4f} -> {outcome.outcome}"])
    if outcome.retired:
        timeline.append(["retire", f"v{outcome.retired}", "replaced champion retired, artifacts and audit kept"])

    bike = runs.onboard("bike-demand")
    bike_scored, bike_check = serve_window(platform, load_spec("bike-demand"), date(2011, 7, 1), date(2011, 7, 15),
                                           runs)
    timeline.append(["bike-demand onboard+score+monitor", f"v{bike}",
                     f"{bike_scored.rows} hours scored, MAE {bike_check.performance_value or float('nan'):.1f}, "
                     f"drift share {bike_check.drift_share:.2f} -> {bike_check.verdict}"])
    # bike-demand's spec names its own retrain flow (flows/models/bike_demand.py): the standard stage hands over.
    bike_retrain = runs.retrain("bike-demand", breach=bike_check)
    timeline.append(["bike-demand retrain (own flow)", f"v{bike_retrain.challenger}",
                     f"{bike_retrain.procedure}; {bike_retrain.metric} challenger "
                     f"{bike_retrain.challenger_value or float('nan'):.1f} vs champion "
                     f"{bike_retrain.champion_value or float('nan'):.1f} -> {bike_retrain.outcome}"])

    # A model not built with scikit-learn, served to applications online and on a stream.
    lgbm_spec = load_spec(NON_SKLEARN_MODEL)
    lgbm = runs.onboard(lgbm_spec.name)
    holdout = float(platform.catalog.version(lgbm_spec.name, lgbm).tags["holdout_roc_auc"])
    timeline.append([f"{lgbm_spec.name} onboard", f"v{lgbm}", f"a LightGBM booster in its text format, scanned, "
                                                             f"holdout roc_auc {holdout:.3f}, now @champion"])
    served = serve_online_and_on_a_stream(platform, lgbm_spec, SERVED_DAY)
    timeline.append([f"{lgbm_spec.name} online (gateway)", f"v{served.online_version}",
                     f"{served.online_rows} flights of {SERVED_DAY} in one request: {served.online_ms:.0f} ms, "
                     f"mean P(delay) {served.online_mean_score:.3f}"])
    timeline.append([f"{lgbm_spec.name} stream (Redis)", f"v{served.online_version}",
                     f"{served.stream_answered} of {served.stream_records} flights answered, {served.stream_dead} "
                     f"dead letters, in {served.stream_seconds:.1f} s; prediction log: {served.logged['online']} "
                     f"online + {served.logged['stream']} stream rows"])

    print("\nWhat happened")
    print(format_table(["step", "version", "result"], timeline))
    print()
    print(status_text(platform, DEMO_MODELS, DEMO_METRICS))
    print(f"\nDone in {time.perf_counter() - started:.0f} s. Try: .venv/bin/modelops audit flight-delay")
    ok = outcome.outcome in ("promoted", "already-champion") and outcome.retired is not None
    ok = ok and served.stream_answered == served.stream_records and served.logged == {
        "online": served.online_rows, "stream": served.stream_records}
    return 0 if ok else 1
