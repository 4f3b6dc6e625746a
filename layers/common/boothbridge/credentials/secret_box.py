"""Encryption at rest for provider API keys: Fernet (AES-128-CBC + HMAC-SHA256) under the credentials file's
`encryption_key`, so a database dump alone does not reveal them."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the encryption key must be 32 bytes")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str | None:
        """The plaintext, or None when the token was sealed under another key (credentials regenerated)."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None


def mask(secret: str) -> str:
    """What an operator may see of a key: enough to recognise it, never enough to use it."""
    if len(secret) <= 8:
        return "•" * len(secret)
    return f"{secret[:4]}…{secret[-4:]}"
