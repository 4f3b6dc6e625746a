"""A job's status, defined once: the states, the sets the code asks about, and which changes the queue makes.

`JobStatus` is a `StrEnum`: a member equals (and formats as) its value, so it compares with the plain strings a
row holds and renders into SQL text as that value. The schema's CHECK constraint (`jobs_status_check`) allows
exactly these values. The SQL that needs a set renders it with `sql_list`, at import time, as literals (not as a
parameter): the partial indexes' predicates are written with literals, and the planner uses such an index only
when the query's condition implies its predicate, which it can prove from literals alone.

`ALLOWED` is what the SQL on `jobs` does today (`boothbridge.jobs.statements`; a unit test derives it from the
statement texts), not a wish list: a new statement that changes a status extends it there and here together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar


class JobStatus(StrEnum):
    """One job's state. The sets below are class attributes, not members (`list(JobStatus)` is the six states)."""

    QUEUED = "queued"  # waiting for a worker: new, delayed for a retry, or handed back by a stopping worker
    RUNNING = "running"  # an attempt under a worker's lease
    WAITING_PROVIDER = "waiting_provider"  # parked: an asynchronous provider delivers the result by webhook
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    # Ended: nothing changes the row's status any more.
    TERMINAL: ClassVar[frozenset[JobStatus]]
    # Not ended yet (the complement of TERMINAL): the job may still produce a result, and a re-post of its photo
    # attaches to it (the partial unique index `jobs_active_dedupe_uidx`).
    ACTIVE: ClassVar[frozenset[JobStatus]]
    # On the workers' side: waiting for a worker or running on one. A provider's backlog (admission's `depth`),
    # and what an attempt's failure may still end (a job requeued under the same attempt number included).
    WORKER_SIDE: ClassVar[frozenset[JobStatus]]
    # An attempt under way, at a worker or at the provider: what a cancel records as an ended attempt, what a
    # callback may finish, the metrics' jobs in flight.
    IN_FLIGHT: ClassVar[frozenset[JobStatus]]
    # Ended without a result: the job's error is reported with its status.
    ENDED_IN_ERROR: ClassVar[frozenset[JobStatus]]

    @property
    def is_terminal(self) -> bool:
        return self in JobStatus.TERMINAL


JobStatus.TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
JobStatus.ACTIVE = frozenset(JobStatus) - JobStatus.TERMINAL
JobStatus.WORKER_SIDE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
JobStatus.IN_FLIGHT = frozenset({JobStatus.RUNNING, JobStatus.WAITING_PROVIDER})
JobStatus.ENDED_IN_ERROR = JobStatus.TERMINAL - {JobStatus.SUCCEEDED}

_Q, _R, _W = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.WAITING_PROVIDER
_S, _F, _C = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED

# from -> the statuses a statement on `jobs` may set from it (a job is created `queued`):
# - queued: claimed (running); failed by its attempt's late failure (FAIL's fence admits a job requeued under the
#   same attempt); cancelled;
# - running: taken over once its lease lapsed (running again, under a new attempt number); handed back or
#   requeued for a retry (queued); parked for a callback (waiting_provider); completed; failed (by its attempt,
#   by a callback, or when its leases ran out too often); cancelled;
# - waiting_provider: requeued, completed or failed by the callback; failed when no callback came in time;
#   cancelled;
# - succeeded, failed, cancelled: nothing.
ALLOWED: Mapping[JobStatus, frozenset[JobStatus]] = MappingProxyType(
    {
        _Q: frozenset({_R, _F, _C}),
        _R: frozenset({_R, _Q, _W, _S, _F, _C}),
        _W: frozenset({_Q, _S, _F, _C}),
        _S: frozenset(),
        _F: frozenset(),
        _C: frozenset(),
    }
)


def can_transition(current: str, new: str) -> bool:
    """Whether some statement on `jobs` moves a job from `current` to `new`. ValueError for a string that is not a
    job status."""
    return JobStatus(new) in ALLOWED[JobStatus(current)]


def sql_list(statuses: Iterable[JobStatus]) -> str:
    """A set of statuses as an SQL literal list, in declaration order (so the same set always renders the same
    text): `('queued', 'running')`. ValueError for an empty set (`IN ()` is not SQL)."""
    chosen = frozenset(statuses)
    if not chosen:
        raise ValueError("an empty set of job statuses has no SQL list")
    return "(" + ", ".join(f"'{status}'" for status in JobStatus if status in chosen) + ")"
