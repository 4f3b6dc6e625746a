"""A job's pipeline and where it goes after each step (pure: no I/O). Issue 14; SPEC §4 "A slot is a pipeline".

The job row holds the pipeline it runs (`jobs.pipeline`, built by ingest from the slot when the photo arrives):

    {"steps": [{"provider_id", "operation_id", "settings_json",
                "alternatives": [{"provider_id", "operation_id", "settings_json"}], "optional": bool}],
     "finishing": {...},            # the slot's finishing stage (boothbridge.images.finishing)
     "max_attempts": n}             # provider attempts allowed per step (and per alternative)

`{}` is a one-step pipeline whose step is the job's own provider/operation/settings columns (jobs from before
pipelines). The job's columns always name the call it makes next (`step_index`, `alternative`): the claim takes
work per provider, so a job moving to a step of another provider is simply queued for that provider.

The decisions here are what the worker and the webhook path do after a call:
- `after_success`: the next step (its input is this step's output), or the end (finishing, then the result);
- `after_failure` (the call failed for good: no retry, or no time for one): the next alternative of the step that
  can still end before the job's last useful moment, else skip the step when it is optional (the next step gets
  this step's input), else fail the job (the slot's failure policy answers the booth).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from boothbridge.jobs.backoff import can_start

DEFAULT_STEP_ATTEMPTS = 3

# Failures no other provider can cure: the job's own input is gone or unusable, or the finishing stage failed
# after the last step succeeded. They fail the job without trying alternatives.
JOB_FATAL_CODES = frozenset({"source_expired", "input_expired", "image_undecodable"})
FINISHING_CODE_PREFIXES = ("finishing_", "overlay_")


@dataclass(frozen=True)
class StepCall:
    """One provider call a step can make: its own (alternative 0) or one of its alternatives."""

    provider_id: str
    operation_id: str
    settings_json: dict[str, Any]


@dataclass(frozen=True)
class PlannedStep:
    calls: tuple[StepCall, ...]  # the step's own call first, then its alternatives in order
    optional: bool = False


@dataclass(frozen=True)
class Plan:
    steps: tuple[PlannedStep, ...]
    finishing: dict[str, Any]
    max_attempts: int

    @property
    def count(self) -> int:
        return len(self.steps)

    def call(self, step_index: int, alternative: int) -> StepCall:
        return self.steps[step_index].calls[alternative]


def _call(raw: Mapping[str, Any]) -> StepCall:
    return StepCall(str(raw["provider_id"]), str(raw["operation_id"]), dict(raw.get("settings_json") or {}))


def plan_of(
    pipeline: Mapping[str, Any],
    provider_id: str,
    operation_id: str,
    settings_json: Mapping[str, Any],
    max_attempts: int,
) -> Plan:
    """The plan of a job's `pipeline` column; `{}` (or no steps): one step, the job's own call."""
    steps = pipeline.get("steps") or []
    if not steps:
        only = StepCall(provider_id, operation_id, dict(settings_json))
        return Plan((PlannedStep((only,)),), dict(pipeline.get("finishing") or {}), max_attempts)
    planned = tuple(
        PlannedStep((_call(step), *(_call(alt) for alt in step.get("alternatives") or [])), bool(step.get("optional")))
        for step in steps
    )
    attempts = int(pipeline.get("max_attempts") or DEFAULT_STEP_ATTEMPTS)
    return Plan(planned, dict(pipeline.get("finishing") or {}), attempts)


@dataclass(frozen=True)
class Move:
    """Where the job goes next.

    - `next`: to (`step_index`, `alternative`) = `call`, queued at once; `keeps_input` says the step's input stays
      the input (an alternative, or a skipped step) rather than becoming the output just made;
    - `finish`: the pipeline is done: finishing, then the result (`keeps_input`: the last step was skipped, so
      the result is made from the current input);
    - `fail`: the job fails for good with the failure that led here.
    """

    kind: str
    step_index: int = 0
    alternative: int = 0
    call: StepCall | None = None
    keeps_input: bool = False
    skipped: bool = False  # the step that just ended was optional and is skipped


def after_success(plan: Plan, step_index: int) -> Move:
    """After step `step_index` produced an image: the next step's own call with that image, or the end."""
    nxt = step_index + 1
    if nxt >= plan.count:
        return Move("finish")
    return Move("next", nxt, 0, plan.call(nxt, 0))


def after_failure(
    plan: Plan,
    step_index: int,
    alternative: int,
    code: str,
    *,
    seconds_left: float,
    typical_sec: Callable[[str], float],
) -> Move:
    """After the call (`step_index`, `alternative`) failed for good with `code`, with `seconds_left` until the
    job's last useful moment: the first later alternative whose provider's typical time (`typical_sec(provider)`)
    still fits, else the step skipped when optional, else failure. A job-fatal failure (`JOB_FATAL_CODES`, the
    finishing stage's) fails at once."""
    if code in JOB_FATAL_CODES or code.startswith(FINISHING_CODE_PREFIXES):
        return Move("fail")
    step = plan.steps[step_index]
    for alt in range(alternative + 1, len(step.calls)):
        call = step.calls[alt]
        if can_start(seconds_left, typical_sec(call.provider_id)):
            return Move("next", step_index, alt, call, keeps_input=True)
    if not step.optional:
        return Move("fail")
    nxt = step_index + 1
    if nxt >= plan.count:
        return Move("finish", keeps_input=True, skipped=True)
    return Move("next", nxt, 0, plan.call(nxt, 0), keeps_input=True, skipped=True)
