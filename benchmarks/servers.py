"""Servers under test as processes: start with a log file, wait until ready, read the memory and CPU of the whole
process tree from /proc, stop gracefully.

A server is a uvicorn master with worker processes (and for `mlflow models serve`, the mlflow command above them),
so every measurement sums over the tree of the process we started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A started server: its process (the root of its tree), where it listens and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    ready_path: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def launch(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a server process with its output appended to `log` (a pipe nobody reads would fill and stall it) and
    OMP_NUM_THREADS=1: one scoring thread per worker process, for every server alike."""
    with log.open("ab") as handle:
        return subprocess.Popen(command, env={**env, "OMP_NUM_THREADS": "1"}, stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=cwd)


def run_checked(command: list[str], env: dict[str, str], log: Path, cwd: Path, what: str) -> None:
    """Run a command to its end with its output in `log`; a failure names the log."""
    with log.open("ab") as handle:
        code = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              cwd=cwd).returncode
    if code != 0:
        raise SystemExit(f"{what} failed with exit code {code}: its output is in {log}")


def wait_ready(server: Server, timeout: float) -> None:
    """Until GET ready_path answers 200; a server that exits or stays unready is stopped and named with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with code {server.process.returncode} before it was ready; "
                               f"its output is in {server.log}")
        try:
            with urllib.request.urlopen(server.url + server.ready_path, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    stop(server)
    raise RuntimeError(f"{server.name} was not ready ({server.ready_path} != 200) within {timeout:.0f} s; "
                       f"its output is in {server.log}")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces): [state, ppid, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process ended while we looked
        return None
    return text[text.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(root: int, leaves_only: bool = False) -> list[int]:
    """`root` and all its descendants that are alive now; with `leaves_only`, those without children (the
    workers: a uvicorn master or the mlflow command above it has children, a worker has none)."""
    children = _children()
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        if Path(f"/proc/{pid}").exists():
            if not (leaves_only and children.get(pid)):
                tree.append(pid)
            queue.extend(children.get(pid, []))
    return tree


def _socket_inodes(port: int) -> tuple[set[int], set[int]]:
    """(listening, established) socket inodes of local TCP `port` (/proc/net/tcp and tcp6)."""
    listening, established = set(), set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                {"0A": listening, "01": established}.get(fields[3], set()).add(int(fields[9]))
    return listening, established


def _sockets_of(pid: int) -> set[int]:
    inodes = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def connections_by_worker(server: Server) -> list[int]:
    """How many client connections each worker holds, most first (a worker: a process of the tree without children
    that holds the listening socket or a connection; not a helper such as multiprocessing's resource tracker).

    uvicorn's workers accept from one shared socket, whichever is awake first taking all that is waiting: a burst of
    8 connections may land in one worker, which then scores alone while the other idles. Shown beside each
    measurement, as it explains much of the spread between rounds."""
    listening, established = _socket_inodes(server.port)
    counts = []
    for pid in process_tree(server.process.pid, leaves_only=True):
        held = _sockets_of(pid)
        if held & (listening | established):
            counts.append(len(held & established))
    return sorted(counts, reverse=True)


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0  # ended, or a zombie (no VmRSS line)


def tree_rss(server: Server) -> int:
    """Resident memory of the server's whole tree in bytes (master, workers, and any wrapper above them)."""
    return sum(rss_bytes(pid) for pid in process_tree(server.process.pid))


def tree_cpu_seconds(server: Server) -> float:
    """User + system CPU time used so far by the processes of the tree that are alive now."""
    total = 0
    for pid in process_tree(server.process.pid):
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores of the machine have spent not idle since boot (/proc/stat), in core-seconds: set beside
    the server's and wrk's own, it shows whether anything else ran during a measurement."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def wait_quiet(limit_cores: float, timeout: float, sample: float = 1.0) -> float:
    """Wait (at most `timeout` s) until the machine is quiet: under `limit_cores` busy over `sample` seconds while
    the servers under test are idle. Returns the seconds waited. On a shared machine other work would otherwise be
    measured as the server's slowness; on a dedicated one this returns after one sample."""
    started = time.monotonic()
    while True:
        before = machine_busy_seconds()
        time.sleep(sample)
        if (machine_busy_seconds() - before) / sample < limit_cores or time.monotonic() - started >= timeout:
            return time.monotonic() - started


def stop(server: Server, timeout: float = 60.0) -> bool:
    """SIGTERM to the process we started, and only to it: uvicorn's master passes it on to its workers once, and a
    second SIGTERM reaching a worker directly would make it skip its shutdown (a gateway flushes its prediction log
    there). `mlflow models serve` ends its uvicorn through the parent-death signal it sets. What is still alive
    after `timeout` is killed; returns True when everything ended on its own."""
    tree = process_tree(server.process.pid)
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.process.poll()
        if not [pid for pid in tree if _alive(pid)]:
            return True
        time.sleep(0.1)
    for pid in tree:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    server.process.wait()
    return False


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"
