"""Peak memory and time for one camera-sized photo through a `local` slot (the emulator in its own process).

    python -m bench.big_photo            # or: make bench (after the bridge-tax table)

Starts `python -m local` (embedded PostgreSQL, local media, a temporary data folder, its own port), configures
slot-001 as `local resize` to 1800 px wide, then posts DSLR-shaped 9504 x 6336 (61 MP) JPEGs — stored upright,
and stored sideways with EXIF Orientation 6 (the `local` provider turns it upright as it decodes it) — one at a
time. Before each post the server's peak-RSS counter is reset
(`/proc/PID/clear_refs` = 5), so each row's peak belongs to that photo alone. Prints a table; exits 1 if a post
did not return the expected image.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from PIL import Image, ImageFilter

from tests.support.booth import DSLR_FIELDS

WIDTH, HEIGHT = 9504, 6336


def camera_like_jpeg(orientation: int) -> bytes:
    """A 61 MP JPEG of about camera size: smooth gradients with fine grain (pure noise would not compress)."""
    base = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
    grain = Image.effect_noise((WIDTH // 6, HEIGHT // 6), 30).resize((WIDTH, HEIGHT)).filter(ImageFilter.SHARPEN)
    img = Image.merge("RGB", (base.getchannel(0), grain, base.getchannel(2)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


@contextlib.contextmanager
def emulator(workdir: Path) -> Iterator[tuple[str, int, Path]]:
    port = _free_port()
    env = dict(os.environ)
    env.update(
        DATA_DIR=str(workdir / "data"),
        PORT=str(port),
        CREDENTIALS_PATH=str(workdir / "credentials.json"),
        RUN_CLEANUP="false",
        LOG_LEVEL="warning",
    )
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "local"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError("the emulator exited during start-up")
            time.sleep(0.5)
        else:
            raise RuntimeError("the emulator did not become healthy in 120 s")
        yield base, proc.pid, workdir / "credentials.json"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    photos = {"upright": camera_like_jpeg(1), "sideways (Orientation 6)": camera_like_jpeg(6)}
    rows: list[tuple[str, float, int, int, int, str]] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="bb-bigphoto-") as tmp, emulator(Path(tmp)) as (base, pid, creds_path):
        creds = json.loads(creds_path.read_text())
        with httpx.Client(base_url=base, timeout=120) as http:
            token = http.post("/api/login", json={"username": "serg", "password": creds["users"]["serg"]}).json()
            auth = {"Authorization": f"Bearer {token['access_token']}"}
            body = {"name": "print", "provider_id": "local", "operation_id": "resize", "settings_json": {"width": 1800}}
            http.put("/api/slots/slot-001", json=body, headers=auth).raise_for_status()
            idle = _status(pid)["VmRSS"]
            for name, data in photos.items():
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak-RSS counter
                before = _status(pid)["VmRSS"]
                fields = {**DSLR_FIELDS, "password": creds["ingest_password"]}
                r = http.post(
                    "/ingest/slot-001",
                    data=fields,
                    files={"fileToUpload": ("IMG_0001.JPG", data, "image/jpeg")},
                    headers={"Expect": "100-continue"},
                )
                size = Image.open(io.BytesIO(r.content)).size if r.status_code == 200 else None
                expected = (1800, 1200) if name == "upright" else (1800, 2700)
                ok = ok and size == expected
                after = _status(pid)
                rows.append(
                    (
                        name,
                        len(data) / 1e6,
                        int(r.headers.get("x-processing-ms", -1)),
                        before,
                        after["VmHWM"],
                        str(size),
                    )
                )
    print(f"\nOne {WIDTH} x {HEIGHT} ({WIDTH * HEIGHT / 1e6:.0f} MP) JPEG through a local resize slot")
    print(f"server RSS when idle: {idle / 1024:.0f} MiB\n")
    print(f"{'photo':<26}{'MB':>6}{'server ms':>11}{'RSS before':>12}{'peak RSS':>10}{'peak - before':>15}  result")
    for name, mb, ms, before, peak, size in rows:
        grew = (peak - before) / 1024
        print(f"{name:<26}{mb:>6.1f}{ms:>11}{before / 1024:>10.0f}Mi{peak / 1024:>8.0f}Mi{grew:>13.0f}Mi  {size}")
    decoded = WIDTH * HEIGHT * 3 / 2**20
    print(f"\n(one decoded 8-bit RGB copy of the photo is {decoded:.0f} MiB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
