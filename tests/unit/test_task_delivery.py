"""What one PUT to a writeUrl means (`boothbridge.tasks.delivery.outcome_of`): delivered, tried again after a backoff
while the result TTL allows, or failed for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from boothbridge.tasks.delivery import Outcome, outcome_of

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=72)


def outcome(
    status: int | None, body: str = "", attempts: int = 1, expires_at: datetime = LATER, error: str | None = None
) -> Outcome:
    return outcome_of(
        status, body, attempts=attempts, now=NOW, expires_at=expires_at, base_sec=1.0, max_sec=60.0, error=error
    )


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_is_delivered(status: int) -> None:
    assert outcome(status).kind == "delivered"


@pytest.mark.parametrize("status", [400, 403, 404, 412])
def test_4xx_fails_for_good_with_the_status_and_an_excerpt(status: int) -> None:
    body = "<Error><Code>SignatureDoesNotMatch</Code>\n  <Message>" + "x" * 500 + "</Message></Error>"
    result = outcome(status, body)
    assert (result.kind, result.code, result.retry_at) == ("failed", "delivery_rejected", None)
    assert result.message is not None and str(status) in result.message and "SignatureDoesNotMatch" in result.message
    assert len(result.message) < 260 and "\n" not in result.message


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "delivery_server_error"),
        (503, "delivery_server_error"),
        (429, "delivery_server_error"),
        (408, "delivery_server_error"),
        (None, "delivery_unreachable"),
    ],
)
def test_5xx_throttling_and_network_errors_are_retried_with_backoff(status: int | None, code: str) -> None:
    first, fifth = outcome(status, error="ConnectError"), outcome(status, attempts=5, error="ConnectError")
    assert (first.kind, first.code, fifth.kind) == ("retry", code, "retry")
    assert first.retry_at is not None and fifth.retry_at is not None
    assert NOW + timedelta(seconds=0.5) <= first.retry_at <= NOW + timedelta(seconds=1)
    assert NOW + timedelta(seconds=8) <= fifth.retry_at <= NOW + timedelta(seconds=16)
    capped = outcome(status, attempts=50).retry_at
    assert capped is not None and capped <= NOW + timedelta(seconds=60)


def test_no_retry_past_the_result_ttl() -> None:
    result = outcome(500, attempts=3, expires_at=NOW + timedelta(seconds=1))
    assert (result.kind, result.code) == ("failed", "delivery_expired")
