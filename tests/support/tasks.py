"""Helpers for the machine-client task tests (tests/integration/test_tasks_*.py): API keys for the provisioned
operators, the task service built as the route builds it, and a scripted HTTP server (input images to fetch, a
writeUrl that answers as told) served on loopback by uvicorn inside the test's event loop."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from boothbridge.accounts.machine_client import MachineClient
from boothbridge.bootstrap import Container
from boothbridge.tasks.service import TaskService
from tests.support.live_server import serving


async def machine_client(c: Container, username: str, name: str = "test key") -> MachineClient:
    """A live API key row for the provisioned operator `username` (its hash is of random bytes: never used to
    authenticate), as the `MachineClient` the API's dependency would yield."""
    key_id = uuid.uuid4()
    async with c.engine.begin() as conn:
        owner = (await conn.execute(text("SELECT id FROM users WHERE username = :u"), {"u": username})).scalar_one()
        await conn.execute(
            text("INSERT INTO api_keys (id, owner_id, name, prefix, key_hash) VALUES (:id, :o, :n, 'bbk_test', :h)"),
            {"id": key_id, "o": owner, "n": name, "h": hashlib.sha256(uuid.uuid4().bytes).hexdigest()},
        )
    return MachineClient(key_id=key_id, owner_id=owner, name=name)


def task_service(c: Container) -> TaskService:
    return TaskService(
        settings=c.settings,
        pool=c.pool,
        engine=c.engine,
        media=c.media,
        catalog=c.catalog,
        providers=c.providers,
        dispatcher=c.dispatcher,
        hub=c.hub,
        result_ttl_sec=c.settings.result_ttl_sec,
    )


async def media_count(c: Container) -> int:
    async with c.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM media_objects"))).scalar_one())


@dataclass
class Scripted:
    """What the scripted server answers: GET `/files/<name>` serves `files[name]` (with `content_type`); PUT
    `/put/<name>` answers the next status of `put_statuses` (200 once they run out) and records the request."""

    files: dict[str, bytes] = field(default_factory=dict)
    content_type: str = "image/jpeg"
    redirects: dict[str, str] = field(default_factory=dict)
    put_statuses: list[int] = field(default_factory=list)
    puts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path = request.url.path
        if request.method == "PUT" and path.startswith("/put/"):
            body = await request.body()
            self.puts.append((path, dict(request.headers), body))
            status = self.put_statuses.pop(0) if self.put_statuses else 200
            response = Response(b"<Error>refused by the test server</Error>" if status >= 400 else b"", status)
        elif request.method == "GET" and path in self.redirects:
            self.gets.append(path)
            response = Response(status_code=302, headers={"Location": self.redirects[path]})
        elif request.method == "GET" and path.startswith("/files/") and path[7:] in self.files:
            self.gets.append(path)
            response = Response(self.files[path[7:]], media_type=self.content_type)
        else:
            response = Response(b"not here", 404)
        await response(scope, receive, send)


@contextlib.asynccontextmanager
async def scripted_server(script: Scripted) -> AsyncIterator[Scripted]:
    async with serving(script) as port:
        script.port = port
        yield script
