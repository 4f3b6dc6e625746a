"""Cold import: what importing each function module costs a fresh interpreter, against a FastAPI + Mangum hello world.

`python -m bench.cold_import` (or `make bench`). For each module a fresh `sys.executable` (this venv, cwd = the
repository) imports it once and reports the import's wall time (time.perf_counter, s) and the process's peak
resident size (`ru_maxrss`, MiB, interpreter included); each figure is the median of `--runs` processes, the
modules taking turns. The
reference is a FastAPI app wrapped in `Mangum(app)`, written to a temporary directory. Issue 13's target for each
HTTP function: at most 1.5x the reference's time and at most 60 MiB above its peak.

Rows: the HTTP functions (ingest, admin, api_v1, webhook) and the plain Lambda handlers (worker, cleanup), each with its
ratio to the reference, its MiB above it and a verdict against both limits (for the plain handlers the same
limits, for information: the target names the HTTP functions). The table informs; the exit status is 0 whatever
it says. `boothbridge.bootstrap` is shown too, without a verdict: a function builds its container (and so imports
the composition root) on its first request, so that row is the import bill the first request pays.

Then one `python -X importtime` run of the slowest HTTP function lists its ten heaviest imported distributions
(summed self time of each top-level package) and the module of ours that first imported each.

Bytecode: site-packages come precompiled (pip compiles them), so by default our modules are compiled once,
before the measured runs, into a private cache (PYTHONPYCACHEPREFIX under a temporary folder; the repository gets
no `__pycache__`): every row then loads bytecode, as a deployment that ships it does (infra/README.md, step 1).
`--compile-each-time` measures our modules compiled at every import instead (PYTHONDONTWRITEBYTECODE, as this
machine's environment sets it). The header says which.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELLO = "bench_cold_hello"
HELLO_SOURCE = """from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/")
def hello() -> dict[str, str]:
    return {"hello": "world"}


