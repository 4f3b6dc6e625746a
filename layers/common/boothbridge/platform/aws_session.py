"""The process's one aiobotocore session, shared by every AWS client the process builds (S3, Lambda).

A session caches the service models it has loaded and the client classes it has generated; a new session per
client parses botocore's JSON models again (~0.15 s of CPU for S3 here, against ~0.01 s with a warm session).
Clients stay per owner (each has its own connection pool and is closed by it); only the session is shared.
"""

from __future__ import annotations

import functools

from aiobotocore.session import AioSession, get_session


@functools.cache
def aws_session() -> AioSession:
    return get_session()
