"""The scoring worker and the pipe it speaks, run for real: the worker script started by the platform's own Python
as an environment's (no build needed), a real process on a real pipe."""

from __future__ import annotations

import io
import json
import struct
import sys
from pathlib import Path

import pandas as pd
import pytest

from tasks.env_worker import MAX_HEADER_BYTES, MAX_MESSAGE_BYTES, decode_frame, encode_frame, read_message
from tasks.environments import Environment, child_environment
from tasks.worker_client import WorkerProcess


def platform_python_environment() -> Environment:
    """The platform's own virtual environment standing in for a built one: same layout (bin/python)."""
    return Environment("platform", Path(sys.prefix), (), {}, built=False)


def test_the_worker_sees_none_of_the_platforms_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_secret")
    monkeypatch.setenv("MODELOPS_APPROVER_TOKEN", "secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:secret@db/modelops")
    monkeypatch.setenv("UV_INDEX_URL", "https://user:secret@index.example/simple")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    worker = WorkerProcess(platform_python_environment(), tmp_path / "worker.log", "env-test")
    worker.start()
    try:
        reply, _ = worker.request({"op": "hello"})
    finally:
        worker.stop()
    keys = set(reply["environment_keys"])
    assert not keys & {"PREFECT_API_KEY", "MODELOPS_APPROVER_TOKEN", "DATABASE_URL", "UV_INDEX_URL"}
    assert "OMP_NUM_THREADS" in keys and "PATH" in keys  # what it needs still arrives


def test_a_build_gets_uvs_settings_but_no_other_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_secret")
    monkeypatch.setenv("UV_INDEX_URL", "https://index.example/simple")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    built = child_environment(build=True)
    assert built["UV_INDEX_URL"] == "https://index.example/simple" and "HTTPS_PROXY" in built
    assert "PREFECT_API_KEY" not in built


def test_a_long_text_value_costs_its_own_size_on_the_pipe_not_the_columns() -> None:
    # 1,000 rows with one 20,000-character value: fixed-width unicode padded every row to it (80 MB).
    long = "é" * 20_000
    frame = pd.DataFrame({"carrier": ["UA"] * 999 + [long], "origin": [None, "JFK"] * 500, "hour": range(1000)})
    columns, buffers = encode_frame(frame)
    assert sum(map(len, buffers)) < 100_000
    back = decode_frame(columns, buffers)
    assert back["carrier"].iloc[-1] == long and back["carrier"].iloc[0] == "UA"
    assert back["origin"].iloc[0] is None and back["origin"].iloc[1] == "JFK"
    assert back["hour"].tolist() == list(range(1000))


def test_text_with_a_long_value_is_scored_by_the_real_worker(tmp_path: Path) -> None:
    import hashlib

    import skops.io
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tasks.worker_client import IsolatedModel

    train = pd.DataFrame({"carrier": ["UA", "AA", "UA", "DL"]})
    pipeline = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["carrier"])),
                             LogisticRegression()).fit(train, [1, 0, 1, 0])
    data = skops.io.dumps(pipeline)
    model = IsolatedModel(platform_python_environment(), data, hashlib.sha256(data).hexdigest(),
                          skops.io.get_untrusted_types(data=data), "predict_proba", tmp_path / "w.log", "text")
    try:
        frame = pd.DataFrame({"carrier": ["UA", "é" * 100_000, None, "AA"]})
        scored = model.predict(frame)
    finally:
        model.close()
    assert scored == pytest.approx(pipeline.predict_proba(frame))


def test_a_declared_size_beyond_the_bounds_is_refused_before_it_is_read() -> None:
    header = json.dumps({"ok": True, "buffers": [MAX_MESSAGE_BYTES + 1]}).encode()
    stream = io.BytesIO(struct.pack("<I", len(header)) + header)
    with pytest.raises(ValueError, match="over the"):
        read_message(stream)
    with pytest.raises(ValueError, match="header of"):
        read_message(io.BytesIO(struct.pack("<I", MAX_HEADER_BYTES + 1)))
