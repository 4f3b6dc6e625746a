"""The claim function in the database is the one `boothbridge.jobs.statements` renders: the newest migration that
creates `boothbridge_claim` must hold exactly `CLAIM_FUNCTION` (change the statements, add a migration)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from boothbridge.jobs.statements import CLAIM, CLAIM_FUNCTION

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def _newest_migration_creating_the_function() -> Path:
    creating = sorted(
        p for p in VERSIONS.glob("*.py") if "CREATE OR REPLACE FUNCTION boothbridge_claim(" in p.read_text()
    )
    assert creating, "no migration creates boothbridge_claim"
    return creating[-1]


def test_the_newest_migration_holds_the_rendered_function() -> None:
    path = _newest_migration_creating_the_function()
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.CLAIM_FUNCTION == CLAIM_FUNCTION, f"{path.name} differs from statements.CLAIM_FUNCTION"


def test_the_function_takes_every_parameter_the_claim_passes() -> None:
    declared = re.findall(r"\bp_(\w+) ", CLAIM_FUNCTION.split("RETURNS", 1)[0])
    used_in_body = set(re.findall(r"\bp_(\w+)", CLAIM_FUNCTION.split("$claim$", 1)[1])) - {"locked"}
    passed = re.findall(r"%\((\w+)\)s", CLAIM.split("boothbridge_claim(", 1)[1].split(") AS t", 1)[0])
    assert declared == passed
    assert used_in_body <= set(declared)
    assert "%(" not in CLAIM_FUNCTION
