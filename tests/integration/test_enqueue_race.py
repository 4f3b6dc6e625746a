"""A photo that loses the enqueue race to the same photo on another request keeps its stored copy until it knows
where it belongs: when the other job is no longer reusable by the next look, the photo is enqueued again with its
own copy (review finding: the copy was dropped first, and the new job pointed at a deleted photo)."""

from __future__ import annotations

from typing import Any

import httpx

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


async def test_losing_the_enqueue_race_keeps_the_photo_for_the_next_round(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    assert (await configure_slot(client, token, "slot-001", "local", "resize", {"width": 64})).status_code == 200
    password = credentials(settings.credentials_path)["ingest_password"]
    queue = container.queue
    real_enqueue = queue.enqueue
    calls: list[Any] = []

    async def lose_the_first_race(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            return None, False  # as if the same photo's job had just been inserted by another request
        return await real_enqueue(*args, **kwargs)

    queue.enqueue = lose_the_first_race  # type: ignore[method-assign]
    try:
        r = await post_photo(client, "slot-001", jpeg(320, 240), password)
    finally:
        queue.enqueue = real_enqueue  # type: ignore[method-assign]

    assert len(calls) == 2
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/")
