"""A fake fal: a real HTTP server on 127.0.0.1 (Starlette under uvicorn, in a background thread) speaking fal's
queue protocol (see `boothbridge.providers.fal.wire` for the documents) for any model id.

- `POST /{model id}` (+ `?fal_webhook=`) with `Authorization: Key <key>` (one of `keys`, else 401) and a JSON
  body: reads the input images (`image_url`, `image_urls`: http(s) links are downloaded, `data:` URIs decoded;
  one that is neither an image nor reachable fails the request), answers `{"request_id", "gateway_request_id",
  "status_url", "response_url", "cancel_url", "queue_position"}` with the URLs under the model's APP id
  (`owner/app`, as fal does for sub-path models);
- `GET /{app}/requests/{id}/status`: `IN_QUEUE` (with `queue_position`), `IN_PROGRESS` for `rounds` polls, then
  `COMPLETED` (with `error` for a failed request); `GET /{app}/requests/{id}`: the output (422 with `detail` for a
  failed request, 400 while it is not done); `PUT .../cancel`: 202 `CANCELLATION_REQUESTED` or 400
  `ALREADY_COMPLETED`; a request id asked under another app: 404;
- outputs by model: `birefnet` -> `{"image"}` an RGBA PNG, transparent around a centred opaque block;
  `esrgan` -> `{"image"}` a PNG `scale` times the input's size; `kling` -> `{"video"}` a small MP4 (ftyp box);
  `trainer` -> `{"finetune_id"}`; any other -> `{"images": [num_images JPEGs], "seed", "has_nsfw_concepts",
  "prompt", "timings"}` (size from the input image, or 1024 x 768);
- webhooks: with `fal_webhook`, after `webhook_delay_sec`, POSTs `{"request_id", "gateway_request_id", "status":
  "OK"|"ERROR", "payload", "error"?}` signed with its own ED25519 key (headers `X-Fal-Webhook-*`, message as fal
  documents it); its JWKS is served at `/.well-known/jwks.json` (`jwks_url`);
- files at `/files/{name}`.

Failure injection: `rate_limited_keys` (these keys answer 429 with Retry-After: 30), `submit_failures` (the next N
submits answer 500), `submit_delay_sec` (a submit is answered after this long), `error_result` (requests fail:
status `COMPLETED` + `error`, webhook `ERROR`), `file_faults` (each result file answers 404 that many times before
it is served), `webhook` = "send" | "never" | "twice".
Recorded for assertions: `calls` (method, path, key, JSON body), `submits()`, `deliveries`, `cancels`,
`file_gets`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# A minimal ISO-BMFF file: an `ftyp` box (brand isom) and an empty `mdat` box.
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x08mdat"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    key: str | None
    body: Any


@dataclass
class _Entry:
    id: str
    model: str
    app: str
    body: dict[str, Any]
    webhook: str | None
    inputs: list[tuple[int, int]]
    polls: int = 0
    cancelled: bool = False
    error: str | None = None
    output: dict[str, Any] = field(default_factory=dict)


def _app(model: str) -> str:
    return "/".join(model.split("/")[:2])


def _png(size: tuple[int, int], mode: str = "RGB", color: Any = (40, 120, 200)) -> bytes:
    img = Image.new(mode, size, color)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class FakeFal:
    def __init__(self, keys: tuple[str, ...] = ("fal-test-key",), *, rounds: int = 2, webhook_delay_sec: float = 0.2):
        self.keys = set(keys)
        self.rounds = rounds
        self.webhook_delay_sec = webhook_delay_sec
        self.rate_limited_keys: set[str] = set()
        self.submit_failures = 0
        self.submit_delay_sec = 0.0
        self.error_result = False
        self.file_faults = 0
        self.webhook = "send"
        self.calls: list[Call] = []
        self.deliveries: list[tuple[int | None, Any]] = []
        self.cancels: list[str] = []
        self.file_gets: list[tuple[str, int]] = []
        self.delivered_bodies: list[tuple[dict[str, str], bytes]] = []
        self.signing_key = Ed25519PrivateKey.generate()
        self._entries: dict[str, _Entry] = {}
        self._files: dict[str, tuple[bytes, str, int]] = {}  # name -> (bytes, mime, gets so far)
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(routes=[Route("/{path:path}", self._route, methods=["GET", "POST", "PUT"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def start(self) -> FakeFal:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-fal", daemon=True)
        self._thread.start()
        stop_at = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > stop_at or not self._thread.is_alive():
                raise RuntimeError("the fake fal did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    # --- what tests look at ----------------------------------------------------------------------------------

    def submits(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == "POST"]

    def entry(self, request_id: str) -> _Entry:
        with self._lock:
            return self._entries[request_id]

    def sign(
        self, request_id: str, body: bytes, *, user_id: str = "fake-user", at: int | None = None
    ) -> dict[str, str]:
        """The signature headers fal sends with a delivery of `body`."""
        timestamp = str(int(time.time()) if at is None else at)
        message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": self.signing_key.sign(message).hex(),
        }

    def webhook_body(self, request_id: str) -> dict[str, Any]:
        entry = self.entry(request_id)
        if entry.error:
            return {
                "request_id": entry.id,
                "gateway_request_id": entry.id,
                "status": "ERROR",
                "error": entry.error,
                "payload": {"detail": [{"loc": ["body"], "msg": entry.error, "type": "value_error"}]},
            }
        return {"request_id": entry.id, "gateway_request_id": entry.id, "status": "OK", "payload": entry.output}

    # --- HTTP ------------------------------------------------------------------------------------------------

    async def _route(self, request: Request) -> Response:
        path = request.path_params["path"]
        if path == ".well-known/jwks.json":
            jwk = json.loads(OKPAlgorithm.to_jwk(self.signing_key.public_key()))
            return JSONResponse({"keys": [{**jwk, "kid": "fake-1", "alg": "EdDSA", "use": "sig"}]})
        if path.startswith("files/"):
            return self._file(path.removeprefix("files/"))
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Key ") if auth.startswith("Key ") else None
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.calls.append(Call(request.method, "/" + path, key, body))
        if key not in self.keys:
            return JSONResponse({"detail": "No user found for Key ID and Secret"}, 401)
        if key in self.rate_limited_keys:
            return JSONResponse({"detail": "rate limited"}, 429, headers={"Retry-After": "30"})
        parts = path.split("/")
        if "requests" in parts:
            at = parts.index("requests")
            return self._request_op(request.method, "/".join(parts[:at]), parts[at + 1 :])
        if request.method != "POST":
            return JSONResponse({"detail": "Method not allowed"}, 405)
        return await self._submit(path, body, request.query_params.get("fal_webhook"))

    async def _submit(self, model: str, body: Any, webhook: str | None) -> Response:
        if self.submit_delay_sec:
            await asyncio.sleep(self.submit_delay_sec)
        with self._lock:
            if self.submit_failures > 0:
                self.submit_failures -= 1
                return JSONResponse({"detail": "Internal Server Error"}, 500)
        if not isinstance(body, dict):
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "a JSON object is required"}]}, 422)
        sources = [body["image_url"]] if isinstance(body.get("image_url"), str) else list(body.get("image_urls") or [])
        inputs = []
        for source in sources:
            size = await self._read_image(str(source))
            if size is None:
                return JSONResponse({"detail": [{"loc": ["body", "image_url"], "msg": "cannot read the image"}]}, 422)
            inputs.append(size)
        entry = _Entry(uuid.uuid4().hex, model, _app(model), body, webhook, inputs)
        entry.error = "Invalid status code: 422 (the fake was told to fail)" if self.error_result else None
        entry.output = {} if entry.error else self._output(entry)
        with self._lock:
            self._entries[entry.id] = entry
        if webhook and self.webhook != "never":
            task = asyncio.get_running_loop().create_task(self._deliver(entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        base = f"{self.url}/{entry.app}/requests/{entry.id}"
        return JSONResponse(
            {
                "request_id": entry.id,
                "gateway_request_id": entry.id,
                "status": "IN_QUEUE",
                "queue_position": 0,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
            }
        )

    def _request_op(self, method: str, app: str, rest: list[str]) -> Response:
        with self._lock:
            entry = self._entries.get(rest[0]) if rest else None
            if entry is None or entry.app != app:
                return JSONResponse({"detail": "Request not found"}, 404)
            what = rest[1] if len(rest) > 1 else ""
            if method == "PUT" and what == "cancel":
                self.cancels.append(entry.id)
                if entry.polls > self.rounds:
                    return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
                entry.cancelled = True
                return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)
            if method == "GET" and what == "status":
                entry.polls += 1
                if entry.polls == 1:
                    return JSONResponse({"status": "IN_QUEUE", "queue_position": 1})
                if entry.polls <= self.rounds:
                    return JSONResponse({"status": "IN_PROGRESS", "logs": []})
                answer: dict[str, Any] = {"status": "COMPLETED", "logs": [], "metrics": {"inference_time": 0.4}}
                if entry.error:
                    answer["error"] = entry.error
                return JSONResponse(answer)
            if method == "GET" and not what:
                if entry.error:
                    return JSONResponse({"detail": [{"loc": ["body"], "msg": entry.error}]}, 422)
                if entry.polls <= self.rounds and entry.webhook is None:
                    return JSONResponse({"detail": "Request is still in progress"}, 400)
                return JSONResponse(entry.output)
        return JSONResponse({"detail": "Not found"}, 404)

    def _output(self, entry: _Entry) -> dict[str, Any]:
        model, body = entry.model, entry.body
        size = entry.inputs[0] if entry.inputs else (1024, 768)
        if "trainer" in model:
            return {"finetune_id": f"ft-{entry.id[:12]}"}
        if "kling" in model:
            return {"video": {"url": self._host(MP4, "video/mp4", "mp4"), "content_type": "video/mp4"}}
        if "birefnet" in model:
            w, h = size
            img = Image.new("RGBA", size, (0, 0, 0, 0))
            img.paste((200, 80, 60, 255), (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
            buf = io.BytesIO()
            img.save(buf, "PNG")
            return {"image": {"url": self._host(buf.getvalue(), "image/png", "png"), "width": w, "height": h}}
        if "esrgan" in model:
            scale = float(body.get("scale", 2))
            out = (int(size[0] * scale), int(size[1] * scale))
            return {"image": {"url": self._host(_png(out), "image/png", "png"), "width": out[0], "height": out[1]}}
        images = []
        for n in range(int(body.get("num_images", 1))):
            buf = io.BytesIO()
            Image.new("RGB", size, (30 + 60 * n, 160, 90)).save(buf, "JPEG")
            images.append(
                {
                    "url": self._host(buf.getvalue(), "image/jpeg", "jpg"),
                    "width": size[0],
                    "height": size[1],
                    "content_type": "image/jpeg",
                }
            )
        return {
            "images": images,
            "seed": 42,
            "has_nsfw_concepts": [False] * len(images),
            "prompt": body.get("prompt", ""),
            "timings": {"inference": 0.4},
        }

    def _host(self, data: bytes, mime: str, ext: str) -> str:
        name = f"{uuid.uuid4().hex}.{ext}"
        with self._lock:
            self._files[name] = (data, mime, 0)
        return f"{self.url}/files/{name}"

    def _file(self, name: str) -> Response:
        with self._lock:
            item = self._files.get(name)
            if item is None:
                self.file_gets.append((name, 404))
                return JSONResponse({"detail": "not found"}, 404)
            data, mime, gets = item
            self._files[name] = (data, mime, gets + 1)
            status = 404 if gets < self.file_faults else 200
            self.file_gets.append((name, status))
        if status != 200:
            return JSONResponse({"detail": "not found"}, 404)
        return Response(data, media_type=mime)

    async def _read_image(self, source: str) -> tuple[int, int] | None:
        try:
            if source.startswith("data:"):
                data = base64.b64decode(source.partition(",")[2])
            else:
                async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                    resp = await http.get(source)
                    if resp.status_code != 200:
                        return None
                    data = resp.content
            with Image.open(io.BytesIO(data)) as img:
                return img.size
        except Exception:
            return None

    async def _deliver(self, entry: _Entry) -> None:
        await asyncio.sleep(self.webhook_delay_sec)
        raw = json.dumps(self.webhook_body(entry.id)).encode()
        assert entry.webhook is not None
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            for _ in range(2 if self.webhook == "twice" else 1):
                headers = {"Content-Type": "application/json", **self.sign(entry.id, raw)}
                try:
                    resp = await http.post(entry.webhook, content=raw, headers=headers)
                    status, answer = resp.status_code, resp.json()
                except (httpx.HTTPError, ValueError):
                    status, answer = None, None
                with self._lock:
                    self.deliveries.append((status, answer))
                    self.delivered_bodies.append((headers, raw))
