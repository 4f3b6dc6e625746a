"""A hostile review of issue 15 (the task API and AIGE's API over HTTP, in the emulator): each test is a defect that
was found by an attack and fixed, with a second member of the same kind.

- Text PostgreSQL cannot store (a NUL character, an unpaired surrogate, a non-finite number) in a task's
  `clientRef` or `phaseNames`, a `writeUrl` / `readUrl` holding a NUL, or AIGE's body `avatar_id` holding a NUL
  was a 500 after the inputs had been stored; now 400 (tasks) / 422 (AIGE) `validation_error`, nothing stored.
- A `writeUrl` that is no http(s) URL (`file://`, `ftp://`, no URL at all, an unclosed IPv6 bracket, one with a
  user:password) was accepted and then sat `pending` for the result TTL (the unclosed bracket crashed every
  delivery pass); now refused at submission.
- AIGE's path `avatar_id` had no length limit (the body's has 200): now 422 at `path.avatar_id`.
- With private addresses refused (production), a writeUrl on loopback (by address or by name) was PUT to: now the
  delivery fails as `delivery_refused` and nothing is PUT.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from boothbridge.bootstrap import Container
from boothbridge.jobs.worker_loop import run_job_by_id
from boothbridge.settings import Settings
from boothbridge.tasks.model import InputRef, TaskSpec, TaskStep
from tests.support.booth import jpeg, operator_token
from tests.support.tasks import Scripted, machine_client, media_count, scripted_server, task_service

PHOTO = base64.b64encode(jpeg(64, 48)).decode()
STEPS = [{"provider_id": "local", "operation_id": "resize", "settings": {"width": 32}}]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_worker": False, "api_key_rate_limit": "100000/minute"}


async def api_key(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    token = await operator_token(client, settings.credentials_path, "serg")
    r = await client.post("/api/keys", json={"name": "review"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}", "Content-Type": "application/json"}


async def refused(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], method: str, path: str, raw: str
) -> dict[str, Any]:
    """The error body of a request (`raw` JSON text, so escapes like \\u0000 and \\ud800 reach the server as
    sent) that must be refused with 400/422 `validation_error` and store nothing."""
    before = await media_count(container)
    r = await client.request(method, path, content=raw.encode(), headers=key)
    assert r.status_code in (400, 422), r.text
    body = r.json()["error"]
    assert body["code"] == "validation_error", body
    assert await media_count(container) == before
    assert (await client.get("/api/v1/tasks", headers=key)).json()["total"] == 0
    return dict(body)


def obj(**fields: str) -> str:
    """A JSON object from its fields' values given as raw JSON text."""
    return "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"


def task_body(**extra: str) -> str:
    """A valid task body with `extra` fields given as raw JSON text."""
    return obj(steps=json.dumps(STEPS), source=obj(base64=json.dumps(PHOTO)), **extra)


@pytest.mark.parametrize(
    "extra",
    [
        {"clientRef": '{"order": "7\\u0000"}'},
        {"clientRef": '{"order": "\\ud800"}'},
        {"clientRef": '{"\\u0000": 1}'},
        {"clientRef": '{"n": NaN}'},
        {"phaseNames": '{"resize": "a\\u0000"}'},
        {"phaseNames": '{"resize": "\\udfff"}'},
        {"writeUrl": '"http://example.com/a\\u0000"'},
        {"readUrl": '"http://example.com/a\\u0000"'},
    ],
)
async def test_unstorable_task_fields_are_400_and_store_nothing(
    client: httpx.AsyncClient, container: Container, settings: Settings, extra: dict[str, str]
) -> None:
    key = await api_key(client, settings)
    error = await refused(client, container, key, "POST", "/api/v1/tasks", task_body(**extra))
    assert [f["field"] for f in error["details"]["fields"]] == list(extra)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/x", "not a url", "http://[::1", "http://u:p@example.com/x", "//x/y"],
)
async def test_a_write_url_that_cannot_be_put_to_is_refused_at_submission(
    client: httpx.AsyncClient, container: Container, settings: Settings, url: str
) -> None:
    key = await api_key(client, settings)
    error = await refused(client, container, key, "POST", "/api/v1/tasks", task_body(writeUrl=json.dumps(url)))
    assert error["details"]["fields"][0]["field"] == "writeUrl"
    assert url not in json.dumps(error)  # a writeUrl may carry a signature: never echoed
    aige = obj(prompt='"p"', source_images=json.dumps([PHOTO]), readUrl=json.dumps(url))
    error = await refused(client, container, key, "POST", "/api/v1/avatar", aige)
    assert error["details"]["fields"][0]["field"] == "readUrl"


@pytest.mark.parametrize("avatar_id", ["a\\u0000b", "\\ud800"])
async def test_an_unstorable_aige_avatar_id_is_422_and_stores_nothing(
    client: httpx.AsyncClient, container: Container, settings: Settings, avatar_id: str
) -> None:
    key = await api_key(client, settings)
    body = obj(prompt='"p"', source_images=json.dumps([PHOTO]), avatar_id=f'"{avatar_id}"')
    error = await refused(client, container, key, "POST", "/api/v1/avatar", body)
    assert error["details"]["fields"][0]["field"] == "avatar_id"
    upscale = obj(image_url=json.dumps(PHOTO), avatar_id=f'"{avatar_id}"')
    await refused(client, container, key, "PUT", "/api/v1/avatar/a/upscaled", upscale)


async def test_a_path_avatar_id_longer_than_a_body_one_may_be_is_422(
    client: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    key = await api_key(client, settings)
    for endpoint, body in (("background", '{"prompt": "p"}'), ("upscaled", obj(image_url=json.dumps(PHOTO)))):
        error = await refused(client, container, key, "PUT", f"/api/v1/avatar/{'y' * 201}/{endpoint}", body)
        assert error["details"]["fields"][0]["field"] == "path.avatar_id"
    r = await client.put(f"/api/v1/avatar/{'y' * 200}/background", content=b'{"prompt": "p"}', headers=key)
    assert r.status_code == 200 and r.json()["avatar_id"] == "y" * 200


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("settings_overrides", [{"run_worker": False, "task_fetch_allow_private": False}])
async def test_a_private_write_url_is_never_put_to_when_private_addresses_are_refused(
    container: Container, host: str
) -> None:
    """With private addresses refused (production), a writeUrl on loopback was PUT to anyway (and a refusal's body
    excerpt shown): the delivery now fails for good as `delivery_refused`, nothing is PUT; the scheduled cleanup's
    pass and the runner's kick both follow the setting."""
    assert container.cleanup.deliveries.allow_private is False and container.runner.delivery_allows_private is False
    service, client = task_service(container), await machine_client(container, "serg")
    async with scripted_server(Scripted()) as script:
        write_url = script.url("/put/out.jpg").replace("127.0.0.1", host)
        spec = TaskSpec(steps=[TaskStep(**STEPS[0])], source=InputRef(base64=PHOTO), writeUrl=write_url)
        view = await service.submit(client, spec)
        assert str(await run_job_by_id(container.queue, container.runner, view.id, "test-worker")) == "succeeded"
        for _ in range(100):
            await container.cleanup.deliveries.run_due(view.id)
            delivery = (await service.get(client, view.id)).deliveries[0]
            if delivery.status != "pending":
                break
            await asyncio.sleep(0.03)
        assert (delivery.status, delivery.error and delivery.error.code) == ("failed", "delivery_refused")
        assert script.puts == []
