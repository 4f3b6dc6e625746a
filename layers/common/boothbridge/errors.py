"""The uniform error: one exception type carrying a stable code, an HTTP status and safe details."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error that is the caller's to see: `{"error": {"code", "message", "details"}}` with `status`.

    Codes are stable and documented in the README; messages never carry secrets or stack traces.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}
