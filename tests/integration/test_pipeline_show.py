"""Issue 14's "Show", end to end through ingest: a DSLR-shaped booth post on a slot configured with `PUT
/api/slots/{id}` (the `steps` shape, and the seed-003 shape), real PostgreSQL, S3 on moto, the product on a real
socket (Turbotext downloads our photos through public links and calls our webhook), the Gemini fake driven
through the real google-genai SDK and the Turbotext fake, both speaking their wire formats on loopback.

- A three-step slot (a local 3:2 reframe, a Gemini edit, finishing at 1800x1200 with a logo and a 1.5 MB cap)
  answers a 4000x3000 camera photo with exactly that image under that cap; the job detail shows both steps.
- Gemini answering 5xx to every call: the Turbotext alternative's image is the answer (given step 1's image when
  it is step 2), the job records which alternative made it and the Gemini failure; every alternative down: the
  booth's own photo, long before its wait ends (policy `original`); an alternative that cannot end before the
  booth's answer is due (the product's typical times) is not called at all.
- Turbotext's webhook for step 1 of 2 moves the job to step 2 and the waiting booth gets the final image; a
  callback for the last step goes through the finishing stage.
- A one-step slot in the seed-003 shape (PUT, or a row from before pipelines) works as it did.
- Cancel while step 2 runs, between steps (queued for step 2), and while step 1 waits for its callback: the job
  is cancelled, the booth answered by the slot's policy, no result stored, nothing runs or moves afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data as samples
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.providers.turbotext.adapter import TurbotextProvider
from boothbridge.settings import Settings
from local.app import Emulator
from local.fakes.gemini_replies import error_reply, image_reply
from local.fakes.gemini_server import FakeGemini, gemini_server
from local.fakes.turbotext_server import FakeTurbotext
from tests.fakes.sleepy import SleepyProvider, sleepy_catalog
from tests.support.booth import DSLR_FIELDS, configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.live_server import serving

GEMINI = "boothbridge.providers.gemini.adapter:GeminiProvider"
SLEEPY = "tests.fakes.sleepy:SleepyProvider"
TURBOTEXT_KEY = "tt-show-7d2a"
T_SYNC = 15.0  # the booth's wait, s: short, so a test that waits it out would show as slow
MAX_ATTEMPTS = 2  # per step and alternative
CAP = 1_500_000
LOGO_COLOUR = (230, 0, 200)
CENTRE_COLOUR = (20, 160, 60)


# ---- images ------------------------------------------------------------------------------------------------


def _encoded(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


@functools.cache
def camera_photo() -> bytes:
    """A 4000x3000 JPEG as a camera sends it: scikit-image's coffee photo cropped to 4:3 and upscaled."""
    coffee = Image.fromarray(samples.coffee())  # 600x400
    crop = coffee.crop((33, 0, 566, 400))  # 533x400, about 4:3
    return _encoded(crop.resize((4000, 3000), Image.Resampling.LANCZOS), "JPEG", quality=92)


@functools.cache
def gemini_answer() -> Image.Image:
    """What the Gemini fake answers the edit with: 1536x1024 (3:2, a size Gemini makes) of fine noise that JPEG
    cannot compress well, with a flat block in the middle whose colour the booth's image must show."""
    rng = np.random.default_rng(14)
    pixels = rng.integers(0, 256, size=(1024, 1536, 3), dtype=np.uint8)
    pixels[412:612, 668:868] = CENTRE_COLOUR
    return Image.fromarray(pixels)


def logo_png() -> bytes:
    """A 180x120 logo (the print window's 3:2, so it is scaled x10 onto 1800x1200): transparent but for an
    opaque square at (10..50, 10..50)."""
    logo = Image.new("RGBA", (180, 120), (0, 0, 0, 0))
    logo.paste((*LOGO_COLOUR, 255), (10, 10, 50, 50))
    return _encoded(logo, "PNG")


def near(pixel: Any, colour: tuple[int, ...], tolerance: int = 30) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


# ---- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with gemini_server() as server:
        yield server


