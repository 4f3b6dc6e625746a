"""Turbotext end to end against a fake Turbotext speaking the documented wire format over real HTTP.

The product runs on a real port (Turbotext downloads our images through `/public/media/...` links and calls our
webhook), the fake on another. For every operation: the booth gets the fake's image, by polling (with
`{"action":"reconnect"}` rounds) and by webhook; the fake saw the documented request (path per method, POST,
Bearer key, form encoding, field names and values) and downloaded the right bytes from our links. Then forged
and duplicate webhook deliveries, a provider that is down (original-photo fallback), refusals, result links
that are not ready yet (fetched again, never generated again), and the adapter's typed errors.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.catalog import Catalog
from boothbridge.providers.base import (
    ImageInput,
    ImageSource,
    ProviderError,
    ProviderParked,
    ProviderRequest,
    ProviderResult,
)
from boothbridge.providers.turbotext.adapter import TurbotextProvider
from boothbridge.settings import Settings
from local.app import Emulator
from local.fakes.turbotext_server import FakeTurbotext, LinkFault, html_page, not_found, unavailable
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.live_server import serving

API_KEY = "tt-secret-4f1c9e2a"
PHOTO = "<booth photo>"
TEMPLATE = "<template>"

# operation -> (Turbotext method, slot settings (TEMPLATE = the uploaded template's id), expected form fields)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "style_transfer": (
        "mix_images",
        {"reference_media_id": TEMPLATE, "prompt": "в стиле Ван Гога"},
        {"url_image_target": PHOTO, "url": TEMPLATE, "content": "в стиле Ван Гога"},
    ),
    "face_swap": (
        "deepfake_photo",
        {"target_media_id": TEMPLATE},  # face_restore unset: the schema default (true) is sent
        {"url": PHOTO, "url_image_target": TEMPLATE, "face_restore": "True"},
    ),
    "change_image": (
        "generate_image2image",
        {"prompt": "девушка в костюме супермена", "strength": 55},
        {"url": PHOTO, "content": "девушка в костюме супермена", "strength": "55"},
    ),
}


# --- fixtures ------------------------------------------------------------------------------------------------


def _short_downloads(provider: TurbotextProvider, window_sec: float = 1.0) -> None:
    """Test timings for fetching a result: short waits between tries, `window_sec` for all of them."""
    provider.download_backoff_sec = 0.02
    provider.download_backoff_max_sec = 0.1
    provider.min_download_try_sec = 0.05
    provider.max_download_sec = window_sec


@pytest.fixture
def turbotext() -> Iterator[FakeTurbotext]:
    fake = FakeTurbotext(API_KEY, reconnect_rounds=2).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def settings_overrides(turbotext: FakeTurbotext, app_socket: socket.socket) -> dict[str, Any]:
    port = app_socket.getsockname()[1]
    return {
        "public_base_url": f"http://127.0.0.1:{port}",
        "turbotext_api_key": API_KEY,
        "turbotext_base_url": turbotext.api_url,
        "t_sync_response": 8.0,
        "max_attempts": 3,
        "retry_base_sec": 0.05,
        "retry_max_sec": 0.2,
    }


@pytest.fixture
async def live(emulator: Emulator, container: Container, app_socket: socket.socket) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator served on the bound socket; a client for it (the booth and the operator use it)."""
    provider = container.providers["turbotext"]
    assert isinstance(provider, TurbotextProvider)
    provider.poll_interval_sec = 0.1
    _short_downloads(provider)
    async with (
        serving(emulator, app_socket),
        httpx.AsyncClient(base_url=container.settings.base_url, timeout=30) as http,
    ):
        yield http


