"""On AWS the credentials come from a Secrets Manager secret (CREDENTIALS_SECRET_ARN), not from a file shipped
with the code: the real aiobotocore client against moto's server over HTTP. A secret that cannot be read or is
malformed stops the start with a message that names the problem and never a secret value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import pytest

from boothbridge.bootstrap import build_container
from boothbridge.credentials import file as credentials
from boothbridge.credentials.source import CredentialsUnavailable, read_secret, region_of
from boothbridge.settings import Settings
from local.app import Emulator
from tests.support.moto_server import FAKE_ACCESS_KEY_ID, FAKE_REGION, FAKE_SECRET_ACCESS_KEY


def put_secret(endpoint: str, name: str, value: str) -> str:
    """Create the secret in moto (botocore's plain client: set-up only); returns its ARN."""
    client = botocore.session.get_session().create_client(
        "secretsmanager",
        region_name=FAKE_REGION,
        endpoint_url=endpoint,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )
    arn: str = client.create_secret(Name=name, SecretString=value)["ARN"]
    return arn


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The product passes no keys: as on Lambda, botocore's default chain finds them in the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_ACCESS_KEY)


@pytest.fixture
def secret_document() -> dict[str, Any]:
    return credentials.generate()


@pytest.fixture
def settings_overrides(moto_endpoint: str, secret_document: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    arn = put_secret(moto_endpoint, f"bb/{tmp_path.name}/credentials", json.dumps(secret_document))
    return {"credentials_secret_arn": arn, "secrets_endpoint_url": moto_endpoint}


async def test_the_process_signs_in_with_the_secrets_credentials_and_writes_no_file(
    emulator: Emulator, settings: Settings, secret_document: dict[str, Any]
) -> None:
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for user, password in secret_document["users"].items():
            r = await http.post("/api/login", json={"username": user, "password": password})
            assert r.status_code == 200, r.text
        wrong = await http.post("/api/login", json={"username": "serg", "password": "not-the-secrets-password"})
        assert wrong.status_code == 401
    assert emulator.container is not None
    assert emulator.container.credentials.jwt_secret == secret_document["jwt_secret"]
    assert not settings.credentials_path.exists()  # nothing generated beside the secret


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("not json at all", "is not JSON"),
        (json.dumps({"users": {"serg": "pw-serg-1234"}, "ingest_password": "pw-ingest-5678"}), "jwt_secret"),
        (json.dumps(["a", "list"]), "malformed"),
    ],
)
async def test_a_malformed_secret_stops_the_start_without_showing_a_value(
    moto_endpoint: str, tmp_path: Path, document: str, named: str
) -> None:
    arn = put_secret(moto_endpoint, f"bb/{tmp_path.name}/bad", document)
    with pytest.raises(CredentialsUnavailable) as caught:
        await read_secret(arn, moto_endpoint)
    message = str(caught.value)
    assert named in message
    assert "pw-serg-1234" not in message and "pw-ingest-5678" not in message


async def test_a_missing_secret_stops_the_container_build(settings: Settings, moto_endpoint: str) -> None:
    arn = settings.credentials_secret_arn
    assert arn is not None
    missing = settings.model_copy(update={"credentials_secret_arn": arn.rsplit(":", 1)[0] + ":gone-AbCdEf"})
    with pytest.raises(CredentialsUnavailable, match="ResourceNotFoundException"):
        await build_container(missing, listen=False)


@pytest.mark.parametrize(
    ("arn", "region"),
    [
        ("arn:aws:secretsmanager:eu-central-1:123456789012:secret:bb/creds-AbCdEf", "eu-central-1"),
        ("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x", "cn-north-1"),
    ],
)
def test_region_of(arn: str, region: str) -> None:
    assert region_of(arn) == region


@pytest.mark.parametrize("arn", ["bb/creds", "arn:aws:s3:::bucket", "arn:aws:secretsmanager::1:secret:x"])
def test_region_of_refuses_what_is_not_a_secret_arn(arn: str) -> None:
    with pytest.raises(CredentialsUnavailable):
        region_of(arn)
