"""The gateway's prediction log writer: every acknowledged online prediction reaches the same prediction log as
batch scoring (tasks.prediction_log), without a response ever waiting for Parquet or the governance store.

How: `append` writes one JSON line per scored request to this process's spool file before it returns (the gateway
answers after it); a flusher thread cuts the spool into segments, writes each segment through
`tasks.prediction_log.log_predictions` and only then deletes it. The spool is written without fsync: what `append`
acknowledged survives the process being killed (the kernel holds it), not a power loss or an OS crash.

Spool files live in <home>/spool/gateway, named <worker>.<pid>.<start ns>.<segment no>.spool. A process holds an
flock on each of its segments until it has flushed and deleted it, so a segment whose lock can be taken belongs to
no live process: `recover_spools` flushes those (the gateway calls it at start). A segment's batch ids derive from
its file name, so flushing it again (after a crash between writing Parquet and deleting the segment) replaces the
log's files and records instead of duplicating them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from modelops.errors import DataError, ModelOpsError
from modelops.platform import Platform
from tasks.prediction_log import log_predictions
from tasks.scoring import event_times

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".spool"
REJECTED_SUFFIX = ".rejected"  # a segment whose content can never be logged, kept for an operator
_CREATING_SUFFIX = ".creating"  # not yet locked: recovery must not take a file in this state for an orphan
HEAD_COLUMNS = ("prediction_id", "event_time", "scored_at")
TAIL_COLUMNS = ("prediction", "score", "latency_ms")
_WORKER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_BACKOFF_SECONDS = 60.0
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def spool_dir(platform: Platform) -> Path:
    return platform.settings.home / "spool" / "gateway"


# --- segments: one spool file, locked by whoever writes or flushes it ---------------------------------------------
@dataclass
class _Segment:
    path: Path
    fd: int
    rows: int = 0  # rows appended by this process (its live segment only)
    size: int = 0  # bytes of whole lines written (its live segment only)


def _open_segment(directory: Path, stem: str) -> _Segment:
    """A new segment, locked before it gets the name recovery looks for: an unlocked `.spool` file is an orphan.
    Opened exclusively and without following links (the state directory may hold a planted one)."""
    creating = directory / f"{stem}{_CREATING_SUFFIX}"
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(creating, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = directory / f"{stem}{SPOOL_SUFFIX}"
        os.rename(creating, path)
    except BaseException:
        os.close(fd)
        creating.unlink(missing_ok=True)
        raise
    return _Segment(path, fd)


def _claim(path: Path) -> _Segment | None:
    """Lock a segment no live process holds, or None (its writer lives, or another recoverer took it first)."""
    try:
        # O_NONBLOCK: a FIFO planted under a segment's name must not hang the gateway's start.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symlink (ELOOP), a file we may not read: not ours to flush, never a failed start
        log.warning("prediction spool %s is not a segment this gateway can read (%s); left alone", path.name,
                    type(exc).__name__)
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        log.warning("prediction spool %s is not a regular file; left alone", path.name)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Between our open and our lock another recoverer may have flushed and deleted (or renamed) this file:
        # only the file still under the name is ours to flush.
        named, held = os.stat(path, follow_symlinks=False), os.fstat(fd)
        if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            raise FileNotFoundError(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return _Segment(path, fd)


def _release(segment: _Segment, delete: bool) -> None:
    """Delete (when flushed) before unlocking: no recoverer may find a flushed segment unlocked."""
    try:
        if delete:
            segment.path.unlink(missing_ok=True)
    finally:
        os.close(segment.fd)


def _read_all(fd: int) -> bytes:
    size, chunks, offset = os.fstat(fd).st_size, [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


# --- reading a segment into log frames ----------------------------------------------------------------------------
Columns = dict[str, list[Any]]
GroupKey = tuple[str, str, str]  # (model, version, role)


def read_spool(data: bytes, where: str) -> tuple[dict[GroupKey, Columns], int]:
    """(each (model, version, role)'s columns, torn lines), rows in the order they were appended: monitoring reads
    a run of rows with one batch id and one latency as one scoring micro-batch.

    Only a line ended by its newline was acknowledged: a process killed in the middle of a write leaves a last line
    without one, which is skipped and counted, as is any line that does not parse. Each line is folded into its
    group's lists at once: keeping a dict per request alive would let the garbage collector's passes over them
    cost five times the parsing. Raises DataError when requests of one group carry different columns."""
    lines = data.split(b"\n")
    torn = 1 if lines.pop() else 0  # what follows the last newline: empty unless the last write was cut short
    groups: dict[GroupKey, Columns] = {}
    for line in lines:
        try:
            model, version, role, columns = orjson.loads(line)
            key = (str(model), str(version), str(role))
            names = columns.keys()
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
            torn += 1
            continue
        group = groups.setdefault(key, {name: [] for name in names})
        if names != group.keys():
            raise DataError(f"{where}: requests of {key[0]} v{key[1]} ({key[2]}) carry different columns",
                            "log every request of a model version with the same columns")
        for name, values in columns.items():
            group[name].extend(values)
    for key, group in groups.items():
        if len({len(values) for values in group.values()}) > 1:  # a column that was no list of one row per row
            raise DataError(f"{where}: columns of {key[0]} v{key[1]} ({key[2]}) differ in length",
                            "spool columns as lists of one length (PredictionSink.append checks this)")
    return groups, torn


def _feature(values: list[Any]) -> pd.Series:
    """JSON keeps the type of a conformed feature value (int, float, str, bool). Only a float feature may be
    missing (conform_to_signature refuses nulls of the other types), and JSON writes its NaN as null: a column
    holding a null is float64. Otherwise pandas infers int64, float64, bool or object (text) as batch scoring has."""
    return pd.Series(values, dtype="float64") if None in values else pd.Series(values)


def _times(columns: Columns, name: str, where: str) -> pd.Series:
    """A time column read as batch scoring reads it (tasks.scoring.event_times), each distinct value once: the
    rows of a request share scored_at, flights share their scheduled hour."""
    codes, distinct = pd.factorize(pd.Series(columns[name], dtype=object), use_na_sentinel=False)
    read = event_times(pd.DataFrame({name: distinct}), name, where).to_numpy()
    return pd.Series(read[codes])


def log_frame(columns: Columns, where: str) -> pd.DataFrame:
    """The prediction log rows of spooled requests, with the columns and dtypes batch scoring writes
    (tasks.scoring.score_frame): ids as text, times as naive UTC, features as their signature types, score and
    latency as float64. Raises DataError for content that can never be logged."""
    features = [name for name in columns if name not in HEAD_COLUMNS + TAIL_COLUMNS]
    frame = pd.DataFrame({"prediction_id": pd.Series(columns["prediction_id"], dtype=object).astype(str),
                          "event_time": _times(columns, "event_time", where),
                          "scored_at": _times(columns, "scored_at", where)})
    for name in features:
        frame[name] = _feature(columns[name])
    frame["prediction"] = _feature(columns["prediction"])
    frame["score"] = pd.Series(columns["score"], dtype="float64")
    frame["latency_ms"] = pd.Series(columns["latency_ms"], dtype="float64")
    return frame


@dataclass(frozen=True)
class _Flushed:
    rows: int
    torn: int  # lines skipped: cut short by a killed process, or unreadable
    rejected: bool = False  # content that can never be logged: kept as <name>.rejected, nothing logged


def source_of(path: Path) -> str:
    """PredictionBatch.source of a segment: the worker that spooled it, from the segment's name."""
    return f"online:{path.name.split('.', 1)[0]}"


def _flush_segment(platform: Platform, segment: _Segment) -> _Flushed:
    """Log a segment's rows, one prediction batch per (model, version, role), then delete it. Raises on a failure
    that may pass (disk, store): the segment is kept, locked by the caller, for the next attempt."""
    where = f"prediction spool {segment.path.name}"
    data = _read_all(segment.fd)
    try:
        groups, torn = read_spool(data, where)
        frames = {key: log_frame(columns, where) for key, columns in groups.items()}
    except (DataError, ValueError, TypeError, KeyError) as exc:
        rejected = segment.path.with_suffix(REJECTED_SUFFIX)
        os.rename(segment.path, rejected)
        _release(segment, delete=False)
        log.error("%s cannot be logged (%s); kept as %s for an operator", where, type(exc).__name__, rejected.name)
        return _Flushed(0, 0, rejected=True)
    for (model, version, role), frame in frames.items():
        log_predictions(platform, model, version, role, frame, source_of(segment.path), f"spool:{segment.path.name}")
    _release(segment, delete=True)
    if torn:
        log.warning("%s: skipped %d torn line(s) (a write cut short by a killed process)", where, torn)
    return _Flushed(sum(len(frame) for frame in frames.values()), torn)


def _describe(exc: BaseException) -> str:
    """What went wrong, without the message of errors that may quote row values (pandas, pyarrow)."""
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    return type(exc).__name__


def recover_spools(platform: Platform) -> int:
    """Flush the segments of processes that died before flushing them (their lock can be taken); returns the rows
    logged. Segments of live processes are left to them. Safe to run from several processes at once."""
    directory = spool_dir(platform)
    if not directory.is_dir():
        return 0
    written = 0
    # A `.creating` file is left alone: empty (a process died between creating and naming it) or about to be named
    # by a process starting now, whose segment must not be deleted under it.
    for path in sorted(directory.glob(f"*{SPOOL_SUFFIX}")):
        segment = _claim(path)
        if segment is None:
            continue
        try:
            written += _flush_segment(platform, segment).rows
        except Exception as exc:  # noqa: BLE001 - any failure keeps the segment for the next start
            _release(segment, delete=False)
            log.error("prediction spool %s: recovery failed (%s); kept for the next start", path.name, _describe(exc))
    if written:
        log.info("recovered %d spooled prediction row(s) of dead gateway workers", written)
    return written


def _json_default(value: Any) -> str:
    # Only for what orjson does not write itself: pandas' Timestamp, numpy's datetime64.
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value))
    raise TypeError(f"cannot spool a {type(value).__name__}")


