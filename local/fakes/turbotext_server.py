"""A fake Turbotext: a real HTTP server on 127.0.0.1 (Starlette under uvicorn, in a background thread).

It speaks the documented wire format of `https://www.turbotext.ru/api_ai/{method}` for `mix_images`,
`deepfake_photo` and `generate_image2image`:

- every request is recorded (`requests`: HTTP method, path, headers, content type, form fields);
- it insists on `Authorization: Bearer <api_key>` (else 401) and a form-encoded body (else 400);
- `do=create_queue` checks the method's required fields, DOWNLOADS the images named by `url` /
  `url_image_target` (recorded in `fetched`) and fails the queue entry if one does not serve an image; it answers
  `{"success":true,"queueid":N}`, or with `webhook=<url>` `{"success":true,"asyncid":N}` and, after
  `webhook_delay_sec`, POSTs the result JSON to that URL (twice with `deliver_twice`; recorded in `deliveries`);
- `do=get_result&queueid=N` answers `{"action":"reconnect"}` `reconnect_rounds` times, then the result
  `{"success":true,"error":"","data":{...},"uploaded_image":"<this server>/results/N.png"}` — a PNG made with
  Pillow (`result_image(N)`), or an error answer for a failed entry.

Failure injection (`fail`): "auth" (401), "auth_answer" (200 with an error about the key), "http500",
"rate_limited" (429 + Retry-After: 1), "error_answer" (create_queue refused), "no_image" (a result without
`uploaded_image`), "bad_image" (`uploaded_image` serves HTML), "flaky_poll" (the first get_result of each entry
answers 500). `answer_delay_sec` delays every API answer. `host(data)` serves arbitrary bytes (for tests that
hand the adapter links without the product's public media).

Result links that are not ready yet (the field fault: a link that answers 404 once, then the image):
`link_faults` is what every result link answers, in turn, before it serves the image — `not_found()`,
`unavailable(retry_after)` (503), `html_page()` (an HTML error page with 200) or any `LinkFault`; with
`link_faults_forever` the last one is answered for good. Every GET of a result link is recorded (`downloads`,
`download_tries(queue_id)`); `creates()` counts `create_queue` calls (each is a paid generation).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

FORM_TYPE = "application/x-www-form-urlencoded"
REQUIRED_FIELDS = {
    "mix_images": ("url_image_target", "url"),
    "deepfake_photo": ("url", "url_image_target"),
    "generate_image2image": ("url", "content"),
}
IMAGE_FIELDS = ("url_image_target", "url")


@dataclass(frozen=True)
class Recorded:
    http_method: str
    path: str
    method: str
    headers: dict[str, str]
    content_type: str
    form: dict[str, str]


@dataclass(frozen=True)
class Fetched:
    queue_id: int
    field: str
    url: str
    status: int | None
    content_type: str
    data: bytes
    is_image: bool


@dataclass(frozen=True)
class Delivery:
    url: str
    status: int | None
    answer: Any


@dataclass(frozen=True)
class LinkFault:
    """What a result link answers instead of the image (after `delay_sec`: a link that hangs)."""

    status: int
    body: bytes = b"not found"
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    delay_sec: float = 0.0


def not_found() -> LinkFault:
    return LinkFault(404, b"<html><body>404 Not Found</body></html>", "text/html")


def unavailable(retry_after: str | None = None) -> LinkFault:
    return LinkFault(503, b"Service Unavailable", headers={"Retry-After": retry_after} if retry_after else {})


def html_page() -> LinkFault:
    return LinkFault(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")


@dataclass(frozen=True)
class Download:
    queue_id: int
    status: int
    served_image: bool


@dataclass
class _Entry:
    id: int
    method: str
    form: dict[str, str]
    polls: int = 0
    downloads: int = 0
    error: str | None = None
    webhook: str | None = None
    fetched: list[Fetched] = field(default_factory=list)


def _is_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        return True
    except Exception:
        return False


class FakeTurbotext:
    def __init__(self, api_key: str = "tt-test-key", *, reconnect_rounds: int = 2, webhook_delay_sec: float = 0.3):
        self.api_key = api_key
        self.reconnect_rounds = reconnect_rounds
        self.webhook_delay_sec = webhook_delay_sec
        self.fail: str | None = None
        self.answer_delay_sec = 0.0
        self.deliver_twice = False
        self.result_format = "PNG"  # or "WEBP"
        self.link_faults: list[LinkFault] = []
        self.link_faults_forever = False
        self.downloads: list[Download] = []
        self.requests: list[Recorded] = []
        self.fetched: list[Fetched] = []
        self.deliveries: list[Delivery] = []
        self._entries: dict[int, _Entry] = {}
        self._hosted: dict[str, tuple[bytes, str]] = {}
        self._results: dict[int, bytes] = {}
        self._next_id = 7001
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/api_ai/{method}", self._api, methods=["GET", "POST"]),
                Route("/results/{name}", self._result_file, methods=["GET"]),
                Route("/hosted/{name}", self._hosted_file, methods=["GET"]),
            ]
        )

    # --- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api_ai"

    def start(self) -> FakeTurbotext:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-turbotext", daemon=True)
        self._thread.start()
        stop_at = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > stop_at or not self._thread.is_alive():
                raise RuntimeError("the fake Turbotext did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    # --- what tests look at ----------------------------------------------------------------------------------

    def calls(self, do: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if do is None or r.form.get("do") == do]

    def creates(self) -> int:
        """How many generations were started (`create_queue` calls)."""
        return len(self.calls("create_queue"))

    def download_tries(self, queue_id: int | None = None) -> int:
        """GETs of result links (of one queue entry, or of all)."""
        with self._lock:
            return sum(1 for d in self.downloads if queue_id is None or d.queue_id == queue_id)

    def result_image(self, queue_id: int) -> bytes:
        """The image the fake hands out for a queue entry: a colour unique to the entry, with a white mark."""
        with self._lock:
            if queue_id not in self._results:
                img = Image.new("RGB", (96, 64), ((queue_id * 53) % 256, 171, (queue_id * 29) % 256))
                img.paste((255, 255, 255), (8, 8, 24, 24))
                buf = io.BytesIO()
                img.save(buf, self.result_format)
                self._results[queue_id] = buf.getvalue()
            return self._results[queue_id]

    def host(self, data: bytes, mime: str = "image/jpeg") -> str:
        name = uuid.uuid4().hex
        with self._lock:
            self._hosted[name] = (data, mime)
        return f"{self.url}/hosted/{name}"

    def result_answer(self, queue_id: int) -> dict[str, Any]:
        """The documented final answer of get_result (and the webhook body) for an entry."""
        with self._lock:
            entry = self._entries[queue_id]
        if entry.error:
            return {"success": False, "error": entry.error}
        image_url = f"{self.url}/results/{entry.id}." + ("txt" if self.fail == "bad_image" else "png")
        data: dict[str, Any] = {"width": 96, "height": 64, "seed": 9147962925}
        if entry.method == "mix_images":
            data.update(prompt=entry.form.get("content", ""), strength=50, pattern_prompt=False)
        elif entry.method == "deepfake_photo":
            data.update(image=[image_url], forbidden_content=False, face_restore=entry.form.get("face_restore"))
        else:
            data.update(user_id=12, image=[f"image/generate_image2image_id12_{entry.id}.png"])
            data.update(prompt=entry.form.get("content"), strength=int(entry.form.get("strength", 40)))
        answer: dict[str, Any] = {"success": True, "error": "", "data": data}
        if self.fail == "no_image":
            data.pop("image", None)
        else:
            answer["uploaded_image"] = image_url
        return answer

    # --- HTTP ------------------------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if not content_type.startswith(FORM_TYPE):
            form = {}
        with self._lock:
            self.requests.append(
                Recorded(request.method, request.url.path, method, dict(request.headers), content_type, form)
            )
        if self.answer_delay_sec:
            await asyncio.sleep(self.answer_delay_sec)
        if method not in REQUIRED_FIELDS:
            return JSONResponse({"success": False, "error": "unknown method"}, 404)
        if request.method != "POST":
            return JSONResponse({"success": False, "error": "POST only"}, 405)
        if request.headers.get("authorization") != f"Bearer {self.api_key}" or self.fail == "auth":
            return JSONResponse({"success": False, "error": "Unauthorized"}, 401)
        if not content_type.startswith(FORM_TYPE):
            return JSONResponse({"success": False, "error": f"expected {FORM_TYPE}"}, 400)
        if self.fail == "http500":
            return PlainTextResponse("Internal Server Error", 500)
        if self.fail == "rate_limited":
            return JSONResponse({"success": False, "error": "too many requests"}, 429, headers={"Retry-After": "1"})
        if self.fail == "auth_answer":
            return JSONResponse({"success": False, "error": "Неверный API ключ"})
        if form.get("do") == "create_queue":
            return await self._create_queue(method, form)
        if form.get("do") == "get_result":
            return self._get_result(method, form)
        return JSONResponse({"success": False, "error": "unknown do"})

    async def _create_queue(self, method: str, form: dict[str, str]) -> Response:
        missing = [name for name in REQUIRED_FIELDS[method] if not form.get(name)]
        if missing:
            return JSONResponse({"success": False, "error": f"не заполнены поля: {', '.join(missing)}"})
        if self.fail == "error_answer":
            return JSONResponse({"success": False, "error": "Недостаточно средств на балансе"})
        with self._lock:
            entry = _Entry(self._next_id, method, form, webhook=form.get("webhook") or None)
            self._next_id += 1
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            for name in IMAGE_FIELDS:
                if name in form:
                    fetched = await self._fetch(http, entry.id, name, form[name])
                    entry.fetched.append(fetched)
                    if not fetched.is_image:
                        entry.error = f"Не удалось загрузить изображение по ссылке {name}"  # noqa: RUF001
        with self._lock:
            self._entries[entry.id] = entry
        if entry.webhook:
            task = asyncio.create_task(self._deliver(entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return JSONResponse({"success": True, "asyncid": entry.id})
        return JSONResponse({"success": True, "queueid": entry.id})

    async def _fetch(self, http: httpx.AsyncClient, queue_id: int, name: str, url: str) -> Fetched:
        try:
            resp = await http.get(url)
            status, ctype, data = resp.status_code, resp.headers.get("content-type", ""), resp.content
        except httpx.HTTPError:
            status, ctype, data = None, "", b""
        fetched = Fetched(queue_id, name, url, status, ctype, data, status == 200 and _is_image(data))
        with self._lock:
            self.fetched.append(fetched)
        return fetched

    def _get_result(self, method: str, form: dict[str, str]) -> Response:
        try:
            queue_id = int(form.get("queueid", ""))
        except ValueError:
            return JSONResponse({"success": False, "error": "queueid expected"})
        with self._lock:
            entry = self._entries.get(queue_id)
            if entry is None or entry.method != method:
                return JSONResponse({"success": False, "error": "очередь не найдена"})
            entry.polls += 1
            polls = entry.polls
        if self.fail == "flaky_poll" and polls == 1:
            return PlainTextResponse("Bad Gateway", 502)
        if polls <= self.reconnect_rounds + (1 if self.fail == "flaky_poll" else 0):
            return JSONResponse({"action": "reconnect"})
        return JSONResponse(self.result_answer(queue_id))

    async def _deliver(self, entry: _Entry) -> None:
        await asyncio.sleep(self.webhook_delay_sec)
        body = self.result_answer(entry.id)
        assert entry.webhook is not None
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            for _ in range(2 if self.deliver_twice else 1):
                try:
                    resp = await http.post(entry.webhook, json=body)
                    status, answer = resp.status_code, resp.json()
                except (httpx.HTTPError, ValueError):
                    status, answer = None, None
                with self._lock:
                    self.deliveries.append(Delivery(entry.webhook, status, answer))

    async def _result_file(self, request: Request) -> Response:
        stem, _, ext = request.path_params["name"].partition(".")
        with self._lock:
            entry = self._entries.get(int(stem)) if stem.isdigit() else None
            fault: LinkFault | None = None
            if entry is not None:
                entry.downloads += 1
                if entry.downloads <= len(self.link_faults):
                    fault = self.link_faults[entry.downloads - 1]
                elif self.link_faults and self.link_faults_forever:
                    fault = self.link_faults[-1]
        if entry is None:
            return PlainTextResponse("not found", 404)
        if fault is None and ext == "txt":
            fault = html_page()
        with self._lock:
            self.downloads.append(Download(entry.id, fault.status if fault else 200, fault is None))
        if fault is not None:
            await asyncio.sleep(fault.delay_sec)
            return Response(fault.body, fault.status, headers=fault.headers, media_type=fault.content_type)
        return Response(self.result_image(entry.id), media_type=f"image/{self.result_format.lower()}")

    async def _hosted_file(self, request: Request) -> Response:
        with self._lock:
            item = self._hosted.get(request.path_params["name"])
        if item is None:
            return PlainTextResponse("not found", 404)
        return Response(item[0], media_type=item[1])
