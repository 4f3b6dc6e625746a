"""The text of a multipart form's parts: file names (RFC 5987 `filename*`), the form's charset, and text fields
decoded as Starlette decodes them. Pure functions (no I/O)."""

from __future__ import annotations

import codecs
import re
from urllib.parse import unquote_to_bytes

# One `; key=value` parameter of a header value; the value a quoted-string or a token.
_PARAMETER = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')

# An unpaired surrogate: some codecs decode one (UTF-7 `+2AA-`), and no UTF-8 text (PostgreSQL's) can hold it.
_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")


def extended_filename(disposition: bytes) -> str | None:
    """The RFC 5987 `filename*=charset'language'percent-encoded` parameter, decoded; None when absent or
    not in that form. (RFC 2231 continuations, `filename*0*=`, are not supported.)"""
    for match in _PARAMETER.finditer(disposition.decode("latin-1")):
        if match.group(1).lower() != "filename*":
            continue
        value = match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        charset, sep, rest = value.partition("'")
        _language, sep2, encoded = rest.partition("'")
        if not (sep and sep2):
            return None
        raw = unquote_to_bytes(encoded)
        try:
            return _UNPAIRED_SURROGATE.sub("\ufffd", raw.decode(charset or "utf-8", "replace"))
        except (LookupError, UnicodeError):  # an unknown charset, or one that is not text (idna)
            return raw.decode("utf-8", "replace")
    return None


def charset_of(declared: bytes | None) -> str:
    try:
        return codecs.lookup((declared or b"utf-8").decode("latin-1")).name
    except LookupError:
        return "latin-1"


def decode_text(raw: bytes | bytearray, charset: str) -> str:
    """Text as Starlette decodes it: the form's charset, else Latin-1 (which never fails); an unpaired surrogate
    the charset's codec produced becomes U+FFFD, as an undecodable byte does."""
    try:
        text = raw.decode(charset)
    except (UnicodeError, LookupError):  # UnicodeError: also what a codec like idna raises for bad input
        return raw.decode("latin-1")
    return _UNPAIRED_SURROGATE.sub("\ufffd", text)
