"""MediaRef: what the database says about one stored object (plain data, shared by media and the queue)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MediaRef:
    id: uuid.UUID
    storage_key: str
    mime: str
    size_bytes: int
    sha256: str
    kind: str
    expires_at: datetime | None


MEDIA_FIELDS = tuple(MediaRef.__dataclass_fields__)


def media_columns(alias: str, prefix: str = "m_") -> str:
    """`alias.id AS m_id, alias.storage_key AS m_storage_key, …`: a media row joined into another statement."""
    return ", ".join(f"{alias}.{name} AS {prefix}{name}" for name in MEDIA_FIELDS)


def media_from(row: Mapping[str, Any], prefix: str = "m_") -> MediaRef | None:
    """The MediaRef in columns made by `media_columns`, or None when the join found no row."""
    if row[f"{prefix}id"] is None:
        return None
    return MediaRef(**{name: row[f"{prefix}{name}"] for name in MEDIA_FIELDS})