@pytest.fixture
def turbotext() -> Iterator[FakeTurbotext]:
    fake = FakeTurbotext(TURBOTEXT_KEY, reconnect_rounds=1).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fakes_typical_sec(request: pytest.FixtureRequest) -> float | None:
    """Gemini's and Turbotext's typical attempt time in the catalog, s: 2 unless parametrised (indirectly; None:
    the product's figures, 12 s and 20 s). The fakes answer in milliseconds, and at the real figures no
    alternative fits a 15 s wait."""
    value = getattr(request, "param", 2.0)
    return None if value is None else float(value)


@pytest.fixture
def sleepy_parallel(request: pytest.FixtureRequest) -> int:
    """How many `sleepy` calls may run at once (the catalog's max_parallel_jobs): 4 unless parametrised."""
    return int(getattr(request, "param", 4))


def _catalog(path: Path, typical_sec: float | None, sleepy_parallel: int) -> Path:
    """The product catalog plus `sleepy` (`sleepy_parallel` calls at once), with Gemini's and Turbotext's typical
    times set (None: left as they are). Everything else is the product's."""
    catalog = json.loads(sleepy_catalog(path, max_parallel_jobs=sleepy_parallel).read_text())
    if typical_sec is not None:
        for provider in catalog["providers"]:
            if provider["id"] in ("gemini", "turbotext"):
                provider["ingest"]["typical_sec"] = typical_sec
    path.write_text(json.dumps(catalog))
    return path


@pytest.fixture
def settings_overrides(
    gemini: FakeGemini,
    turbotext: FakeTurbotext,
    app_socket: Any,
    tmp_path: Path,
    fakes_typical_sec: float | None,
    sleepy_parallel: int,
) -> dict[str, Any]:
    return {
        "public_base_url": f"http://127.0.0.1:{app_socket.getsockname()[1]}",
        "gemini_api_key": "key-a",
        "gemini_base_url": gemini.url,
        "turbotext_api_key": TURBOTEXT_KEY,
        "turbotext_base_url": turbotext.api_url,
        "provider_plugins": [SLEEPY, GEMINI],
        "providers_config": _catalog(tmp_path / "providers-show.json", fakes_typical_sec, sleepy_parallel),
        "t_sync_response": T_SYNC,
        "max_attempts": MAX_ATTEMPTS,
        "retry_base_sec": 0.05,
        "retry_max_sec": 0.2,
        "heartbeat_sec": 0.3,  # a cancelled call stops within one heartbeat
    }


