"""A fake Gemini REST API (Gemini Developer API, `v1beta`) on 127.0.0.1 for tests that drive the real SDK.

Speaks the wire format of `generativelanguage.googleapis.com`:

- `POST /v1beta/models/{model}:generateContent` (key in the `x-goog-api-key` header; camelCase JSON:
  `contents[].parts[]` with `text`, `inlineData{mimeType,data}` or `fileData{mimeType,fileUri}`,
  `generationConfig{responseModalities,imageConfig{aspectRatio}}`; answers `candidates[]`, `promptFeedback`,
  `usageMetadata`, or the Google error format `{"error": {"code", "message", "status", "details"}}`);
- the Files API resumable upload: `POST /upload/v1beta/files` with `X-Goog-Upload-Protocol: resumable` and
  `X-Goog-Upload-Command: start` answers `X-Goog-Upload-URL`; chunks are `POST`ed there with
  `X-Goog-Upload-Command: upload` (`upload, finalize` for the last) and `X-Goog-Upload-Offset`;
  `GET /v1beta/files/{name}` and `DELETE /v1beta/files/{name}`.

Like the real API (proto JSON), request fields are accepted in lowerCamelCase or snake_case: SDK 3.x sends
`inlineData{data, mime_type}` and `fileData{file_uri, mime_type}`. Every request is recorded
(`FakeGemini.requests`) and answers are scriptable per API key (`FakeGemini.script`, replies from
`local.fakes.gemini_replies`). Unscripted `generateContent` calls answer with `FakeGemini.default_image`. A file is
usable only with the key that uploaded it (files belong to the key's project) and only once it is ACTIVE.

A scripted reply may also be wrong on the wire (`Reply.raw`, `Reply.content_type`, `Reply.cut`): an HTML page
with status 200 or 5xx, JSON cut short, a body that stops mid-transfer, or an image part whose bytes are not
what its `mimeType` says — the faults real deployments meet behind proxies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.fakes.gemini_replies import Reply, error_reply, image_reply, result_png

API_VERSION = "v1beta"


@dataclass
class Part:
    """A request part as received: kind text/inline/file, MIME type, decoded bytes or file URI."""

    kind: str
    mime: str | None = None
    data: bytes | None = None
    uri: str | None = None
    text: str | None = None


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic()
    json: Any = None
    model: str | None = None
    parts: list[Part] = field(default_factory=list)
    generation_config: dict[str, Any] = field(default_factory=dict)

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")


@dataclass
class StoredFile:
    name: str  # "files/abc123"
    mime: str
    size: int
    key: str | None  # the API key (project) that uploaded it
    data: bytearray = field(default_factory=bytearray)
    state: str = "PROCESSING"
    gets_until_active: int = 0

    def resource(self, base_url: str) -> dict[str, Any]:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        return {
            "name": self.name,
            "mimeType": self.mime,
            "sizeBytes": str(self.size),
            "createTime": now,
            "updateTime": now,
            "expirationTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() + 48 * 3600)),
            "sha256Hash": base64.b64encode(hashlib.sha256(bytes(self.data)).hexdigest().encode()).decode(),
            "uri": f"{base_url}/{API_VERSION}/{self.name}",
            "state": self.state,
            "source": "UPLOADED",
        }


class FakeGemini:
    """The fake's state: scripted replies per key, recorded requests, uploaded files."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Recorded] = []
        self.files: dict[str, StoredFile] = {}
        self.deleted: list[str] = []
        self.default_image = result_png()
        # Files become ACTIVE after this many GETs (0: ACTIVE as soon as the upload is finalized).
        self.file_gets_until_active = 0
        self._scripts: dict[str | None, deque[Reply]] = {}
        self._uploads: dict[str, StoredFile] = {}
        self._lock = threading.Lock()

    def script(self, key: str | None, *replies: Reply) -> None:
        """Queue answers to `generateContent` for `key` (None: for any key without its own queue)."""
        with self._lock:
            self._scripts.setdefault(key, deque()).extend(replies)

    def generate_calls(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(":generateContent")]

    def uploads(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(f"/upload/{API_VERSION}/files")]

    # -- request handling (called from server threads) --

    def handle(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
        path = rec.path
        if rec.method == "POST" and path.startswith(f"/{API_VERSION}/models/") and path.endswith(":generateContent"):
            return self._generate(rec)
        if rec.method == "POST" and path == f"/upload/{API_VERSION}/files":
            return self._upload(rec)
        if path.startswith(f"/{API_VERSION}/files/"):
            return self._file(rec)
        return error_reply(404, f"no such method: {rec.method} {path}")

    def _generate(self, rec: Recorded) -> Reply:
        rec.model = rec.path.removeprefix(f"/{API_VERSION}/models/").removesuffix(":generateContent")
        try:
            body = json.loads(rec.body)
        except ValueError:
            return error_reply(400, "Invalid JSON payload received.")
        rec.json = body
        rec.generation_config = _field(body, "generationConfig") or {}
        for content in body.get("contents", []):
            for part in content.get("parts", []):
                inline, ref = _field(part, "inlineData"), _field(part, "fileData")
                if inline is not None:
                    data = base64.urlsafe_b64decode(inline["data"])
                    rec.parts.append(Part("inline", _field(inline, "mimeType"), data=data))
                elif ref is not None:
                    rec.parts.append(Part("file", _field(ref, "mimeType"), uri=_field(ref, "fileUri")))
                elif "text" in part:
                    rec.parts.append(Part("text", text=part["text"]))
        for part in rec.parts:
            if part.kind != "file":
                continue
            stored = self.files.get("files/" + (part.uri or "").rsplit("/files/", 1)[-1])
            if stored is None or stored.key != rec.api_key or stored.state != "ACTIVE":
                return error_reply(403, "You do not have permission to access the File or it may not exist.")
        with self._lock:
            queue = self._scripts.get(rec.api_key) or self._scripts.get(None)
            reply = queue.popleft() if queue else None
        return reply if reply is not None else image_reply(self.default_image)

    def _upload(self, rec: Recorded) -> Reply:
        h = rec.headers
        if h.get("x-goog-upload-protocol") != "resumable" or h.get("x-goog-upload-command") != "start":
            return error_reply(400, "only the resumable protocol is supported")
        meta = json.loads(rec.body or b"{}").get("file", {})
        rec.json = meta
        upload_id = uuid.uuid4().hex
        stored = StoredFile(
            name=meta.get("name") or f"files/{uuid.uuid4().hex[:12]}",
            mime=h.get("x-goog-upload-header-content-type", meta.get("mimeType", "application/octet-stream")),
            size=int(h.get("x-goog-upload-header-content-length", "0")),
            key=rec.api_key,
        )
        self._uploads[upload_id] = stored
        url = f"{self.url}/upload/{API_VERSION}/files?upload_id={upload_id}&upload_protocol=resumable"
        return Reply(200, {}, {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})

    def upload_chunk(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
        stored = self._uploads.get(rec.query.get("upload_id", [""])[0])
        if stored is None:
            return error_reply(404, "unknown upload session")
        command = [c.strip() for c in rec.headers.get("x-goog-upload-command", "").split(",")]
        if int(rec.headers.get("x-goog-upload-offset", "-1")) != len(stored.data):
            return error_reply(400, "upload offset mismatch")
        stored.data.extend(rec.body)
        if "finalize" not in command:
            return Reply(200, {}, {"X-Goog-Upload-Status": "active"})
        if len(stored.data) != stored.size:
            return error_reply(400, "upload size differs from the announced size")
        stored.gets_until_active = self.file_gets_until_active
        stored.state = "ACTIVE" if stored.gets_until_active == 0 else "PROCESSING"
        self.files[stored.name] = stored
        return Reply(200, {"file": stored.resource(self.url)}, {"X-Goog-Upload-Status": "final"})

    def _file(self, rec: Recorded) -> Reply:
        name = "files/" + rec.path.removeprefix(f"/{API_VERSION}/files/")
        stored = self.files.get(name)
        if stored is None or stored.key != rec.api_key:
            return error_reply(403, "You do not have permission to access the File or it may not exist.")
        if rec.method == "DELETE":
            del self.files[name]
            self.deleted.append(name)
            return Reply(200, {})
        if stored.state == "PROCESSING":
            stored.gets_until_active -= 1
            if stored.gets_until_active <= 0:
                stored.state = "ACTIVE"
        return Reply(200, stored.resource(self.url))


def _field(obj: dict[str, Any], camel: str) -> Any:
    """A JSON field by its lowerCamelCase name or its proto snake_case name (the API accepts both)."""
    if camel in obj:
        return obj[camel]
    return obj.get("".join("_" + c.lower() if c.isupper() else c for c in camel))


def _handler(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            rec = Recorded(
                method=self.command,
                path=url.path,
                query=parse_qs(url.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                at=time.monotonic(),
            )
            if url.path == f"/upload/{API_VERSION}/files" and "upload_id" in rec.query:
                reply = fake.upload_chunk(rec)
            else:
                reply = fake.handle(rec)
            if reply.delay:
                time.sleep(reply.delay)
            payload = reply.payload()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if reply.cut is not None:  # announce the whole body, send part of it, hang up
                self.wfile.write(payload[: reply.cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve

    return Handler


@contextmanager
def gemini_server() -> Iterator[FakeGemini]:
    """Run a fresh fake on an ephemeral 127.0.0.1 port for the duration of the block."""
    fake = FakeGemini()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
