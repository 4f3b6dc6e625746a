"""An operator's slots: list, read, configure (validated against the catalog) and reset to unconfigured.

A slot is a pipeline (issue 14): `PUT` takes `steps` or the seed-003 one-step shape; every answer carries both
(the top-level provider/operation/settings mirror step 1), plus the chain's typical time and whether it exceeds
the booth's wait (T_SYNC_RESPONSE), so the slot page can flag it."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query

from boothbridge.http.openapi import AUTH, BODY, INVALID, errors
from boothbridge.slots.pipeline import parse_update
from functions.admin.deps import OperatorDep, SettingsDep, SettingsStoreDep, SlotsDep
from functions.admin.schemas import ListMeta, Slot, SlotList, SlotPut, SlotSaved, Step

if TYPE_CHECKING:  # the slot service's module imports SQLAlchemy: it comes with the first request's container
    from boothbridge.catalog import Catalog
    from boothbridge.settings import Settings
    from boothbridge.settings_store import SettingsStore
    from boothbridge.slots.service import SlotView

router = APIRouter(tags=["slots"])

# What saving a slot (or testing an unsaved configuration) can refuse, besides the body's shape.
SLOT_CONFIG_ERRORS = (
    "422 invalid_pipeline",
    "422 unknown_provider",
    "422 unsupported_operation",
    "422 operation_not_for_slots",
    "422 invalid_settings",
    "422 invalid_finishing",
    "422 media_not_found",
)


def typical_sec(catalog: "Catalog", slot: "SlotView") -> float:
    """How long the slot's chain typically takes: the sum of each step's own provider's `ingest.typical_sec`
    (alternatives run only when a step fails), s."""
    return sum(catalog.typical_sec(step["provider_id"]) for step in slot.pipeline_steps)


def slot_answer(settings: "Settings", catalog: "Catalog", wait_sec: float, slot: "SlotView") -> Slot:
    """A slot as the API shows it: its configuration in both shapes, the URL its booth posts to, and its chain's
    typical time against the booth's wait (`wait_sec`, the current T_SYNC_RESPONSE)."""
    typical = typical_sec(catalog, slot)
    return Slot(
        id=slot.id,
        name=slot.name,
        provider_id=slot.provider_id,
        operation_id=slot.operation_id,
        settings_json=slot.settings_json,
        steps=[Step.model_validate(step) for step in slot.pipeline_steps],
        finishing=slot.finishing,
        variants=slot.variants,
        variant_field=slot.variant_field,
        typical_sec=typical,
        exceeds_wait=typical > wait_sec,
        ingest_url=f"{settings.base_url}/ingest/{slot.id}",
        is_configured=slot.is_configured,
        failure_policy=slot.failure_policy,
        version=slot.version,
        last_reset_at=slot.last_reset_at.isoformat() if slot.last_reset_at else None,
        updated_at=slot.updated_at.isoformat(),
    )


async def _wait_sec(store: "SettingsStore") -> float:
    return (await store.refresh()).t_sync_response  # re-read once stale: another process may have changed it


@router.get("/api/slots", response_model=SlotList, responses=errors(*AUTH, INVALID))
async def list_slots(
    operator: OperatorDep,
    slots: SlotsDep,
    settings: SettingsDep,
    store: SettingsStoreDep,
    provider_id: Annotated[str | None, Query(max_length=100)] = None,
    operation_id: Annotated[str | None, Query(max_length=100)] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> SlotList:
    """The operator's slots, optionally filtered (by step 1's provider and operation)."""
    found = await slots.list(operator.id, provider_id, operation_id, search)
    wait = await _wait_sec(store)
    return SlotList(
        data=[slot_answer(settings, slots.catalog, wait, s) for s in found], meta=ListMeta(total=len(found))
    )


@router.get("/api/slots/{slot_id}", response_model=Slot, responses=errors(*AUTH, INVALID, "404 slot_not_found"))
async def get_slot(
    slot_id: str, operator: OperatorDep, slots: SlotsDep, settings: SettingsDep, store: SettingsStoreDep
) -> Slot:
    """One slot of the operator's."""
    slot = await slots.get(operator.id, slot_id)
    return slot_answer(settings, slots.catalog, await _wait_sec(store), slot)


@router.put(
    "/api/slots/{slot_id}",
    response_model=SlotSaved,
    responses=errors(
        *AUTH,
        *BODY,
        "404 slot_not_found",
        "409 version_conflict",
        *SLOT_CONFIG_ERRORS,
        "422 invalid_failure_policy",
    ),
)
async def put_slot(slot_id: str, body: SlotPut, operator: OperatorDep, slots: SlotsDep) -> SlotSaved:
    """Configure a slot: `steps` (each validated against its operation's schema, alternatives too), finishing,
    variants; or the seed-003 one-step shape. Problems are reported at field paths such as
    `steps/1/alternatives/0/settings_json/prompt` (`details.fields`)."""
    update = parse_update(body.model_dump())
    slot = await slots.update(operator.id, slot_id, update)
    return SlotSaved(id=slot.id, updated_at=slot.updated_at.isoformat(), version=slot.version)


@router.post("/api/slots/{slot_id}/reset", response_model=Slot, responses=errors(*AUTH, INVALID, "404 slot_not_found"))
async def reset_slot(
    slot_id: str, operator: OperatorDep, slots: SlotsDep, settings: SettingsDep, store: SettingsStoreDep
) -> Slot:
    """Clear the slot's configuration (it shows as free); id, owner, ingest URL and statistics stay."""
    slot = await slots.reset(operator.id, slot_id)
    return slot_answer(settings, slots.catalog, await _wait_sec(store), slot)