@pytest.fixture
async def live(emulator: Emulator, container: Container, app_socket: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The product on its socket, and a client for it (the booth and the operator)."""
    provider = container.providers["turbotext"]
    assert isinstance(provider, TurbotextProvider)
    provider.poll_interval_sec = 0.1
    async with (
        serving(emulator, app_socket),
        httpx.AsyncClient(base_url=container.settings.base_url, timeout=60) as http,
    ):
        yield http


@pytest.fixture
async def token(live: httpx.AsyncClient, settings: Settings) -> str:
    return await operator_token(live, settings.credentials_path)


@pytest.fixture
def password(settings: Settings) -> str:
    return str(credentials(settings.credentials_path)["ingest_password"])


# ---- helpers -----------------------------------------------------------------------------------------------


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def step(provider_id: str, operation_id: str, settings: dict[str, Any], *alternatives: Any) -> dict[str, Any]:
    return {
        "provider_id": provider_id,
        "operation_id": operation_id,
        "settings_json": settings,
        "alternatives": [{"provider_id": p, "operation_id": o, "settings_json": s} for p, o, s in alternatives],
        "optional": False,
    }


async def put_slot(http: httpx.AsyncClient, token: str, slot_id: str = "slot-001", **body: Any) -> dict[str, Any]:
    r = await http.put(f"/api/slots/{slot_id}", json={"name": "show", **body}, headers=auth(token))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def detail(http: httpx.AsyncClient, token: str, job_id: str) -> dict[str, Any]:
    r = await http.get(f"/api/jobs/{job_id}", headers=auth(token))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def tried(job: dict[str, Any]) -> list[tuple[int, int, str, str, str]]:
    """The detail's steps as (index, alternative, provider, operation, status)."""
    return [(s["index"], s["alternative"], s["provider_id"], s["operation_id"], s["status"]) for s in job["steps"]]


async def rows(container: Container, query: str, **params: Any) -> list[Any]:
    async with container.engine.connect() as conn:
        return list(await conn.execute(text(query), params))


async def job_row(container: Container, job_id: str) -> Any:
    [row] = await rows(
        container,
        "SELECT status, provider_id, step_index, alternative, result_media_id, pipeline FROM jobs WHERE id = :id",
        id=job_id,
    )
    return row


async def step_rows(container: Container, job_id: str) -> list[Any]:
    return await rows(
        container,
        "SELECT step_index, alternative, provider_id, status, attempts, error_code, output_media_id FROM job_steps"
        " WHERE job_id = :id ORDER BY step_index, alternative",
        id=job_id,
    )


# ---- 1. three steps: a local reframe, a Gemini edit, finishing -------------------------------------------


async def test_a_three_step_slot_answers_a_camera_photo_at_the_print_size_under_the_cap(
    live: httpx.AsyncClient, container: Container, gemini: FakeGemini, token: str, password: str
) -> None:
    edited = gemini_answer()
    gemini.script(None, image_reply(_encoded(edited, "PNG", compress_level=1)))
    r = await live.post(
        "/api/media/register",
        files={"file": ("logo.png", logo_png(), "image/png")},
        data={"purpose": "template"},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    logo_id = r.json()["id"]
    finishing = {"width": 1800, "height": 1200, "fit": "fill", "overlay_media_id": logo_id}
    finishing |= {"format": "jpeg", "max_bytes": CAP}
    await put_slot(
        live,
        token,
        steps=[
            step("local", "reframe", {"aspect_ratio": "3:2"}),
            step("gemini", "change_image", {"prompt": "Turn the cup into a tiny ship."}),
        ],
        finishing=finishing,
    )
    # This image at 1800x1200 is over the cap at the default quality: the cap has work to do.
    assert len(_encoded(edited.resize((1800, 1200)), "JPEG", quality=90)) > CAP

    r = await post_photo(live, "slot-001", camera_photo(), password)

    assert r.status_code == 200, r.text
    assert "x-fallback" not in r.headers
    assert r.headers["content-type"] == "image/jpeg"
    assert len(r.content) <= CAP
    image = Image.open(io.BytesIO(r.content))
    assert (image.format, image.size) == ("JPEG", (1800, 1200))
    rgb = image.convert("RGB")
    assert near(rgb.getpixel((300, 300)), LOGO_COLOUR), rgb.getpixel((300, 300))  # the logo's opaque square
    assert near(rgb.getpixel((900, 600)), CENTRE_COLOUR), rgb.getpixel((900, 600))  # Gemini's image, not covered
    # Step 1's output was step 2's input: Gemini was sent the 3:2 crop of the 4000x3000 photo.
    [call] = gemini.generate_calls()
    assert call.parts[-1].text == "Turn the cup into a tiny ship."
    sent = Image.open(io.BytesIO(call.parts[0].data or b""))
    assert sent.width == 4000 and abs(sent.width / sent.height - 1.5) < 0.001

    job_id = r.headers["x-job-id"]
    job = await detail(live, token, job_id)
    assert (job["status"], job["phase"], job["progress"], job["step_count"]) == ("succeeded", "succeeded", 1.0, 2)
    assert tried(job) == [
        (0, 0, "local", "reframe", "succeeded"),
        (1, 0, "gemini", "change_image", "succeeded"),
    ]
    row = await job_row(container, job_id)
    assert row.pipeline["finishing"] == finishing
    [log] = await rows(container, "SELECT status, request_fields FROM processing_log")
    assert log.status == "SUCCESS" and log.request_fields["id"] == DSLR_FIELDS["id"]


# ---- 2. fallbacks within the deadline ----------------------------------------------------------------------


def gemini_down(fake: FakeGemini) -> None:
    """Every generateContent call answers 503, as Gemini does when the model is overloaded."""
    fake.script(None, *[error_reply(503, "The model is overloaded. Please try again later.") for _ in range(20)])


async def test_gemini_down_the_turbotext_alternative_makes_the_result(
    live: httpx.AsyncClient,
    container: Container,
    gemini: FakeGemini,
    turbotext: FakeTurbotext,
    token: str,
    password: str,
) -> None:
    gemini_down(gemini)
    prompt = "A party hat for everyone."
    await put_slot(
        live,
        token,
        steps=[step("gemini", "change_image", {"prompt": prompt}, ("turbotext", "change_image", {"prompt": prompt}))],
    )
    started = time.monotonic()

    r = await post_photo(live, "slot-001", jpeg(640, 480), password)

    assert time.monotonic() - started < T_SYNC  # answered, not timed out
    assert r.status_code == 200, r.text
    assert "x-fallback" not in r.headers
    [create] = turbotext.calls("create_queue")
    assert create.form["content"] == prompt
    assert r.content == turbotext.result_image(turbotext.fetched[0].queue_id)
    assert len(gemini.generate_calls()) == MAX_ATTEMPTS  # 5xx is retried, then the alternative takes over

    job_id = r.headers["x-job-id"]
    row = await job_row(container, job_id)
    assert (row.status, row.step_index, row.alternative, row.provider_id) == ("succeeded", 0, 1, "turbotext")
    [failure] = await step_rows(container, job_id)
    assert (failure.step_index, failure.alternative, failure.provider_id, failure.status) == (0, 0, "gemini", "failed")
    assert (failure.error_code, failure.attempts, failure.output_media_id) == ("provider_unavailable", 2, None)
    job = await detail(live, token, job_id)
    assert tried(job) == [
        (0, 0, "gemini", "change_image", "failed"),
        (0, 1, "turbotext", "change_image", "succeeded"),
    ]
    assert job["steps"][0]["error"]["code"] == "provider_unavailable"
    assert "503" in job["steps"][0]["error"]["message"]


async def test_an_alternative_of_step_two_is_given_step_ones_image(
    live: httpx.AsyncClient,
    container: Container,
    gemini: FakeGemini,
    turbotext: FakeTurbotext,
    token: str,
    password: str,
) -> None:
    gemini_down(gemini)
    prompt = "A party hat for everyone."
    await put_slot(
        live,
        token,
        steps=[
            step("local", "reframe", {"aspect_ratio": "1:1"}),
            step("gemini", "change_image", {"prompt": prompt}, ("turbotext", "change_image", {"prompt": prompt})),
        ],
    )

    r = await post_photo(live, "slot-001", jpeg(640, 480), password)

    assert r.status_code == 200, r.text
    assert r.content == turbotext.result_image(turbotext.fetched[0].queue_id)
    job_id = r.headers["x-job-id"]
    square, failure = await step_rows(container, job_id)
    assert [(s.step_index, s.alternative, s.status) for s in (square, failure)] == [
        (0, 0, "succeeded"),
        (1, 0, "failed"),
    ]
    crop, _ = await container.media.read(square.output_media_id)
    assert Image.open(io.BytesIO(crop)).size == (480, 480)
    # Both calls of step 2 were given step 1's crop: Gemini inline, Turbotext through our public link.
    assert {c.parts[0].data for c in gemini.generate_calls()} == {crop}
    [photo_link] = [f for f in turbotext.fetched if f.field == "url"]
    assert (photo_link.status, photo_link.data) == (200, crop)
    row = await job_row(container, job_id)
    assert (row.status, row.step_index, row.alternative, row.provider_id) == ("succeeded", 1, 1, "turbotext")


async def test_every_alternative_down_answers_the_booths_photo_well_before_its_wait_ends(
    live: httpx.AsyncClient,
    container: Container,
    gemini: FakeGemini,
    turbotext: FakeTurbotext,
    token: str,
    password: str,
) -> None:
    gemini_down(gemini)
    turbotext.fail = "http500"
    prompt = "A party hat for everyone."
    await put_slot(
        live,
        token,
        failure_policy="original",
        steps=[step("gemini", "change_image", {"prompt": prompt}, ("turbotext", "change_image", {"prompt": prompt}))],
    )
    photo = jpeg(640, 480, color=(30, 60, 90))
    started = time.monotonic()

    r = await post_photo(live, "slot-001", photo, password)

    # A bound on the fallback's correctness (it follows the last failure, not the wait), with a wide margin.
    assert time.monotonic() - started < T_SYNC - 2
    assert (r.status_code, r.headers.get("x-fallback"), r.content) == (200, "original", photo)
    assert len(gemini.generate_calls()) == MAX_ATTEMPTS
    assert turbotext.creates() == MAX_ATTEMPTS  # the alternative was tried, and failed too
    job_id = r.headers["x-job-id"]
    row = await job_row(container, job_id)
    assert (row.status, row.step_index, row.alternative, row.result_media_id) == ("failed", 0, 1, None)
    job = await detail(live, token, job_id)
    assert tried(job) == [
        (0, 0, "gemini", "change_image", "failed"),
        (0, 1, "turbotext", "change_image", "failed"),
    ]
    [log] = await rows(container, "SELECT status, fallback, failed_step, failed_alternative FROM processing_log")
    assert tuple(log) == ("ERROR", True, 0, 1)


@pytest.mark.parametrize("fakes_typical_sec", [None], indirect=True)  # the product's figures: 12 s, 20 s
async def test_an_alternative_that_cannot_end_before_the_booths_answer_is_not_started(
    live: httpx.AsyncClient,
    container: Container,
    gemini: FakeGemini,
    turbotext: FakeTurbotext,
    token: str,
    password: str,
) -> None:
    # Gemini (typically 12 s) fails twice at once; Turbotext (typically 20 s) cannot end within the 15 s wait.
    gemini_down(gemini)
    prompt = "A party hat for everyone."
    await put_slot(
        live,
        token,
        failure_policy="original",
        steps=[step("gemini", "change_image", {"prompt": prompt}, ("turbotext", "change_image", {"prompt": prompt}))],
    )
    photo = jpeg(640, 480, color=(90, 60, 30))
    started = time.monotonic()

    r = await post_photo(live, "slot-001", photo, password)

    assert time.monotonic() - started < T_SYNC - 2
    assert (r.status_code, r.headers.get("x-fallback"), r.content) == (200, "original", photo)
    assert len(gemini.generate_calls()) == MAX_ATTEMPTS  # a retry of 12 s still fitted
    assert turbotext.calls() == []  # a paid call that would end after the booth's answer is not made
    row = await job_row(container, r.headers["x-job-id"])
    assert (row.status, row.step_index, row.alternative, row.provider_id) == ("failed", 0, 0, "gemini")
    [log] = await rows(container, "SELECT fallback, failed_step, failed_alternative FROM processing_log")
    assert tuple(log) == (True, 0, 0)


# ---- 3. a webhook for step 1 of 2 --------------------------------------------------------------------------


async def test_turbotexts_webhook_for_step_one_moves_the_job_and_the_booth_gets_the_final_image(
    live: httpx.AsyncClient,
    container: Container,
    turbotext: FakeTurbotext,
    token: str,
    password: str,
) -> None:
    await put_slot(
        live,
        token,
        steps=[
            step("turbotext", "change_image", {"prompt": "в шляпе"}),
            step("local", "resize", {"width": 48, "output": {"format": "png"}}),
        ],
    )

    r = await post_photo(live, "slot-001", jpeg(640, 480), password)

    assert r.status_code == 200, r.text
    [create] = turbotext.calls("create_queue")
    assert create.form["webhook"].startswith(f"{container.settings.base_url}/webhooks/turbotext/")
    assert turbotext.calls("get_result") == []  # the result came by the callback, nobody polled
    [delivery] = turbotext.deliveries
    assert (delivery.status, delivery.answer["status"]) == (200, "moved")
    queue_id = turbotext.fetched[0].queue_id
    image = Image.open(io.BytesIO(r.content))
    assert (image.format, image.size) == ("PNG", (48, 32))  # Turbotext's 96x64, resized by step 2
    colour = Image.open(io.BytesIO(turbotext.result_image(queue_id))).convert("RGB").getpixel((60, 40))
    assert isinstance(colour, tuple)
    assert near(image.convert("RGB").getpixel((30, 20)), colour, 8)  # the entry's own colour

    job_id = r.headers["x-job-id"]
    job = await detail(live, token, job_id)
    assert (job["status"], job["step_count"], job["progress"]) == ("succeeded", 2, 1.0)
    assert tried(job) == [
        (0, 0, "turbotext", "change_image", "succeeded"),
        (1, 0, "local", "resize", "succeeded"),
    ]
    [first] = await step_rows(container, job_id)
    assert (first.provider_id, first.status, first.attempts) == ("turbotext", "succeeded", 1)
    data, _ = await container.media.read(first.output_media_id)
    assert data == turbotext.result_image(queue_id)  # step 1's output is what the callback delivered


# ---- 4. a one-step slot in the seed-003 shape --------------------------------------------------------------


@pytest.mark.parametrize("source", ["put", "row"])
async def test_a_seed_003_shaped_one_step_slot_works_unchanged(
    live: httpx.AsyncClient,
    container: Container,
    gemini: FakeGemini,
    token: str,
    password: str,
    source: str,
) -> None:
    prompt = "Sepia, please."
    if source == "put":
        r = await configure_slot(live, token, "slot-003", "gemini", "change_image", {"prompt": prompt})
        assert r.status_code == 200, r.text
    else:  # a row as slots were before pipelines: the call in its own columns, no steps
        async with container.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE slots SET provider_id = 'gemini', operation_id = 'change_image', settings_json = :s,"
                    " steps = '[]' WHERE id = 'slot-003'"
                ),
                {"s": json.dumps({"prompt": prompt})},
            )
    r = await live.get("/api/slots/slot-003", headers=auth(token))
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["provider_id"], got["operation_id"], got["settings_json"]) == (
        "gemini",
        "change_image",
        {"prompt": prompt},
    )
    assert got["steps"] == [step("gemini", "change_image", {"prompt": prompt})]

    r = await post_photo(live, "slot-003", jpeg(500, 400), password)

    assert r.status_code == 200, r.text
    assert r.content == gemini.default_image
    assert [c.parts[-1].text for c in gemini.generate_calls()] == [prompt]
    job = await detail(live, token, r.headers["x-job-id"])
    assert (job["status"], job["step_count"], job["step_index"], job["progress"]) == ("succeeded", 1, 0, 1.0)
    assert tried(job) == [(0, 0, "gemini", "change_image", "succeeded")]
    assert await step_rows(container, r.headers["x-job-id"]) == []  # the one step is the job's own row