def _rows_of(columns: Columns) -> int:
    missing = [name for name in HEAD_COLUMNS + TAIL_COLUMNS if name not in columns]
    lengths = {len(values) for values in columns.values()}
    if missing or len(lengths) != 1:
        raise DataError(f"prediction log columns {sorted(columns)} lack {missing} or differ in length "
                        f"({sorted(lengths)})", f"give {list(HEAD_COLUMNS)}, the features and {list(TAIL_COLUMNS)}, "
                        "one list per column, all of one length")
    return lengths.pop()


class PredictionSink:
    """One per gateway worker process: `append` spools a scored request before the response, the flusher thread
    logs the spool. Create it in the worker process itself (its spool is named by and locked for that process)."""

    def __init__(self, platform: Platform, worker: str, flush_rows: int = 5000, flush_seconds: float = 1.0) -> None:
        if not _WORKER.fullmatch(worker):
            raise ModelOpsError(f"gateway worker name {worker!r} cannot name a spool file",
                                "use 1-64 letters, digits, '-' or '_'")
        self.platform = platform
        self.worker = worker
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.torn_lines = 0  # skipped while flushing this sink's segments
        self._pid = os.getpid()
        self._directory = spool_dir(platform)
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._stem = f"{worker}.{self._pid}.{time.time_ns()}"
        self._next = 0
        self._lock = threading.Lock()  # the live segment: appends against rotation
        self._flushing = threading.Lock()  # one flush at a time (thread, explicit flush, close)
        self._live: _Segment | None = self._open_next()
        self._pending: list[_Segment] = []  # cut from the spool, not yet logged; oldest first
        self._torn_tail = False  # a failed write may have left part of a line that could not be cut off
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open_next(self) -> _Segment:
        self._next += 1
        return _open_segment(self._directory, f"{self._stem}.{self._next:06d}")

    @property
    def pending_segments(self) -> int:
        """Segments cut from the spool and not yet logged: more than zero after a flush means it failed."""
        return len(self._pending)

    def start(self) -> None:
        if os.getpid() != self._pid:
            raise ModelOpsError(f"prediction sink {self.worker!r} was created in process {self._pid}, not this one",
                                "create the PredictionSink in each worker process after it started (not before a fork)")
        if self._thread is not None:
            raise ModelOpsError(f"prediction sink {self.worker!r} is started already", "call start() once")
        self._thread = threading.Thread(target=self._run, name=f"prediction-sink-{self.worker}", daemon=True)
        self._thread.start()

    def append(self, model: str, version: str, role: str, columns: Columns) -> None:
        """Spool one scored request (or micro-batch) for the log; when this returns, the rows survive the process
        being killed. `columns`: prediction_id, event_time and scored_at (ISO 8601 text or datetimes, naive = UTC),
        the model's features as conformed for scoring (conform_to_signature's values, e.g. `Series.tolist()`),
        prediction, score and latency_ms (of the micro-batch, on each of its rows); lists of one length.
        Raises DataError for malformed columns and ModelOpsError when the spool cannot be written: then nothing was
        spooled and the request must not be acknowledged as logged."""
        rows = _rows_of(columns)
        line = orjson.dumps((model, version, role, columns), default=_json_default, option=_JSON_OPTIONS)
        with self._lock:
            live = self._live
            if live is None:
                raise ModelOpsError(f"prediction sink {self.worker!r} is closed", "append before close()")
            if self._torn_tail:
                line = b"\n" + line  # ends the fragment as a line of its own: skipped, not glued to this one
            try:
                written = os.write(live.fd, line)
                while written < len(line):  # a regular file writes all at once unless the disk is full
                    written += os.write(live.fd, line[written:])
            except OSError as exc:
                self._cut_back(live)
                raise ModelOpsError(f"prediction spool {live.path} cannot be written ({_describe(exc)})",
                                    f"free space in {self._directory}; this request was not logged") from exc
            self._torn_tail = False
            live.size += len(line)
            live.rows += rows
            if live.rows >= self.flush_rows:
                self._wake.set()

    def _cut_back(self, live: _Segment) -> None:
        """Remove what a failed write left, so the next line starts on a line of its own."""
        try:
            os.ftruncate(live.fd, live.size)
        except OSError:
            self._torn_tail = True

    def flush(self) -> int:
        """Log everything spooled so far; returns the rows logged. A failure is logged (never the rows) and its
        segment kept for the next flush; a new segment is cut only once the older ones are logged, so an outage
        grows one spool file rather than ever more open files."""
        with self._flushing:
            written = self._flush_pending()
            if not self._pending:
                try:
                    self._cut()
                except OSError as exc:
                    log.error("prediction spool of %s cannot be cut (%s); retrying", self.worker, _describe(exc))
                written += self._flush_pending()
            return written

    def _cut(self) -> None:
        """Move the live segment (when it holds anything) to the pending ones; appends continue in a new one."""
        live = self._live
        if live is None or live.size == 0:
            return
        fresh = self._open_next()  # opened before taking the lock: appends wait only for the swap
        with self._lock:
            self._live = fresh
        self._pending.append(live)

    def _flush_pending(self) -> int:
        written = 0
        while self._pending:
            segment = self._pending[0]
            try:
                result = _flush_segment(self.platform, segment)
            except Exception as exc:  # noqa: BLE001 - disk, store, anything: keep the segment and retry
                log.error("prediction spool %s: flush failed (%s); kept for the next attempt", segment.path.name,
                          _describe(exc))
                break
            self._pending.pop(0)
            written += result.rows
            self.torn_lines += result.torn
        return written

    def _run(self) -> None:
        backoff = self.flush_seconds
        while not self._stop.is_set():
            if self._pending:  # failing: wait it out, whatever the appends say
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
            else:
                self._wake.wait(self.flush_seconds)
                backoff = self.flush_seconds
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the flusher must outlive any single failure
                log.error("prediction sink %s: flush failed (%s)", self.worker, _describe(exc))

    def close(self) -> None:
        """Stop the flusher and log everything spooled (graceful shutdown, SIGTERM). What cannot be logged now
        stays in its segment, unlocked, for recover_spools at the next start. Appending after close raises."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._flushing:
            with self._lock:  # from here on appends raise: nothing can land in the segment after it is judged
                live, self._live = self._live, None
            if live is None:
                return
            if live.size:
                self._pending.append(live)
            else:
                _release(live, delete=True)
            written = self._flush_pending()
            for segment in self._pending:
                _release(segment, delete=False)
            if self._pending:
                log.error("prediction sink %s closed with %d segment(s) not logged; recover_spools logs them",
                          self.worker, len(self._pending))
            self._pending.clear()
        log.info("prediction sink %s closed: %d row(s) logged at close", self.worker, written)
