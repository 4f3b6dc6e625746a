"""The pure checks of a task's inputs (`boothbridge.tasks.fetch`): which URLs are fetched, which addresses are
refused outside the emulator, base64 and data: URIs with their size cap."""

from __future__ import annotations

import base64

import pytest

from boothbridge.errors import AppError
from boothbridge.tasks.fetch import blocked_address, decode_base64, first_blocked, pinned, url_parts


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",
        "not an address",
    ],
)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert blocked_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert not blocked_address(address)


def test_one_blocked_address_among_a_hosts_addresses_refuses_it() -> None:
    assert first_blocked(["8.8.8.8", "10.0.0.7"]) == "10.0.0.7"
    assert first_blocked(["8.8.8.8", "1.1.1.1"]) is None


def test_url_parts() -> None:
    assert url_parts("https://img.example.com/a.jpg?sig=1") == ("https", "img.example.com", 443)
    assert url_parts("http://[::1]:8080/x") == ("http", "::1", 8080)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.jpg",
        "file:///etc/passwd",
        "http:///nohost",
        "https://user:pw@example.com/a",
        "http://x:99999/",
    ],
)
def test_urls_that_are_not_fetched(url: str) -> None:
    with pytest.raises(AppError) as caught:
        url_parts(url)
    assert (caught.value.status, caught.value.code) == (400, "input_url_invalid")
    assert "pw" not in str(caught.value.details)


def test_base64_plain_and_data_uri() -> None:
    data = b"\xff\xd8\xff" + bytes(100)
    text = base64.b64encode(data).decode()
    assert decode_base64(text, 1000) == data
    assert decode_base64(f"data:image/jpeg;base64,{text[:40]}\n{text[40:]}", 1000) == data


@pytest.mark.parametrize(
    ("text", "status", "code"),
    [
        ("not base64!", 400, "input_base64_invalid"),
        ("data:image/jpeg,rawtext", 400, "input_base64_invalid"),
        (base64.b64encode(bytes(2000)).decode(), 413, "input_too_large"),
    ],
)
def test_bad_base64(text: str, status: int, code: str) -> None:
    with pytest.raises(AppError) as caught:
        decode_base64(text, 1000)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_a_checked_address_is_what_the_request_connects_to() -> None:
    https = pinned("https://img.example.com/a/b.jpg?X-Amz-Signature=1", "93.184.216.34")
    assert https.url == "https://93.184.216.34/a/b.jpg?X-Amz-Signature=1"
    assert (https.headers, https.extensions) == ({"Host": "img.example.com"}, {"sni_hostname": "img.example.com"})
    http6 = pinned("http://img.example.com:8080/x", "2606:4700::1")
    assert (http6.url, http6.headers, http6.extensions) == (
        "http://[2606:4700::1]:8080/x",
        {"Host": "img.example.com:8080"},
        {},
    )
    assert pinned("http://127.0.0.1:9/x", None).url == "http://127.0.0.1:9/x"  # private allowed: as it is
