"""The runtime credentials file (`secrets/runtime_credentials.json`): operator passwords, ingest password, keys.

Shape (other keys may be added): {"users": {"serg": "<pw>", "igor": "<pw>"}, "ingest_password": "<pw>",
"jwt_secret": "<hex>", "ingest_hmac_key": "<hex>", "encryption_key": "<hex>"}.

On AWS the same document is a Secrets Manager secret (`CREDENTIALS_SECRET_ARN`), read at start by
`credentials.source.load_credentials`, so no file with the secrets ships with the code.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_USERS = ("serg", "igor")


@dataclass(frozen=True)
class Credentials:
    users: dict[str, str]
    ingest_password: str
    jwt_secret: str
    ingest_hmac_key: bytes
    encryption_key: bytes


def _password() -> str:
    return secrets.token_urlsafe(18)


def generate() -> dict[str, object]:
    return {
        "users": {name: _password() for name in DEFAULT_USERS},
        "ingest_password": _password(),
        "jwt_secret": secrets.token_hex(32),
        "ingest_hmac_key": secrets.token_hex(32),
        "encryption_key": secrets.token_hex(32),
    }


def write(path: Path, data: dict[str, object]) -> None:
    """Write with owner-only permissions, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def load(path: Path) -> Credentials:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"credentials file {path} is not JSON: {exc.msg}") from None
    return parse(raw, f"credentials file {path}")


def parse(raw: Any, source: str) -> Credentials:
    """The credentials from their JSON document; `source` names where it came from in the error message."""
    try:
        users = {str(k): str(v) for k, v in raw["users"].items()}
        return Credentials(
            users=users,
            ingest_password=str(raw["ingest_password"]),
            jwt_secret=str(raw["jwt_secret"]),
            ingest_hmac_key=bytes.fromhex(raw["ingest_hmac_key"]),
            encryption_key=bytes.fromhex(raw["encryption_key"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{source} is malformed: missing or bad {exc}") from exc


def load_or_create(path: Path, allow_create: bool) -> tuple[Credentials, bool]:
    """Load the file, or (when allowed) generate it with fresh random secrets. Returns (creds, created)."""
    if path.exists():
        return load(path), False
    if not allow_create:
        raise FileNotFoundError(f"credentials file {path} is missing; run `python -m boothbridge.platform.provision`")
    write(path, generate())
    return load(path), True
