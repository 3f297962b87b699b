"""Load generators of the online-scoring benchmark.

- run_wrk: wrk with one thread and a fixed number of connections, as fast as the server answers (closed loop).
  Its Lua script cycles through pre-formatted POST requests and prints wrk's own figures from done(), so nothing is
  scraped from wrk's text. Reports the CPU wrk itself used, to show the load generator was not the bottleneck.
- soak: a paced asyncio client (request i is due at start + i/rate whatever happened to earlier ones; wrk has no
  fixed-rate mode), each request one row with its own prediction id.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.servers import Server, connections_by_worker, machine_busy_seconds, tree_cpu_seconds, tree_rss

WRK = "wrk"
RESULT_MARK = "WRK-RESULT"
SOAK_CONNECTIONS = 32  # the soak's client connections, so at most this many requests await an answer at once
SOAK_TIMEOUT = 10.0  # seconds a soak request may take before it counts as an error
LATE_MS = 100.0  # a soak request sent this much after its time counts as late


@dataclass(frozen=True)
class HttpRequest:
    """One POST as wrk and the soak client send it."""

    path: str
    body: bytes
    headers: dict[str, str]
    rows: int


@dataclass(frozen=True)
class WrkResult:
    connections: int
    seconds: float
    requests: int  # completed, whatever their status
    rows_per_request: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int  # wrk counts statuses above 399
    socket_errors: dict[str, int]  # connect, read, write, timeout
    wrk_cpu: float  # share of one core wrk used over the run
    server_cpu: float  # cores the server's process tree used over the run
    other_cpu: float  # cores everything else on the machine used over the run (should be ~0)
    connections_by_worker: list[int] = field(default_factory=list)  # client connections each worker held

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def requests_per_second(self) -> float:
        """Answered requests per second, errors left out: an error is not throughput."""
        return (self.requests - self.non_2xx) / self.seconds

    @property
    def rows_per_second(self) -> float:
        return self.requests_per_second * self.rows_per_request


@dataclass(frozen=True)
class Measured:
    """One server in one scenario over several rounds: the median of each figure (a round disturbed by something
    else on the machine does not decide), errors summed, the busiest load generator and neighbours kept."""

    runs: list[WrkResult]
    requests_per_second: float
    rows_per_second: float
    p50_ms: float
    p99_ms: float
    server_cpu: float

    @classmethod
    def of(cls, runs: list[WrkResult]) -> Measured:
        medians = (statistics.median(getattr(run, name) for run in runs)
                   for name in ("requests_per_second", "rows_per_second", "p50_ms", "p99_ms", "server_cpu"))
        return cls(runs, *medians)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    @property
    def wrk_cpu(self) -> float:
        return max(run.wrk_cpu for run in self.runs)

    @property
    def other_cpu(self) -> float:
        return max(run.other_cpu for run in self.runs)

    @property
    def spread(self) -> str:
        """Lowest and highest req/s of the rounds."""
        values = [run.requests_per_second for run in self.runs]
        return f"{min(values):.0f}-{max(values):.0f}"

    @property
    def shares(self) -> str:
        """How the workers shared the connections, round by round: 8+0 (one worker had them all), 4+4, ..."""
        return " ".join(share_text(run.connections_by_worker) for run in self.runs)


def share_text(counts: list[int]) -> str:
    return "+".join(str(count) for count in counts) or "?"


def _long_string(text: str) -> str:
    """`text` as a Lua long string literal, with a bracket level that does not occur in it."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def lua_script(requests: Sequence[HttpRequest]) -> str:
    """A wrk script cycling through `requests`, formatted once in init() (after wrk has set the Host header), and
    printing the figures of the run on one line from done(): durations in microseconds."""
    lines = ["local bodies, paths, headers = {}, {}, {}"]
    for index, request in enumerate(requests, start=1):
        pairs = ", ".join(f"[ {_long_string(k)} ] = {_long_string(v)}" for k, v in
                          {"Content-Type": "application/json", **request.headers}.items())
        lines.append(f"bodies[{index}] = {_long_string(request.body.decode())}")
        lines.append(f"paths[{index}] = {_long_string(request.path)}")
        lines.append(f"headers[{index}] = {{{pairs}}}")
    lines.append(f"""
local formatted, next_index = {{}}, 0
function init(args)
  for i = 1, #bodies do formatted[i] = wrk.format("POST", paths[i], headers[i], bodies[i]) end
end
function request()
  next_index = next_index % #formatted + 1
  return formatted[next_index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("{RESULT_MARK} %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f\\n", summary.duration,
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end
""")
    return "\n".join(lines)


