"""What a booth's photo runs (pure: no I/O): the variant the request chose, the job's pipeline snapshot built from
the slot with that choice and the booth's fields, and whether a re-post of the same photo attaches to an earlier
job (issue 14 items 1 and 6).

The variant. DSLR Remote Pro can put tokens (a survey answer) in the post URL, so the query parameter `variant`
of `/ingest/{slot_id}` names one; Breeze Booth sends survey answers as form fields (`surveyN_…`), so the slot may
name the field that does (`variant_field`). The first of the two, in that order, that names one of the slot's
variants is chosen (`slots.guest.choose_variant`: exact name, else the one name equal ignoring case and
surrounding spaces): the query parameter wins when both name one, and a token the booth left unfilled in the URL
does not hide the survey field. Neither naming one (absent, empty, unknown): the slot's defaults, never an error;
what was asked is recorded. The password field never names a variant.

Re-posts (retry-safety, SPEC §2). A re-post is the booth retrying: it re-sends the same URL and fields, so it
makes the same choice and the same snapshot, and attaches to the job of the same photo on the same slot as
before pipelines. The choice is part of a request's identity only where it changes the work: a post whose
snapshot (steps with their settings, finishing) differs from the earlier job's ended one (another variant, other
fields in a prompt, or the slot changed since) is a new request, and gets a new job. While that job is still in
flight the post attaches to it whatever it chose: one job per photo and slot may be in flight (the jobs table's
unique index on slot and photo), and a request that waits for it gets its result (the booth's retry is the
usual case). The chosen variant is recorded in the job's `request_meta` and the processing log's
`request_fields` under `_variant`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boothbridge.jobs.model import JobRecord
from boothbridge.slots.guest import SECRET_FIELDS, choose_variant
from boothbridge.slots.pipeline import job_pipeline, one_step, slot_steps

if TYPE_CHECKING:
    from boothbridge.catalog import Catalog
    from boothbridge.ingest.model import SlotForIngest

MAX_ASKED_CHARS = 100  # what is recorded of a variant name that named none of the slot's
VARIANT_KEY = "_variant"  # in request_meta and request_fields (underscored: never a booth's own field name)


@dataclass(frozen=True)
class VariantChoice:
    """The variant a request runs: `name` (None: the slot's defaults), `source` where it was named (`query`,
    `field`, or `default`), and `asked`, what the request named when that was none of the slot's variants."""

    name: str | None = None
    source: str = "default"
    asked: str | None = None

    def record(self) -> dict[str, Any]:
        """As recorded under `_variant`: `{"name", "source"}`, plus `"asked"` when an unknown name was asked."""
        out: dict[str, Any] = {"name": self.name, "source": self.source}
        if self.asked is not None:
            out["asked"] = self.asked
        return out


NO_CHOICE = VariantChoice()


def choose(
    variants: Mapping[str, Any], variant_field: str | None, query: str | None, fields: Mapping[str, str]
) -> VariantChoice:
    """The variant a request names: `query` (the `variant` query parameter, None when absent), else the form
    field `variant_field` of `fields` (the booth's form), else none (see the module's docstring)."""
    asked: list[tuple[str, str]] = []
    if query:
        asked.append(("query", query))
    if variant_field and variant_field.casefold() not in SECRET_FIELDS and fields.get(variant_field):
        asked.append(("field", fields[variant_field]))
    for source, wanted in asked:
        name = choose_variant(variants, wanted)
        if name is not None:
            return VariantChoice(name, source)
    if asked:
        return VariantChoice(None, "default", _printable(asked[0][1])[:MAX_ASKED_CHARS])
    return NO_CHOICE


def booth_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """The form fields a prompt's placeholders may use: every field but the password (`slots.guest` drops it
    again, and removes control characters and caps each value)."""
    return {name: value for name, value in fields.items() if name.casefold() not in SECRET_FIELDS}


def pipeline_for(
    slot: SlotForIngest, choice: VariantChoice, fields: Mapping[str, str], *, max_attempts: int, catalog: Catalog
) -> dict[str, Any]:
    """The job's pipeline snapshot (`jobs.pipeline`, the shared contract's shape) for a photo on `slot`: its steps
    (its `steps`, or the one step its provider/operation name) with `choice`'s overrides and the booth's `fields`
    in prompts, its finishing, and `max_attempts` provider attempts a step. The slot must be configured
    (`admission.slot_limits` found it runnable)."""
    steps = slot_steps(slot.steps, slot.provider_id, slot.operation_id, slot.settings_json)
    return job_pipeline(
        steps,
        slot.finishing,
        slot.variants,
        variant=choice.name,
        fields=booth_fields(fields),
        max_attempts=max_attempts,
        catalog=catalog,
    )


def first_call(pipeline: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Step 0's own call in a snapshot: (provider_id, operation_id, settings_json), what the job row names."""
    step = pipeline["steps"][0]
    return str(step["provider_id"]), str(step["operation_id"]), dict(step["settings_json"])


def stored_pipeline(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot as the job row keeps it: `{}` for one plain step (no alternative, not optional, no finishing),
    whose call the job's own columns name in full, so the booth's most common job carries no copy of its settings
    through every read of the hot path (enqueue, claim, completion); else the snapshot itself."""
    steps = pipeline.get("steps") or []
    plain = len(steps) == 1 and not steps[0].get("alternatives") and not steps[0].get("optional")
    return {} if plain and not pipeline.get("finishing") else dict(pipeline)


def attaches(earlier: JobRecord, pipeline: Mapping[str, Any]) -> bool:
    """Whether a post of the same photo on the same slot, whose snapshot is `pipeline`, attaches to `earlier`
    (the job the queue found for it: one in flight, else the newest that succeeded): always while it is in
    flight; once ended, only when it did the same work (see the module's docstring)."""
    if not earlier.is_terminal:
        return True
    return _work(earlier.pipeline, earlier) == _work(pipeline, None)


def _work(pipeline: Mapping[str, Any], job: JobRecord | None) -> tuple[list[Any], dict[str, Any]]:
    """What a snapshot makes: its steps and finishing (not `max_attempts`: how hard it tries is not what it
    makes). A job from before pipelines (`{}`) is the one step its columns name."""
    steps = list(pipeline.get("steps") or [])
    if not steps and job is not None:
        steps = [one_step(job.provider_id, job.operation_id, job.settings_json)]
    return steps, dict(pipeline.get("finishing") or {})


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())
