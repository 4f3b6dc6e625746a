"""An operator's slots: list, read, configure (validated against the catalog) and reset to unconfigured."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query

from boothbridge.http.openapi import AUTH, BODY, INVALID, errors
from boothbridge.slots.rules import SlotUpdate
from functions.admin.deps import OperatorDep, SettingsDep, SlotsDep
from functions.admin.schemas import ListMeta, Slot, SlotList, SlotPut, SlotSaved

if TYPE_CHECKING:  # the slot service's module imports SQLAlchemy: it comes with the first request's container
    from boothbridge.settings import Settings
    from boothbridge.slots.service import SlotView

router = APIRouter(tags=["slots"])


def slot_answer(settings: "Settings", slot: "SlotView") -> Slot:
    """A slot as the API shows it: its configuration plus the URL its booth posts to."""
    return Slot(
        id=slot.id,
        name=slot.name,
        provider_id=slot.provider_id,
        operation_id=slot.operation_id,
        settings_json=slot.settings_json,
        ingest_url=f"{settings.base_url}/ingest/{slot.id}",
        is_configured=slot.is_configured,
        failure_policy=slot.failure_policy,
        version=slot.version,
        last_reset_at=slot.last_reset_at.isoformat() if slot.last_reset_at else None,
        updated_at=slot.updated_at.isoformat(),
    )


@router.get("/api/slots", response_model=SlotList, responses=errors(*AUTH, INVALID))
async def list_slots(
    operator: OperatorDep,
    slots: SlotsDep,
    settings: SettingsDep,
    provider_id: Annotated[str | None, Query(max_length=100)] = None,
    operation_id: Annotated[str | None, Query(max_length=100)] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> SlotList:
    """The operator's slots, optionally filtered."""
    found = await slots.list(operator.id, provider_id, operation_id, search)
    return SlotList(data=[slot_answer(settings, s) for s in found], meta=ListMeta(total=len(found)))


@router.get("/api/slots/{slot_id}", response_model=Slot, responses=errors(*AUTH, INVALID, "404 slot_not_found"))
async def get_slot(slot_id: str, operator: OperatorDep, slots: SlotsDep, settings: SettingsDep) -> Slot:
    """One slot of the operator's."""
    return slot_answer(settings, await slots.get(operator.id, slot_id))


@router.put(
    "/api/slots/{slot_id}",
    response_model=SlotSaved,
    responses=errors(
        *AUTH,
        *BODY,
        "404 slot_not_found",
        "409 version_conflict",
        "422 unknown_provider",
        "422 unsupported_operation",
        "422 invalid_settings",
        "422 invalid_failure_policy",
        "422 media_not_found",
    ),
)
async def put_slot(slot_id: str, body: SlotPut, operator: OperatorDep, slots: SlotsDep) -> SlotSaved:
    """Configure a slot; settings are validated against the operation's schema."""
    update = SlotUpdate(
        name=body.name,
        provider_id=body.provider_id,
        operation_id=body.operation_id,
        settings_json=body.settings_json,
        failure_policy=body.failure_policy,
        version=body.version,
    )
    slot = await slots.update(operator.id, slot_id, update)
    return SlotSaved(id=slot.id, updated_at=slot.updated_at.isoformat(), version=slot.version)


@router.post("/api/slots/{slot_id}/reset", response_model=Slot, responses=errors(*AUTH, INVALID, "404 slot_not_found"))
async def reset_slot(slot_id: str, operator: OperatorDep, slots: SlotsDep, settings: SettingsDep) -> Slot:
    """Clear the slot's configuration (it shows as free); id, owner, ingest URL and statistics stay."""
    return slot_answer(settings, await slots.reset(operator.id, slot_id))
