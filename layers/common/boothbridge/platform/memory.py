"""Giving freed memory back to the system: glibc's malloc keeps much of it unless told otherwise.

A booth photo (8 MB), its stored copy read by the worker and the decode buffers are large, short-lived
allocations. glibc serves one of at least M_MMAP_THRESHOLD bytes (128 KiB at start) with a mapping of its own,
unmapped when freed; but it raises that threshold to the size of every such block freed (up to 32 MiB on 64-bit,
mallopt(3)), so after the first photo the next ones come from the heap arenas and stay there once freed (measured
with bench.big_waiters: RSS 10 s after a burst of 200 waiting 8 MB photos +572 % of idle with the in-process
worker, +58 % without). `keep_big_blocks_returnable` sets the threshold explicitly, which turns that adjustment off
(and the trim threshold's with it); `IdleTrim` hands back what is left free inside the arenas (malloc_trim(0))
once the process has been idle for a moment after a burst. Pillow's own block cache is off by default
(`Image.core.get_blocks_max() == 0`) and pyvips' operation cache is turned off where it is loaded, so their
buffers are plain mallocs too.

Where the C library is not glibc (macOS, musl) nothing is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import sys
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # <malloc.h>
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept fixed
TRIM_AFTER_IDLE_SEC = 1.0


@functools.cache
def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    except (OSError, AttributeError):  # not glibc (musl has no libc.so.6 or no malloc_trim)
        return None
    return libc


def keep_big_blocks_returnable() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD_BYTES (process-wide; called once by the composition root):
    every block that large is unmapped when freed. False where there is no glibc."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def trim() -> None:
    """malloc_trim(0): give back the free pages inside every arena (no-op without glibc)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


class IdleTrim:
    """Counts the process's work in flight (`busy`); when none has been for TRIM_AFTER_IDLE_SEC after some ended,
    runs `trim` once (in a thread: it walks every arena). A steady trickle of requests trims at most once per idle
    moment; a burst once, after its end."""

    def __init__(self, delay_sec: float = TRIM_AFTER_IDLE_SEC) -> None:
        self.delay_sec = delay_sec
        self._in_flight = 0
        self._generation = 0

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self._in_flight += 1
        self._generation += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and _glibc() is not None:
                generation = self._generation
                asyncio.get_running_loop().call_later(self.delay_sec, self._maybe_trim, generation)

    def _maybe_trim(self, generation: int) -> None:
        if self._in_flight == 0 and generation == self._generation:
            task = asyncio.get_running_loop().run_in_executor(None, trim)
            task.add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("malloc_trim failed: %s", future.exception())
