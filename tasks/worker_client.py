"""The platform's side of a model environment: a long-lived scoring worker process and the Predictor that forwards
to it, and one-shot training in the environment.

The worker is the environment's own Python running tasks/env_worker.py in isolated mode. It gets the very bytes the
security scan passed (it checks their sha256 again) and the types the scan approved, loads them with its own skops
and scikit-learn, and answers frames with the model's output (wire format in tasks.env_worker). A worker that dies
is started again once, transparently, and the request repeated; if the new one fails too the caller gets an error
naming the environment and the worker's log. Workers stop when their model is closed (end of batch scoring, the
gateway dropping or stopping a version), when it is garbage collected, at interpreter exit, and on their own when
the platform's end of the pipe closes (a killed platform leaves no worker behind).
"""

from __future__ import annotations

import atexit
import json
import subprocess
import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from modelops.errors import ModelEnvironmentError, UnsafeModelError
from tasks.env_worker import decode_array, encode_array, encode_frame, read_message, write_message
from tasks.environments import Environment, child_environment, worker_script

STOP_SECONDS = 5.0
_LIVE: "weakref.WeakSet[WorkerProcess]" = weakref.WeakSet()


class WorkerDied(Exception):
    """The worker's pipe closed: it exited or was killed."""


class WorkerProcess:
    """One worker process of an environment, talked to one request at a time."""

    def __init__(self, environment: Environment, log_path: Path, label: str) -> None:
        self.environment = environment
        self.log_path = log_path
        self.label = label
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # OpenMP may use every core: the worker scores one request at a time.
            self._process = subprocess.Popen([str(self.environment.python), "-I", str(worker_script())],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                             cwd=self.environment.path, env=child_environment())
        _LIVE.add(self)

    def request(self, header: dict[str, Any], buffers: Sequence[bytes] = ()) -> tuple[dict[str, Any], list[bytes]]:
        """The worker's answer; WorkerDied when it is gone, ModelEnvironmentError when it refused."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                raise WorkerDied()
            try:
                write_message(process.stdin, header, buffers)  # type: ignore[arg-type]
                answer = read_message(process.stdout)  # type: ignore[arg-type]
            except (BrokenPipeError, OSError, ValueError) as exc:
                raise WorkerDied() from exc
        if answer is None:
            raise WorkerDied()
        reply, out = answer
        if not reply.get("ok"):
            raise ModelEnvironmentError(f"{self.label}: the worker in environment {self.environment.key[:12]} "
                                        f"refused {header.get('op')}: {reply.get('error')}",
                                        "check that the model's requirements match the code that trained it; "
                                        f"worker log: {self.log_path}")
        return reply, out

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()  # type: ignore[union-attr]
            process.wait(timeout=STOP_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            process.stdout.close()  # type: ignore[union-attr]

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


@atexit.register
def _stop_all() -> None:
    for worker in list(_LIVE):
        worker.stop()


class IsolatedModel:
    """A scanned scikit-learn model scored by a worker in its own environment: the platform's Predictor."""

    runtime = "worker"

    def __init__(self, environment: Environment, data: bytes, sha256: str, trusted_types: list[str],
                 predict_fn: str, log_path: Path, label: str) -> None:
        self.environment = environment
        self.label = label
        self._load = {"op": "load", "sha256": sha256, "trusted_types": trusted_types, "predict_fn": predict_fn}
        self._data = data  # kept to load a restarted worker with the same checked bytes
        self.worker = WorkerProcess(environment, log_path, label)
        self._restart_lock = threading.Lock()
        self.restarts = 0
        self.model_seconds = 0.0  # spent in the model's own predict inside the worker (benchmarks/model_environment)
        self.versions: dict[str, str] = {}
        self._start()
        weakref.finalize(self, self.worker.stop)

    def _start(self) -> None:
        self.worker.start()
        try:
            reply, _ = self.worker.request(self._load, [self._data])
        except WorkerDied:
            self.worker.stop()
            raise ModelEnvironmentError(f"{self.label}: its scoring worker in environment "
                                        f"{self.environment.key[:12]} exited while loading the model "
                                        f"({self.worker.log_tail()})", f"see the worker log {self.worker.log_path}")
        except ModelEnvironmentError as exc:
            self.worker.stop()
            raise UnsafeModelError(exc.what, "retrain and log the model again in its environment") from exc
        self.versions = reply["versions"]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        columns, buffers = encode_frame(frame)
        pid = self.worker.pid
        try:
            reply, out = self.worker.request({"op": "predict", "columns": columns}, buffers)
        except WorkerDied:
            # Started again once with the same bytes (by one of the threads that found it dead); a second death is
            # an error, not a loop.
            with self._restart_lock:
                if self.worker.pid == pid:
                    self.worker.stop()
                    self.restarts += 1
                    self._start()
            try:
                reply, out = self.worker.request({"op": "predict", "columns": columns}, buffers)
            except WorkerDied:
                self.worker.stop()
                raise ModelEnvironmentError(
                    f"{self.label}: its scoring worker in environment {self.environment.key[:12]} died twice while "
                    f"scoring {len(frame)} rows ({self.worker.log_tail()})",
                    f"see the worker log {self.worker.log_path}; the rows were not scored") from None
        self.model_seconds += float(reply.get("model_seconds", 0.0))
        return decode_array(reply["output"], out)

    def close(self) -> None:
        self.worker.stop()