def _polling_only(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    # Public links stay (Turbotext needs them); the webhook offer goes, as on a deployment without callbacks.
    assert container.runner.links is not None
    monkeypatch.setattr(container.runner.links, "webhooks", False)


async def _setup(
    http: httpx.AsyncClient, settings: Settings, operation: str, slot_settings: dict[str, Any], **extra: Any
) -> tuple[str, bytes]:
    """Upload the template (if the operation takes one), configure slot-001; (ingest password, template)."""
    token = await operator_token(http, settings.credentials_path)
    template = jpeg(300, 200, color=(20, 90, 200))
    resolved = dict(slot_settings)
    for key, value in slot_settings.items():
        if value == TEMPLATE:
            r = await http.post(
                "/api/media/register",
                files={"file": ("template.jpg", template, "image/jpeg")},
                data={"purpose": "template"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            resolved[key] = r.json()["id"]
    r = await configure_slot(http, token, "slot-001", "turbotext", operation, resolved, **extra)
    assert r.status_code == 200, r.text
    return str(credentials(settings.credentials_path)["ingest_password"]), template


async def _job(container: Container, job_id: str) -> Any:
    async with container.engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT status, attempt, provider_ref, cost, error_code, error_message, attempt_errors FROM jobs"
                    " WHERE id = :id"
                ),
                {"id": job_id},
            )
        ).one()


async def _result_rows(container: Container) -> int:
    async with container.engine.connect() as conn:
        count: int = (await conn.execute(text("SELECT count(*) FROM media_objects WHERE kind = 'result'"))).scalar_one()
    return count


def _check_create_request(
    fake: FakeTurbotext,
    settings: Settings,
    method: str,
    expected: dict[str, str],
    photo: bytes,
    template: bytes,
    *,
    webhook: bool,
) -> int:
    """The one create_queue request is exactly the documented one; returns its queue/async id."""
    creates = fake.calls("create_queue")
    assert len(creates) == 1
    req = creates[0]
    assert (req.http_method, req.path) == ("POST", f"/api_ai/{method}")
    assert req.headers["authorization"] == f"Bearer {API_KEY}"
    assert req.content_type == "application/x-www-form-urlencoded"
    fields = {"do", *expected} | ({"webhook"} if webhook else set())
    assert set(req.form) == fields
    assert req.form["do"] == "create_queue"
    served = {f.field: f for f in fake.fetched}
    for name, want in expected.items():
        if want in (PHOTO, TEMPLATE):
            assert req.form[name].startswith(f"{settings.base_url}/public/media/"), req.form[name]
            got = served[name]
            assert got.url == req.form[name] and got.status == 200 and got.is_image
            assert got.data == (photo if want == PHOTO else template), f"{name} served the wrong image"
        else:
            assert req.form[name] == want, name
    if webhook:
        assert req.form["webhook"].startswith(f"{settings.base_url}/webhooks/turbotext/")
    return fake.fetched[0].queue_id


# --- every operation, both delivery modes --------------------------------------------------------------------


