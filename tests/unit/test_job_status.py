"""JobStatus, its sets and the state transitions, checked against the SQL text that uses them (no database):
every status a statement on `jobs` names is a JobStatus, every set it names is one of the enum's (rendered the
one way), the transitions the UPDATEs make are exactly `ALLOWED`, and the schema's constraint and partial index
(the migrations) list the same statuses as the enum."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothbridge.jobs import statements
from boothbridge.jobs.status import ALLOWED, JobStatus, can_transition, sql_list

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"
NAMED_SETS = {
    "TERMINAL": JobStatus.TERMINAL,
    "ACTIVE": JobStatus.ACTIVE,
    "WORKER_SIDE": JobStatus.WORKER_SIDE,
    "IN_FLIGHT": JobStatus.IN_FLIGHT,
    "ENDED_IN_ERROR": JobStatus.ENDED_IN_ERROR,
}
# `status` compared with literals: `status = 'x'`, `j.status <> 'x'`, `status IN ('x', 'y')`.
STATUS_LITERALS = re.compile(
    r"\b(?:(?P<alias>\w+)\.)?status\s*(?:=|<>)\s*'(?P<one>\w+)'|\b(?:(?P<set_alias>\w+)\.)?status IN \((?P<set>[^)]*)\)"
)
# processing_log has a `status` column of its own (SUCCESS / ERROR / TIMEOUT); the statements alias it `l`.
PROCESSING_LOG_ALIASES = {"l"}
PROCESSING_LOG_STATUSES = {"SUCCESS", "ERROR", "TIMEOUT"}


def sql_texts() -> Iterator[tuple[str, str]]:
    """Every statement (and fragment) of the statements module, by name."""
    for name, value in vars(statements).items():
        if isinstance(value, str) and re.search(r"\b(SELECT|UPDATE|INSERT)\b", value):
            yield name, value
    for key, value in statements.STATS_GLOBAL_SERIES.items():
        yield f"STATS_GLOBAL_SERIES{key}", value


def job_status_literals(text: str) -> Iterator[tuple[str, ...]]:
    """Each comparison of a job's status with literals: one tuple of the statuses, in the order written."""
    for m in STATUS_LITERALS.finditer(text):
        alias = m["alias"] or m["set_alias"]
        values = (m["one"],) if m["one"] else tuple(re.findall(r"'(\w+)'", m["set"]))
        if alias in PROCESSING_LOG_ALIASES:
            assert set(values) <= PROCESSING_LOG_STATUSES, text
            continue
        yield values


def test_the_enum_is_the_six_states_and_the_sets_are_not_members() -> None:
    assert [s.value for s in JobStatus] == ["queued", "running", "waiting_provider", "succeeded", "failed", "cancelled"]
    assert JobStatus("queued") is JobStatus.QUEUED
    assert JobStatus.QUEUED == "queued" and f"{JobStatus.QUEUED}" == "queued"
    assert "TERMINAL" not in JobStatus.__members__


def test_the_sets_partition_and_nest_as_their_names_say() -> None:
    assert JobStatus.TERMINAL == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    assert JobStatus.TERMINAL | JobStatus.ACTIVE == set(JobStatus)
    assert not JobStatus.TERMINAL & JobStatus.ACTIVE
    assert JobStatus.WORKER_SIDE == {JobStatus.QUEUED, JobStatus.RUNNING}
    assert JobStatus.IN_FLIGHT == {JobStatus.RUNNING, JobStatus.WAITING_PROVIDER}
    assert JobStatus.WORKER_SIDE < JobStatus.ACTIVE and JobStatus.IN_FLIGHT < JobStatus.ACTIVE
    assert JobStatus.ENDED_IN_ERROR == {JobStatus.FAILED, JobStatus.CANCELLED}
    assert [s for s in JobStatus if s.is_terminal] == [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]


def test_sql_list_renders_in_declaration_order_whatever_the_input_order() -> None:
    assert sql_list([JobStatus.RUNNING, JobStatus.QUEUED]) == "('queued', 'running')"
    assert sql_list(JobStatus.ACTIVE) == "('queued', 'running', 'waiting_provider')"
    assert sql_list({JobStatus.CANCELLED}) == "('cancelled')"
    with pytest.raises(ValueError):
        sql_list(frozenset())


