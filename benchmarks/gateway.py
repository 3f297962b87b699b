"""Online scoring: the gateway against the obvious hand-written endpoint and `mlflow models serve` (issue 8).

Every server runs on this machine under uvicorn with the same number of worker processes and OMP_NUM_THREADS=1,
and gets the same real flight-delay rows (flights after the champion's training window):
- gateway: `modelops serve` (start_gateway), POST /v1/models/flight-delay/predict {"rows": [...]} with a token;
- bare: benchmarks/bare_endpoint.py, the same path and body, the same estimator, nothing else;
- mlflow: `mlflow models serve` of the same estimator, POST /invocations {"dataframe_records": [...]}.
All are started first; then, round after round, each scenario (1 connection x 1 row, 8 connections x 1 row,
8 connections x 100 rows) is run by wrk (1 thread) on each server in turn after a warm-up, while the others wait
idle. The table gives the median of the rounds. Then the gateway (freshly started, alone) takes a steady-rate soak
whose every request carries its own prediction id, is stopped with SIGTERM, and its prediction log is checked for
every id sent.

The targets are ratios to the baselines measured in the same run (never absolute times): PASS/MISS per target, and
a run with errors is flagged and cannot pass. Options (python -m benchmarks.gateway --help): --servers bare,mlflow
runs without the gateway, --stand-in bare puts a second bare endpoint in the gateway's place (to try the harness),
--rounds/--seconds/--warmup/--soak-seconds shorten a quick check (or MODELOPS_BENCH_ROUNDS, MODELOPS_BENCH_SECONDS,
MODELOPS_BENCH_SOAK_SECONDS; MODELOPS_BENCH_WORKERS sets --workers).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks import gateway_setup, servers
from benchmarks.bare_endpoint import PATH
from benchmarks.loadgen import LATE_MS, HttpRequest, Measured, SoakResult, WrkResult, run_wrk, share_text, soak

ROOT = Path(__file__).resolve().parents[1]
MODEL = gateway_setup.MODEL
SERVER_NAMES = ("gateway", "bare", "mlflow")
HOME = "home"  # the state directory inside the benchmark's folder; server logs and rows.json sit beside it
DISTINCT_REQUESTS = 256  # wrk cycles through this many different bodies (real rows, not one row over and over)
DISTURBED_CORES = 0.2  # CPU used by other processes during a measurement beyond which its figures are disturbed
FLAT_MEMORY_GROWTH = 0.10  # "flat": RSS at the end of the soak at most 10 % above its start
# A soak that sent fewer than 98 % of the requests its duration allows did not hold its rate: the server was slower.
HELD_RATE = 0.98


@dataclass(frozen=True)
class Scenario:
    name: str
    connections: int
    rows: int


ONE_CONNECTION = Scenario("1 conn, 1 row", 1, 1)
EIGHT_CONNECTIONS = Scenario("8 conn, 1 row", 8, 1)
HUNDRED_ROWS = Scenario("8 conn, 100 rows", 8, 100)
SCENARIOS = (ONE_CONNECTION, EIGHT_CONNECTIONS, HUNDRED_ROWS)


@dataclass(frozen=True)
class Workload:
    """What setup wrote to rows.json: the champion's version, its (column, MLflow type) signature, the spec's id
    column and real rows (id column included)."""

    version: str
    columns: list[tuple[str, str]]
    id_column: str
    rows: list[dict[str, Any]]

    def features(self, row: dict[str, Any]) -> dict[str, Any]:
        return {name: row[name] for name, _ in self.columns}


def load_workload(folder: Path) -> Workload:
    data = orjson.loads((folder / gateway_setup.ROWS_FILE).read_bytes())
    return Workload(data["version"], [tuple(c) for c in data["columns"]], data["id_column"], data["rows"])


def prepare_folder(folder: Path, rows: int) -> None:
    """Onboard flight-delay into folder/home and write the rows and the MLflow copy, unless an earlier run did and
    has enough rows (setup takes ~30-60 s; reusing a folder with --folder skips it)."""
    rows_file = folder / gateway_setup.ROWS_FILE
    if rows_file.is_file():
        have = len(load_workload(folder).rows)
        if have >= rows:
            return
        raise SystemExit(f"{rows_file} holds {have} rows, {rows} needed (soak rate x seconds): "
                         "run without --folder (a new folder) or shorten the soak")
    command = [sys.executable, "-m", "benchmarks.gateway_setup", str(folder / HOME), str(folder), str(rows)]
    started = time.perf_counter()
    servers.run_checked(command, server_env(folder / HOME), folder / "setup.log", ROOT, "benchmark setup")
    print(f"setup: flight-delay onboarded in {folder / HOME} ({time.perf_counter() - started:.0f} s)", flush=True)


def server_env(home: Path) -> dict[str, str]:
    """The environment of every server: this state directory, this checkout, this venv's commands first."""
    env = {**os.environ, "MODELOPS_HOME": str(home), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PREFECT_API_URL", None)
    # Only the MLflow baseline's server may unpickle (gateway_setup.save_for_mlflow_serve says why).
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    return env


def server_log(home: Path, name: str) -> Path:
    return home.parent / f"{name}.log"


def start_gateway(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """The gateway as `modelops serve` starts it, on loopback with `workers` uvicorn worker processes; the returned
    process is the root of the server's process tree (stopped by SIGTERM to it alone). Ready when /readyz is 200."""
    command = [sys.executable, "-m", "modelops.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]
    return servers.launch(command, server_env(home), server_log(home, "gateway"), ROOT)


def start_bare(home: Path, port: int, workers: int, name: str = "bare") -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "benchmarks.bare_endpoint:create_app", "--factory", "--host",
               "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level",
               "warning"]
    return servers.launch(command, server_env(home), server_log(home, name), ROOT)


def start_mlflow(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    # The cloudpickle copy written by setup is the estimator the scanned loader produced from the pinned champion:
    # our own object, so this one server may unpickle it.
    env = {**server_env(home), "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    model_dir = home.parent / gateway_setup.MLFLOW_MODEL_DIR
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
               "--workers", str(workers), "--port", str(port), "--host", "127.0.0.1"]
    return servers.launch(command, env, server_log(home, "mlflow"), ROOT)


@dataclass(frozen=True)
class Contender:
    """A server in a role: how to start it, where it is ready, and the requests it understands."""

    role: str  # gateway, bare or mlflow: the name in the table and the targets
    start: Callable[[Path, int, int], subprocess.Popen[bytes]]
    ready_path: str
    request: Callable[[list[dict[str, Any]]], HttpRequest]
    log_name: str


def gateway_request(token: str) -> Callable[[list[dict[str, Any]]], HttpRequest]:
    def request(rows: list[dict[str, Any]]) -> HttpRequest:
        return HttpRequest(PATH, orjson.dumps({"rows": rows}), {"Authorization": f"Bearer {token}"}, len(rows))
    return request


def mlflow_request(rows: list[dict[str, Any]]) -> HttpRequest:
    return HttpRequest("/invocations", orjson.dumps({"dataframe_records": rows}), {}, len(rows))


def require_gateway() -> None:
    """Before the minute of setup: the gateway (package serving) must be this checkout's, not one an editable
    install of another checkout puts on the path."""
    found = importlib.util.find_spec("serving")
    origin = Path(found.origin).resolve() if found is not None and found.origin else None
    if origin is None or ROOT not in origin.parents:
        where = f" (the one found is {origin.parent})" if origin else ""
        raise SystemExit(f"the gateway (package serving) is not in this checkout {ROOT}{where}: run "
                         "`python -m benchmarks.gateway --servers bare,mlflow`, or add `--stand-in bare` to try the "
                         "harness with a bare endpoint in the gateway's place")


def gateway_token(home: Path) -> str:
    """A token for flight-delay from the gateway's own store (serving.tokens)."""
    os.environ["MODELOPS_HOME"] = str(home)
    from modelops.platform import get_platform
    from serving.tokens import issue_token  # type: ignore[import-not-found]

    _, token = issue_token(get_platform(), "benchmark", [MODEL])
    return str(token)


def contenders(names: Sequence[str], stand_in: str | None, home: Path) -> list[Contender]:
    chosen = []
    for name in names:
        if name == "mlflow":
            chosen.append(Contender("mlflow", start_mlflow, "/ping", mlflow_request, "mlflow"))
        elif name == "bare":
            chosen.append(Contender("bare", start_bare, "/readyz", gateway_request("unused"), "bare"))
        elif stand_in == "bare":  # the gateway's path, body and headers; the bare app ignores the token
            chosen.append(Contender("gateway", lambda h, p, w: start_bare(h, p, w, "gateway-stand-in"), "/readyz",
                                    gateway_request("stand-in"), "gateway-stand-in"))
        else:
            chosen.append(Contender("gateway", start_gateway, "/readyz", gateway_request(gateway_token(home)),
                                    "gateway"))
    return chosen


def wrk_requests(contender: Contender, workload: Workload, rows: int) -> list[HttpRequest]:
    """Distinct requests of `rows` consecutive real rows each, features only (the gateway makes prediction ids)."""
    count = max(1, min(DISTINCT_REQUESTS, len(workload.rows) // rows))
    return [contender.request([workload.features(r) for r in workload.rows[i * rows:(i + 1) * rows]])
            for i in range(count)]


def soak_requests(contender: Contender, workload: Workload, count: int) -> list[tuple[str, HttpRequest]]:
    """One row a request, with the spec's id column, so that each request is one known prediction id in the log."""
    column = workload.id_column
    return [(str(row[column]), contender.request([{column: row[column], **workload.features(row)}]))
            for row in workload.rows[:count]]


def start(contender: Contender, home: Path, workers: int) -> servers.Server:
    """The contender's server on a free port, once it is ready."""
    from modelops.services.stack import free_port

    port = free_port()
    process = contender.start(home, port, workers)
    server = servers.Server(contender.role, process, port, contender.ready_path,
                            server_log(home, contender.log_name))
    servers.wait_ready(server, timeout=180)
    return server


Results = dict[str, dict[Scenario, Measured]]  # role -> scenario -> its rounds


def measure(chosen: Sequence[Contender], home: Path, workers: int, workload: Workload, seconds: float,
            warmup: float, rounds: int, quiet_timeout: float) -> Results:
    """Every server started and ready first, then, round after round, each scenario on each server in turn: wait for
    a quiet machine, wrk for `warmup` seconds (discarded), wrk for `seconds`. Interleaved so that a slower stretch
    of the machine (a shared host) falls on every server alike; a server waits idle while another is measured."""
    started: list[tuple[Contender, servers.Server]] = []
    runs: dict[str, dict[Scenario, list[WrkResult]]] = {c.role: {s: [] for s in SCENARIOS} for c in chosen}
    try:
        for contender in chosen:
            started.append((contender, start(contender, home, workers)))
            if contender.role == "gateway":
                print(f"  gateway scores {MODEL} v{workload.version} with "
                      f"{served_runtime(started[-1][1], contender, workload)}", flush=True)
        for number in range(1, rounds + 1):
            for scenario in SCENARIOS:
                for contender, server in started:
                    run = measure_once(contender, server, workload, scenario, seconds, warmup, quiet_timeout)
                    runs[contender.role][scenario].append(run)
                    print(f"  round {number} {contender.role:8} {scenario.name:17} {line(run)}", flush=True)
    finally:
        for contender, server in started:
            if not servers.stop(server):
                print(f"  {contender.role} did not end within a minute of SIGTERM: killed (see {server.log})")
    return {role: {s: Measured.of(r) for s, r in by.items()} for role, by in runs.items()}


def served_runtime(server: servers.Server, contender: Contender, workload: Workload) -> str:
    """Which runtime answered (the gateway's X-Model-Runtime header): onnxruntime when validation recorded an equal
    ONNX conversion of the champion, native otherwise."""
    import urllib.request

    request = wrk_requests(contender, workload, 1)[0]
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{server.port}{request.path}", data=request.body, method="POST",
            headers={**request.headers, "Content-Type": "application/json"}), timeout=30) as answer:
        return answer.headers.get("X-Model-Runtime", "an unnamed runtime")


def measure_once(contender: Contender, server: servers.Server, workload: Workload, scenario: Scenario,
                 seconds: float, warmup: float, quiet_timeout: float) -> WrkResult:
    waited = servers.wait_quiet(DISTURBED_CORES, quiet_timeout)
    if waited > 2:
        print(f"  (waited {waited:.0f} s for other processes to leave the CPU)", flush=True)
    requests = wrk_requests(contender, workload, scenario.rows)
    if warmup > 0:
        run_wrk(server, requests, scenario.connections, warmup)
    return run_wrk(server, requests, scenario.connections, seconds)


def line(result: WrkResult) -> str:
    flag = f"  ERRORS {result.errors} {error_text(result)}" if result.errors else ""
    return (f"{result.requests_per_second:8.0f} req/s {result.rows_per_second:9.0f} rows/s  p50 {result.p50_ms:6.2f} ms"
            f"  p99 {result.p99_ms:6.2f} ms  conns/worker {share_text(result.connections_by_worker)}  wrk CPU "
            f"{result.wrk_cpu:4.0%}  server {result.server_cpu:.2f} cores, others {result.other_cpu:.2f} cores{flag}")


def error_text(result: WrkResult) -> str:
    parts = [f"non-2xx {result.non_2xx}"] + [f"{k} {v}" for k, v in result.socket_errors.items() if v]
    return "(" + ", ".join(parts) + ")"


@dataclass(frozen=True)
class SoakReport:
    result: SoakResult
    graceful: bool  # the server ended on SIGTERM within the grace period
    logged: int  # how many of the ids sent are in the prediction log


def run_soak(contender: Contender, home: Path, workers: int, workload: Workload, rate: float, seconds: float,
             warmup: float) -> SoakReport:
    """A fresh server, warmed up by wrk on 1 connection (requests without ids), then `seconds` at `rate` requests/s
    with one id each; stopped with SIGTERM, then the prediction log is read for the ids sent."""
    requests = soak_requests(contender, workload, int(rate * seconds))
    server = start(contender, home, workers)
    try:
        if warmup > 0:
            run_wrk(server, wrk_requests(contender, workload, 1), 1, warmup)
        result = soak(server, requests, rate, rss_every=min(30.0, max(1.0, seconds / 10)))
    finally:
        graceful = servers.stop(server)
    return SoakReport(result, graceful, logged_count(home, result.sent_ids))


def logged_count(home: Path, ids: Sequence[str]) -> int:
    os.environ["MODELOPS_HOME"] = str(home)
    from modelops.platform import get_platform
    from tasks.prediction_log import logged_predictions

    frame = logged_predictions(get_platform(), MODEL, None, None, None)
    return len(set(ids) & set(frame["prediction_id"].astype(str)))


@dataclass(frozen=True)
class Check:
    target: str
    measured: str
    verdict: str  # PASS, MISS, or n/a when a server it needs was not run


def ratio_check(target: str, results: Results, scenario: Scenario, other: str, value: Callable[[Measured], float],
                unit: str, bound: float, at_least: bool) -> Check:
    """gateway's value over `other`'s in the same scenario, against `bound` (>= when at_least, else <=)."""
    if "gateway" not in results or other not in results:
        return Check(target, "not measured", "n/a")
    mine, theirs = results["gateway"][scenario], results[other][scenario]
    ratio = value(mine) / value(theirs)
    met = ratio >= bound if at_least else ratio <= bound
    errors = [name for name, r in (("gateway", mine), (other, theirs)) if r.errors]
    measured = f"{value(mine):.2f} / {value(theirs):.2f} {unit} = {ratio:.2f}x"
    if errors:
        return Check(target, measured + f" (errors in {', '.join(errors)})", "MISS")
    return Check(target, measured, "PASS" if met else "MISS")


def checks(results: Results) -> list[Check]:
    rps, p50, p99 = (lambda r: r.requests_per_second), (lambda r: r.p50_ms), (lambda r: r.p99_ms)
    return [
        ratio_check("8 conn, 1 row: req/s >= 10x mlflow", results, EIGHT_CONNECTIONS, "mlflow", rps, "req/s", 10, True),
        ratio_check("8 conn, 1 row: req/s >= 1.5x bare", results, EIGHT_CONNECTIONS, "bare", rps, "req/s", 1.5, True),
        ratio_check("8 conn, 1 row: p99 <= bare's", results, EIGHT_CONNECTIONS, "bare", p99, "ms", 1.0, False),
        ratio_check("1 conn, 1 row: p50 <= 1.1x bare", results, ONE_CONNECTION, "bare", p50, "ms", 1.1, False),
        ratio_check("8 conn, 100 rows: rows/s >= 0.9x bare", results, HUNDRED_ROWS, "bare",
                    lambda r: r.rows_per_second, "rows/s", 0.9, True),
    ]


def soak_checks(report: SoakReport) -> list[Check]:
    result = report.result
    sent = len(result.sent_ids)
    failures = ", ".join(f"{k} {v}" for k, v in result.failures.most_common()) or "none"
    start_rss, end_rss = result.rss[0][1], result.rss[-1][1]
    growth = end_rss / start_rss - 1 if start_rss else float("inf")
    stopped = "" if report.graceful else " (did not end on SIGTERM: killed)"
    held = result.achieved_rate >= HELD_RATE * result.rate
    return [
        Check(f"soak: the rate was held (>= {HELD_RATE:.0%} of it)",
              f"{result.achieved_rate:.1f} of {result.rate:.0f} requests/s, the client at most "
              f"{result.max_lag_ms:.0f} ms behind schedule", "PASS" if held else "MISS"),
        Check("soak: zero errors", f"{result.errors} of {sent} failed ({failures})",
              "PASS" if result.errors == 0 and sent else "MISS"),
        Check(f"soak: flat memory (growth <= {FLAT_MEMORY_GROWTH:.0%})",
              f"RSS {mib(start_rss)} at start, {mib(end_rss)} at end ({growth:+.1%}), peak "
              f"{mib(max(b for _, b in result.rss))}", "PASS" if growth <= FLAT_MEMORY_GROWTH else "MISS"),
        Check("soak: every request in the prediction log", f"{report.logged} of {sent} ids logged{stopped}",
              "PASS" if sent and report.logged == sent else "MISS"),
    ]


def mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def results_table(results: Results) -> str:
    from modelops.reporting import format_table

    rows = [[role, scenario.name, f"{r.requests_per_second:.0f}", r.spread, f"{r.rows_per_second:.0f}",
             f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.errors}" + (" FLAGGED" if r.errors else ""), r.shares,
             f"{r.wrk_cpu:.0%}", f"{r.server_cpu:.2f}", f"{r.other_cpu:.2f}"]
            for role, by_scenario in results.items() for scenario, r in by_scenario.items()]
    return format_table(["server", "scenario", "req/s", "rounds' req/s", "rows/s", "p50 ms", "p99 ms", "errors",
                         "conns/worker", "wrk CPU (max)", "server cores", "other cores (max)"], rows)


def soak_lines(report: SoakReport) -> list[str]:
    result = report.result
    trend = ", ".join(f"{t:.0f}s {mib(b)}" for t, b in result.rss)
    return [f"soak: {len(result.sent_ids)} requests in {result.seconds:.0f} s ({result.late} sent over "
            f"{LATE_MS:.0f} ms late); p50 {result.latency_ms(0.5):.2f} ms, p99 {result.latency_ms(0.99):.2f} ms; "
            f"conns/worker {share_text(result.connections_by_worker)}; server {result.server_cpu:.2f} cores, client "
            f"{result.client_cpu:.2f}, others {result.other_cpu:.2f}",
            f"soak RSS of the server's processes: {trend}"]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVER_NAMES),
                        help="comma-separated among gateway,bare,mlflow (default: all three)")
    parser.add_argument("--stand-in", choices=["bare"], help="serve the gateway's role with a second bare endpoint "
                        "(tries the harness, the ratios and the soak without the gateway)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("MODELOPS_BENCH_WORKERS", "2")),
                        help="uvicorn worker processes of every server (default 2, the cores of this machine)")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("MODELOPS_BENCH_SECONDS", "10")),
                        help="wrk seconds per measurement (default 10)")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("MODELOPS_BENCH_ROUNDS", "3")),
                        help="measurements of each server and scenario, interleaved; the table shows medians "
                        "(default 3)")
    parser.add_argument("--warmup", type=float, default=3.0, help="wrk seconds before each measurement (default 3)")
    parser.add_argument("--soak-seconds", type=float,
                        default=float(os.environ.get("MODELOPS_BENCH_SOAK_SECONDS", "300")),
                        help="soak duration, 0 to skip the soak (default 300)")
    parser.add_argument("--soak-rate", type=float, default=200.0, help="soak requests per second (default 200)")
    parser.add_argument("--quiet-timeout", type=float, default=300.0,
                        help="before each measurement wait up to this many seconds until other processes use under "
                        f"{DISTURBED_CORES} cores (default 300; a shared machine otherwise disturbs the figures)")
    parser.add_argument("--folder", type=Path, help="benchmark folder to create or reuse (its home/ is the state "
                        "directory with flight-delay onboarded); default: a new temporary folder")
    args = parser.parse_args(argv)
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in args.servers if name not in SERVER_NAMES]
    if unknown or not args.servers:
        parser.error(f"--servers: unknown {unknown}; choose among {','.join(SERVER_NAMES)}")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    # SIGTERM (make interrupted, CI cancelled) unwinds like Ctrl-C, so every server started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if "gateway" in args.servers and args.stand_in is None:
        require_gateway()
    folder = (args.folder or Path(tempfile.mkdtemp(prefix="modelops-bench-gateway-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / HOME
    soaking = "gateway" in args.servers and args.soak_seconds > 0
    prepare_folder(folder, max(1000, int(args.soak_rate * args.soak_seconds) if soaking else 0))
    workload = load_workload(folder)
    print(f"{MODEL} v{workload.version}; {args.workers} worker(s) per server, OMP_NUM_THREADS=1, {os.cpu_count()} "
          f"cores; wrk 1 thread, {args.warmup:.0f} s warm-up + {args.seconds:.0f} s per measurement; folder {folder}",
          flush=True)
    chosen = contenders(args.servers, args.stand_in, home)
    results = measure(chosen, home, args.workers, workload, args.seconds, args.warmup, args.rounds, args.quiet_timeout)
    report = None
    if soaking:
        gateway = next(c for c in chosen if c.role == "gateway")
        print(f"  soak: {args.soak_rate:.0f} req/s for {args.soak_seconds:.0f} s", flush=True)
        report = run_soak(gateway, home, args.workers, workload, args.soak_rate, args.soak_seconds, args.warmup)
    print()
    print(results_table(results))
    if report is not None:
        print("\n" + "\n".join(soak_lines(report)))
    verdicts = checks(results) + (soak_checks(report) if report else [])
    print()
    for check in verdicts:
        print(f"RATIO {check.target}: {check.measured} -> {check.verdict}")
    busy = [f"{role} {s.name} ({r.wrk_cpu:.0%})" for role, by in results.items() for s, r in by.items()
            if r.wrk_cpu > 0.8]
    if busy:
        print(f"wrk used over 80 % of a core in {', '.join(busy)}: the load generator may have been the limit")
    disturbed = [f"{role} {s.name} ({r.other_cpu:.2f})" for role, by in results.items() for s, r in by.items()
                 if r.other_cpu > DISTURBED_CORES]
    if disturbed:
        print(f"other processes used more than {DISTURBED_CORES} cores during {', '.join(disturbed)}: those figures "
              "are disturbed; rerun on a quiet machine")
    flagged = [f"{role} {s.name}" for role, by in results.items() for s, r in by.items() if r.errors]
    if flagged:
        print(f"runs with errors (FLAGGED): {', '.join(flagged)}; server logs in {folder}")
    if args.stand_in:
        print(f"(the gateway's role was played by a {args.stand_in} endpoint: its verdicts try the harness only)")
    missed = [c.target for c in verdicts if c.verdict == "MISS"]
    return 1 if missed or flagged else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
