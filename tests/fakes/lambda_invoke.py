"""A fake of the AWS Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`) as a real HTTP server,
so the real aiobotocore client can be pointed at it. It records each invocation and answers like Lambda:
202 with an empty body for `X-Amz-Invocation-Type: Event`."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


@dataclass
class Invocation:
    function_name: str
    invocation_type: str
    payload: dict[str, Any]
    authorization: str


@dataclass
class FakeLambda:
    url: str
    invocations: list[Invocation] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)


@contextmanager
def fake_lambda() -> Iterator[FakeLambda]:
    state = FakeLambda(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            match = _PATH.match(self.path.split("?")[0])
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if match is None:
                self._answer(404, {"Type": "User", "message": "unknown path"})
                return
            state.invocations.append(
                Invocation(
                    function_name=match["name"],
                    invocation_type=self.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
                    payload=json.loads(body or b"{}"),
                    authorization=self.headers.get("Authorization", ""),
                )
            )
            state.event.set()
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
