"""Login throttling: after 10 failed sign-ins for one username from one client address within 15 minutes, further
attempts for that pair get 429 `too_many_attempts` with `Retry-After`, even with the right password, until enough
of those failures have left the window.

The failures live in PostgreSQL (`login_failures`), not in process memory, so the limit holds across processes,
emulator restarts and Lambda execution environments alike; every time is the database's `now()`, so the clocks of
the instances do not matter.

Protocol, per attempt (see `LoginGuard.admit` / `LoginGuard.succeeded`):

1. `admit`, before the password is verified: under a per-pair advisory lock, count the pair's failures still in
   the window. At the limit: 429, nothing is written and no argon2 work is done. Otherwise the attempt is
   recorded as a failure *up front*, and the lock is released (commit) before the slow password check.
2. Wrong password (or unknown username): nothing more to do, the failure is already recorded. Unknown usernames
   are recorded exactly like known ones, so probing for names is throttled the same and a 429 says nothing
   about whether a name exists.
3. Right password: `succeeded` deletes the pair's failures (the one recorded in step 1 included).

Recording before verifying (rather than after a wrong answer) is what makes the limit exact under concurrency:
with check-then-record, N guesses sent at once would all pass the check while the first argon2 verification is
still running. An attempt that crashes mid-check stays counted as a failure (fails closed).

Client address: `request.client.host`, i.e. the ASGI scope's `client`. Under uvicorn that is the TCP peer. On
Lambda, Mangum builds the scope from the Function URL event (payload format 2.0, `HTTPGateway` in
`mangum/handlers/api_gateway.py`) with `client = (event["requestContext"]["http"]["sourceIp"], 0)`; that is the
address of the TCP connection Lambda received, not a header a caller can write. `X-Forwarded-For` is
deliberately ignored: the Function URLs are reachable directly, bypassing CloudFront, so any caller could set it.
Through the CloudFront front door, `sourceIp` is CloudFront's origin-facing address, not the viewer's; there the
viewer's address comes from `CloudFront-Viewer-Address` (`ip:port`, added by the origin request policy), believed
only when the request also carries the origin secret that CloudFront adds to every request it sends to the admin
origin (`X-Origin-Verify`, setting ORIGIN_VERIFY_SECRET; see `viewer_host`). A direct caller cannot present it.

IPv6 addresses are counted per /64 network (what one subscriber typically gets), otherwise one host could rotate
through its own /64 for unlimited attempts; IPv4-mapped IPv6 addresses count as their IPv4 address.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from boothbridge.errors import AppError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

MAX_FAILURES = 10
WINDOW_SEC = 15 * 60
# Expired rows of other pairs removed per admitted attempt; see `_SWEEP`.
SWEEP_BATCH = 50
UNKNOWN_ADDRESS = "unknown"
# CloudFront's header with the viewer's "ip:port", and the header carrying the origin secret CloudFront adds.
VIEWER_ADDRESS_HEADER = "cloudfront-viewer-address"
ORIGIN_VERIFY_HEADER = "x-origin-verify"

# The statements are plain strings wrapped in `text()` where they run: the operator API imports this module, and
# SQLAlchemy's import (~0.1 s) belongs to its first request, not to its cold start.

# Serialises the attempts of one (username, address) pair across every process and Lambda instance, so two
# concurrent attempts cannot both see 9 failures and both go on to verify. Transaction-scoped: released at COMMIT.
# (A hash collision between two pairs only makes them wait for each other briefly.)
_LOCK_PAIR = "SELECT pg_advisory_xact_lock(hashtextextended(:lock_key, 0))"

# Opportunistic purge on write: this pair's failures that have left the window no longer count.
_PURGE_PAIR = """
    DELETE FROM login_failures
    WHERE username = :username AND client_address = :address
      AND created_at <= now() - CAST(:window AS integer) * interval '1 second'
    """

# The `limit`-th most recent failure still in the window (index (username, client_address, created_at), read
# backwards). If it exists the pair is at the limit; it is the oldest counted failure, and the next attempt is
# allowed once it leaves the window, so Retry-After is the time until then (at least 1 s).
_AT_LIMIT = """
    SELECT greatest(1, ceil(extract(epoch FROM
               created_at + CAST(:window AS integer) * interval '1 second' - now())))::integer AS retry_after
    FROM login_failures
    WHERE username = :username AND client_address = :address
      AND created_at > now() - CAST(:window AS integer) * interval '1 second'
    ORDER BY created_at DESC
    OFFSET CAST(:limit AS integer) - 1
    LIMIT 1
    """

# The attempt counts as a failure until `succeeded` clears it.
_RECORD = "INSERT INTO login_failures (username, client_address) VALUES (:username, :address)"

# Opportunistic purge of everyone else's expired rows, so pairs that are never tried again (probed names) do not
# stay forever. Rows are inserted with created_at = now(), so id order is age order: the primary-key scan finds the
# oldest rows first and stops after a small batch. SKIP LOCKED: never waits on, or deadlocks with, a concurrent
# sweep or pair purge. Runs last in the transaction, so the row locks it takes are held only until COMMIT.
_SWEEP = """
    DELETE FROM login_failures
    WHERE id IN (
        SELECT id FROM login_failures
        WHERE created_at <= now() - CAST(:window AS integer) * interval '1 second'
        ORDER BY id
        LIMIT CAST(:batch AS integer)
        FOR UPDATE SKIP LOCKED
    )
    """

# A successful sign-in clears the pair's failures.
_CLEAR = "DELETE FROM login_failures WHERE username = :username AND client_address = :address"


def viewer_host(peer: str | None, headers: Mapping[str, str], origin_secret: str | None) -> str | None:
    """The address a sign-in came from: the TCP peer, or behind CloudFront the viewer's address (see the module
    docstring). `headers` is case-insensitive (Starlette's); a missing, wrong or malformed header means the peer."""
    if not origin_secret:
        return peer
    presented = headers.get(ORIGIN_VERIFY_HEADER, "")
    if not hmac.compare_digest(presented.encode(), origin_secret.encode()):
        return peer
    host, sep, port = headers.get(VIEWER_ADDRESS_HEADER, "").rpartition(":")
    if not sep or not port.isdigit():
        return peer
    host = host.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return peer
    return host


def client_key(host: str | None) -> str:
    """The address a failure is counted under: the IP itself, an IPv6 address's /64 network, or "unknown"."""
    if not host:
        return UNKNOWN_ADDRESS
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    except ValueError:
        return host[:100]  # not an IP (e.g. "testclient"): count it as given, bounded
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def too_many_attempts(retry_after: int) -> AppError:
    return AppError(
        429,
        "too_many_attempts",
        "too many failed sign-in attempts; try again later",
        {"retry_after_sec": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


@dataclass(frozen=True)
class LoginGuard:
    engine: AsyncEngine
    max_failures: int = MAX_FAILURES
    window_sec: int = WINDOW_SEC

    def _params(self, username: str, address: str) -> dict[str, object]:
        return {"username": username, "address": address, "window": self.window_sec}

    async def admit(self, username: str, address: str) -> None:
        """Before the password check: raise 429 `too_many_attempts` if the pair is throttled, otherwise record
        this attempt as a failure (cleared by `succeeded`)."""
        from sqlalchemy import text  # deferred: see the statements above

        params = self._params(username, address)
        retry_after: int | None = None
        async with self.engine.begin() as conn:
            await conn.execute(text(_LOCK_PAIR), {"lock_key": f"login_failures\n{username}\n{address}"})
            await conn.execute(text(_PURGE_PAIR), params)
            retry_after = (await conn.execute(text(_AT_LIMIT), {**params, "limit": self.max_failures})).scalar()
            if retry_after is None:
                await conn.execute(text(_RECORD), params)
                await conn.execute(text(_SWEEP), {"window": self.window_sec, "batch": SWEEP_BATCH})
        if retry_after is not None:
            raise too_many_attempts(int(retry_after))

    async def succeeded(self, username: str, address: str) -> None:
        """After a correct password: forget the pair's failures."""
        from sqlalchemy import text  # deferred: see the statements above

        async with self.engine.begin() as conn:
            await conn.execute(text(_CLEAR), {"username": username, "address": address})
