"""Server-side meters: CPU of the server process and of PostgreSQL, SQL statements, pool checkouts, RSS; and
the optional profiler around a phase. All of these read the process they run in (the server process)."""

from __future__ import annotations

import contextlib
import cProfile
import math
import os
import pstats
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from boothbridge.db.engine import libpq_url
from boothbridge.db.raw import RawDb


@dataclass(frozen=True)
class Reading:
    own_cpu: float  # seconds of CPU used by the server process (all threads; not the load client)
    pg_cpu: float  # seconds of CPU used by the PostgreSQL server processes (NaN when not visible)
    statements: int  # SQL statements executed: the SQLAlchemy engine's and the plain psycopg pool's
    checkouts: int  # pool checkouts: the SQLAlchemy engine's and the plain psycopg pool's


class Meters:
    """CPU of this process and of the local PostgreSQL server, and the statements and checkouts of both of the
    product's connection pools (the SQLAlchemy engine, metered by its events; the hot path's `RawDb`, which
    counts its own)."""

    def __init__(self, engine: AsyncEngine, raw: RawDb, pg_pid: int | None) -> None:
        self.raw = raw
        self.statements = 0
        self.checkouts = 0
        self._pg: Any = None
        if pg_pid is not None:
            with contextlib.suppress(Exception):
                import psutil

                self._pg = psutil.Process(pg_pid)
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_statement)
        event.listen(engine.sync_engine, "checkout", self._on_checkout)

    def _on_statement(self, *_: Any) -> None:
        self.statements += 1

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts += 1

    def _pg_cpu(self) -> float:
        if self._pg is None:
            return math.nan
        try:
            t = self._pg.cpu_times()
            # Backends that already exited are in the postmaster's children times.
            total = float(t.user + t.system + t.children_user + t.children_system)
            for child in self._pg.children():
                with contextlib.suppress(Exception):
                    c = child.cpu_times()
                    total += c.user + c.system
            return total
        except Exception:
            return math.nan

    def read(self) -> Reading:
        own = os.times()  # user + system of this process only: the load client's CPU is not in it
        return Reading(
            own.user + own.system,
            self._pg_cpu(),
            self.statements + self.raw.statements,
            self.checkouts + self.raw.checkouts,
        )


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine and we can see it."""
    try:
        import psutil

        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            # Ask while the backend is alive: it is a child of the postmaster.
            return int(psutil.Process(int(row[0])).ppid()) if row else None
    except Exception:
        return None


def rss_kb() -> int:
    """This process's resident set size in kB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "?"


def usable_cpus() -> int:
    """The cores this process (and the client and PostgreSQL it starts) may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """Profile the block's main-thread work (the server's event loop) into `path`; nothing when `path` is None."""
    if path is None:
        yield
        return
    if path.suffix in (".html", ".txt"):
        from pyinstrument import Profiler

        sampler = Profiler(interval=0.0005, async_mode="disabled")
        sampler.start()
        try:
            yield
        finally:
            sampler.stop()
            output = sampler.output_html() if path.suffix == ".html" else sampler.output_text(show_all=False)
            path.write_text(output, encoding="utf-8")
            print(f"pyinstrument profile written to {path}", file=sys.stderr)
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(str(path))
        print(f"cProfile stats written to {path}; top functions by own time:", file=sys.stderr)
        pstats.Stats(str(path), stream=sys.stderr).sort_stats("tottime").print_stats(25)
