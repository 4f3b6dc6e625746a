"""Checks on a request's URL that every function app applies (as an app-wide FastAPI dependency).

`no_nul_in_url`: path and query values are matched against text columns (PostgreSQL text cannot hold a NUL), so
one with a NUL character is refused with 400 `validation_error` in the uniform error format, `details.fields` =
`[{"field": "path.<name>" | "query.<name>", "message"}]`, before any route code or database query runs, never a
500. Query parameters the route does not declare are ignored, as FastAPI ignores them.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from boothbridge.errors import AppError

NUL_MESSAGE = "must not contain NUL characters"


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameter names a route (and its dependencies) declares."""
    return {p.alias for p in dependant.query_params}.union(*(_query_names(d) for d in dependant.dependencies))


async def no_nul_in_url(request: Request) -> None:
    """Raise 400 `validation_error` naming every path parameter and declared query parameter that holds a NUL."""
    route = request.scope.get("route")
    declared = _query_names(route.dependant) if isinstance(route, APIRoute) else set()
    query = [(name, value) for name, value in request.query_params.multi_items() if name in declared]
    fields = [
        {"field": f"{where}.{name}", "message": NUL_MESSAGE}
        for where, items in (("path", list(request.path_params.items())), ("query", query))
        for name, value in items
        if "\x00" in str(value)
    ]
    if fields:
        raise AppError(400, "validation_error", "the request is not valid", {"fields": fields})