def test_transitions() -> None:
    assert can_transition("queued", "running")
    assert can_transition(JobStatus.RUNNING, JobStatus.RUNNING)  # a lapsed lease taken over: a new attempt
    assert can_transition("waiting_provider", "queued")
    assert not can_transition("queued", "succeeded")  # only an attempt completes a job
    assert not can_transition("queued", "waiting_provider")  # only a running attempt parks
    assert not can_transition("waiting_provider", "running")  # a parked job is finished by its callback
    for ended in JobStatus.TERMINAL:
        assert not any(can_transition(ended, new) for new in JobStatus)
    for unfinished in JobStatus.ACTIVE:
        assert can_transition(unfinished, JobStatus.CANCELLED) and can_transition(unfinished, JobStatus.FAILED)
    assert set(ALLOWED) == set(JobStatus)
    with pytest.raises(ValueError):
        can_transition("queued", "done")


def test_every_status_in_the_statements_is_a_job_status() -> None:
    named = {status for _, text in sql_texts() for values in job_status_literals(text) for status in values}
    assert named <= set(JobStatus)
    assert named == set(JobStatus)  # the scan itself sees every status (a scan that saw nothing would pass above)


def test_every_set_in_the_statements_is_one_of_the_enums_rendered_by_sql_list() -> None:
    rendered = {sql_list(statuses) for statuses in NAMED_SETS.values()}
    seen = set()
    for name, text in sql_texts():
        for values in job_status_literals(text):
            if len(values) > 1:
                listed = "(" + ", ".join(f"'{v}'" for v in values) + ")"
                assert listed in rendered, f"{name}: {listed} is none of JobStatus's sets"
                seen.add(listed)
    used = (JobStatus.TERMINAL, JobStatus.ACTIVE, JobStatus.WORKER_SIDE, JobStatus.IN_FLIGHT)
    assert seen == {sql_list(statuses) for statuses in used}


def test_allowed_is_exactly_what_the_updates_on_jobs_do() -> None:
    """Each `UPDATE jobs … SET status = 'to' … WHERE <status fence>` is a move from the fence's statuses to `to`;
    an UPDATE that takes its rows `FROM` a CTE (the claim's `picked`) is fenced by that CTE's condition."""
    moves: set[tuple[str, str]] = set()
    for name, text in sql_texts():
        for update in re.finditer(r"UPDATE jobs\b(?P<body>.*?)(?:RETURNING|\Z)", text, re.S):
            body = update["body"]
            target = re.search(r"\bSET status = '(\w+)'", body)
            if target is None:
                continue  # a lease or a token, not a status
            fence = {s for values in job_status_literals(body[body.index("WHERE") :]) for s in values}
            source = re.search(r"\bFROM (\w+) WHERE jobs\.id = \1\.id", body)
            if source is not None:
                cte = re.search(rf"\b{source[1]} AS \((.*?)\n    \)", text, re.S)
                assert cte is not None, name
                fence |= {s for values in job_status_literals(cte[1]) for s in values}
            assert fence, f"{name}: an UPDATE setting a status without a status fence"
            moves |= {(current, target[1]) for current in fence}
    assert moves == {(current, new) for current, allowed in ALLOWED.items() for new in allowed}


def test_the_schema_lists_the_enums_statuses_and_the_active_set() -> None:
    """The migrations are the schema's history: the CHECK constraint allows exactly the enum's values, and the
    partial unique index's predicate is the ACTIVE set as the statements render it (so the planner can use it)."""
    text = "\n".join(path.read_text() for path in sorted(MIGRATIONS.glob("*.py")))
    assert text.count("jobs_status_check") == 1
    assert f'"status IN {sql_list(JobStatus)}",\n            name="jobs_status_check"' in text
    assert f'postgresql_where=sa.text("status IN {sql_list(JobStatus.ACTIVE)} AND NOT is_test")' in text
    assert f"j.status IN {sql_list(JobStatus.ACTIVE)}" in statements.ADMIT
