"""Checking that a webhook delivery was signed by fal (https://docs.fal.ai/model-apis/model-endpoints/webhooks,
"Verifying Your Webhook").

fal signs `request_id \\n user_id \\n timestamp \\n sha256_hex(raw body)` with ED25519 and sends the hex signature
in `X-Fal-Webhook-Signature`; its public keys are a JWKS (`FAL_JWKS_URL`, default
`https://rest.alpha.fal.ai/.well-known/jwks.json`). The keys are fetched with httpx, turned into keys by PyJWT's
`PyJWK` (the `cryptography` backend does the ED25519 check) and cached for `cache_sec` (24 h); a signature no
cached key accepts makes one early refetch (fal rotated its keys), at most once a minute. A timestamp more than
`tolerance_sec` (5 min) away from now is refused, as is a delivery whose signed request id differs from the
body's.

`SignatureError` carries a short reason (for the log and the 401 answer); no key or body is ever in it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from boothbridge.providers.fal.wire import SIGNATURE_HEADERS, signature_message

log = logging.getLogger(__name__)


class SignatureError(Exception):
    """The delivery is not proven to come from fal."""


class FalSignatures:
    """The JWKS cache and the check. One per adapter; safe to share between concurrent deliveries."""

    cache_sec: float = 86_400.0
    refetch_min_sec: float = 60.0
    tolerance_sec: float = 300.0
    fetch_timeout_sec: float = 10.0

    def __init__(self, jwks_url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.jwks_url = jwks_url
        self.clock = clock
        self._keys: list[PyJWK] = []
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Check the delivery; returns the signed request id. Raises `SignatureError`."""
        values = [headers.get(name, "") for name in SIGNATURE_HEADERS]
        if not all(values):
            raise SignatureError("the delivery is not signed (missing X-Fal-Webhook-* headers)")
        request_id, user_id, timestamp, signature_hex = values
        try:
            sent_at = int(timestamp)
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            raise SignatureError("the signature headers are malformed") from None
        if abs(self.clock() - sent_at) > self.tolerance_sec:
            raise SignatureError("the delivery's timestamp is outside the accepted window")
        message = signature_message(request_id, user_id, timestamp, body)
        if self._accepts(await self._current_keys(), signature, message):
            return request_id
        if self.clock() - self._fetched_at >= self.refetch_min_sec:  # fal may have rotated its keys
            if self._accepts(await self._current_keys(force=True), signature, message):
                return request_id
        raise SignatureError("the signature does not match fal's published keys")

    @staticmethod
    def _accepts(keys: list[PyJWK], signature: bytes, message: bytes) -> bool:
        for key in keys:
            try:
                if key.Algorithm.verify(message, key.key, signature):
                    return True
            except (ValueError, TypeError):  # a signature of the wrong length for this key
                continue
        return False

    async def _current_keys(self, force: bool = False) -> list[PyJWK]:
        async with self._lock:
            if force or not self._keys or self.clock() - self._fetched_at > self.cache_sec:
                self._keys = await self._fetch()
                self._fetched_at = self.clock()
            return self._keys

    async def _fetch(self) -> list[PyJWK]:
        try:
            async with httpx.AsyncClient(timeout=self.fetch_timeout_sec) as http:
                resp = await http.get(self.jwks_url)
                resp.raise_for_status()
                document = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("fal: cannot fetch the webhook keys (%s)", type(exc).__name__)
            raise SignatureError("fal's webhook keys cannot be fetched now") from None
        keys = []
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                keys.append(PyJWK(entry, algorithm="EdDSA"))
            except PyJWKError:
                continue  # a key type we do not verify with
        if not keys:
            raise SignatureError("fal's JWKS holds no ED25519 key")
        return keys
