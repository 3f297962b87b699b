"""Prometheus metrics of the gateway, per model and version: requests, errors by kind, latency, batch sizes.

With several worker processes each writes its own files (prometheus_client's multiprocess mode, switched on by
PROMETHEUS_MULTIPROC_DIR, which `serving.server` sets before the workers start) and /metrics adds them up.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REQUESTS = Counter("modelops_gateway_requests", "Scored requests", ["model", "version", "role", "protocol"])
ROWS = Counter("modelops_gateway_rows", "Scored rows", ["model", "version", "role"])
ERRORS = Counter("modelops_gateway_errors", "Refused or failed requests by kind (auth-*, invalid input kinds, "
                                            "unknown-model, internal)", ["model", "kind"])
LATENCY = Histogram("modelops_gateway_request_seconds", "Request latency inside the gateway",
                    ["model", "version", "role"],
                    buckets=(.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1.024, 2.048))
BATCH_ROWS = Histogram("modelops_gateway_batch_rows", "Rows per scored micro-batch", ["model", "version"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096))

# Streaming consumers (serving/streaming.py): each consumer process exports these on its own metrics port.
STREAM_LAG = Gauge("modelops_stream_lag_seconds", "Age of the oldest record of the model's input stream not yet "
                                                  "answered and acknowledged (0 when none waits)", ["model"])
STREAM_WAITING = Gauge("modelops_stream_waiting_records", "Records of the input stream delivered and not yet "
                                                          "acknowledged, plus those not yet delivered", ["model"])
STREAM_RECORDS = Counter("modelops_stream_records", "Records acknowledged by outcome (answered, dead-letter)",
                         ["model", "outcome"])
STREAM_E2E = Histogram("modelops_stream_end_to_end_seconds", "From a record entering the input stream to its result "
                                                             "being written", ["model"],
                       buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))


@lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once: prometheus_client's lookup takes a lock and checks the labels on
    every call, a measurable share of a 1-row request. The label values are few (models, versions, roles)."""
    return metric.labels(*labels)


def exposition() -> tuple[bytes, str]:
    """The metrics text of every worker process (multiprocess mode) or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
