"""Where a job goes after each call of its pipeline (boothbridge.jobs.pipeline): next step, alternative, skip, end."""

from __future__ import annotations

from typing import Any

from boothbridge.jobs.pipeline import DEFAULT_STEP_ATTEMPTS, StepCall, after_failure, after_success, plan_of

TYPICAL = {"local": 1.0, "gemini": 12.0, "turbotext": 20.0, "fal": 8.0}


def typical(provider_id: str) -> float:
    return TYPICAL.get(provider_id, 0.0)


def step(provider: str, operation: str, *alternatives: tuple[str, str], optional: bool = False) -> dict[str, Any]:
    return {
        "provider_id": provider,
        "operation_id": operation,
        "settings_json": {"prompt": f"{provider}/{operation}"},
        "alternatives": [
            {"provider_id": p, "operation_id": o, "settings_json": {"n": i}} for i, (p, o) in enumerate(alternatives)
        ],
        "optional": optional,
    }


def plan(*steps: dict[str, Any], finishing: dict[str, Any] | None = None, max_attempts: int | None = 2) -> Any:
    pipeline: dict[str, Any] = {"steps": list(steps), "finishing": finishing or {}}
    if max_attempts is not None:
        pipeline["max_attempts"] = max_attempts
    return plan_of(pipeline, "unused", "unused", {}, 9)


def test_an_empty_pipeline_is_one_step_made_of_the_jobs_own_columns() -> None:
    p = plan_of({}, "gemini", "change_image", {"prompt": "x"}, 4)
    assert p.count == 1
    assert p.call(0, 0) == StepCall("gemini", "change_image", {"prompt": "x"})
    assert p.max_attempts == 4  # the job's own limit
    assert p.finishing == {}
    assert after_success(p, 0).kind == "finish"


def test_a_pipeline_without_max_attempts_gets_the_default_per_step() -> None:
    assert plan(step("local", "resize"), max_attempts=None).max_attempts == DEFAULT_STEP_ATTEMPTS


def test_success_moves_to_the_next_steps_own_call_with_the_new_image() -> None:
    p = plan(
        step("local", "reframe"), step("gemini", "change_image", ("turbotext", "change_image")), step("local", "resize")
    )
    move = after_success(p, 0)
    assert (move.kind, move.step_index, move.alternative, move.keeps_input) == ("next", 1, 0, False)
    assert move.call == StepCall("gemini", "change_image", {"prompt": "gemini/change_image"})
    # after step 1 succeeded on its alternative the next step is step 2's own call
    assert after_success(p, 1).call == StepCall("local", "resize", {"prompt": "local/resize"})
    assert after_success(p, 2).kind == "finish"


def test_failure_moves_to_the_first_alternative_that_fits_the_time_left() -> None:
    p = plan(step("gemini", "change_image", ("turbotext", "change_image"), ("fal", "edit")))
    # 30 s left: turbotext (20 s) fits
    move = after_failure(p, 0, 0, "provider_error", seconds_left=30.0, typical_sec=typical)
    assert (move.kind, move.step_index, move.alternative, move.keeps_input) == ("next", 0, 1, True)
    assert move.call is not None and move.call.provider_id == "turbotext"
    # 10 s left: turbotext cannot end in time, fal (8 s) can
    move = after_failure(p, 0, 0, "provider_error", seconds_left=10.0, typical_sec=typical)
    assert (move.alternative, move.call and move.call.provider_id) == (2, "fal")
    # after the last alternative: nothing left, the step is not optional
    assert after_failure(p, 0, 2, "provider_error", seconds_left=60.0, typical_sec=typical).kind == "fail"
    # 5 s left: no alternative can end in time
    assert after_failure(p, 0, 0, "provider_error", seconds_left=5.0, typical_sec=typical).kind == "fail"


def test_an_optional_step_that_fails_for_good_is_skipped_with_its_input() -> None:
    p = plan(step("local", "reframe"), step("fal", "upscale", optional=True), step("local", "resize"))
    move = after_failure(p, 1, 0, "provider_error", seconds_left=60.0, typical_sec=typical)
    assert (move.kind, move.step_index, move.alternative, move.keeps_input, move.skipped) == ("next", 2, 0, True, True)
    # an optional last step: the pipeline ends with the current input
    last = plan(step("local", "reframe"), step("fal", "upscale", optional=True))
    move = after_failure(last, 1, 0, "provider_error", seconds_left=60.0, typical_sec=typical)
    assert (move.kind, move.keeps_input, move.skipped) == ("finish", True, True)


def test_an_optional_step_tries_its_alternatives_before_it_is_skipped() -> None:
    p = plan(step("fal", "upscale", ("gemini", "change_image"), optional=True), step("local", "resize"))
    assert after_failure(p, 0, 0, "provider_error", seconds_left=60.0, typical_sec=typical).alternative == 1
    skipped = after_failure(p, 0, 1, "provider_error", seconds_left=60.0, typical_sec=typical)
    assert (skipped.kind, skipped.step_index, skipped.skipped) == ("next", 1, True)


def test_failures_no_provider_can_cure_fail_the_job_at_once() -> None:
    p = plan(step("gemini", "change_image", ("turbotext", "change_image"), optional=True), step("local", "resize"))
    for code in (
        "source_expired",
        "input_expired",
        "image_undecodable",
        "finishing_cap_unreachable",
        "overlay_missing",
    ):
        assert after_failure(p, 0, 0, code, seconds_left=60.0, typical_sec=typical).kind == "fail", code
