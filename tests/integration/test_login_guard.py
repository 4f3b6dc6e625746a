"""Login throttling: 10 failures for a username from one address within 15 minutes -> 429 with Retry-After, kept in
PostgreSQL so it holds across processes (here: two separate app instances over one database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.accounts.login_guard import MAX_FAILURES, WINDOW_SEC, client_key, viewer_host
from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from functions.admin.app import create_app as create_admin
from local.app import Emulator
from tests.support.booth import credentials

ClientFactory = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def clients(emulator: Emulator) -> ClientFactory:
    """Clients of the same app that connect from a given address (the ASGI scope's `client`)."""

    @asynccontextmanager
    async def connect(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=emulator, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as http:
            yield http

    return connect


def passwords(settings: Settings) -> dict[str, str]:
    users: dict[str, str] = credentials(settings.credentials_path)["users"]
    return users


async def login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/api/login", json={"username": username, "password": password})


async def fail(http: httpx.AsyncClient, username: str, times: int) -> None:
    for _ in range(times):
        r = await login(http, username, "definitely-wrong")
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "invalid_credentials"


def assert_throttled(r: httpx.Response) -> int:
    """The uniform error body, code too_many_attempts, and a Retry-After within the window."""
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == "too_many_attempts"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    retry_after = int(r.headers["Retry-After"])
    assert 0 < retry_after <= WINDOW_SEC
    assert body["error"]["details"] == {"retry_after_sec": retry_after}
    return retry_after


async def shift_failures(c: Container, seconds: int, username: str | None = None) -> None:
    """Move recorded failures back in time (as if that many seconds had passed)."""
    async with c.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE login_failures SET created_at = created_at - CAST(:s AS integer) * interval '1 second'"
                " WHERE CAST(:u AS text) IS NULL OR username = :u"
            ),
            {"s": seconds, "u": username},
        )


async def failure_count(c: Container, username: str | None = None) -> int:
    async with c.engine.connect() as conn:
        n: int = (
            await conn.execute(
                text("SELECT count(*) FROM login_failures WHERE CAST(:u AS text) IS NULL OR username = :u"),
                {"u": username},
            )
        ).scalar_one()
    return n


async def test_nine_failures_still_401_and_the_tenth_locks_even_the_right_password(
    clients: ClientFactory, settings: Settings
) -> None:
    right = passwords(settings)["serg"]
    async with clients("203.0.113.7") as http:
        await fail(http, "serg", MAX_FAILURES - 1)
        # The 10th failure is still an ordinary 401 ...
        await fail(http, "serg", 1)
        # ... after it, every attempt is 429, wrong or right password.
        assert_throttled(await login(http, "serg", "definitely-wrong"))
        retry_after = assert_throttled(await login(http, "serg", right))
        assert retry_after > WINDOW_SEC - 60  # the oldest failure is seconds old


async def test_retry_after_counts_down_from_the_oldest_failure(
    clients: ClientFactory, settings: Settings, container: Container
) -> None:
    async with clients("203.0.113.7") as http:
        await fail(http, "serg", 1)
        await shift_failures(container, 600)  # the first failure is 10 minutes old
        await fail(http, "serg", MAX_FAILURES - 1)
        retry_after = assert_throttled(await login(http, "serg", passwords(settings)["serg"]))
        assert WINDOW_SEC - 600 - 30 <= retry_after <= WINDOW_SEC - 600


async def test_another_address_or_another_user_is_unaffected(clients: ClientFactory, settings: Settings) -> None:
    pw = passwords(settings)
    async with clients("203.0.113.7") as attacker:
        await fail(attacker, "serg", MAX_FAILURES)
        assert_throttled(await login(attacker, "serg", pw["serg"]))
        # Same address, other user.
        assert (await login(attacker, "igor", pw["igor"])).status_code == 200
    # Same user, other address (IPv4 and IPv6).
    for address in ("198.51.100.20", "2001:db8:1::5"):
        async with clients(address) as operator:
            assert (await login(operator, "serg", pw["serg"])).status_code == 200


async def test_ipv6_addresses_count_per_64_network(clients: ClientFactory, settings: Settings) -> None:
    for n in range(MAX_FAILURES):
        async with clients(f"2001:db8:7:7::{n + 1:x}") as http:
            await fail(http, "serg", 1)
    async with clients("2001:db8:7:7:ffff::1") as http:  # same /64, another host
        assert_throttled(await login(http, "serg", passwords(settings)["serg"]))
    async with clients("2001:db8:7:8::1") as http:  # the next /64
        assert (await login(http, "serg", passwords(settings)["serg"])).status_code == 200


async def test_login_works_again_once_the_window_has_passed(
    clients: ClientFactory, settings: Settings, container: Container
) -> None:
    async with clients("203.0.113.7") as http:
        await fail(http, "serg", MAX_FAILURES)
        assert_throttled(await login(http, "serg", passwords(settings)["serg"]))
        await shift_failures(container, WINDOW_SEC - 5)
        assert_throttled(await login(http, "serg", passwords(settings)["serg"]))  # not yet
        await shift_failures(container, 10)
        r = await login(http, "serg", passwords(settings)["serg"])
        assert r.status_code == 200, r.text
    # The expired rows were purged on that write, and the success cleared the rest.
    assert await failure_count(container, "serg") == 0


async def test_a_success_clears_the_count(clients: ClientFactory, settings: Settings, container: Container) -> None:
    async with clients("203.0.113.7") as http:
        await fail(http, "serg", MAX_FAILURES - 1)
        assert (await login(http, "serg", passwords(settings)["serg"])).status_code == 200
        assert await failure_count(container, "serg") == 0
        # A fresh allowance of 10: nine more failures are still 401.
        await fail(http, "serg", MAX_FAILURES - 1)
        assert (await login(http, "serg", passwords(settings)["serg"])).status_code == 200


