"""Keeping secrets out of log lines: the rules every rendered line passes through (see platform/logs.py).

What a line may carry that is a secret, and what it becomes:

- a provider callback URL `/webhooks/{provider}/{job id}.{secret}`: the secret is that call's only credential and
  the URL is what access logs print → `/webhooks/{provider}/{job id}.***` (the job id stays: it is what one needs
  to follow a callback); a token without a '.' is replaced whole (malformed, but maybe someone's pasted secret);
- a credential in a URL or a form/JSON/dict text, `password=…`, `?token=…`, `"api_key": "…"`, `X-Amz-Signature=…`
  (a booth that puts its password in the query string, a signed link, an SDK's error message) → `password=***`;
  a quoted value is replaced up to its closing quote (spaces, commas and escaped quotes included), also inside
  escaped JSON (`\"password\": \"…\"`, how an SDK prints a JSON string it received) and as a `('password', '…')`
  pair (a form's or a header list's repr); an unquoted one up to whitespace, `&`, `;` or a bracket (so
  `GEMINI_API_KEY=k1,k2` loses both keys); the same for URL-encoded webhook URLs (`%2Fwebhooks%2F…`);
- a URL's user info, `postgresql://user:pass@host` → `postgresql://user:***@host`;
- `Bearer …` / `Basic …` credentials and anything shaped like a JWT → `***`.

The rules match shapes, not known values: a secret logged bare, in no recognisable context, is not caught, which is
why nothing here is a licence to log secrets; it is the net under the rule that code never does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

REDACTED = "***"

# `/webhooks/<provider>/<token>`: the token is everything up to the next '/', '?', '#', quote or whitespace;
# whatever follows its first '.' (the secret) is replaced.
_WEBHOOK_TOKEN = re.compile(r"(/webhooks/[^/\s?#\"']+/)([^/\s?#\"'.]*)(\.[^/\s?#\"']*)?")
_WEBHOOK_TOKEN_ENCODED = re.compile(r"(?i)(%2Fwebhooks%2F[^%\s&\"']+%2F)([^%\s&\"'.]*)(\.[^\s&\"']*)?")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(@)")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# `"name": "value"`, `name='value'`, `name: "value"`: a quoted value runs to its closing quote (escaped quotes,
# spaces and commas inside). The same in escaped JSON (`\"name\": \"value\"`), and as a `('name', 'value')` pair.
_NAMED_QUOTED = re.compile(r"""(?<![\w-])([A-Za-z][\w.-]*)(["']?\s*[=:]\s*)(["'])((?:\\.|(?!\3).)*)(\3)""")
_NAMED_ESCAPED = re.compile(r"""(?<![\w-])([A-Za-z][\w.-]*)(\\"\s*:\s*)(\\")(.*?)(\\")""")
_NAMED_PAIR = re.compile(r"""(\(\s*["']([A-Za-z][\w.-]*)["']\s*,\s*)(["'])((?:\\.|(?!\3).)*)(\3\s*\))""")
# `name=value`, `name: value` unquoted: the value runs to whitespace, a quote, `&`, `;` or a closing bracket (a
# comma does not end it: `GEMINI_API_KEY=k1,k2`). A URL's `scheme://` is no name (its query's names come after).
_NAMED_VALUE = re.compile(r"(?<![\w-])([A-Za-z][\w.-]*)(\s*(?:=|:(?!//))\s*)([^\s\"'&;)}\]]+)")
# A name is a credential's when it contains one of these (lower-cased) ...
_SECRET_WORDS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "signature",
    "credential",
    "authoriz",
    "apikey",
    "api_key",
    "api-key",
)
# ... or is one of these (`key=` is Gemini's query parameter; `storage_key` and the like stay readable).
# `input_value` is what pydantic echoes of a value it refused: it may be a password that was too long.
_SECRET_NAMES = frozenset(
    {"key", "sig", "access_key", "private_key", "encryption_key", "hmac_key", "session", "input_value"}
)
_QUICK_CHECK = re.compile(r"(?i)webhooks|://|bearer|basic|eyJ|[=:]|\(\s*[\"']")


def is_secret_name(name: str) -> bool:
    """True for a field, parameter or header name that names a credential (`password`, `X-Amz-Signature`, `key`)."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)


def redact(text: str) -> str:
    """`text` with every secret the rules above recognise replaced by `***`."""
    if not _QUICK_CHECK.search(text):
        return text
    if "/webhooks/" in text:
        text = _WEBHOOK_TOKEN.sub(_webhook_token, text)
    if "%2" in text:
        text = _WEBHOOK_TOKEN_ENCODED.sub(_webhook_token, text)
    text = _URL_USERINFO.sub(rf"\1{REDACTED}\2", text)
    text = _AUTH_SCHEME.sub(rf"\1 {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _NAMED_PAIR.sub(_named_pair, text)
    text = _NAMED_ESCAPED.sub(_named_quoted, text)
    text = _NAMED_QUOTED.sub(_named_quoted, text)
    return _NAMED_VALUE.sub(_named_value, text)


def _webhook_token(match: re.Match[str]) -> str:
    prefix, head, secret = match.group(1), match.group(2), match.group(3)
    if secret is None:
        return f"{prefix}{REDACTED}"
    return f"{prefix}{head}.{REDACTED}"


def _named_quoted(match: re.Match[str]) -> str:
    name, separator, opening, value, closing = match.groups()
    if value == REDACTED or not is_secret_name(name.rsplit(".", 1)[-1]):
        return match.group(0)
    return f"{name}{separator}{opening}{REDACTED}{closing}"


def _named_pair(match: re.Match[str]) -> str:
    head, name, opening, _value, closing = match.groups()
    return f"{head}{opening}{REDACTED}{closing}" if is_secret_name(name) else match.group(0)


def _named_value(match: re.Match[str]) -> str:
    name, separator, value = match.groups()
    if value == REDACTED or not is_secret_name(name.rsplit(".", 1)[-1]):
        return match.group(0)
    return f"{name}{separator}{REDACTED}"


def redact_value(value: Any) -> Any:
    """A log event's value with its secrets replaced: strings by the rules, containers item by item (a structured
    traceback is a list of dicts); a value under a credential's name (`extra={"password": …}`) whole."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _under_secret_name(v) if _is_secret_key(k) else redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and is_secret_name(key)


def _under_secret_name(value: Any) -> Any:
    """A value under a credential's name: a scalar whole, a list of them item by item (`api_keys: [...]`)."""
    if isinstance(value, list | tuple):
        return [_under_secret_name(v) for v in value]
    if value is None or isinstance(value, bool | Mapping):
        return redact_value(value)
    return REDACTED


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the event dict with every secret replaced (runs after exceptions became text or dicts,
    just before rendering, so it sees everything the line will show)."""
    redacted = redact_value(dict(event_dict))
    event_dict.clear()
    event_dict.update(redacted)
    return event_dict
