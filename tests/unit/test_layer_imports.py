"""The house's import rules, read from the source (no import is executed):

- no import circle among the layer's and the functions' modules, counting deferred imports (inside a function)
  too: a deferred import hides a circle, it does not remove it (only `if TYPE_CHECKING:` imports are not edges);
- the layer never imports `functions`, `local`, `tests` or `bench`; a function never imports another function;
- a provider never imports another provider (what they share lives outside `providers/<id>/`);
- the pure rooms (the decisions unit-tested without I/O) import no framework, database driver or AWS SDK.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "common"
FRAMEWORKS = ("fastapi", "starlette", "sqlalchemy", "psycopg", "aiobotocore", "botocore", "httpx", "mangum")
# Modules whose decisions are pure: unit-tested without I/O (ARCHITECTURE rule 2).
PURE = (
    "boothbridge.jobs.retry",
    "boothbridge.jobs.backoff",
    "boothbridge.jobs.status",
    "boothbridge.providers.quota",
    "boothbridge.providers.local.ops",
    "boothbridge.images.boundary",
    "boothbridge.images.codec",
    "boothbridge.ingest.outcome",
    "boothbridge.ingest.admission",
    "boothbridge.slots.rules",
    "boothbridge.stats.query",
)


def _module_name(path: Path) -> str:
    base = LAYER if path.is_relative_to(LAYER) else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*LAYER.joinpath("boothbridge").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]
    return {_module_name(p): p for p in files}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_imports(tree: ast.Module, *, deferred: bool = False) -> set[str]:
    """Dotted names imported when the module is imported (not under TYPE_CHECKING), and with `deferred` also
    those imported inside its functions and classes."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif deferred and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(node.body)
            elif deferred and isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
                visit(node.body)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return found


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        imported = _import_time_imports(ast.parse(path.read_text(), str(path)), deferred=True)
        graph[name] = {m for m in imported if m in sources and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_circle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    # The check above must be able to fail: a made-up a -> b -> c -> a circle beside a clean d.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_layer_imports_no_entry_point() -> None:
    offending = {
        name: sorted(m for m in _import_time_imports(ast.parse(path.read_text())) if m.split(".")[0] in outer)
        for name, path in _sources().items()
        if name.startswith("boothbridge")
        for outer in [("functions", "local", "tests", "bench")]
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_a_provider_imports_no_other_provider() -> None:
    packages = {p.parent.name for p in LAYER.glob("boothbridge/providers/*/__init__.py")}
    assert {"gemini", "turbotext", "local"} <= packages
    offending = {}
    for name, path in _sources().items():
        parts = name.split(".")
        if parts[:2] != ["boothbridge", "providers"] or len(parts) < 4:
            continue
        own = parts[2]
        others = {
            m
            for m in _import_time_imports(ast.parse(path.read_text()), deferred=True)
            if m.startswith("boothbridge.providers.") and m.split(".")[2] in packages and m.split(".")[2] != own
        }
        if others:
            offending[name] = sorted(others)
    assert offending == {}


def test_a_function_imports_no_other_function() -> None:
    offending = {}
    for name, path in _sources().items():
        if not name.startswith("functions."):
            continue
        own = name.split(".")[1]
        others = {
            m
            for m in _import_time_imports(ast.parse(path.read_text()))
            if m.startswith("functions.") and m.split(".")[1] != own
        }
        if others:
            offending[name] = sorted(others)
    assert offending == {}


def _wire_modules() -> tuple[str, ...]:
    """Every provider's wire module (`providers/<id>/wire.py`): a new provider's is checked without listing it."""
    return tuple(
        sorted(f"boothbridge.providers.{p.parent.name}.wire" for p in LAYER.glob("boothbridge/providers/*/wire.py"))
    )


def test_every_provider_with_a_wire_module_is_found() -> None:
    assert {"boothbridge.providers.gemini.wire", "boothbridge.providers.turbotext.wire"} <= set(_wire_modules())


@pytest.mark.parametrize("module", PURE + _wire_modules())
def test_pure_modules_import_no_framework_or_io_library(module: str) -> None:
    path = _sources()[module]
    imported = _import_time_imports(ast.parse(path.read_text()))
    assert sorted(m for m in imported if m.split(".")[0] in FRAMEWORKS) == []