handler = Mangum(app, lifespan="off")
"""
HTTP_FUNCTIONS = ("functions.ingest.app", "functions.admin.app", "functions.api_v1.app", "functions.webhook.app")
PLAIN_FUNCTIONS = ("functions.worker.handler", "functions.cleanup.handler")
FIRST_REQUEST = "boothbridge.bootstrap"
MAX_RATIO = 1.5
MAX_EXTRA_MIB = 60.0
PROBE = (
    "import time, resource; t = time.perf_counter(); import {module}; d = time.perf_counter() - t; "
    "print(d, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


@dataclass(frozen=True)
class Row:
    module: str
    seconds: float  # median import wall time
    mib: float  # median peak RSS of the process


def _env(extra_path: Path, *, bytecode: bool) -> dict[str, str]:
    """The measured interpreters' environment; `bytecode`: our modules' bytecode cached under `extra_path`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra_path), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(extra_path / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def import_once(module: str, env: dict[str, str]) -> tuple[float, float]:
    """One fresh interpreter's import of `module`: wall time (s) and the process's peak RSS (MiB; ru_maxrss is KiB
    on Linux)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[-2]), int(out[-1]) / 1024


def measure(modules: list[str], runs: int, env: dict[str, str]) -> list[Row]:
    """Median import time and peak RSS of each module over `runs` fresh interpreters. The modules take turns
    (round robin, not one module's runs in a row), so a shared machine's changing load falls on all alike."""
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in modules}
    for module in modules:  # not measured: writes the bytecode cache when there is one
        import_once(module, env)
    for _ in range(runs):
        for module in modules:
            samples[module].append(import_once(module, env))
    return [
        Row(m, statistics.median(t for t, _ in samples[m]), statistics.median(r for _, r in samples[m]))
        for m in modules
    ]


def _importtime(code: str, env: dict[str, str]) -> list[tuple[int, str, int]]:
    """`python -X importtime -c code` as (depth, module, self time in us), in completion order."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stderr
    entries: list[tuple[int, str, int]] = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        # "import time: <self us> | <cumulative us> | <indented module>"
        self_us, _cumulative, name = line.split("|", 2)
        depth = (len(name) - len(name.lstrip(" "))) // 2
        entries.append((depth, name.strip(), int(self_us.split(":")[-1])))
    return entries


def heaviest(module: str, env: dict[str, str], top: int = 10) -> tuple[list[tuple[str, float, str]], float]:
    """(top-level package, summed self time in ms, our module that first imported it), heaviest first, and the
    summed self time of our own modules (ms: their code, e.g. route declarations and models, and its compilation);
    the interpreter's own start-up imports (`-c pass`) are left out."""
    startup = {name for _, name, _ in _importtime("pass", env)}
    # Lines come in completion order, children before their parent; the nesting is the name's indentation.
    entries = [e for e in _importtime(f"import {module}", env) if e[1] not in startup]
    ours = ("boothbridge", "functions")
    importer: dict[str, str] = {}
    totals: dict[str, int] = {}
    ours_us = 0
    for index, (depth, name, self_us) in enumerate(entries):
        package = name.split(".")[0]
        if package in ours:
            ours_us += self_us
            continue
        totals[package] = totals.get(package, 0) + self_us
        if package not in importer:
            importer[package] = _our_parent(entries, index, depth, ours)
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [(package, us / 1000, importer[package]) for package, us in ranked], ours_us / 1000


def _our_parent(entries: list[tuple[int, str, int]], index: int, depth: int, ours: tuple[str, ...]) -> str:
    """The nearest enclosing module of ours: a parent is the next entry (in completion order) one level up."""
    for later_depth, later_name, _ in entries[index + 1 :]:
        if later_depth < depth:
            depth = later_depth
            if later_name.split(".")[0] in ours:
                return later_name
    return "-"


def verdict(ratio: float, extra_mib: float) -> str:
    """Against both limits: `meets both`, else what is missed (`MISSES 1.62x > 1.5x`, `MISSES +65 MiB > 60`)."""
    missed = []
    if ratio > MAX_RATIO:
        missed.append(f"{ratio:.2f}x > {MAX_RATIO}x")
    if extra_mib > MAX_EXTRA_MIB:
        missed.append(f"+{extra_mib:.0f} MiB > {MAX_EXTRA_MIB:.0f}")
    return "MISSES " + ", ".join(missed) if missed else "meets both"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per module (median; default 7)")
    parser.add_argument(
        "--compile-each-time", action="store_true", help="no bytecode cache for our modules: compiled at every import"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cold-import-") as tmp:
        Path(tmp, f"{HELLO}.py").write_text(HELLO_SOURCE)
        env = _env(Path(tmp), bytecode=not args.compile_each_time)
        hello, *rows = measure([HELLO, *HTTP_FUNCTIONS, *PLAIN_FUNCTIONS, FIRST_REQUEST], args.runs, env)
        slowest = max((r for r in rows if r.module in HTTP_FUNCTIONS), key=lambda r: r.seconds).module
        heavy, ours_ms = heaviest(slowest, env)
    bytecode = (
        "off (our modules compiled at each import)"
        if args.compile_each_time
        else "on (our modules compiled once beforehand into a private cache, as site-packages are)"
    )
    print(f"Cold import, median of {args.runs} fresh interpreters ({sys.executable}, Python {sys.version.split()[0]})")
    print(f"bytecode cache: {bytecode}")
    print(f"target for HTTP functions: <= {MAX_RATIO}x the reference's time and <= {MAX_EXTRA_MIB:.0f} MiB above it")
    print("(plain handlers * are held to the same limits for information)\n")
    print(f"{'module':<28} {'import s':>9} {'ratio':>6} {'peak MiB':>9} {'+MiB':>6}  verdict")
    for row in (hello, *rows):
        ratio = row.seconds / hello.seconds
        extra = row.mib - hello.mib
        if row is hello:
            note, name = "reference", "FastAPI + Mangum hello"
        elif row.module == FIRST_REQUEST:
            note, name = "paid by the first request", row.module
        elif row.module in PLAIN_FUNCTIONS:
            note, name = verdict(ratio, extra), f"{row.module} *"
        else:
            note, name = verdict(ratio, extra), row.module
        print(f"{name:<28} {row.seconds:>9.3f} {ratio:>5.2f}x {row.mib:>9.1f} {extra:>+6.1f}  {note}")
    print(f"\nheaviest imports of {slowest} (python -X importtime, summed self time per package):")
    for package, ms, via in heavy:
        print(f"  {package:<24} {ms:>7.1f} ms  first imported by {via}")
    print(f"  {'(our own modules)':<24} {ours_ms:>7.1f} ms  functions.*, boothbridge.*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
