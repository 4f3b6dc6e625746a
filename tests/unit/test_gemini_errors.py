"""Gemini's refusals and malformed answers, mapped without the network: 429 bodies with google.rpc QuotaFailure
/ RetryInfo details (per-day quotas are final until midnight Pacific time, per-minute ones are retryable), the
daily reset instant across daylight-saving changes, SDK exceptions for bodies that are not an answer, and image
parts chosen by their bytes rather than their declared mimeType."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pydantic
import pytest
from google.genai import errors, types
from PIL import Image

from boothbridge.providers.base import ImageInput, ProviderError
from boothbridge.providers.gemini import wire
from local.fakes.gemini_replies import (
    FAKE_PNG,
    daily_quota_reply,
    daily_token_quota_reply,
    minute_quota_reply,
    quota_reply,
    quota_violation,
    sample_jpeg,
)

NOW = datetime(2026, 11, 29, 19, 39, 39, tzinfo=UTC)  # 11:39:39 PST


def api_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> errors.APIError:
    cls = errors.ClientError if status < 500 else errors.ServerError
    return cls(status, body, httpx.Response(status, headers=headers or {}, json=body))


def mapped(body: dict[str, Any], headers: dict[str, str] | None = None, now: datetime = NOW) -> ProviderError:
    return wire.error_from_api(api_error(429, body, headers), ["SECRET-KEY"], now)


# -- the daily reset: midnight Pacific time, in UTC --


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        ("2026-11-29T19:39:39+00:00", "2026-11-30T08:00:00+00:00"),  # PST (UTC-8): midnight is 08:00 UTC
        ("2026-07-01T12:00:00+00:00", "2026-07-02T07:00:00+00:00"),  # PDT (UTC-7): midnight is 07:00 UTC
        ("2026-11-30T07:59:59+00:00", "2026-11-30T08:00:00+00:00"),  # 23:59:59 Pacific: one second to go
        ("2026-11-30T08:00:00+00:00", "2026-12-01T08:00:00+00:00"),  # exactly midnight: the next one
        ("2026-11-30T02:00:00+00:00", "2026-11-30T08:00:00+00:00"),  # a new UTC day, still the Pacific day before
        ("2026-03-08T09:00:00+00:00", "2026-03-09T07:00:00+00:00"),  # 01:00 PST on the day clocks spring forward
        ("2026-11-01T12:00:00+00:00", "2026-11-02T08:00:00+00:00"),  # 04:00 PST on the day clocks fall back
        ("2026-11-01T07:30:00+00:00", "2026-11-02T08:00:00+00:00"),  # 00:30 PDT on that same day
        ("2026-11-29T10:00:00+09:00", "2026-11-29T08:00:00+00:00"),  # 17:00 PST on the 28th, written in JST
    ],
)
def test_the_daily_reset_is_the_next_midnight_in_los_angeles(now: str, reset: str) -> None:
    assert wire.next_daily_reset(datetime.fromisoformat(now)) == datetime.fromisoformat(reset)


def test_a_naive_time_is_taken_as_utc() -> None:
    assert wire.next_daily_reset(datetime(2026, 11, 29, 19, 0)) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


# -- 429s --


def test_the_reported_per_day_429_is_final_until_midnight_pacific_despite_its_retry_delay() -> None:
    err = mapped(daily_quota_reply("47s").body)
    assert (err.code, err.retryable) == ("quota_exhausted", False)
    assert err.quota_scope == "day"
    assert err.quota_id == "GenerateRequestsPerDayPerProjectPerModel"
    assert err.resets_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert err.retry_after is None  # the 47 s hint would only buy a second refused (paid) call
    assert "GenerateRequestsPerDayPerProjectPerModel" in err.message
    assert "generativelanguage.googleapis.com/generate_requests_per_model_per_day" in err.message
    assert "limit 2000" in err.message and "model gemini-2.5-flash-image" in err.message
    assert "2026-11-30T08:00:00+00:00" in err.message
    assert err.details() == {
        "quota_scope": "day",
        "quota_id": "GenerateRequestsPerDayPerProjectPerModel",
        "resets_at": "2026-11-30T08:00:00+00:00",
    }


def test_a_per_project_per_day_token_quota_is_final_too() -> None:
    err = mapped(daily_token_quota_reply().body, now=datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    assert (err.code, err.retryable, err.quota_scope) == ("quota_exhausted", False, "day")
    assert err.quota_id == "GenerateContentInputTokensPerProjectPerDay"
    assert err.resets_at == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)  # summer: midnight PDT
    assert "limit 5000000" in err.message and "model" not in err.message.split("; it resets")[0]


def test_a_day_violation_beside_minute_ones_decides() -> None:
    body = quota_reply(
        quota_violation(
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "x/generate_content_free_tier_requests"
        ),
        quota_violation(
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "x/generate_content_free_tier_requests", 0
        ),
        retry_delay="10s",
    ).body
    err = mapped(body)
    assert (err.code, err.quota_scope, err.quota_id) == (
        "quota_exhausted",
        "day",
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
    )
    assert "limit 0" in err.message


def test_the_metric_names_the_window_when_the_id_does_not() -> None:
    violation = {"quota_metric": "generativelanguage.googleapis.com/generate_requests_per_model_per_day"}
    body = {
        "error": {
            "code": 429,
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}],
        }
    }
    err = mapped(body)
    assert (err.code, err.quota_id) == ("quota_exhausted", violation["quota_metric"])


def test_a_per_minute_429_stays_a_short_retryable_rate_limit() -> None:
    err = mapped(minute_quota_reply("47s").body)
    assert (err.code, err.retryable, err.retry_after) == ("rate_limited", True, 47.0)
    assert (err.quota_scope, err.quota_id) == ("minute", "GenerateRequestsPerMinutePerProjectPerModel")
    assert err.resets_at == NOW + timedelta(seconds=47)
    assert "limit 500" in err.message


def test_a_429_without_quota_failure_is_a_minute_rate_limit() -> None:
    body = {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "X"}}
    err = mapped(body, {"Retry-After": "12"})
    assert (err.code, err.retryable, err.retry_after, err.quota_scope) == ("rate_limited", True, 12.0, "minute")
    assert err.resets_at == NOW + timedelta(seconds=12) and err.quota_id is None
    assert "Resource has been exhausted" in err.message
    bare = mapped({"error": {"code": 429}})
    assert (bare.code, bare.retry_after, bare.resets_at, bare.quota_scope) == ("rate_limited", None, None, "minute")


def test_a_429_with_an_unnamed_window_is_treated_as_short() -> None:
    body = quota_reply(quota_violation("SpendBasedLimitPerProject", "x/spend", None, {}), retry_delay="5s").body
    err = mapped(body)
    assert (err.code, err.retry_after, err.quota_id) == ("rate_limited", 5.0, "SpendBasedLimitPerProject")


def test_quota_messages_never_carry_a_key() -> None:
    body = daily_quota_reply().body
    body["error"]["details"][0]["violations"][0]["quotaDimensions"]["model"] = "m SECRET-KEY"
    err = mapped(body)
    assert "SECRET-KEY" not in err.message and "***" in err.message


def test_violations_are_read_in_either_json_spelling() -> None:
    camel = api_error(429, daily_quota_reply().body)
    [violation] = wire.quota_violations(camel)
    assert violation == wire.QuotaViolation(
        quota_id="GenerateRequestsPerDayPerProjectPerModel",
        metric="generativelanguage.googleapis.com/generate_requests_per_model_per_day",
        limit=2000,
        dimensions={"location": "global", "model": "gemini-2.5-flash-image"},
    )
    assert violation.scope == "day"
    snake = {"quota_id": "GenerateRequestsPerMinutePerProjectPerModel", "quota_value": 7}
    body = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [snake]}]}}
    [other] = wire.quota_violations(api_error(429, body))
    assert (other.quota_id, other.limit, other.scope) == ("GenerateRequestsPerMinutePerProjectPerModel", 7, "minute")


# -- answers that are not answers --


def validation_error(model: type[pydantic.BaseModel], data: Any) -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def test_a_body_that_is_not_json_is_a_bad_answer() -> None:
    html = "<!DOCTYPE html><html><body>SECRET-KEY rejected</body></html>"
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(html)
    err = wire.answer_error(caught.value, ["SECRET-KEY"])
    assert err is not None and (err.code, err.retryable) == ("bad_answer", True)
    assert "<!DOCTYPE html>" in err.message and "SECRET-KEY" not in err.message


def test_truncated_json_is_a_bad_answer() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads('{"candidates": [{"content": {"parts": [{"inlineData": {"data": "iVBO')
    err = wire.answer_error(caught.value, [])
    assert err is not None and err.code == "bad_answer" and "not JSON" in err.message


def test_json_of_another_shape_is_a_bad_answer() -> None:
    exc = validation_error(types.GenerateContentResponse, {"candidates": "none today"})
    err = wire.answer_error(exc, [])
    assert err is not None and (err.code, err.retryable) == ("bad_answer", True)
    assert "GenerateContentResponse" in err.message and "candidates" in err.message
    unknown = wire.answer_error(errors.UnknownApiResponseError("Failed to parse response as JSON. Raw: <html>"), [])
    assert unknown is not None and unknown.code == "bad_answer" and "<html>" not in unknown.message


def test_errors_about_our_own_request_are_not_blamed_on_gemini() -> None:
    assert wire.answer_error(validation_error(types.Part, {"inline_data": 5}), []) is None
    assert wire.answer_error(ValueError("bad argument"), []) is None


def test_an_answer_without_candidates_or_feedback_is_a_bad_answer() -> None:
    with pytest.raises(ProviderError) as caught:
        wire.read_image(types.GenerateContentResponse(), [])
    assert (caught.value.code, caught.value.retryable) == ("bad_answer", True)


# -- image parts by their bytes --


def png(size: tuple[int, int] = (20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


def answer(*parts: dict[str, Any]) -> types.GenerateContentResponse:
    body = {"candidates": [{"content": {"role": "model", "parts": list(parts)}, "finishReason": "STOP"}]}
    return types.GenerateContentResponse.model_validate(body)


def inline(data: bytes, mime: str = "image/png", **extra: Any) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}, **extra}


def test_a_jpeg_declared_as_png_is_labelled_jpeg() -> None:
    jpeg = sample_jpeg()
    assert wire.read_image(answer(inline(jpeg, "image/png")), []) == ImageInput(jpeg, "image/jpeg")


def test_an_image_declared_as_something_else_is_still_taken() -> None:
    data = png()
    assert wire.read_image(answer(inline(data, "application/octet-stream")), []).mime == "image/png"
    assert wire.read_image(answer(inline(data, "")), []) == ImageInput(data, "image/png")


def test_a_part_that_is_no_image_is_passed_over_for_one_that_is() -> None:
    data = png()
    picked = wire.read_image(answer(inline(b"<html>nothing</html>"), inline(data, "image/webp")), [])
    assert picked == ImageInput(data, "image/png")


def test_only_parts_that_are_no_image_make_a_bad_answer() -> None:
    with pytest.raises(ProviderError) as caught:
        wire.read_image(answer({"text": "here"}, inline(b"GIF-ish but not quite", "image/gif")), [])
    assert (caught.value.code, caught.value.retryable) == ("bad_answer", True)
    assert "image/gif" in caught.value.message


def test_a_png_signature_followed_by_text_is_labelled_png_by_its_signature() -> None:
    # Labelling only: decoding every provider's image is the worker's check (the result boundary).
    assert wire.read_image(answer(inline(FAKE_PNG, "image/png")), []) == ImageInput(FAKE_PNG, "image/png")
