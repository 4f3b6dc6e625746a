"""The task API over HTTP (`/api/v1`, issue 15) in the emulator (its worker and delivery loop in-process), with API
keys made on the operator API:

- an input uploaded with `POST /api/v1/media` runs as a task's source; `GET /api/v1/tasks/{id}` follows it to
  `done`, the output streams with its type, the writeUrl received it and `readUrl` shows;
- another operator's key cannot get, list, read the outputs of or cancel the task (404 task_not_found);
- a body naming two kinds of input is 400 `validation_error`; a path that is no task id is 404; a finished task's
  cancel is 409 `job_finished`; a request without a key is 401.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
from PIL import Image

from boothbridge.settings import Settings
from tests.support.booth import jpeg, operator_token
from tests.support.tasks import Scripted, scripted_server

READ_URL = "https://example.com/r/1.jpg"


async def api_key(client: httpx.AsyncClient, settings: Settings, username: str) -> dict[str, str]:
    token = await operator_token(client, settings.credentials_path, username)
    r = await client.post("/api/keys", json={"name": f"{username}'s app"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


async def until_settled(client: httpx.AsyncClient, url: str, key: dict[str, str]) -> dict[str, Any]:
    """The task once its phase is `done` or `error` (at most 200 reads, a short sleep between)."""
    for _ in range(200):
        r = await client.get(url, headers=key)
        assert r.status_code == 200, r.text
        if r.json()["phase"] in ("done", "error"):
            return dict(r.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the task never settled")


async def test_a_task_over_http_from_upload_to_delivery(client: httpx.AsyncClient, settings: Settings) -> None:
    serg, igor = await api_key(client, settings, "serg"), await api_key(client, settings, "igor")
    r = await client.post("/api/v1/media", files={"file": ("p.jpg", jpeg(400, 300), "image/jpeg")}, headers=serg)
    assert r.status_code == 201, r.text
    media = r.json()
    assert media["mime"] == "image/jpeg" and len(media["sha256"]) == 64
    async with scripted_server(Scripted()) as script:
        body = {
            "steps": [{"provider_id": "local", "operation_id": "resize", "settings": {"width": 100}}],
            "source": {"media_id": media["id"]},
            "writeUrl": script.url("/put/result.jpg"),
            "readUrl": READ_URL,
            "clientRef": {"order": 7},
        }
        r = await client.post("/api/v1/tasks", json=body, headers=serg)
        assert r.status_code == 201, r.text
        task = r.json()
        # The answer is the task as it is when the row was read: the in-process worker may have taken it already.
        assert task["client_ref"] == {"order": 7}
        assert task["phase"] in ("pending", "processing_resize", "uploading_image", "done"), task
        if task["phase"] != "done":
            assert task["deliveries"][0]["read_url"] is None
        url = f"/api/v1/tasks/{task['id']}"
        done = await until_settled(client, url, serg)
        assert (done["phase"], done["status"]) == ("done", "succeeded"), done
        assert done["deliveries"][0]["read_url"] == READ_URL
        output = await client.get(f"{url}/outputs/0", headers=serg)
        assert output.status_code == 200 and output.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(output.content)).size == (100, 75)
        assert [put[2] for put in script.puts] == [output.content]
    for method, path in (("GET", url), ("POST", f"{url}/cancel"), ("GET", f"{url}/outputs/0")):
        r = await client.request(method, path, headers=igor)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "task_not_found")
    assert (await client.get("/api/v1/tasks", headers=igor)).json()["total"] == 0
    page = (await client.get("/api/v1/tasks", headers=serg)).json()
    assert (page["total"], [t["id"] for t in page["items"]]) == (1, [task["id"]])
    r = await client.post(f"{url}/cancel", headers=serg)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "job_finished")


async def test_bad_requests(client: httpx.AsyncClient, settings: Settings) -> None:
    serg = await api_key(client, settings, "serg")
    step = {"provider_id": "local", "operation_id": "resize", "settings": {"width": 100}}
    r = await client.post(
        "/api/v1/tasks", json={"steps": [step], "source": {"url": "http://x/a", "base64": "AA=="}}, headers=serg
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "validation_error")
    r = await client.get("/api/v1/tasks/not-a-uuid", headers=serg)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "task_not_found")
    r = await client.post("/api/v1/tasks", json={"steps": [step]})
    assert r.status_code == 401
    r = await client.post("/api/v1/media", files={"file": ("x.txt", b"hello", "text/plain")}, headers=serg)
    assert (r.status_code, r.json()["error"]["code"]) == (415, "input_not_image")
