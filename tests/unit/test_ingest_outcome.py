"""What a booth is answered (boothbridge.ingest.outcome), without I/O: every job status under each failure
policy, the timeout, a result that is gone, a database that is down, and the HTTP parts of each answer."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from boothbridge.db.raw import DatabaseUnavailable
from boothbridge.errors import AppError
from boothbridge.ingest.model import IngestOutcome, UploadedForm, log_fields
from boothbridge.ingest.outcome import (
    LOG_RETRY_SEC,
    BoothAnswer,
    booth_answer,
    error_answer,
    failure_answer,
    job_error,
    log_retry_sec,
    log_status_of,
    result_gone,
    success_answer,
)
from boothbridge.jobs.model import JobRecord
from tests.support.records import job_record

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PHOTO, MIME = b"\xff\xd8the booth's photo", "image/jpeg"
T_SYNC = 48.0

JOB = job_record(NOW, id=uuid.UUID("0b7c0e8e-8c1f-4b8e-9a57-2f4e7f0c1d2a"), settings_json={"prompt": "p"})
RESULT_ID = uuid.UUID("5d1f3a20-9b0e-4c55-8f0a-3e2d1c0b9a87")
SUCCEEDED = replace(JOB, status="succeeded", result_media_id=RESULT_ID, cost=0.039, finished_at=NOW)
FAILED = replace(JOB, status="failed", attempt=3, error_code="provider_rejected", error_message="no face found")
CANCELLED = replace(JOB, status="cancelled", error_code="cancelled")


def _answer(job: JobRecord, policy: str) -> tuple[IngestOutcome, BoothAnswer]:
    """What the service answers when its wait for `job` ends with no readable result."""
    err = job_error(job, T_SYNC)
    assert err is not None
    outcome = failure_answer(policy, job.id, PHOTO, MIME, err)
    return outcome, booth_answer(outcome)


def test_a_succeeded_job_with_a_result_is_no_error_and_answers_its_image() -> None:
    assert job_error(SUCCEEDED, T_SYNC) is None
    outcome = success_answer(SUCCEEDED, b"result", "image/png", fresh=True)
    assert (outcome.status, outcome.log_status, outcome.cost) == (200, "SUCCESS", 0.039)
    assert outcome.result_media_id == RESULT_ID and outcome.error is None and not outcome.fallback
    answer = booth_answer(outcome)
    assert answer == BoothAnswer(200, {"X-Job-Id": str(JOB.id)}, image=b"result", mime="image/png")


def test_a_re_post_answered_by_an_existing_job_carries_no_cost() -> None:
    assert success_answer(SUCCEEDED, b"result", "image/png", fresh=False).cost is None
    assert success_answer(replace(SUCCEEDED, cost=None), b"r", "image/png", fresh=True).cost is None


@pytest.mark.parametrize(
    ("job", "status", "code"),
    [
        (FAILED, 502, "provider_failed"),
        (CANCELLED, 502, "job_cancelled"),
        # Succeeded without a result (cannot happen through the queue): a failure, not a 200 without an image.
        (replace(SUCCEEDED, result_media_id=None), 502, "provider_failed"),
        (replace(JOB, status="queued", started_at=None), 504, "processing_timeout"),
        (JOB, 504, "processing_timeout"),
        (replace(JOB, status="waiting_provider"), 504, "processing_timeout"),
    ],
)
def test_each_job_state_without_a_result_under_policy_error_is_its_error(
    job: JobRecord, status: int, code: str
) -> None:
    outcome, answer = _answer(job, "error")
    assert (outcome.status, outcome.error and outcome.error.code) == (status, code)
    assert outcome.log_status == ("TIMEOUT" if status == 504 else "ERROR")
    assert not outcome.fallback and outcome.image is None
    assert answer.status == status and answer.image is None
    assert answer.body is not None and answer.body["error"]["code"] == code
    assert answer.body["error"]["details"]["job_id"] == str(job.id)
    assert answer.headers == {"X-Job-Id": str(job.id)}


@pytest.mark.parametrize("job", [FAILED, CANCELLED, JOB, replace(JOB, status="waiting_provider")])
def test_each_job_state_without_a_result_under_policy_original_is_the_booth_s_photo(job: JobRecord) -> None:
    outcome, answer = _answer(job, "original")
    assert (outcome.status, outcome.fallback, outcome.image, outcome.mime) == (200, True, PHOTO, MIME)
    # The log still says why: the error is kept, and a timeout is still a timeout.
    expected = job_error(job, T_SYNC)
    assert expected is not None and outcome.error is not None and outcome.error.code == expected.code
    assert outcome.log_status == ("TIMEOUT" if job.status in ("running", "waiting_provider") else "ERROR")
    assert answer == BoothAnswer(200, {"X-Fallback": "original", "X-Job-Id": str(job.id)}, image=PHOTO, mime=MIME)


def test_the_504_says_the_job_goes_on_and_how_long_the_booth_waited() -> None:
    err = job_error(JOB, T_SYNC)
    assert err is not None and err.status == 504
    assert err.details == {"job_id": str(JOB.id), "t_sync_response": T_SYNC}
    assert "re-post" in err.message


def test_a_failed_job_s_502_names_its_reason_and_the_provider_s_words() -> None:
    err = job_error(FAILED, T_SYNC)
    assert err is not None
    assert err.message == "the provider could not process the photo"
    assert err.details == {
        "job_id": str(JOB.id),
        "reason": "provider_rejected",
        "attempts": 3,
        "provider_message": "no face found",
    }
    quota = replace(FAILED, error_code="quota_exhausted", error_message="daily quota used up; resets 09:00 UTC")
    quota_err = job_error(quota, T_SYNC)
    assert quota_err is not None and quota_err.message == "daily quota used up; resets 09:00 UTC"
    silent = job_error(replace(FAILED, error_message=None), T_SYNC)
    assert silent is not None
    assert silent.details == {"job_id": str(JOB.id), "reason": "provider_rejected", "attempts": 3}


@pytest.mark.parametrize(("policy", "status"), [("error", 502), ("original", 200)])
def test_a_result_that_is_no_longer_stored_is_a_provider_failure(policy: str, status: int) -> None:
    err = result_gone(SUCCEEDED)
    assert (err.status, err.code, err.message) == (502, "provider_failed", "the result is no longer stored")
    outcome = failure_answer(policy, SUCCEEDED.id, PHOTO, MIME, err)
    assert (outcome.status, outcome.log_status, outcome.fallback) == (status, "ERROR", policy == "original")


def test_a_database_down_while_waiting_is_503_with_retry_after_unless_the_booth_gets_its_photo() -> None:
    down = DatabaseUnavailable("connection_refused")
    outcome = failure_answer("error", JOB.id, PHOTO, MIME, down)
    answer = booth_answer(outcome)
    assert (answer.status, outcome.log_status) == (503, "ERROR")
    assert answer.headers == {"X-Job-Id": str(JOB.id), "Retry-After": down.headers["Retry-After"]}
    assert answer.body == down.body()
    # The booth's own photo is a complete answer: nothing to retry, so no Retry-After.
    fallback = booth_answer(failure_answer("original", JOB.id, PHOTO, MIME, down))
    assert fallback.status == 200 and "Retry-After" not in fallback.headers
    assert fallback.headers["X-Fallback"] == "original"


def test_an_error_before_any_job_is_answered_as_itself_without_a_job_id() -> None:
    refused = AppError(401, "invalid_password", "wrong or missing ingest password")
    outcome = error_answer(refused)
    assert (outcome.status, outcome.log_status, outcome.job_id) == (401, "ERROR", None)
    assert booth_answer(outcome) == BoothAnswer(401, {}, body=refused.body())
    busy = AppError(503, "provider_backlog_full", "full", {"limit": 64}, headers={"Retry-After": "5"})
    assert booth_answer(error_answer(busy)).headers == {"Retry-After": "5"}


def test_the_outcome_s_own_headers_are_kept_and_the_error_s_win_on_a_clash() -> None:
    outcome = error_answer(AppError(503, "busy", "try again", headers={"Retry-After": "1"}), JOB.id)
    outcome.headers.update({"X-Processing-Ms": "12", "Retry-After": "99"})
    answer = booth_answer(outcome)
    assert answer.headers == {"X-Processing-Ms": "12", "X-Job-Id": str(JOB.id), "Retry-After": "1"}
    assert outcome.headers == {"X-Processing-Ms": "12", "Retry-After": "99"}  # the outcome is not changed


def test_the_fallback_header_is_a_fresh_dict_per_answer() -> None:
    first = failure_answer("original", JOB.id, PHOTO, MIME, AppError(502, "provider_failed", "x"))
    first.headers["X-Processing-Ms"] = "5"
    second = failure_answer("original", JOB.id, PHOTO, MIME, AppError(502, "provider_failed", "x"))
    assert second.headers == {"X-Fallback": "original"}


def test_log_status_is_timeout_only_for_the_504() -> None:
    assert log_status_of(AppError(504, "processing_timeout", "t")) == "TIMEOUT"
    for code in ("provider_failed", "job_cancelled", "database_unavailable", "slot_not_found"):
        assert log_status_of(AppError(500, code, "m")) == "ERROR"


def test_the_log_row_retries_a_blink_but_not_a_database_known_to_be_down() -> None:
    assert log_retry_sec(error_answer(DatabaseUnavailable())) == 0.0
    assert log_retry_sec(failure_answer("original", JOB.id, PHOTO, MIME, DatabaseUnavailable())) == 0.0
    assert log_retry_sec(success_answer(SUCCEEDED, b"r", "image/png", fresh=True)) == LOG_RETRY_SEC
    assert log_retry_sec(error_answer(AppError(504, "processing_timeout", "t"))) == LOG_RETRY_SEC
    assert LOG_RETRY_SEC == 2.0


def _cut_off(verified: bool) -> tuple[UploadedForm, IngestOutcome]:
    form = UploadedForm(
        file=None,
        filename=None,
        declared_type=None,
        fields={"password": "secret", "event": "Wedding"},
        password_verified=verified,
    )
    return form, error_answer(AppError(408, "request_timeout", "the request body stalled"))


def test_a_form_cut_off_after_its_password_was_verified_is_recorded_as_the_booths() -> None:
    form, outcome = _cut_off(verified=True)
    assert log_fields(form, outcome) == {"event": "Wedding"}


def test_a_form_cut_off_before_its_password_was_verified_is_recorded_as_facts_only() -> None:
    form, outcome = _cut_off(verified=False)
    assert log_fields(form, outcome) == {
        "_refused": {"field_count": 2, "field_chars": 26, "password_sent": True, "file_bytes": None}
    }
