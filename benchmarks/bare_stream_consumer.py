"""The obvious hand-written stream consumer the streaming consumer is measured against: XREADGROUP a micro-batch,
build a DataFrame, predict_proba, XADD the results, XACK. The same estimator (the platform's checked loader, as
benchmarks/bare_endpoint.py), the same streams and group, the same batch size; no validation, no routing, no
dead letters, no prediction log, no takeover of a dead consumer's records.

    MODELOPS_HOME=<state dir> MODELOPS_REDIS_URL=<url> python -m benchmarks.bare_stream_consumer NAME BATCH_ROWS
"""

from __future__ import annotations

import signal
import sys
import threading

import orjson
import pandas as pd

from benchmarks.bare_endpoint import MODEL, load_champion


def main(argv: list[str]) -> int:
    import redis

    from modelops.services.redis_server import redis_url
    from modelops.settings import load_settings
    from serving.streaming import GROUP, ensure_group, streams_of

    name, batch_rows = argv[0], int(argv[1])
    estimator, dtypes, threshold = load_champion(MODEL)
    columns = list(dtypes)
    client = redis.Redis.from_url(redis_url(load_settings()))
    streams = streams_of(MODEL)
    ensure_group(client, MODEL)
    client.xreadgroup(GROUP, name, {streams.inbound: "0"}, count=1)  # joins the group (a blocked read does not)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        answer = client.xreadgroup(GROUP, name, {streams.inbound: ">"}, count=batch_rows, block=100)
        entries = [entry for _, batch in answer or [] for entry in batch]
        if not entries:
            continue
        frame = pd.DataFrame.from_records([orjson.loads(fields[b"data"]) for _, fields in entries],
                                          columns=columns).astype(dtypes)
        scores = estimator.predict_proba(frame)[:, -1].tolist()
        pipe = client.pipeline(transaction=False)
        for (record_id, _), score in zip(entries, scores):
            pipe.xadd(streams.results, {"record_id": record_id, "prediction": int(score >= threshold), "score": score})
        pipe.xack(streams.inbound, GROUP, *[record_id for record_id, _ in entries])
        pipe.execute()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
