"""A hostile review of issue 15, unit level: what a writeUrl answers is recorded as text PostgreSQL can store.

A writeUrl answering 403 with a NUL (or another control character) in its body made `delivery_rejected`'s message
unstorable: every delivery pass then failed on it and the task stayed `uploading_image`. The excerpt now keeps
printable characters only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from boothbridge.tasks.delivery import outcome_of

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("body", ["<Error>\x00denied</Error>", "denied\x1b[31m\x7f\x00\x00 here"])
def test_a_refusal_body_with_control_characters_is_stored_printable(body: str) -> None:
    result = outcome_of(403, body, attempts=1, now=NOW, expires_at=NOW + timedelta(hours=1), base_sec=1.0, max_sec=60.0)
    assert (result.kind, result.code) == ("failed", "delivery_rejected")
    assert result.message is not None and "denied" in result.message
    assert result.message.isprintable()