@pytest.mark.parametrize("operation", list(CASES))
async def test_polling_delivers_the_fakes_image_after_reconnects(
    operation: str,
    live: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    turbotext: FakeTurbotext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _polling_only(container, monkeypatch)
    method, slot_settings, expected = CASES[operation]
    password, template = await _setup(live, settings, operation, slot_settings)
    photo = jpeg(640, 480)

    r = await post_photo(live, "slot-001", photo, password)

    assert r.status_code == 200, r.text
    queue_id = _check_create_request(turbotext, settings, method, expected, photo, template, webhook=False)
    assert r.content == turbotext.result_image(queue_id)
    assert r.headers["content-type"] == "image/png"
    polls = turbotext.calls("get_result")
    assert len(polls) == turbotext.reconnect_rounds + 1  # reconnect, reconnect, result
    for poll in polls:
        assert (poll.http_method, poll.path) == ("POST", f"/api_ai/{method}")
        assert poll.headers["authorization"] == f"Bearer {API_KEY}"
        assert poll.content_type == "application/x-www-form-urlencoded"
        assert poll.form == {"do": "get_result", "queueid": str(queue_id)}
    job = await _job(container, r.headers["x-job-id"])
    assert (job.status, job.attempt, float(job.cost)) == ("succeeded", 1, 0.0)


@pytest.mark.parametrize("operation", list(CASES))
async def test_webhook_delivers_the_fakes_image(
    operation: str, live: httpx.AsyncClient, settings: Settings, container: Container, turbotext: FakeTurbotext
) -> None:
    method, slot_settings, expected = CASES[operation]
    password, template = await _setup(live, settings, operation, slot_settings)
    photo = jpeg(500, 500, color=(90, 10, 10))

    r = await post_photo(live, "slot-001", photo, password)

    assert r.status_code == 200, r.text
    async_id = _check_create_request(turbotext, settings, method, expected, photo, template, webhook=True)
    assert r.content == turbotext.result_image(async_id)
    assert turbotext.calls("get_result") == []  # the result came by callback, nobody polled
    assert [(d.status, d.answer["status"]) for d in turbotext.deliveries] == [(200, "completed")]
    job = await _job(container, r.headers["x-job-id"])
    assert (job.status, job.provider_ref) == ("succeeded", str(async_id))
    assert await _result_rows(container) == 1


# --- webhook safety ------------------------------------------------------------------------------------------


async def _wait_parked(container: Container) -> Any:
    for _ in range(300):
        async with container.engine.connect() as conn:
            row = (await conn.execute(text("SELECT id, status, provider_ref FROM jobs"))).one_or_none()
        if row is not None and row.status == "waiting_provider":
            return row
        await asyncio.sleep(0.02)
    raise AssertionError("the job never parked")


async def test_a_forged_token_is_refused_and_changes_nothing(
    live: httpx.AsyncClient, settings: Settings, container: Container, turbotext: FakeTurbotext
) -> None:
    turbotext.webhook_delay_sec = 2.0
    password, _ = await _setup(live, settings, "style_transfer", CASES["style_transfer"][1])
    photo = jpeg(320, 240)
    booth = asyncio.create_task(post_photo(live, "slot-001", photo, password))
    row = await _wait_parked(container)
    real_url = turbotext.calls("create_queue")[0].form["webhook"]
    forged_body = turbotext.result_answer(int(row.provider_ref))  # a perfectly good result, wrong secret
    for path in (
        f"/webhooks/turbotext/{row.id}.forged-secret",
        f"/webhooks/turbotext/{row.id}",
        "/webhooks/sleepy/" + real_url.rsplit("/", 1)[1],  # the right secret for another provider
    ):
        r = await live.post(path, json=forged_body)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "unknown_callback"
    assert (await _job(container, str(row.id))).status == "waiting_provider"
    assert await _result_rows(container) == 0

    answer = await asyncio.wait_for(booth, 10)  # the genuine delivery still completes it
    assert answer.status_code == 200 and answer.content == turbotext.result_image(int(row.provider_ref))


async def test_a_duplicate_delivery_completes_nothing_twice(
    live: httpx.AsyncClient, settings: Settings, container: Container, turbotext: FakeTurbotext
) -> None:
    turbotext.deliver_twice = True
    password, _ = await _setup(live, settings, "change_image", {"prompt": "в шляпе"})
    r = await post_photo(live, "slot-001", jpeg(400, 300), password)
    assert r.status_code == 200, r.text
    for _ in range(200):
        if len(turbotext.deliveries) == 2:
            break
        await asyncio.sleep(0.02)
    assert [(d.status, d.answer["status"]) for d in turbotext.deliveries] == [(200, "completed"), (200, "duplicate")]
    assert await _result_rows(container) == 1
    assert (await _job(container, r.headers["x-job-id"])).status == "succeeded"


# --- failures through the whole pipeline ---------------------------------------------------------------------


async def test_provider_down_falls_back_to_the_original_photo_quickly(
    live: httpx.AsyncClient, settings: Settings, container: Container, turbotext: FakeTurbotext
) -> None:
    turbotext.fail = "http500"
    # The fake answers in milliseconds: say so, or no attempt (typically 20 s at Turbotext) fits an 8 s wait.
    entry = container.catalog.providers["turbotext"]
    container.catalog.providers["turbotext"] = replace(entry, ingest=replace(entry.ingest, typical_sec=1.0))
    password, _ = await _setup(live, settings, "change_image", {"prompt": "x"}, failure_policy="original")
    photo = jpeg(500, 400)
    started = time.monotonic()
    r = await post_photo(live, "slot-001", photo, password)
    elapsed = time.monotonic() - started

    assert r.status_code == 200, r.text
    assert r.headers["x-fallback"] == "original"
    assert r.content == photo
    assert elapsed < settings.t_sync_response / 2  # retries exhausted long before T_sync_response
    assert len(turbotext.calls("create_queue")) == settings.max_attempts  # 5xx is retried, up to max_attempts
    job = await _job(container, r.headers["x-job-id"])
    assert job.status == "failed"
    assert [e["code"] for e in job.attempt_errors] == ["provider_unavailable"] * settings.max_attempts


async def test_an_error_answer_fails_at_once_with_the_providers_message(
    live: httpx.AsyncClient, settings: Settings, container: Container, turbotext: FakeTurbotext
) -> None:
    turbotext.fail = "error_answer"
    password, _ = await _setup(live, settings, "change_image", {"prompt": "x"})
    r = await post_photo(live, "slot-001", jpeg(), password)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["details"]["reason"] == "provider_rejected"
    assert len(turbotext.calls("create_queue")) == 1  # a refusal is not paid for again
    job = await _job(container, r.headers["x-job-id"])
    assert "Недостаточно средств" in job.error_message


async def test_a_wrong_api_key_is_auth_failed_and_not_retried(
    live: httpx.AsyncClient, settings: Settings, container: Container, turbotext: FakeTurbotext
) -> None:
    turbotext.api_key = "the-key-turbotext-expects"
    password, _ = await _setup(live, settings, "change_image", {"prompt": "x"})
    r = await post_photo(live, "slot-001", jpeg(), password)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["details"]["reason"] == "auth_failed"
    assert len(turbotext.calls()) == 1


async def test_links_that_do_not_serve_our_images_make_turbotext_fail_the_job(
    live: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    turbotext: FakeTurbotext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _polling_only(container, monkeypatch)
    assert container.runner.links is not None
    monkeypatch.setattr(container.runner.links, "base_url", f"{turbotext.url}/nowhere")
    password, _ = await _setup(live, settings, "change_image", {"prompt": "x"})
    r = await post_photo(live, "slot-001", jpeg(), password)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["details"]["reason"] == "provider_rejected"
    assert [f.status for f in turbotext.fetched] == [404]


# --- result links that are not ready yet: fetched again, never generated again --------------------------------

MODES = ("webhook", "polling")


def _turbotext_of(container: Container) -> TurbotextProvider:
    provider = container.providers["turbotext"]
    assert isinstance(provider, TurbotextProvider)
    return provider


def _record_waits(provider: TurbotextProvider, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the download asks for between its tries (it still waits them)."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    monkeypatch.setattr(provider, "sleep", sleep)
    return waits


def _tries_in(message: str) -> int:
    found = re.search(r"\((\d+) download tr(?:y|ies) in [\d.]+ s[;)]", message)
    assert found, message
    return int(found.group(1))


@pytest.mark.parametrize("mode", MODES)
async def test_a_result_link_that_answers_404_once_is_fetched_again_on_the_same_generation(
    mode: str,
    live: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    turbotext: FakeTurbotext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The field fault: Turbotext's result link answers 404 once and serves the image a moment later.
    if mode == "polling":
        _polling_only(container, monkeypatch)
    turbotext.link_faults = [not_found()]
    password, _ = await _setup(live, settings, "style_transfer", CASES["style_transfer"][1])

    r = await post_photo(live, "slot-001", jpeg(320, 240), password)

    assert r.status_code == 200, r.text
    queue_id = turbotext.fetched[0].queue_id
    assert r.content == turbotext.result_image(queue_id)
    assert turbotext.creates() == 1  # one paid generation
    assert [(d.queue_id, d.status, d.served_image) for d in turbotext.downloads] == [
        (queue_id, 404, False),
        (queue_id, 200, True),
    ]
    if mode == "webhook":
        assert turbotext.calls("get_result") == []
        assert [(d.status, d.answer["status"]) for d in turbotext.deliveries] == [(200, "completed")]
    job = await _job(container, r.headers["x-job-id"])
    assert (job.status, job.attempt, job.attempt_errors) == ("succeeded", 1, [])


@pytest.mark.parametrize("mode", MODES)
async def test_a_busy_link_then_an_error_page_then_the_image(
    mode: str,
    live: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    turbotext: FakeTurbotext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 503 with Retry-After (a floor of the next wait), then an HTML page with 200 (not an image by its bytes),
    # then the image.
    if mode == "polling":
        _polling_only(container, monkeypatch)
    waits = _record_waits(_turbotext_of(container), monkeypatch)
    turbotext.link_faults = [unavailable(retry_after="0.3"), html_page()]
    password, _ = await _setup(live, settings, "change_image", {"prompt": "x"})

    r = await post_photo(live, "slot-001", jpeg(320, 240), password)

    assert r.status_code == 200, r.text
    assert r.content == turbotext.result_image(turbotext.fetched[0].queue_id)
    assert turbotext.creates() == 1
    assert [(d.status, d.served_image) for d in turbotext.downloads] == [(503, False), (200, False), (200, True)]
    assert len(waits) == 2
    assert waits[0] >= 0.3  # Retry-After honoured
    assert waits[1] <= 0.1  # the plain backoff again (download_backoff_max_sec) after the HTML page
    job = await _job(container, r.headers["x-job-id"])
    assert (job.status, job.attempt) == ("succeeded", 1)


@pytest.mark.parametrize("mode", MODES)
async def test_a_link_that_never_serves_fails_without_extra_generations(
    mode: str,
    live: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    turbotext: FakeTurbotext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if mode == "polling":
        _polling_only(container, monkeypatch)
    _short_downloads(_turbotext_of(container), window_sec=0.5)
    turbotext.link_faults, turbotext.link_faults_forever = [not_found()], True
    password, _ = await _setup(live, settings, "change_image", {"prompt": "x"})

    r = await post_photo(live, "slot-001", jpeg(320, 240), password)

    assert r.status_code == 502, r.text
    assert r.json()["error"]["details"]["reason"] == "result_download_failed"
    job = await _job(container, r.headers["x-job-id"])
    assert (job.status, job.error_code) == ("failed", "result_download_failed")
    # Every generation is one the queue's retry policy started: on both paths the attempt is retried (the error is
    # retryable) up to max_attempts. Download tries added none.
    allowed = settings.max_attempts
    assert turbotext.creates() == job.attempt == len(job.attempt_errors) == allowed
    queue_ids = sorted({d.queue_id for d in turbotext.downloads})
    assert len(queue_ids) == allowed
    for entry, error in zip(queue_ids, job.attempt_errors, strict=True):
        assert error["code"] == "result_download_failed"
        assert "HTTP 404" in error["message"]
        tries = _tries_in(error["message"])
        assert tries >= 2 and tries == turbotext.download_tries(entry)


async def test_a_last_try_cut_off_by_the_window_still_names_what_the_earlier_tries_got(
    live: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    turbotext: FakeTurbotext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two quick 404s, then a link that hangs past the download window: the last try times out, and the job's error
    # must still say what the link answered before (it said only "timed out" when the window ended mid-try).
    _polling_only(container, monkeypatch)
    _short_downloads(_turbotext_of(container), window_sec=1.5)  # room for the two 404s on a loaded machine
    hang = LinkFault(404, b"late", delay_sec=5.0)
    turbotext.link_faults, turbotext.link_faults_forever = [not_found(), not_found(), hang], True
    password, _ = await _setup(live, settings, "change_image", {"prompt": "x"})

    r = await post_photo(live, "slot-001", jpeg(320, 240), password)

    assert r.status_code == 502, r.text
    job = await _job(container, r.headers["x-job-id"])
    for error in job.attempt_errors:
        assert error["code"] == "result_download_failed"
        assert error["message"].startswith("the result download timed out (3 download tries in "), error["message"]
        assert error["message"].endswith("; earlier: the result image answered HTTP 404)"), error["message"]


async def test_a_callbacks_download_is_bounded_by_the_jobs_deadline(
    live: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    turbotext: FakeTurbotext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The provider's own cap is far away (60 s); the job has about half a second left when the callback comes
    # (delivered 1 s after create_queue; the deadline moved to 1.5 s after it).
    monkeypatch.setattr("boothbridge.jobs.webhooks.MIN_RESULT_FETCH_SEC", 0.2)
    _short_downloads(_turbotext_of(container), window_sec=60.0)
    turbotext.webhook_delay_sec = 1.0
    turbotext.link_faults, turbotext.link_faults_forever = [not_found()], True
    password, _ = await _setup(live, settings, "change_image", {"prompt": "x"})
    booth = asyncio.create_task(post_photo(live, "slot-001", jpeg(320, 240), password))
    row = await _wait_parked(container)
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET deadline_at = now() + interval '1.5 second' WHERE id = :id"), {"id": row.id}
        )

    r = await asyncio.wait_for(booth, 30)

    assert r.status_code == 502, r.text  # failed by the callback, not 504 at T_sync_response
    job = await _job(container, str(row.id))
    assert (job.status, job.error_code, turbotext.creates()) == ("failed", "result_download_failed", 1)
    assert [(d.status, d.answer["status"]) for d in turbotext.deliveries] == [(200, "failed")]
    assert _tries_in(job.error_message) == turbotext.download_tries() >= 2


# --- the adapter on its own (no database): typed errors ------------------------------------------------------


def _adapter(fake: FakeTurbotext, api_key: str | None = API_KEY) -> TurbotextProvider:
    settings = Settings(_env_file=None, app_env="test", turbotext_api_key=api_key, turbotext_base_url=fake.api_url)
    provider = TurbotextProvider(settings, Catalog.load(settings.providers_config))
    provider.poll_interval_sec = 0.05
    _short_downloads(provider)
    return provider


def _request(fake: FakeTurbotext, *, timeout_sec: float = 10.0, webhook_url: str | None = None) -> ProviderRequest:
    async def link(image: ImageSource) -> str:
        return fake.host(await image.read(), image.mime)

    return ProviderRequest(
        job_id="job-1",
        attempt=1,
        operation_id="change_image",
        settings={"prompt": "x"},
        source=ImageInput(jpeg(64, 48), "image/jpeg"),
        timeout_sec=timeout_sec,
        public_url=link,
        webhook_url=webhook_url,
    )


async def _run(provider: TurbotextProvider, request: ProviderRequest) -> ProviderResult | ProviderParked:
    try:
        return await provider.run(request)
    finally:
        await provider.close()


async def _run_error(provider: TurbotextProvider, request: ProviderRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await _run(provider, request)
    return caught.value


async def test_adapter_without_a_key_calls_nobody(turbotext: FakeTurbotext) -> None:
    err = await _run_error(_adapter(turbotext, api_key=None), _request(turbotext))
    assert (err.code, err.retryable) == ("api_key_missing", False)
    assert turbotext.calls() == []


@pytest.mark.parametrize(
    ("fail", "code", "retryable"),
    [
        ("auth", "auth_failed", False),
        ("auth_answer", "auth_failed", False),
        ("http500", "provider_unavailable", True),
        ("error_answer", "provider_rejected", False),
        ("no_image", "no_image", True),
        ("bad_image", "invalid_result", True),  # an HTML page, fetched again until the window closes
    ],
)
async def test_adapter_typed_errors(turbotext: FakeTurbotext, fail: str, code: str, retryable: bool) -> None:
    turbotext.fail = fail
    err = await _run_error(_adapter(turbotext), _request(turbotext))
    assert (err.code, err.retryable) == (code, retryable), err.message
    assert turbotext.creates() <= 1
    if fail == "bad_image":
        assert _tries_in(err.message) == turbotext.download_tries() >= 2


async def _callback_error(provider: TurbotextProvider, url: str) -> ProviderError:
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.result_from_callback({"success": True, "uploaded_image": url})
    finally:
        await provider.close()
    return caught.value


async def _finished_entry(fake: FakeTurbotext) -> str:
    """A generation the fake has finished; its result link."""
    provider = _adapter(fake)
    fake.webhook_delay_sec = 3600
    try:
        parked = await provider.run(_request(fake, webhook_url="https://booth.example.test/webhooks/t/abc"))
    finally:
        await provider.close()
    assert isinstance(parked, ProviderParked)
    return str(fake.result_answer(int(parked.provider_ref))["uploaded_image"])


@pytest.mark.parametrize("status", [401, 403, 410])
async def test_adapter_does_not_fetch_a_refused_or_gone_link_again(turbotext: FakeTurbotext, status: int) -> None:
    url = await _finished_entry(turbotext)
    turbotext.link_faults, turbotext.link_faults_forever = [LinkFault(status)], True
    err = await _callback_error(_adapter(turbotext), url)
    assert (err.code, err.retryable) == ("result_download_failed", False)
    assert f"HTTP {status}" in err.message
    assert turbotext.download_tries() == 1


async def test_adapter_does_not_fetch_a_too_large_result_again(turbotext: FakeTurbotext) -> None:
    url = await _finished_entry(turbotext)
    provider = _adapter(turbotext)
    provider.max_result_bytes = 100
    err = await _callback_error(provider, url)
    assert (err.code, err.retryable) == ("result_too_large", False)
    assert turbotext.download_tries() == 1


async def test_adapter_starts_no_try_that_a_retry_after_pushes_past_the_deadline(
    turbotext: FakeTurbotext, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await _finished_entry(turbotext)
    provider = _adapter(turbotext)
    waits = _record_waits(provider, monkeypatch)
    turbotext.link_faults, turbotext.link_faults_forever = [unavailable(retry_after="30")], True
    err = await _callback_error(provider, url)  # 30 s asked for, 1 s of window: give up now, not sleep
    assert (err.code, err.retryable) == ("result_download_failed", True)
    assert waits == [] and turbotext.download_tries() == 1 == _tries_in(err.message)


async def test_adapter_fetches_again_after_a_timeout_and_a_network_fault(turbotext: FakeTurbotext) -> None:
    url = await _finished_entry(turbotext)
    provider = _adapter(turbotext)
    provider.request_timeout_sec = 0.2  # per try
    turbotext.link_faults = [LinkFault(200, b"late", delay_sec=1.0)]  # hangs past the try's timeout
    try:
        result = await provider.result_from_callback({"success": True, "uploaded_image": url})
    finally:
        await provider.close()
    assert result.image.data == turbotext.result_image(int(url.rsplit("/", 1)[1].split(".")[0]))
    assert turbotext.download_tries() == 2

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    err = await _callback_error(_adapter(turbotext), f"http://127.0.0.1:{dead}/results/1.png")
    assert (err.code, err.retryable) == ("result_download_failed", True)
    assert "ConnectError" in err.message and _tries_in(err.message) >= 2


async def test_adapter_rate_limited_carries_retry_after(turbotext: FakeTurbotext) -> None:
    turbotext.fail = "rate_limited"
    err = await _run_error(_adapter(turbotext), _request(turbotext))
    assert (err.code, err.retryable, err.retry_after) == ("rate_limited", True, 1.0)


async def test_adapter_network_fault_is_retryable(turbotext: FakeTurbotext) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = Settings(_env_file=None, turbotext_api_key=API_KEY, turbotext_base_url=f"http://127.0.0.1:{dead}/api_ai")
    provider = TurbotextProvider(settings, Catalog.load(settings.providers_config))
    err = await _run_error(provider, _request(turbotext))
    assert (err.code, err.retryable) == ("provider_unreachable", True)


async def test_adapter_gives_up_polling_within_the_attempts_time(turbotext: FakeTurbotext) -> None:
    turbotext.reconnect_rounds = 10**6
    started = time.monotonic()
    err = await _run_error(_adapter(turbotext), _request(turbotext, timeout_sec=3.0))
    assert (err.code, err.retryable) == ("provider_timeout", True)
    assert time.monotonic() - started < 3.0
    assert len(turbotext.calls("create_queue")) == 1


async def test_adapter_rides_out_a_failed_poll_without_a_new_generation(turbotext: FakeTurbotext) -> None:
    turbotext.fail = "flaky_poll"
    result = await _run(_adapter(turbotext), _request(turbotext))
    assert isinstance(result, ProviderResult)
    assert result.image.data == turbotext.result_image(turbotext.fetched[0].queue_id)
    assert len(turbotext.calls("create_queue")) == 1


async def test_adapter_names_a_webp_result_by_its_bytes(turbotext: FakeTurbotext) -> None:
    """Converted for the booth by the worker's image boundary (see test_webp_result_reaches_the_booth_as_jpeg)."""
    turbotext.result_format = "WEBP"
    result = await _run(_adapter(turbotext), _request(turbotext))
    assert isinstance(result, ProviderResult) and result.image.mime == "image/webp"
    assert Image.open(io.BytesIO(result.image.data)).size == (96, 64)


async def test_adapter_parks_with_the_asyncid_and_takes_the_callback(turbotext: FakeTurbotext) -> None:
    turbotext.webhook_delay_sec = 3600  # the fake will not call back in this test: we hand over its body
    provider = _adapter(turbotext)
    try:
        parked = await provider.run(_request(turbotext, webhook_url="https://booth.example.test/webhooks/t/abc"))
        assert isinstance(parked, ProviderParked)
        create = turbotext.calls("create_queue")[0]
        assert create.form["webhook"] == "https://booth.example.test/webhooks/t/abc"
        async_id = int(parked.provider_ref)
        body = turbotext.result_answer(async_id)
        result = await provider.result_from_callback(body)
        assert result.image.data == turbotext.result_image(async_id)
        # A form-encoded delivery has only strings.
        form = {"success": "true", "uploaded_image": body["uploaded_image"]}
        assert (await provider.result_from_callback(form)).image.data == turbotext.result_image(async_id)
        with pytest.raises(ProviderError) as refused:
            await provider.result_from_callback({"success": False, "error": "лицо не найдено"})
        assert refused.value.code == "provider_rejected" and "лицо не найдено" in refused.value.message
        with pytest.raises(ProviderError) as empty:
            await provider.result_from_callback({"success": True, "error": "", "data": {}})
        assert empty.value.code == "no_image"
    finally:
        await provider.close()


async def test_the_api_key_never_reaches_logs_or_errors(
    turbotext: FakeTurbotext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = _adapter(turbotext)
    try:
        await provider.run(_request(turbotext))
        turbotext.fail = "auth"
        with pytest.raises(ProviderError) as caught:
            await provider.run(_request(turbotext))
    finally:
        await provider.close()
    assert caplog.records  # something was logged (httpx, the adapter), just not the key
    assert API_KEY not in caplog.text
    assert API_KEY not in caught.value.message and API_KEY not in repr(provider)
    assert base64.b64encode(API_KEY.encode()).decode() not in caplog.text
