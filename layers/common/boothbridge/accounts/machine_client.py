"""Who is calling the machine-client APIs (`/api/v1/*`, issue 15): the API key that authenticated the request and
the operator it belongs to. Made by `boothbridge.accounts.api_keys`; tasks and media are scoped by `owner_id`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class MachineClient:
    """An authenticated API key: its id, its operator's user id and the name the operator gave it."""

    key_id: uuid.UUID
    owner_id: int
    name: str
