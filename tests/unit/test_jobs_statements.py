"""The one module of SQL on `jobs`: one placeholder style (psycopg's `%(name)s`, a literal percent sign written
`%%`), and a rendered global-series statement for every order the statistics API accepts. No database."""

from __future__ import annotations

import re

from boothbridge.jobs import statements
from boothbridge.stats.query import SORT_COLUMNS
from tests.unit.test_job_status import sql_texts

# A percent sign that is neither a `%(name)s` placeholder nor an escaped `%%`.
LONE_PERCENT = re.compile(r"%(?!\(\w+\)s|%)")
# A `:name` placeholder (SQLAlchemy `text()` style); `::type` casts are not one.
COLON_PLACEHOLDER = re.compile(r"(?<![:\w]):(?!:)[a-z_]\w*")


def test_every_statement_uses_psycopgs_placeholders_only() -> None:
    texts = dict(sql_texts())
    assert len(texts) > 30  # the scan sees the module's statements
    for name, text in texts.items():
        assert not LONE_PERCENT.search(text.replace("%%", "")), name
        assert not COLON_PLACEHOLDER.search(text), f"{name}: {COLON_PLACEHOLDER.search(text)}"
    assert "%(uid)s" in statements.STATS_SUMMARY and "LIKE '%%\\_media\\_id'" in statements.STATS_SUMMARY


def test_every_order_the_statistics_api_accepts_has_its_statement() -> None:
    for column in SORT_COLUMNS.values():
        for direction in ("asc", "desc"):
            statement = statements.STATS_GLOBAL_SERIES[column, direction]
            order = f"ORDER BY {column} {direction.upper()}, period_start {direction.upper()}"
            assert statement.count(order) == 2  # the page, and the rows it returns