async def test_unknown_usernames_are_throttled_the_same(clients: ClientFactory) -> None:
    async with clients("203.0.113.7") as http:
        await fail(http, "nobody", MAX_FAILURES)
        assert_throttled(await login(http, "nobody", "anything"))
        # Indistinguishable from a real, throttled account.
        await fail(http, "serg", MAX_FAILURES)
        a = (await login(http, "nobody", "x")).json()["error"]
        b = (await login(http, "serg", "x")).json()["error"]
        assert (a["code"], a["message"]) == (b["code"], b["message"])


async def test_the_limit_holds_for_concurrent_attempts(clients: ClientFactory) -> None:
    async with clients("203.0.113.7") as http:
        responses = await asyncio.gather(*(login(http, "serg", f"guess-{n}") for n in range(MAX_FAILURES + 5)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * MAX_FAILURES + [429] * 5


async def test_the_count_is_shared_by_separate_app_instances(clients: ClientFactory, settings: Settings) -> None:
    """A second admin app that builds its own container (engine, pool) on first use, as a Lambda instance does:
    failures recorded through the emulator throttle it too."""
    async with clients("203.0.113.7") as first:
        await fail(first, "serg", MAX_FAILURES)
    other = create_admin(settings)
    try:
        transport = httpx.ASGITransport(app=other, client=("203.0.113.7", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as second:
            assert_throttled(await login(second, "serg", passwords(settings)["serg"]))
            assert (await login(second, "igor", passwords(settings)["igor"])).status_code == 200
    finally:
        await other.state.holder.close()


async def test_old_rows_of_other_pairs_are_swept(clients: ClientFactory, container: Container) -> None:
    async with clients("203.0.113.7") as http:
        await fail(http, "probe-a", 3)
        await fail(http, "probe-b", 3)
        await shift_failures(container, WINDOW_SEC + 1)
        await fail(http, "serg", 1)  # a write for another pair
    assert await failure_count(container) == 1


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key


SECRET = "s3cret-origin-verify-0123456789abcdef"
CLOUDFRONT = "130.176.0.1"  # CloudFront's origin-facing address: the TCP peer of every front-door request


@pytest.mark.parametrize(
    ("headers", "secret", "host"),
    [
        ({"x-origin-verify": SECRET, "cloudfront-viewer-address": "198.51.100.10:46532"}, SECRET, "198.51.100.10"),
        (  # IPv6 as CloudFront writes it: no brackets, the port after the last colon
            {"x-origin-verify": SECRET, "cloudfront-viewer-address": "2406:2d40:728d:fa10::c4a:42838"},
            SECRET,
            "2406:2d40:728d:fa10::c4a",
        ),
        ({"x-origin-verify": SECRET, "cloudfront-viewer-address": "[2001:db8::1]:443"}, SECRET, "2001:db8::1"),
        ({"x-origin-verify": "wrong", "cloudfront-viewer-address": "198.51.100.10:1"}, SECRET, CLOUDFRONT),
        ({"cloudfront-viewer-address": "198.51.100.10:1"}, SECRET, CLOUDFRONT),  # no secret presented
        ({"x-origin-verify": SECRET, "cloudfront-viewer-address": "198.51.100.10:1"}, None, CLOUDFRONT),  # none set
        ({"x-origin-verify": SECRET}, SECRET, CLOUDFRONT),
        ({"x-origin-verify": SECRET, "cloudfront-viewer-address": "198.51.100.10"}, SECRET, CLOUDFRONT),  # no port
        ({"x-origin-verify": SECRET, "cloudfront-viewer-address": "not-an-ip:80"}, SECRET, CLOUDFRONT),
    ],
)
def test_viewer_host(headers: dict[str, str], secret: str | None, host: str) -> None:
    assert viewer_host(CLOUDFRONT, headers, secret) == host


@pytest.mark.parametrize("settings_overrides", [{"origin_verify_secret": SECRET}])
async def test_behind_the_front_door_each_viewer_is_counted_on_its_own(
    clients: ClientFactory, settings: Settings
) -> None:
    def through_cloudfront(viewer: str, secret: str = SECRET) -> dict[str, str]:
        return {"X-Origin-Verify": secret, "CloudFront-Viewer-Address": viewer}

    pw = passwords(settings)
    async with clients(CLOUDFRONT) as http:
        for _ in range(MAX_FAILURES):
            r = await http.post(
                "/api/login",
                json={"username": "serg", "password": "definitely-wrong"},
                headers=through_cloudfront("198.51.100.10:50001"),
            )
            assert r.status_code == 401, r.text
        attacker = await http.post(
            "/api/login",
            json={"username": "serg", "password": pw["serg"]},
            headers=through_cloudfront("198.51.100.10:50002"),  # another port of the same viewer
        )
        assert_throttled(attacker)
        # The operator elsewhere comes through the same CloudFront address and is not locked out.
        operator = await http.post(
            "/api/login",
            json={"username": "serg", "password": pw["serg"]},
            headers=through_cloudfront("203.0.113.99:40000"),
        )
        assert operator.status_code == 200, operator.text
        # Without the secret the header is not believed: naming the throttled viewer, the attempt counts under
        # the TCP peer (no failures there), so it is not refused as that viewer's would be.
        forged = await http.post(
            "/api/login",
            json={"username": "serg", "password": pw["serg"]},
            headers=through_cloudfront("198.51.100.10:50003", secret="guessed-secret-guessed-secret"),
        )
        assert forged.status_code == 200, forged.text
