"""A local HTTP receiver that speaks enough of Slack's Web API (chat.postMessage) and incoming webhooks for the
real slack_sdk clients to talk to it. Fakes only Slack's servers, which cannot run here."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class SlackReceiver:
    url: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    # Scripted answers for the next requests: ("status", http_code) or ("error", slack_error_code).
    script: list[tuple[str, Any]] = field(default_factory=list)
    requests: int = 0

    @property
    def api_base_url(self) -> str:
        return f"{self.url}/api/"


def start_receiver() -> tuple[SlackReceiver, ThreadingHTTPServer]:
    receiver = SlackReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            receiver.requests += 1
            answer = receiver.script.pop(0) if receiver.script else ("ok", None)
            if answer[0] == "status":
                self._reply(answer[1], {"ok": False, "error": "server_error"})
                return
            if answer[0] == "error":
                self._reply(200, {"ok": False, "error": answer[1]})
                return
            if "json" in self.headers.get("Content-Type", ""):
                payload = json.loads(body)
            else:
                payload = {k: v[0] for k, v in parse_qs(body).items()}
                if isinstance(payload.get("blocks"), str):
                    payload["blocks"] = json.loads(payload["blocks"])
            payload["_path"] = self.path
            receiver.messages.append(payload)
            receiver.headers.append(dict(self.headers))
            if self.path.startswith("/webhook"):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")
                return
            self._reply(200, {"ok": True, "channel": payload.get("channel"), "ts": "1.0"})

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
