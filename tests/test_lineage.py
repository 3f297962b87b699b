"""Lineage and reproducibility over what the demo leaves behind (flight-delay on real 2013 flights: v1 trained in
winter, served, retired when the summer retrain v2 won; bike-demand v1 and v2 the same way) plus online predictions
answered by the gateway: the lineage tree, the OpenLineage run events of every stage run, which model made a
decision, and reproducing the demo's versions."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import orjson
import pandas as pd
import pytest
import yaml

from tasks.prediction_log import read_batch
from tests.slack_receiver import start_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Demo:
    platform: Any
    folder: Path
    online_ids: list[str]  # answered by flight-delay's champion (v2) through the gateway
    online_rows: list[dict[str, Any]]

    @property
    def events_file(self) -> Path:
        from modelops.lineage_events import events_file

        return events_file(self.platform.settings.home)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events_file.read_text().splitlines()]


def _online_predictions(platform: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Three real March flights answered by the gateway (ids made by the gateway), flushed to the prediction log."""
    from starlette.testclient import TestClient

    from modelops.demo import write_traffic
    from modelops.spec import load_spec
    from serving.app import create_app
    from serving.tokens import issue_token
    from tests.conftest import wait_for

    spec = load_spec("flight-delay")
    batch, _ = write_traffic(platform, spec, date(2013, 3, 15), date(2013, 3, 16))
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in pd.read_parquet(batch).head(3)[spec.data.features.all].to_dict(orient="records")]
    _, token = issue_token(platform, "lineage-test", ["flight-delay"])
    with TestClient(create_app()) as client:
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        answer = client.post("/v1/models/flight-delay/predict", content=orjson.dumps({"rows": rows}),
                             headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        client.app.state.gateway.sink.flush()
    return [p["prediction_id"] for p in answer.json()["predictions"]], rows


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    from modelops.demo import run_demo
    from modelops.platform import get_platform

    folder = tmp_path_factory.mktemp("lineage")
    shutil.copytree(ROOT / "configs", folder / "configs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(folder / "state"))
        patch.setenv("MODELOPS_CONFIG_DIR", str(folder / "configs"))
        patch.delenv("MODELOPS_OPENLINEAGE_URL", raising=False)
        # The demo bootstraps this person (once people exist, every stage needs one); the tests act as them too.
        patch.setenv("MODELOPS_USER", "demo")
        assert run_demo() == 0
        platform = get_platform()
        ids, rows = _online_predictions(platform)
        yield Demo(platform, folder, ids, rows)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from modelops.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the lineage tree ---------------------------------------------------------------------------------------------
def test_lineage_tree_follows_a_version_from_its_data_to_its_predictions(demo: Demo,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    store = demo.platform.store
    lineage = {r.version: r for r in store.lineage("flight-delay")}["1"]
    governed = store.governed_version("flight-delay", "1")
    code, out, _ = _cli(capsys, "lineage", "flight-delay/1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("flight-delay v1 (retired: replaced by v2 after retraining")
    assert (f"├─ data: examples.flight_delay:load_frame, window 2013-01-01 .. 2013-02-15 (end excluded), 37368 rows, "
            f"content sha256 {lineage.data_hash[:12]}..") in lines
    assert f"├─ training run: MLflow run {lineage.run_id} (trained)" in lines
    assert f"│  ├─ code version: {lineage.code_version}" in lines
    assert "│  ├─ params: max_iter=200, learning_rate=0.1, max_leaf_nodes=31, random_state=0" in lines
    assert (f"│  ├─ fingerprint {governed.fingerprint}, pinned content sha256 {governed.content_hash[:12]}.. "
            f"({len(governed.manifest)} files)") in lines
    # who approved it, on what evidence (the policy's reasons, the per-model segment check)
    assert any("approve apply-policy: approved by policy:approval" in line for line in lines)
    assert any("reasons: [validation passed, security scan passed, holdout roc_auc" in line for line in lines)
    assert any("approve segment-check: passed by person:demo" in line for line in lines)
    assert any("@champion (champion) from " in line and "by person:demo until" in line
               and "(replaced by version 2)" in line for line in lines)
    assert "└─ predictions: 40767 rows in 2 batches (batch 2 batches / 40767 rows), events 2013-02-15 .. " \
           "2013-07-31 23:00:00" in lines


def test_lineage_json_of_a_model_lists_every_version_with_its_parent_and_online_traffic(
        demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "lineage", "flight-delay", "--json")
    assert code == 0
    data = json.loads(out)
    versions = {v["version"]: v for v in data["versions"]}
    assert sorted(versions) == ["1", "2"]
    v2 = versions["2"]
    assert v2["state"] == "serving as @champion"
    assert v2["training_run"]["parent_version"] == "1"
    assert v2["training_run"]["params"] == {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31,
                                            "random_state": 0}
    assert v2["data"]["loader"] == "examples.flight_delay:load_frame" and v2["data"]["rows"] > 0
    assert [(d["role"], d["ended_at"]) for d in v2["deployments"]] == [("champion", None)]
    # The gateway's answers are v2's only traffic: online, three rows.
    assert v2["predictions"]["by_kind"] == {"online": {"batches": 1, "rows": 3}}
    compare = [r for r in v2["validation_and_approvals"] if r["action"] == "compare-with-champion"]
    assert compare[0]["outcome"] == "challenger-wins" and compare[0]["evidence"]["metric"] == "roc_auc"


def test_lineage_of_an_unknown_version_says_how_to_find_the_versions(demo: Demo,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "lineage", "flight-delay/9")
    assert code == 2
    assert "flight-delay v9 has no governance record" in err and "modelops lineage flight-delay" in err
    code, _, err = _cli(capsys, "lineage", "flight-delay/latest")
    assert code == 2 and "'flight-delay/latest' does not name a model version" in err


# --- OpenLineage run events ---------------------------------------------------------------------------------------
def _runs(events: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """run id -> event type -> event."""
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for event in events:
        runs.setdefault(event["run"]["runId"], {})[event["eventType"]] = event
    return runs


def _named(datasets: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in datasets if d["name"] == name)


def test_every_demo_stage_run_emits_start_and_complete_with_its_datasets(demo: Demo) -> None:
    store = demo.platform.store
    runs = _runs(demo.events())
    assert all(set(events) == {"START", "COMPLETE"} for events in runs.values())
    jobs = {events["START"]["job"]["name"] for events in runs.values()}
    assert {f"flight-delay.{stage}" for stage in ("register", "validate", "approve", "deploy", "score", "monitor",
                                                  "retrain", "retire")} <= jobs
    # The run id is the Prefect flow run's: the audit record of the registration names the same run.
    register_v1 = next(a for a in store.audit_trail("flight-delay") if a.stage == "register" and a.version == "1")
    registered = runs[register_v1.flow_run_id]["COMPLETE"]
    lineage = {r.version: r for r in store.lineage("flight-delay")}
    data = _named(registered["inputs"], "data/flight-delay")
    assert data["facets"]["version"]["datasetVersion"] == lineage["1"].data_hash
    assert data["facets"]["modelops"]["properties"]["loader"] == "examples.flight_delay:load_frame"
    model = _named(registered["outputs"], "models/flight-delay/1")
    assert model["facets"]["version"]["datasetVersion"] == store.governed_version("flight-delay", "1").content_hash
    assert registered["run"]["facets"]["modelops"]["result"]["version"] == "1"
    # v2 was registered by retrain, as its sub-flow: its events name the retrain run as parent.
    register_v2 = next(a for a in store.audit_trail("flight-delay") if a.stage == "register" and a.version == "2")
    parent = runs[register_v2.flow_run_id]["START"]["run"]["facets"]["parent"]
    assert parent["job"]["name"] == "flight-delay.retrain"
    assert runs[parent["run"]["runId"]]["COMPLETE"]["job"]["name"] == "flight-delay.retrain"
    # Scoring read the traffic file and the champion, and wrote a logged prediction batch.
    batch = store.prediction_batches("flight-delay", "1")[0]
    scored = next(e["COMPLETE"] for e in runs.values() if e["COMPLETE"]["job"]["name"] == "flight-delay.score"
                  and e["COMPLETE"]["run"]["facets"]["modelops"]["result"]["batch_id"] == batch.id)
    assert _named(scored["inputs"], batch.source)["namespace"] == "file"
    assert {d["name"] for d in scored["inputs"]} >= {"models/flight-delay/1"}
    assert f"predictions/flight-delay/{batch.id}" in {d["name"] for d in scored["outputs"]}


def test_a_failing_stage_run_emits_fail_with_the_error(demo: Demo) -> None:
    from flows.validate import validate
    from modelops.errors import CatalogError

    before = len(demo.events())
    with pytest.raises(CatalogError):
        validate(model="bike-demand", version="9")
    new = demo.events()[before:]
    assert [e["eventType"] for e in new] == ["START", "FAIL"]
    failed = new[1]
    assert failed["job"]["name"] == "bike-demand.validate"
    assert "bike-demand v9 has no governance record" in failed["run"]["facets"]["errorMessage"]["message"]


def test_events_go_to_the_openlineage_endpoint_when_a_url_is_set(demo: Demo,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.approve import approve

    receiver, server = start_receiver()
    try:
        monkeypatch.setenv("MODELOPS_OPENLINEAGE_URL", receiver.url)
        monkeypatch.setenv("MODELOPS_OPENLINEAGE_API_KEY", "lineage-test-key")
        lines = len(demo.events())
        assert approve(model="bike-demand", version="2").status == "approved"
    finally:
        server.shutdown()
    assert [(m["_path"], m["eventType"], m["job"]["name"]) for m in receiver.messages] == [
        ("/api/v1/lineage", "START", "bike-demand.approve"), ("/api/v1/lineage", "COMPLETE", "bike-demand.approve")]
    assert {h["Authorization"] for h in receiver.headers} == {"Bearer lineage-test-key"}
    approval = _named(receiver.messages[1]["outputs"], "approvals/bike-demand/2")
    assert approval["facets"]["modelops"]["properties"]["status"] == "approved"
    assert len(demo.events()) == lines  # to the endpoint instead of the file


def test_an_unreachable_lineage_endpoint_never_fails_the_stage(demo: Demo, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from flows.approve import approve

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MODELOPS_OPENLINEAGE_URL", f"http://user:secret@127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING, logger="modelops.lineage"):
        assert approve(model="bike-demand", version="2").status == "approved"
    undelivered = [r.getMessage() for r in caplog.records if r.name == "modelops.lineage"]
    assert len(undelivered) == 2 and all(f"not delivered to http://127.0.0.1:{port}:" in m for m in undelivered)
    assert not any("secret" in m for m in undelivered)  # the URL's credentials stay out of the log


# --- which model made this decision -------------------------------------------------------------------------------
def test_explain_decision_of_a_batch_prediction_names_the_serving_version_its_approval_and_input(
        demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    batch = demo.platform.store.prediction_batches("flight-delay", "1")[-1]  # July, scored by v1 as champion
    logged = read_batch(batch).iloc[7]
    code, out, _ = _cli(capsys, "explain-decision", str(logged["prediction_id"]), "--json")
    assert code == 0
    decision = json.loads(out)["decision"]
    assert (decision["model"], decision["version"], decision["role"], decision["kind"]) == \
           ("flight-delay", "1", "champion", "batch")
    assert decision["batch_id"] == batch.id and decision["source"] == batch.source
    # the deployment in force when it was scored (v1 was replaced by v2 only later)
    assert decision["deployment"]["role"] == "champion"
    assert decision["deployment"]["ended_reason"] == "replaced by version 2"
    assert decision["approval"]["outcome"] == "approved" and decision["approval"]["actor"] == "policy:approval"
    assert decision["validation"]["outcome"] == "passed" and "roc_auc" in decision["validation"]["evidence"]["metrics"]
    assert [c["action"] for c in decision["approval_checks"]] == ["segment-check"]
    assert decision["input"]["carrier"] == logged["carrier"] and decision["input"]["distance"] == logged["distance"]
    assert decision["prediction"] == int(logged["prediction"]) and decision["ground_truth"] is not None


def test_explain_decision_of_an_online_prediction_shows_the_row_the_gateway_received(
        demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "explain-decision", demo.online_ids[1], "--model", "flight-delay")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"prediction {demo.online_ids[1]}: decided by flight-delay v2 as champion"
    assert lines[1].startswith("flight-delay v2 as champion (answered), online scoring, log batch ")
    assert any(line.startswith("  served by: deployment ") and "@champion" in line and line.endswith("until now")
               for line in lines)
    assert any(line.startswith("  approval in force: approved (apply-policy)") for line in lines)
    row = demo.online_rows[1]
    assert f"  input: sched_dep_hour={row['sched_dep_hour']}, day_of_week={row['day_of_week']}, " in \
           next(line for line in lines if line.startswith("  input: ")) + ", "


# --- reproducing ----------------------------------------------------------------------------------------------------
def test_reproduce_matches_every_demo_version_and_changes_nothing_that_serves(
        demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    platform = demo.platform
    before = {m: ([v.version for v in platform.catalog.versions(m)], platform.catalog.aliases(m),
                  platform.store.serving_version(m, "champion")) for m in ("flight-delay", "bike-demand")}
    for target in ("flight-delay/1", "flight-delay/2", "bike-demand/1", "bike-demand/2"):
        code, out, _ = _cli(capsys, "reproduce", target, "--json")
        result = json.loads(out)
        assert code == 0, out
        assert result["matched"] and result["max_abs_difference"] <= 1e-6 and result["decisions_agree"] == 1.0
        assert result["data_same"] and result["params_verified"] and result["rows"] == result["rows_recorded"]
    after = {m: ([v.version for v in platform.catalog.versions(m)], platform.catalog.aliases(m),
                 platform.store.serving_version(m, "champion")) for m in ("flight-delay", "bike-demand")}
    assert after == before  # no version registered, no alias or deployment moved
    reproduced = [a for a in platform.store.audit_trail("bike-demand") if a.stage == "reproduce"]
    assert [(a.version, a.outcome) for a in reproduced][-2:] == [("1", "matched"), ("2", "matched")]


def _reproduce_changed(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str], function: str, *options: str,
                       **training: str) -> tuple[int, str]:
    """`reproduce bike-demand/2` with bike-demand's spec in a new config folder, pointing at a module
    `changed_bike` (written to tmp_path, importable) that holds `function`, a wrapper of bike-demand's own code."""
    config = tmp_path / "configs"
    shutil.copytree(demo.folder / "configs", config)
    path = config / "models" / "bike-demand.yaml"
    raw = yaml.safe_load(path.read_text())
    for key, value in training.items():
        section, field = key.split("__")
        raw[section][field] = value
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "changed_bike.py").write_text(f"from examples import bike_demand\n\n\n{function}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config))
    monkeypatch.delitem(sys.modules, "changed_bike", raising=False)
    code, out, _ = _cli(capsys, "reproduce", "bike-demand/2", *options)
    return code, out


def test_reproduce_with_changed_training_code_says_the_code_differs_and_does_not_match(
        demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The same trainer, with a learning rate a tenth lower than the parameters say: a code change.
    code, out = _reproduce_changed(demo, tmp_path, monkeypatch, capsys, (
        "def train(features, target, params):\n"
        "    return bike_demand.train(features, target, {**params, 'learning_rate': params['learning_rate'] * 0.9})\n"),
        training__entry_point="changed_bike:train")
    assert code == 1
    recorded = {r.version: r for r in demo.platform.store.lineage("bike-demand")}["2"].code_version
    assert out.startswith("bike-demand v2: the retrained model DOES NOT MATCH the registered one on the 672 rows")
    assert f"  code: DIFFERS from the record (recorded {recorded}, checkout " in out
    assert f"note: the trainer's code differs from the recorded version: recorded {recorded}" in out
    assert f"check out commit {recorded.split('@')[1]} to retrain with the recorded code" in out


def test_reproduce_with_changed_data_says_the_data_differs(
        demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The source lost an hour of rentals since the version was trained.
    code, out = _reproduce_changed(demo, tmp_path, monkeypatch, capsys, (
        "def load_frame(start, end):\n"
        "    return bike_demand.load_frame(start, end).iloc[1:]\n"), "--json", data__loader="changed_bike:load_frame")
    result = json.loads(out)
    assert not result["data_same"] and result["rows"] == result["rows_recorded"] - 1
    assert any(note.startswith("the data differs: the loader now returns 671 rows with content sha256")
               and "trained on 672 rows" in note for note in result["notes"])
    assert result["trainer_same"]  # the trainer did not change
    assert code == (0 if result["matched"] else 1)
