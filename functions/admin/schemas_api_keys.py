"""The API-key routes' bodies (`routes/api_keys.py`): what creating one reads and answers, and the list. The
conventions are `schemas.py`'s (timestamps are ISO 8601 strings; answers carry no undeclared keys)."""

import uuid

from pydantic import BaseModel, Field

from functions.admin.schemas import Answer, Timestamp

PREFIX_DOC = "the key's first 12 characters (`bbk_` and 8 more), to tell keys apart; never enough to use it"


class ApiKeyCreate(BaseModel):
    name: str = Field(
        description="1-100 characters once trimmed, no control characters (else 422 invalid_name)",
        examples=["Gallery kiosk"],
    )


class ApiKeyCreated(Answer):
    """The new key. `key` is shown in this answer only: it is stored hashed and cannot be read again."""

    id: uuid.UUID
    name: str
    prefix: str = Field(description=PREFIX_DOC)
    key: str = Field(description="the secret: send it as `Authorization: Bearer <key>` on /api/v1/*")
    created_at: Timestamp


class ApiKeyInfo(Answer):
    id: uuid.UUID
    name: str
    prefix: str = Field(description=PREFIX_DOC)
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(description="the key's last request, to the minute; null: never used")
    revoked_at: Timestamp | None = Field(description="null: live")


class ApiKeyList(Answer):
    data: list[ApiKeyInfo] = Field(description="newest first, revoked keys included")