# ---- 5. cancel while step 2 runs ---------------------------------------------------------------------------


async def _job_at_step_two(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """The slot's one job once its step 2 (index 1) is running and the sleepy provider has been called."""
    for _ in range(500):
        listed = (await http.get("/api/jobs?slot_id=slot-001", headers=auth(token))).json()["data"]
        if listed:
            job = await detail(http, token, listed[0]["id"])
            if job["step_index"] == 1 and job["status"] == "running" and SleepyProvider.calls:
                return job
        await asyncio.sleep(0.02)
    raise AssertionError("the job never ran its step 2")


@pytest.mark.parametrize("policy", ["error", "original"])
async def test_cancel_while_step_two_runs_ends_the_job_and_stores_no_result(
    live: httpx.AsyncClient,
    container: Container,
    emulator: Emulator,
    token: str,
    password: str,
    policy: str,
) -> None:
    await put_slot(
        live,
        token,
        failure_policy=policy,
        steps=[step("local", "reframe", {"aspect_ratio": "1:1"}), step("sleepy", "echo", {"delay_sec": 8})],
    )
    photo = jpeg(640, 480)
    booth = asyncio.create_task(post_photo(live, "slot-001", photo, password))
    job = await _job_at_step_two(live, token)

    r = await live.post(f"/api/jobs/{job['id']}/cancel", headers=auth(token))
    assert r.status_code == 202, r.text
    answer = await asyncio.wait_for(booth, T_SYNC)

    assert answer.headers["x-job-id"] == job["id"]
    if policy == "error":
        assert answer.status_code == 502, answer.text
        assert answer.json()["error"]["code"] == "job_cancelled"
    else:
        assert (answer.status_code, answer.headers.get("x-fallback"), answer.content) == (200, "original", photo)
    assert emulator.worker is not None
    for _ in range(250):  # the provider call is cancelled at its next heartbeat
        if not emulator.worker.running:
            break
        await asyncio.sleep(0.02)
    assert emulator.worker.running == 0
    assert len(SleepyProvider.calls) == 1  # step 2 was not tried again

    row = await job_row(container, job["id"])
    assert (row.status, row.step_index, row.result_media_id) == ("cancelled", 1, None)
    [first] = await step_rows(container, job["id"])
    assert (first.step_index, first.status) == (0, "succeeded")
    # The only image the job stored is step 1's output; no final result.
    stored = await rows(container, "SELECT id FROM media_objects WHERE kind = 'result'")
    assert [m.id for m in stored] == [first.output_media_id]
    ended = await detail(live, token, job["id"])
    assert (ended["status"], ended["phase"], ended["progress"]) == ("cancelled", "cancelled", 0.5)
    assert tried(ended) == [(0, 0, "local", "reframe", "succeeded"), (1, 0, "sleepy", "echo", "cancelled")]
    [log] = await rows(container, "SELECT error_code, fallback, failed_step FROM processing_log")
    assert tuple(log) == ("job_cancelled", policy == "original", 1)


@pytest.mark.parametrize("sleepy_parallel", [1], indirect=True)
async def test_cancel_between_steps_ends_the_queued_job_and_no_worker_runs_step_two(
    live: httpx.AsyncClient, container: Container, token: str, password: str
) -> None:
    # slot-002's job holds the one place `sleepy` has, so slot-001's job waits at step 2 (queued) after step 1.
    await put_slot(live, token, "slot-002", steps=[step("sleepy", "echo", {"delay_sec": 1.5})])
    await put_slot(
        live,
        token,
        failure_policy="original",
        steps=[step("local", "reframe", {"aspect_ratio": "1:1"}), step("sleepy", "echo", {})],
    )
    occupier = asyncio.create_task(post_photo(live, "slot-002", jpeg(320, 240, color=(1, 2, 3)), password))
    for _ in range(500):
        if SleepyProvider.calls:
            break
        await asyncio.sleep(0.02)
    photo = jpeg(640, 480)
    booth = asyncio.create_task(post_photo(live, "slot-001", photo, password))
    for _ in range(500):
        listed = (await live.get("/api/jobs?slot_id=slot-001", headers=auth(token))).json()["data"]
        if listed and listed[0]["step_index"] == 1:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the job never reached step 2")
    job = await detail(live, token, listed[0]["id"])
    assert (job["status"], job["phase"]) == ("queued", "queued")  # between steps: step 1 done, step 2 not started

    r = await live.post(f"/api/jobs/{job['id']}/cancel", headers=auth(token))
    assert r.status_code == 202, r.text
    answer = await asyncio.wait_for(booth, T_SYNC)

    assert (answer.status_code, answer.headers.get("x-fallback"), answer.content) == (200, "original", photo)
    assert (await asyncio.wait_for(occupier, T_SYNC)).status_code == 200  # sleepy's place is free again
    assert await container.queue.claim("late-worker", 5) == []  # nobody will run the cancelled step 2
    assert [job_id for job_id, _ in SleepyProvider.calls] == [(await job_ids(live, token, "slot-002"))[0]]
    row = await job_row(container, job["id"])
    assert (row.status, row.step_index, row.result_media_id) == ("cancelled", 1, None)
    ended = await detail(live, token, job["id"])
    assert tried(ended) == [(0, 0, "local", "reframe", "succeeded"), (1, 0, "sleepy", "echo", "cancelled")]
    assert ended["steps"][1]["attempts"] == 0


async def job_ids(http: httpx.AsyncClient, token: str, slot_id: str) -> list[str]:
    listed = (await http.get(f"/api/jobs?slot_id={slot_id}", headers=auth(token))).json()["data"]
    return [str(j["id"]) for j in listed]


async def test_cancel_while_step_one_waits_for_its_callback_and_the_late_callback_moves_nothing(
    live: httpx.AsyncClient, container: Container, turbotext: FakeTurbotext, token: str, password: str
) -> None:
    turbotext.webhook_delay_sec = 1.5  # the callback comes after the cancel
    await put_slot(
        live,
        token,
        steps=[step("turbotext", "change_image", {"prompt": "в шляпе"}), step("local", "resize", {"width": 48})],
    )
    booth = asyncio.create_task(post_photo(live, "slot-001", jpeg(640, 480), password))
    for _ in range(500):
        listed = (await live.get("/api/jobs?slot_id=slot-001", headers=auth(token))).json()["data"]
        if listed and listed[0]["status"] == "waiting_provider":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the job never parked at step 1")
    job_id = listed[0]["id"]

    r = await live.post(f"/api/jobs/{job_id}/cancel", headers=auth(token))
    assert r.status_code == 202, r.text
    answer = await asyncio.wait_for(booth, T_SYNC)
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "job_cancelled", answer.text
    for _ in range(250):  # Turbotext delivers its result all the same
        if turbotext.deliveries:
            break
        await asyncio.sleep(0.02)

    [delivery] = turbotext.deliveries
    assert (delivery.status, delivery.answer["status"]) == (200, "duplicate")  # acknowledged, nothing done
    assert turbotext.downloads == []  # its result was not even fetched
    row = await job_row(container, job_id)
    assert (row.status, row.step_index, row.result_media_id) == ("cancelled", 0, None)
    assert await step_rows(container, job_id) == []  # step 1 never finished, step 2 never ran
    assert await rows(container, "SELECT id FROM media_objects WHERE kind = 'result'") == []
    job = await detail(live, token, job_id)
    assert tried(job) == [(0, 0, "turbotext", "change_image", "cancelled"), (1, 0, "local", "resize", "pending")]


async def test_a_callback_for_the_last_step_goes_through_the_finishing_stage(
    live: httpx.AsyncClient, container: Container, turbotext: FakeTurbotext, token: str, password: str
) -> None:
    finishing = {"width": 200, "height": 200, "fit": "pad", "pad_color": "#0000ff", "format": "png"}
    await put_slot(
        live,
        token,
        steps=[step("local", "reframe", {"aspect_ratio": "3:2"}), step("turbotext", "change_image", {"prompt": "x"})],
        finishing=finishing,
    )

    r = await post_photo(live, "slot-001", jpeg(640, 480), password)

    assert r.status_code == 200, r.text
    [delivery] = turbotext.deliveries
    assert (delivery.status, delivery.answer["status"]) == (200, "completed")
    image = Image.open(io.BytesIO(r.content))
    assert (image.format, image.size) == ("PNG", (200, 200))  # Turbotext's 96x64 padded to the square
    rgb = image.convert("RGB")
    assert rgb.getpixel((100, 5)) == (0, 0, 255)  # the pad above the 200x133 picture
    colour = Image.open(io.BytesIO(turbotext.result_image(turbotext.fetched[0].queue_id))).convert("RGB")
    expected = colour.getpixel((60, 40))
    assert isinstance(expected, tuple)
    assert near(rgb.getpixel((125, 100)), expected, 8)
    job = await detail(live, token, r.headers["x-job-id"])
    assert tried(job) == [
        (0, 0, "local", "reframe", "succeeded"),
        (1, 0, "turbotext", "change_image", "succeeded"),
    ]
