"""The guest's choice (issue 14 item 6), pure: which variant a request names, how a variant's overrides reach a
step's calls, and how a prompt's `{field}` placeholders are filled from the booth's form fields.

What a placeholder may reach, and why it is safe:
- Only prompts: the top-level string setting named `prompt` (`PROMPT_SETTINGS`; every catalog operation that
  takes text calls it so: Turbotext's wire field `content` is filled from it by the adapter). No other setting
  is ever rewritten, so a guest's answer cannot change a model, a size or an image reference.
- A placeholder is `{name}` with `name` of 1 to 64 characters from `[A-Za-z0-9_]`, replaced in one pass by a
  regular expression: no format-string evaluation (no attribute or index access), and a value that itself
  looks like a placeholder (`{prompt}`) is inserted as text, never expanded.
- A value is cut to `MAX_FIELD_CHARS` characters after control characters are removed; an unknown placeholder
  becomes empty; a secret field (`SECRET_FIELDS`: the ingest password) is never a value, even if passed in.
- The filled prompt is cut to the setting's `maxLength` in the operation's schema (else `DEFAULT_PROMPT_CHARS`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

PROMPT_SETTINGS = frozenset({"prompt"})
SECRET_FIELDS = frozenset({"password"})  # compared case-insensitively
MAX_FIELD_CHARS = 200
DEFAULT_PROMPT_CHARS = 2000  # the catalog's maxLength of every prompt today
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]{1,64})\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def choose_variant(variants: Mapping[str, Any], wanted: str | None) -> str | None:
    """The variant `wanted` names (surrounding spaces ignored): the exact name, else the one name equal to it
    ignoring case (a survey answer "Winter" picks "winter"), else None (the slot's defaults; never an error)."""
    if not wanted:
        return None
    wanted = wanted.strip()
    if wanted in variants:
        return wanted
    folded = [name for name in variants if name.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def booth_values(fields: Mapping[str, str]) -> dict[str, str]:
    """The values a placeholder may take: each field's value without control characters, cut to
    `MAX_FIELD_CHARS`; secret fields dropped."""
    return {
        name: _CONTROL.sub("", str(value))[:MAX_FIELD_CHARS]
        for name, value in fields.items()
        if name.casefold() not in SECRET_FIELDS
    }


def fill_placeholders(text: str, values: Mapping[str, str], max_chars: int) -> str:
    """`text` with each `{name}` replaced by `values[name]` ("" when unknown), in one pass, cut to `max_chars`.
    `values` should come from `booth_values` (secret names are refused here too)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return "" if name.casefold() in SECRET_FIELDS else values.get(name, "")

    return PLACEHOLDER.sub(value, text)[:max_chars]


def fill_prompts(
    settings: Mapping[str, Any], values: Mapping[str, str], max_chars: Mapping[str, int]
) -> dict[str, Any]:
    """A copy of `settings` whose prompt settings (`PROMPT_SETTINGS`, when strings) have their placeholders
    filled; `max_chars[name]` is the setting's cap (else `DEFAULT_PROMPT_CHARS`). Other settings are untouched."""
    out = dict(settings)
    for name in PROMPT_SETTINGS:
        if isinstance(out.get(name), str):
            out[name] = fill_placeholders(out[name], values, max_chars.get(name, DEFAULT_PROMPT_CHARS))
    return out


def apply_override(
    settings: Mapping[str, Any], override: Mapping[str, Any], accepts: Collection[str] | None
) -> dict[str, Any]:
    """`settings` with `override`'s top-level keys replacing its own (a shallow merge: an object-valued setting
    such as `output` is replaced whole). `accepts`: the keys the call's schema has; an override key outside it
    is left out (an alternative of another operation does not get a setting it has no use for); None = all."""
    merged = dict(settings)
    merged.update({key: value for key, value in override.items() if accepts is None or key in accepts})
    return merged
