"""The Gemini provider called directly (no queue) through the real SDK against the fake Gemini server: the
error mapping, key rotation when every key is rate limited or spent for the day, quotas, malformed answers,
image parts read by their bytes, and the Files API's details."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from boothbridge.catalog import Catalog
from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest
from boothbridge.providers.gemini.adapter import GeminiProvider
from boothbridge.providers.gemini.wire import next_daily_reset
from boothbridge.settings import PROJECT_ROOT, Settings
from local.fakes.gemini_replies import (
    FAKE_PNG,
    cut_reply,
    daily_quota_reply,
    daily_token_quota_reply,
    error_reply,
    fake_png_reply,
    html_reply,
    image_reply,
    minute_quota_reply,
    mislabeled_jpeg_reply,
    no_image_reply,
    not_an_answer_reply,
    not_an_image_reply,
    prompt_blocked_reply,
    result_png,
    safety_reply,
    sample_jpeg,
    truncated_json_reply,
    wrong_shape_reply,
)
from local.fakes.gemini_server import FakeGemini, gemini_server
from tests.support.booth import jpeg

KEYS = "key-a,key-b"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with gemini_server() as server:
        yield server


async def files_deleted(fake: FakeGemini) -> bool:
    for _ in range(50):
        if not fake.files:
            return True
        await asyncio.sleep(0.05)
    return False


def provider_settings(fake: FakeGemini, keys: str | None = KEYS) -> Settings:
    return Settings(_env_file=None, app_env="test", gemini_api_key=keys, gemini_base_url=fake.url)


def catalog_with_limits(limits: dict[str, Any]) -> Catalog:
    raw = json.loads((PROJECT_ROOT / "configs" / "providers.json").read_text())
    next(p for p in raw["providers"] if p["id"] == "gemini")["limits"] = limits
    return Catalog.parse(raw)


def gemini_request(
    operation: str = "change_image",
    settings: dict[str, Any] | None = None,
    media: dict[str, ImageInput] | None = None,
    timeout: float = 10.0,
) -> ProviderRequest:
    return ProviderRequest(
        job_id="job-1",
        attempt=1,
        operation_id=operation,
        settings=settings if settings is not None else {"prompt": "Add a hat."},
        source=ImageInput(jpeg(200, 150), "image/jpeg"),
        media=media or {},
        timeout_sec=timeout,
    )


@pytest.fixture
async def provider(fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    p = GeminiProvider(provider_settings(fake))
    try:
        yield p
    finally:
        await p.close()


async def run_error(provider: GeminiProvider, request: ProviderRequest | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.run(request or gemini_request())
    return caught.value


async def test_without_a_key_the_call_fails_before_any_request(fake: FakeGemini) -> None:
    p = GeminiProvider(provider_settings(fake, keys=None))
    err = await run_error(p)
    await p.close()
    assert (err.code, err.retryable) == ("api_key_missing", False)
    assert fake.requests == []


async def test_when_every_key_answers_429_the_attempt_is_rate_limited_until_the_first_key_is_free(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script("key-a", error_reply(429, "quota", retry_delay="3s"))
    fake.script("key-b", error_reply(429, "quota", retry_after=7))
    err = await run_error(provider)
    assert (err.code, err.retryable) == ("rate_limited", True)
    assert err.retry_after is not None and 2.5 < err.retry_after <= 3.0
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-b"]
    again = await run_error(provider)  # both keys still rest: no request at all
    assert again.code == "rate_limited" and len(fake.generate_calls()) == 2


@pytest.mark.parametrize(
    ("reply", "code", "retryable"),
    [
        (prompt_blocked_reply("PROHIBITED_CONTENT"), "safety_blocked", False),
        (safety_reply("SAFETY"), "safety_blocked", False),
        (no_image_reply(), "no_image", True),
        (
            error_reply(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"),
            "auth_failed",
            False,
        ),
        (error_reply(403, "Method doesn't allow unregistered callers."), "auth_failed", False),
        (error_reply(404, "models/nope is not found for API version v1beta"), "bad_request", False),
        (error_reply(500, "An internal error has occurred."), "provider_unavailable", True),
        (error_reply(503, "The model is overloaded. Please try again later."), "provider_unavailable", True),
        # Malformed answers are Gemini's fault, and another attempt may get a good one.
        (html_reply(200), "bad_answer", True),
        (truncated_json_reply(), "bad_answer", True),
        (wrong_shape_reply(), "bad_answer", True),
        (not_an_answer_reply(), "bad_answer", True),
        (not_an_image_reply(), "bad_answer", True),
        (cut_reply(), "network_error", True),  # the connection dropped mid-body: a transport fault
        (html_reply(502), "provider_unavailable", True),
        (html_reply(500), "provider_unavailable", True),
    ],
)
async def test_answers_map_to_typed_errors(
    provider: GeminiProvider, fake: FakeGemini, reply: Any, code: str, retryable: bool
) -> None:
    fake.script(None, reply)
    err = await run_error(provider)
    assert (err.code, err.retryable) == (code, retryable)
    assert len(fake.generate_calls()) == 1


async def test_a_bad_request_reports_the_api_message_but_never_the_key(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script(None, error_reply(400, "Invalid value at 'contents' for key key-a: image too small"))
    err = await run_error(provider)
    assert (err.code, err.retryable) == ("bad_request", False)
    assert "image too small" in err.message and "key-a" not in err.message and "key-a" not in str(err)


async def test_an_unreachable_server_is_a_retryable_network_error(fake: FakeGemini) -> None:
    settings = provider_settings(fake).model_copy(update={"gemini_base_url": "http://127.0.0.1:9"})  # discard port
    p = GeminiProvider(settings)
    err = await run_error(p)
    await p.close()
    assert (err.code, err.retryable) == ("network_error", True)
    assert "key-a" not in err.message


async def test_cost_falls_back_to_the_per_image_price_without_usage_metadata(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script(None, image_reply(usage=False))
    result = await provider.run(gemini_request())
    assert result.cost == pytest.approx(0.039) and result.image.data == fake.default_image


async def test_a_minute_quota_longer_than_the_timeout_fails_instead_of_waiting(fake: FakeGemini) -> None:
    p = GeminiProvider(provider_settings(fake, keys="key-a"), catalog_with_limits({"requests_per_minute": 1}))
    try:
        await p.run(gemini_request())
        started = time.monotonic()
        err = await run_error(p, gemini_request(timeout=2.0))
        assert time.monotonic() - started < 0.5
    finally:
        await p.close()
    assert (err.code, err.retryable) == ("rate_limited", True)
    assert err.retry_after is not None and 55 < err.retry_after <= 60
    assert len(fake.generate_calls()) == 1


async def test_uploaded_files_are_waited_for_reuploaded_per_key_and_deleted(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    provider.inline_limit = 1000  # force the Files API for small images
    provider.file_poll_sec = 0.02
    fake.file_gets_until_active = 2  # PROCESSING until the second files.get
    fake.script("key-a", error_reply(429, "quota", retry_after=30))
    reference = result_png((5, 5, 5), (40, 40))
    request = gemini_request(
        "style_transfer",
        {"reference_media_id": "x", "prompt": "Like this."},
        {"reference_media_id": ImageInput(reference, "image/png")},
    )
    result = await provider.run(request)
    assert result.image.data == fake.default_image
    # key-a uploaded both images and was refused (429); key-b cannot use key-a's files, so it uploaded its own.
    starts = [u for u in fake.uploads() if u.headers.get("x-goog-upload-command") == "start"]
    assert [u.api_key for u in starts] == ["key-a", "key-a", "key-b", "key-b"]
    gets = [r for r in fake.requests if r.method == "GET"]
    assert len(gets) == 8  # each of the 4 files was PROCESSING: polled twice until ACTIVE
    calls = fake.generate_calls()
    assert [c.api_key for c in calls] == ["key-a", "key-b"]
    assert [p.kind for p in calls[1].parts] == ["file", "file", "text"]
    assert await files_deleted(fake)
    assert len(fake.deleted) == 4


async def test_a_429_with_retry_after_zero_still_rests_the_key_briefly(fake: FakeGemini) -> None:
    fake.script("key-a", error_reply(429, "quota", retry_after=0), error_reply(429, "quota", retry_after=0))
    p = GeminiProvider(provider_settings(fake, keys="key-a"))
    try:
        err = await run_error(p)
    finally:
        await p.close()
    assert (err.code, err.retryable) == ("rate_limited", True)
    assert err.retry_after is not None and 0.5 < err.retry_after <= 1.0
    assert len(fake.generate_calls()) == 1  # no hammering within the attempt


# -- a 429 that a retry cannot help: per-day quotas --


def spent_until(err: ProviderError, before: datetime) -> None:
    """`err` is the daily-quota refusal: final, naming the quota, resetting at the next midnight Pacific time."""
    assert (err.code, err.retryable, err.quota_scope) == ("quota_exhausted", False, "day")
    assert err.resets_at in {next_daily_reset(before), next_daily_reset(datetime.now(UTC))}
    assert err.resets_at is not None and err.resets_at.isoformat() in err.message


async def test_the_reported_per_day_429_fails_at_once_without_a_second_paid_call(fake: FakeGemini) -> None:
    fake.script("key-a", daily_quota_reply("47s"))  # then unscripted calls would succeed: none may come
    p = GeminiProvider(provider_settings(fake, keys="key-a"))
    try:
        before = datetime.now(UTC)
        err = await run_error(p)
        spent_until(err, before)
        assert err.quota_id == "GenerateRequestsPerDayPerProjectPerModel"
        assert "generativelanguage.googleapis.com/generate_requests_per_model_per_day" in err.message
        assert "limit 2000" in err.message and "key-a" not in err.message
        assert err.retry_after is None  # not the 47 s of RetryInfo
        assert p.quota.rested(0) == "day"
        again = await run_error(p)  # the next job: the key is spent until midnight Pacific, no call at all
        spent_until(again, before)
        assert again.quota_id == err.quota_id and "limit 2000" in again.message
    finally:
        await p.close()
    assert [c.api_key for c in fake.generate_calls()] == ["key-a"]


async def test_a_per_project_per_day_token_quota_on_every_key_fails_after_one_call_each(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script("key-a", daily_token_quota_reply())
    fake.script("key-b", daily_token_quota_reply())
    before = datetime.now(UTC)
    err = await run_error(provider)
    spent_until(err, before)
    assert err.quota_id == "GenerateContentInputTokensPerProjectPerDay" and "limit 5000000" in err.message
    assert (provider.quota.rested(0), provider.quota.rested(1)) == ("day", "day")
    assert (await run_error(provider)).code == "quota_exhausted"
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-b"]


async def test_a_day_exhausted_key_hands_the_call_to_the_next_and_is_not_called_again(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script("key-a", daily_quota_reply())
    result = await provider.run(gemini_request())
    assert result.image.data == fake.default_image  # from key-b, in the same attempt
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-b"]
    assert (provider.quota.rested(0), provider.quota.rested(1)) == ("day", None)
    for _ in range(2):  # the next jobs go straight to key-b
        assert (await provider.run(gemini_request())).image.data == fake.default_image
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-b", "key-b", "key-b"]


async def test_a_per_minute_429_still_rests_the_key_only_briefly(fake: FakeGemini) -> None:
    fake.script("key-a", minute_quota_reply("2s"))
    p = GeminiProvider(provider_settings(fake, keys="key-a"))
    try:
        before = datetime.now(UTC)
        err = await run_error(p)
        assert (err.code, err.retryable, err.quota_scope) == ("rate_limited", True, "minute")
        assert err.retry_after is not None and 1.5 < err.retry_after <= 2.0
        assert err.resets_at is not None
        assert before + timedelta(seconds=1) <= err.resets_at <= datetime.now(UTC) + timedelta(seconds=3)
        assert p.quota.rested(0) == "minute"
        monotonic = p.quota.clock
        p.quota.clock = lambda: monotonic() + 3  # three seconds later: the key is back
        assert (await p.run(gemini_request())).image.data == fake.default_image
    finally:
        await p.close()
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-a"]


# -- image parts by their bytes --


async def test_a_jpeg_declared_as_png_comes_back_labelled_jpeg(provider: GeminiProvider, fake: FakeGemini) -> None:
    jpeg = sample_jpeg()
    fake.script(None, mislabeled_jpeg_reply(jpeg))
    result = await provider.run(gemini_request())
    assert result.image == ImageInput(jpeg, "image/jpeg")  # passed through untouched, named by its bytes


async def test_a_png_signature_followed_by_text_is_labelled_by_its_signature(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    """The adapter names the part by its bytes; decoding it (and refusing it) is the worker's image boundary,
    tested end to end in test_gemini_boundary.py, as is converting to the slot's output format."""
    fake.script(None, fake_png_reply())
    assert (await provider.run(gemini_request())).image == ImageInput(FAKE_PNG, "image/png")


async def test_no_paid_call_starts_after_the_attempt_s_start_by(provider: GeminiProvider, fake: FakeGemini) -> None:
    """A full client-side minute window frees only after `start_by`: the adapter gives up instead of waiting and then
    starting a call that could not end before the booth's answer is due (it started one at 44 s of 48)."""
    from dataclasses import replace

    from boothbridge.providers.quota import QuotaLimiter, QuotaLimits

    provider.quota = QuotaLimiter(1, QuotaLimits(requests_per_minute=1, minute_sec=3.0))
    await provider.run(gemini_request())  # fills the window for 3 s
    request = replace(gemini_request(), start_by=time.monotonic() + 1.0)
    err = await run_error(provider, request)
    assert (err.code, err.retryable) == ("rate_limited", True)
    assert len(fake.generate_calls()) == 1
    await asyncio.sleep(3.0)  # the window frees: with time to start, the call is made
    await provider.run(replace(gemini_request(), start_by=time.monotonic() + 5.0))
    assert len(fake.generate_calls()) == 2
