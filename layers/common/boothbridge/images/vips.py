"""libvips through pyvips (the `pyvips` binding and `pyvips-binary`'s bundled library), loaded on first use.

Used where it measurably beats Pillow on camera-sized images: the local provider's crops and downscales of a JPEG
(`providers.local.fast`) and PNG encoding (`images.boundary.encode`). Optional at run time: where libvips cannot be
loaded (a platform without the binary wheel, a trimmed Lambda layer) `load()` answers None and Pillow does the work.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType

log = logging.getLogger(__name__)


@functools.cache
def load() -> ModuleType | None:
    """pyvips, imported on the first call (it loads libvips); None when it cannot be loaded on this platform."""
    try:
        import pyvips  # type: ignore[import-untyped,unused-ignore]
    except (ImportError, OSError) as exc:
        log.warning("libvips is not available (%s); Pillow does its work", exc)
        return None
    pyvips.cache_set_max(0)  # no operation cache: it would keep each job's image buffer alive
    return pyvips
