"""For the plain (non-HTTP) Lambda handlers: one event loop and one container per execution environment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from boothbridge.bootstrap import Container, build_container
from boothbridge.platform.logs import configure_logging, log_scope
from boothbridge.settings import Settings

T = TypeVar("T")


class HandlerRuntime:
    """Lambda reuses a warm execution environment for many invocations: the container (database pool,
    storage and provider clients) is built on the first one and kept, on a loop that lives as long."""

    def __init__(self) -> None:
        self.container: Container | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, work: Callable[[Container], Awaitable[T]], context: Any = None) -> T:
        """Run `work` with the environment's container; every line it logs carries the invocation's request id
        (`context.aws_request_id`, when Lambda gives a context)."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self._run(work, getattr(context, "aws_request_id", None)))

    async def _run(self, work: Callable[[Container], Awaitable[T]], request_id: str | None) -> T:
        if self.container is None:
            settings = Settings()
            configure_logging(settings.log_format, settings.log_level)  # JSON lines on Lambda
            self.container = await build_container(settings, listen=False)
        with log_scope(**({"request_id": request_id} if request_id else {})):
            return await work(self.container)

    def shutdown(self) -> None:
        """Release the container and the loop (the end of an execution environment; used by tests)."""
        if self._loop is None:
            return
        if self.container is not None:
            self._loop.run_until_complete(self.container.close())
            self.container = None
        self._loop.close()
        self._loop = None