def parse_result(output: str, connections: int, rows: int, wrk_cpu: float, server_cpu: float,
                 other_cpu: float) -> WrkResult:
    line = next((line for line in output.splitlines() if line.startswith(RESULT_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no {RESULT_MARK} line (did the script load?):\n{output}")
    duration, count, status, connect, read, write, timeout = (int(v) for v in line.split()[1:8])
    p50, p90, p99, longest = (float(v) / 1000 for v in line.split()[8:12])
    return WrkResult(connections=connections, seconds=duration / 1e6, requests=count, rows_per_request=rows,
                     p50_ms=p50, p90_ms=p90, p99_ms=p99, max_ms=longest, non_2xx=status,
                     socket_errors={"connect": connect, "read": read, "write": write, "timeout": timeout},
                     wrk_cpu=wrk_cpu, server_cpu=server_cpu, other_cpu=other_cpu)


def run_wrk(server: Server, requests: Sequence[HttpRequest], connections: int, seconds: float) -> WrkResult:
    """One wrk run (1 thread) against `server`, with the CPU used by wrk, by the server and by everything else, and
    how the server's workers shared the connections (looked at a second into the run)."""
    if shutil.which(WRK) is None:
        raise SystemExit("benchmarks.gateway needs the load generator wrk on PATH: `apt-get install -y wrk` (Debian), "
                         "or `brew install wrk`")
    with tempfile.TemporaryDirectory(prefix="modelops-wrk-") as folder:
        script = Path(folder) / "requests.lua"
        script.write_text(lua_script(requests))
        command = [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
                   server.url]
        # wrk is the only child this process waits for during the run, so the growth of RUSAGE_CHILDREN is wrk's.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before, machine_before = tree_cpu_seconds(server), machine_busy_seconds()
        started = time.perf_counter()
        with (Path(folder) / "out").open("w+") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
            try:
                time.sleep(min(1.0, seconds / 2))
                shared = connections_by_worker(server)
            finally:
                code = process.wait()
            wall = time.perf_counter() - started
            server_used = tree_cpu_seconds(server) - server_before
            machine_used = machine_busy_seconds() - machine_before
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out.seek(0)
            output = out.read()
    if code != 0:
        raise RuntimeError(f"wrk failed ({code}): {output.strip()}")
    wrk_used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    other = max(0.0, machine_used - server_used - wrk_used)
    return replace(parse_result(output, connections, requests[0].rows, wrk_used / wall, server_used / wall,
                                other / wall), connections_by_worker=shared)


@dataclass
class SoakResult:
    rate: float
    seconds: float
    sent_ids: list[str] = field(default_factory=list)
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # "HTTP 503", "timeout", "ConnectionResetError", ...
    latencies_ms: list[float] = field(default_factory=list)
    max_lag_ms: float = 0.0  # how far behind its schedule the client sent a request (the server was slower)
    late: int = 0  # requests sent more than LATE_MS behind their schedule
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the soak, bytes)
    connections_by_worker: list[int] = field(default_factory=list)  # at the last RSS sample while sending
    client_cpu: float = 0.0  # share of one core this process used while sending
    server_cpu: float = 0.0  # cores the server's process tree used
    other_cpu: float = 0.0  # cores everything else on the machine used

    @property
    def errors(self) -> int:
        return sum(self.failures.values())

    @property
    def achieved_rate(self) -> float:
        """Requests answered or failed per second of the whole soak: the rate asked for when the server kept up."""
        return len(self.sent_ids) / self.seconds if self.seconds else 0.0

    def latency_ms(self, quantile: float) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[round(quantile * 100) - 1]


def http_bytes(request: HttpRequest, host: str, port: int) -> bytes:
    """`request` as the bytes of an HTTP/1.1 request on a kept-alive connection."""
    headers = {"Host": f"{host}:{port}", "Content-Type": "application/json", **request.headers,
               "Content-Length": str(len(request.body))}
    head = f"POST {request.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + request.body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server keeps the connection) of one HTTP/1.1 response; the body is read and dropped."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = int(head[9:12])
    fields = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
    if "chunked" in fields.get("transfer-encoding", ""):
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.readexactly(int(fields.get("content-length", "0")))
    return status, "close" not in fields.get("connection", "")


class _SoakConnection:
    """One client connection of the soak: takes the next request from the shared queue, sends it, reads the answer;
    connects when it has none (again after an error)."""

    def __init__(self, host: str, port: int, result: SoakResult) -> None:
        self.host, self.port, self.result = host, port, result
        self.stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def exchange(self, payload: bytes) -> int:
        if self.stream is None:
            self.stream = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.stream
        writer.write(payload)
        status, keep = await read_response(reader)
        if not keep:
            self.close()
        return status

    def close(self) -> None:
        if self.stream is not None:
            self.stream[1].close()
            self.stream = None

    async def run(self, queue: asyncio.Queue[tuple[float, str, bytes] | None], start: float) -> None:
        result = self.result
        while (item := await queue.get()) is not None:
            due, prediction_id, payload = item
            sent = time.perf_counter()
            lag_ms = (sent - start - due) * 1000
            result.max_lag_ms = max(result.max_lag_ms, lag_ms)
            result.late += lag_ms > LATE_MS
            result.sent_ids.append(prediction_id)
            try:
                status = await asyncio.wait_for(self.exchange(payload), SOAK_TIMEOUT)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                    ValueError) as exc:
                result.failures["timeout" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__] += 1
                self.close()
                continue
            if 200 <= status < 300:
                result.ok += 1
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
            else:
                result.failures[f"HTTP {status}"] += 1
        self.close()


async def _soak(server: Server, requests: Sequence[tuple[str, HttpRequest]], rate: float, rss_every: float,
                result: SoakResult) -> None:
    host, port = "127.0.0.1", server.port
    payloads = [(prediction_id, http_bytes(request, host, port)) for prediction_id, request in requests]
    # A queue the connections take from in turn: requests spread over all SOAK_CONNECTIONS (opened one by one as
    # traffic starts, not in a burst), as many clients would. A server slower than the rate leaves requests
    # waiting in the queue, and they leave late: `late` and `max_lag_ms` say so.
    queue: asyncio.Queue[tuple[float, str, bytes] | None] = asyncio.Queue()
    start = time.perf_counter()
    connections = [asyncio.create_task(_SoakConnection(host, port, result).run(queue, start))
                   for _ in range(SOAK_CONNECTIONS)]
    next_sample = 0.0
    for index, (prediction_id, payload) in enumerate(payloads):
        due = index / rate
        if due >= next_sample:
            result.rss.append((time.perf_counter() - start, tree_rss(server)))
            result.connections_by_worker = connections_by_worker(server)
            next_sample += rss_every
        delay = start + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, prediction_id, payload))
    for _ in connections:
        queue.put_nowait(None)
    await asyncio.gather(*connections)
    result.seconds = time.perf_counter() - start
    result.rss.append((result.seconds, tree_rss(server)))


def soak(server: Server, requests: Sequence[tuple[str, HttpRequest]], rate: float,
         rss_every: float = 30.0) -> SoakResult:
    """Send (prediction id, request) pairs at `rate` per second over SOAK_CONNECTIONS kept-alive connections,
    sampling the server's RSS every `rss_every` s. A plain asyncio client writing prepared bytes (on uvloop): at
    200 requests/s an HTTP library's own work would take CPU from the server on a small machine."""
    import uvloop

    result = SoakResult(rate=rate, seconds=0.0)
    before, server_before, machine_before = (resource.getrusage(resource.RUSAGE_SELF), tree_cpu_seconds(server),
                                             machine_busy_seconds())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_soak(server, requests, rate, rss_every, result))
    after = resource.getrusage(resource.RUSAGE_SELF)
    client = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    used = tree_cpu_seconds(server) - server_before
    result.client_cpu, result.server_cpu = client / result.seconds, used / result.seconds
    result.other_cpu = max(0.0, machine_busy_seconds() - machine_before - used - client) / result.seconds
    return result
