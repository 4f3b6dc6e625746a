"""Where the process's credentials come from: a Secrets Manager secret (`CREDENTIALS_SECRET_ARN`, on AWS) or
the credentials file (`CREDENTIALS_PATH`, generated on first local start).

The secret's SecretString is exactly the credentials file's JSON. It is read once per process at start (a
Lambda cold start), with the process's shared aiobotocore session; the region is the ARN's own. aiobotocore (and
botocore) are imported only then: a process that reads the credentials file never loads them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from boothbridge.credentials import file as credentials

if TYPE_CHECKING:
    from boothbridge.credentials.file import Credentials
    from boothbridge.settings import Settings


class CredentialsUnavailable(RuntimeError):
    """The credentials secret cannot be read or is malformed: the process must not start."""


def region_of(arn: str) -> str:
    """The region in `arn:aws:secretsmanager:<region>:<account>:secret:<name>`."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager" or not parts[3]:
        raise CredentialsUnavailable(f"CREDENTIALS_SECRET_ARN is not a Secrets Manager secret ARN: {arn!r}")
    return parts[3]


async def read_secret(arn: str, endpoint_url: str | None = None) -> Credentials:
    """The credentials held by the secret `arn` (its SecretString is the credentials file's JSON)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from boothbridge.platform.aws_session import aws_session

    session = aws_session()
    try:
        async with session.create_client(
            "secretsmanager", region_name=region_of(arn), endpoint_url=endpoint_url
        ) as client:
            answer = await client.get_secret_value(SecretId=arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise CredentialsUnavailable(f"cannot read the credentials secret {arn}: {code}") from None
    except BotoCoreError as exc:
        raise CredentialsUnavailable(f"cannot read the credentials secret {arn}: {type(exc).__name__}") from None
    text = answer.get("SecretString")
    if not text:
        raise CredentialsUnavailable(f"the credentials secret {arn} has no SecretString")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raise CredentialsUnavailable(f"the credentials secret {arn} is not JSON") from None
    try:
        return credentials.parse(raw, f"the credentials secret {arn}")
    except ValueError as exc:  # names the missing or bad key, never a value
        raise CredentialsUnavailable(str(exc)) from None


async def load_credentials(settings: Settings, *, allow_create: bool | None = None) -> tuple[Credentials, bool]:
    """The process's credentials and whether they were just generated (only ever a local credentials file; by
    default generated only outside production, `allow_create` decides otherwise)."""
    if settings.credentials_secret_arn:
        return await read_secret(settings.credentials_secret_arn, settings.secrets_endpoint_url), False
    if allow_create is None:
        allow_create = settings.app_env != "production"
    return credentials.load_or_create(settings.credentials_path, allow_create=allow_create)
