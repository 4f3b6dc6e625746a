"""Fetching a task's input image by URL, and decoding one given in base64 (issue 15).

A URL is fetched with httpx: http or https only; at most `max_bytes` (a declared Content-Length over it is refused
before the body, and the body is cut as soon as it passes it); one time limit for the whole fetch (connect,
redirects, body); at most `max_redirects` redirects, each new URL checked again. Unless `allow_private`
(TASK_FETCH_ALLOW_PRIVATE; on outside production), the host is resolved and every address it resolves to must be
public: a private, loopback, link-local, multicast, reserved or unspecified address (IPv4 or IPv6, an IPv4-mapped
IPv6 address judged as its IPv4) is refused, so a caller cannot make the service read its own network; the request
then connects to the address checked (`pinned`), not to a second lookup's answer.

Errors (AppError; nothing is stored by this module): 400 `input_url_invalid` (not an http(s) URL with a host),
403 `input_private_address`, 400 `input_fetch_failed` (network error, an answer other than 200, too many
redirects, the time limit), 413 `input_too_large`, 400 `input_base64_invalid`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from boothbridge.errors import AppError

REDIRECTS = frozenset({301, 302, 303, 307, 308})


def url_parts(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; 400 `input_url_invalid` otherwise (no credentials in it either)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid_url("not a URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid_url("only http and https URLs with a host are fetched")
    if parts.username is not None or parts.password is not None:
        raise _invalid_url("credentials in the URL are not accepted")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def blocked_address(address: str) -> bool:
    """Whether `address` (an IP address as text) is not a public unicast address: private, loopback, link-local,
    multicast, reserved, unspecified or shared (carrier-grade NAT); an IPv4-mapped IPv6 address is judged as the
    IPv4 address it carries. Unparseable text counts as blocked."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id ("fe80::1%eth0") is not part of it
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def first_blocked(addresses: Iterable[str]) -> str | None:
    """The first address of `addresses` that `blocked_address` refuses, or None when all are public."""
    return next((address for address in addresses if blocked_address(address)), None)


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (a literal IP resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check_host(url: str, allow_private: bool) -> str | None:
    """Refuse `url` unless http(s); unless `allow_private`, also when its host resolves to a blocked address
    (403 `input_private_address`) or does not resolve (400 `input_fetch_failed`). Returns the checked address to
    connect to (None when `allow_private`: the host is connected to as it resolves then)."""
    _, host, port = url_parts(url)
    if allow_private:
        return None
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise AppError(400, "input_fetch_failed", "the input URL's host does not resolve", {"host": host}) from exc
    if (blocked := first_blocked(addresses)) is not None:
        raise AppError(
            403,
            "input_private_address",
            "the input URL names a private, loopback or otherwise non-public address",
            {"host": host, "address": blocked},
        )
    if not addresses:
        raise AppError(400, "input_fetch_failed", "the input URL's host does not resolve", {"host": host})
    return addresses[0]


@dataclass(frozen=True)
class Target:
    """What is requested for a URL: `url` with its host replaced by the checked address (so a second lookup by
    the HTTP client, which a DNS answer changed in between could point elsewhere, never happens), the original
    `Host` header, and for https the original name for TLS (SNI and certificate verification)."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


def pinned(url: str, address: str | None) -> Target:
    """The request for `url` connecting to `address` (None: `url` as it is)."""
    if address is None:
        return Target(url, {}, {})
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    extensions: dict[str, Any] = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return Target(urlunsplit(parts._replace(netloc=netloc)), {"Host": parts.netloc}, extensions)


async def fetch_url(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    timeout_sec: float,
    max_redirects: int,
    allow_private: bool,
) -> bytes:
    """The body of `url` (see the module docstring for the rules and errors). `client` must not follow
    redirects itself (each hop is checked here)."""
    try:
        async with asyncio.timeout(timeout_sec):
            return await _fetch(client, url, max_bytes, max_redirects, allow_private)
    except TimeoutError as exc:
        raise _fetch_failed(url, f"no complete answer within {timeout_sec:g} s") from exc
    except httpx.HTTPError as exc:
        raise _fetch_failed(url, f"network error ({type(exc).__name__})") from exc


async def _fetch(client: httpx.AsyncClient, url: str, max_bytes: int, max_redirects: int, allow_private: bool) -> bytes:
    for _ in range(max_redirects + 1):
        target = pinned(url, await check_host(url, allow_private))
        stream = client.stream(
            "GET", target.url, headers=target.headers, extensions=target.extensions, follow_redirects=False
        )
        async with stream as response:
            if response.status_code in REDIRECTS and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code != 200:
                raise _fetch_failed(url, f"the server answered HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise too_large(max_bytes)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise too_large(max_bytes)
            return bytes(body)
    raise _fetch_failed(url, f"more than {max_redirects} redirects")


def decode_base64(text: str, max_bytes: int) -> bytes:
    """The bytes of `text`: plain base64 or a `data:<type>;base64,<data>` URI (whitespace ignored). 413
    `input_too_large` over `max_bytes` (judged from the text's length before decoding), 400
    `input_base64_invalid` when it is not base64."""
    payload = text
    if payload.startswith("data:"):
        header, sep, payload = payload.partition(",")
        if not sep or not header.endswith(";base64"):
            raise AppError(400, "input_base64_invalid", "a data: URI must be base64 (data:<type>;base64,<data>)")
    payload = "".join(payload.split())
    if len(payload) // 4 * 3 > max_bytes + 3:
        raise too_large(max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AppError(400, "input_base64_invalid", "the input is not valid base64") from exc
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    return data


def too_large(max_bytes: int) -> AppError:
    return AppError(413, "input_too_large", "the input image is larger than accepted", {"max_bytes": max_bytes})


def _invalid_url(why: str) -> AppError:
    return AppError(400, "input_url_invalid", why)  # the URL is not repeated: it may carry a signature


def _fetch_failed(url: str, why: str) -> AppError:
    host = urlsplit(url).hostname or ""  # the host only: a URL may carry a signature
    return AppError(400, "input_fetch_failed", f"the input image could not be fetched: {why}", {"host": host})
