"""The `local` provider's mask and face  operations as the adapter calls them: `(photo, request) -> image`.

Filled by issue 16; the adapter (`providers.local.adapter`) merges `OPERATIONS`, `PNG_ONLY` and `REQUIRED_MEDIA`.
"""

from __future__ import annotations

from boothbridge.providers.local.inputs import Operation

OPERATIONS: dict[str, Operation] = {}
# Operations whose result is always a PNG (they make transparency or a mask), whatever the `output` setting.
PNG_ONLY: frozenset[str] = frozenset()
# operation -> (the named image it cannot run without, the message of its `template_missing` error)
REQUIRED_MEDIA: dict[str, tuple[str, str]] = {}
