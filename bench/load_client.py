"""The load client, in its own process, and the server side's handle on it.

`LoadClient.start()` (server process) runs `python -m bench.load_client` as a child. The child makes the run's
photos on two threads at once, says `ready`, then runs one command at a time: one JSON line in on stdin, one
JSON line out on stdout. Latencies are measured here, in the child, so its CPU and event loop never compete
with the server's. The child exits on `exit` or when its stdin closes (the server process ended, even by
SIGKILL); it ignores Ctrl-C and leaves shutting down to the server process, which kills it if it lingers.

Commands (each answers `{"event": "done", ...}` or `{"event": "error", "message": ...}`):
  target  base_url, password                        where to post, and the ingest password
  closed  path, photos, concurrency, pool           closed loop over the named photo set
  open    path, photos, rate, seed, pool            Poisson arrivals at `rate`/s over the named photo set
          [first, count]                            `count` photos of the set from `first` (wrapping round)
          [stop_slow: [seconds, count]]             stop sending once `count` requests took > `seconds`
  burst   path, photos, pool                        every photo at once; answers when all are answered
A `done` carries `samples` (rows of `Sample.to_row()`), `seconds` (the loop's duration), `client_cpu` (this
process's CPU seconds during the command) and `photo_bytes` (the photo set's mean size).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import httpx

from bench.load import burst, client_limits, closed_loop, open_loop
from bench.photos import PhotoBank

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_LINE = 64 * 1024 * 1024  # a reply carries one row per request


# ---- the child ---------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, bank: PhotoBank) -> None:
        self.bank = bank
        self.sets: dict[str, list[bytes]] = {}  # each set is used twice: the inline baseline, then ingest
        self.base_url = ""
        self.password = ""
        self.client: httpx.AsyncClient | None = None
        self.pool = 0

    def photos(self, name: str) -> list[bytes]:
        if name not in self.sets:
            self.sets[name] = self.bank.take(name)
        return self.sets[name]

    async def http(self, pool: int) -> httpx.AsyncClient:
        """One keep-alive client per pool size: warm-up and measured requests share its connections."""
        if self.client is None or pool != self.pool:
            await self.close()
            self.client = httpx.AsyncClient(base_url=self.base_url, limits=client_limits(pool), timeout=120)
            self.pool = pool
        return self.client

    async def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "target":
            self.base_url, self.password = cmd["base_url"], cmd["password"]
            return {"event": "done"}
        photos = self.photos(cmd["photos"])
        if "first" in cmd:  # a slice of the set, wrapping round (the capacity search's steps share one set)
            first = int(cmd["first"])
            photos = [photos[(first + i) % len(photos)] for i in range(int(cmd["count"]))]
        client = await self.http(int(cmd["pool"]))
        cpu0, t0 = os.times(), time.perf_counter()
        if op == "closed":
            samples = await closed_loop(client, cmd["path"], photos, int(cmd["concurrency"]), self.password)
        elif op == "open":
            stop = cmd.get("stop_slow")  # [seconds, count]: end the loop early (see open_loop)
            samples = await open_loop(
                client,
                cmd["path"],
                photos,
                float(cmd["rate"]),
                self.password,
                cmd["seed"],
                (float(stop[0]), int(stop[1])) if stop else None,
            )
        elif op == "burst":
            samples = await burst(client, cmd["path"], photos, self.password)
        else:
            raise ValueError(f"unknown command {op!r}")
        seconds, cpu1 = time.perf_counter() - t0, os.times()
        return {
            "event": "done",
            "samples": [s.to_row() for s in samples],
            "seconds": seconds,
            "client_cpu": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
            "photo_bytes": sum(map(len, photos)) // max(len(photos), 1),
        }

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None


def emit(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    sys.stdout.buffer.flush()


async def serve(sizes: dict[str, int], offset: int) -> None:
    bank = PhotoBank(sizes, offset)
    runner = Runner(bank)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    emit({"event": "ready", "pid": os.getpid(), "httpx": httpx.__version__, "loop": type(loop).__module__})
    try:
        next_line: asyncio.Future[bytes] = asyncio.ensure_future(stdin.readline())
        while line := await next_line:
            cmd = json.loads(line)
            if cmd["op"] == "exit":
                break
            next_line = asyncio.ensure_future(stdin.readline())
            work = asyncio.ensure_future(runner.run(cmd))
            await asyncio.wait({work, next_line}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():  # stdin closed (or spoke out of turn) mid-command: the server is gone
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
                break
            try:
                emit(work.result())
            except Exception:
                emit({"event": "error", "message": traceback.format_exc()})
    finally:
        await runner.close()
        bank.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.load_client", description="bench load client (child)")
    p.add_argument("--sizes", required=True, help='JSON: photo set name -> count, e.g. {"c1": 350}')
    p.add_argument("--offset", type=int, required=True, help="photo patch offset, distinct per run")
    p.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server process decides when we stop
    sizes = {str(k): int(v) for k, v in json.loads(args.sizes).items()}
    if use_uvloop(args.loop):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
            r.run(serve(sizes, args.offset))
    else:
        with asyncio.Runner() as r:
            r.run(serve(sizes, args.offset))
    return 0


def use_uvloop(choice: str) -> bool:
    return choice == "uvloop" or (choice == "auto" and importlib.util.find_spec("uvloop") is not None)


# ---- the server side's handle ------------------------------------------------------------------------------


class LoadClientError(RuntimeError):
    pass


class LoadClient:
    """The child process, seen from the server process: send a command, await its one reply."""

    def __init__(self, proc: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        self.proc = proc
        self.hello = hello
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, sizes: dict[str, int], offset: int, loop: str, timeout: float = 120) -> LoadClient:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bench.load_client", "--sizes", json.dumps(sizes)),
            *("--offset", str(offset), "--loop", loop),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            limit=MAX_LINE,
        )
        try:
            hello = await cls._read(proc, timeout)
        except BaseException:
            await cls._stop(proc, grace=0)
            raise
        return cls(proc, hello)

    @staticmethod
    async def _read(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            raise LoadClientError(f"load client exited with code {await proc.wait()}")
        message: dict[str, Any] = json.loads(line)
        if message.get("event") == "error":
            raise LoadClientError(f"load client failed:\n{message.get('message')}")
        return message

    async def call(self, timeout: float = 600, **cmd: Any) -> dict[str, Any]:
        """Send one command and return its reply; raises if the child fails, dies or takes too long."""
        async with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
            await self.proc.stdin.drain()
            return await self._read(self.proc, timeout)

    async def close(self) -> None:
        await self._stop(self.proc, grace=10)

    @staticmethod
    async def _stop(proc: asyncio.subprocess.Process, grace: float) -> None:
        """Ask politely (`exit`, then EOF), then kill; always reap the child."""
        if proc.returncode is None and proc.stdin is not None and grace > 0:
            with contextlib.suppress(Exception):
                proc.stdin.write(b'{"op": "exit"}\n')
                await proc.stdin.drain()
                proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


if __name__ == "__main__":
    sys.exit(main())