def train_in_environment(environment: Environment, log_path: Path, label: str, *, entry_point: str,
                         code_path: Path, features: pd.DataFrame, target: pd.Series, params: dict[str, Any],
                         predict_fn: str, example_rows: int) -> tuple[bytes, list[str], np.ndarray, dict[str, str]]:
    """Run the training entry point in the environment: (skops bytes, types to trust, output on the first
    `example_rows` rows, versions that trained). The worker is started for this alone and stopped after."""
    worker = WorkerProcess(environment, log_path, label)
    worker.start()
    columns, buffers = encode_frame(features)
    target_meta, target_buffers = encode_array(target.to_numpy())
    try:
        reply, out = worker.request({"op": "train", "entry_point": entry_point, "code_path": str(code_path),
                                     "columns": columns, "target": target_meta, "target_name": str(target.name),
                                     "params": params, "predict_fn": predict_fn, "example_rows": example_rows},
                                    [*buffers, *target_buffers])
    except WorkerDied:
        raise ModelEnvironmentError(f"{label}: the training worker in environment {environment.key[:12]} exited "
                                    f"({worker.log_tail()})", f"see the worker log {log_path}") from None
    finally:
        worker.stop()
    return out[0], list(reply["trusted_types"]), decode_array(reply["output"], out[1:]), reply["versions"]


def environment_plan(mode: str, requirements: list[str], kind: str, serialization: str,
                     label: str) -> list[str] | None:
    """The checked requirement lines of the environment a model runs in, or None for the platform's own process.
    Builds and starts nothing; refuses (ModelEnvironmentError) requirements an environment may not install."""
    from tasks.environments import environment_requirements, loader_pins, needs_environment, parse_requirements

    if not needs_environment(mode, loader_pins(requirements), kind, serialization):
        return None
    return environment_requirements(parse_requirements(requirements, f"{label} requirements"))


def environment_for(home: Path, mode: str, requirements: list[str], kind: str, serialization: str,
                    label: str) -> Environment | None:
    """The environment a model with these requirements runs in, built or from the cache; None: the platform's
    process."""
    from tasks.environments import ensure_environment

    lines = environment_plan(mode, requirements, kind, serialization, label)
    return None if lines is None else ensure_environment(home, lines, label)


@lru_cache(maxsize=16)
def _trust_report(python: str, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    done = subprocess.run([python, "-I", str(worker_script()), "--trust-report"], input=json.dumps(list(names)),
                          capture_output=True, text=True, timeout=300, env=child_environment())
    if done.returncode != 0:
        raise ModelEnvironmentError(f"the environment of {python} cannot judge the model's allow-list: "
                                    f"{done.stderr.strip()[-800:]}", "rebuild it: remove that environment's folder")
    return json.loads(done.stdout)


@dataclass(frozen=True)
class EnvironmentNames:
    """Judges allow-listed names (class or function) in an environment's own Python: the scan's ScanContext
    trust_report for a model that loads there."""

    python: str

    def __call__(self, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
        return _trust_report(self.python, names)


def scan_for_environment(model_dir: Path, policy: Any, context: Any, environment: Environment) -> Any:
    """The scan again, judging the allow-list where the model will load (another scikit-learn may lack or change
    a class): what passes is what the worker is then allowed to trust."""
    from dataclasses import replace

    from tasks.security import scan_model_dir

    scan = scan_model_dir(model_dir, policy, replace(context, trust_report=EnvironmentNames(str(environment.python))))
    return replace(scan, environment=environment.summary)


def start_in_environment(home: Path, environment: Environment, scan: Any, label: str) -> IsolatedModel:
    """The scanned model scored by a worker in its own environment."""
    from tasks.security import scanned_bytes

    return IsolatedModel(environment, scanned_bytes(scan), scan.sha256, list(scan.trusted_types), scan.predict_fn,
                         home / "logs" / f"env-worker-{environment.key[:12]}.log", label)
