"""Whether a smart_mask prompt's box and points fit a photo (pure: no OpenCV, no numpy, no I/O).

Source: seed 002 (ArtMancer) §2.1 "Generate Smart Mask": `bbox` [x_min, y_min, x_max, y_max] and `points` /
`background_points` [[x, y], ...] in the image's pixels (x right, y down). The rules, the same wherever they are
applied — the `local` smart_mask when it runs (`smart_mask.parse_prompt`), ArtMancer's `POST /api/smart-mask`
before it submits anything, a slot or task step when it is saved (`slots.rules`, photo unknown):

- a box is clipped to the photo (drawn past the edge means "to the edge"), and what is left must be at least
  MIN_SIDE px wide and high (a box that misses the photo, or has no area, marks nothing);
- a point must lie in the photo, 0 <= x < width and 0 <= y < height: it is refused, not moved (it is a mistake,
  e.g. another photo's coordinates, and moving it would mark an edge pixel nobody chose).

Without a photo size (`size` None: a slot's settings, saved before any photo) the photo is taken as reaching as far
right and down as any coordinate: only what fails on every photo is a problem (a box wholly at negative
coordinates or without area, a negative point). The web functions import this module: it must stay light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MIN_SIDE = 1.0  # px: the least width and height a box keeps once clipped to the photo
MAX_POINTS = 100  # per list (points, background_points), as the catalog's schema

Size = tuple[int, int]  # (width, height) px
Point = tuple[float, float]
BoxF = tuple[float, float, float, float]
Problem = tuple[str, str]  # (the setting's `/`-joined path, e.g. `points/2`; the message)

POINT_LISTS = {"points": "point", "background_points": "background point"}


def _finite_number(value: Any) -> bool:
    """A JSON number: an int or a float, finite; a boolean is not a number (Python's bool is an int)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _photo(size: Size | None) -> str:
    return f"the {size[0]}x{size[1]} photo" if size is not None else "every photo"


def clip_box(box: Sequence[float], size: Size | None) -> BoxF:
    """`box` (x_min, y_min, x_max, y_max, px) clipped to a photo of `size` (W, H; None: only at 0, 0)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = (math.inf, math.inf) if size is None else (float(size[0]), float(size[1]))
    return max(x0, 0.0), max(y0, 0.0), min(x1, width), min(y1, height)


def _box_problem(box: Any, size: Size | None) -> str | None:
    if not isinstance(box, list | tuple) or len(box) != 4:
        return "bbox must be [x_min, y_min, x_max, y_max]"
    if not all(_finite_number(v) for v in box):
        return "bbox's values must be numbers"
    x0, y0, x1, y1 = box
    if not (x1 > x0 and y1 > y0):
        return "bbox must have x_max > x_min and y_max > y_min"
    cx0, cy0, cx1, cy1 = clip_box(box, size)
    if cx1 - cx0 < MIN_SIDE or cy1 - cy0 < MIN_SIDE:
        whole = x1 - x0 >= MIN_SIDE and y1 - y0 >= MIN_SIDE
        where = "lies outside" if whole else f"is less than {MIN_SIDE:g} px wide or high, too small for"
        return f"bbox {where} {_photo(size)}"
    return None


def _point_problem(point: Any, noun: str, size: Size | None) -> str | None:
    if not isinstance(point, list | tuple) or len(point) != 2:
        return f"a {noun} must be an [x, y] pair"
    if not all(_finite_number(v) for v in point):
        return f"a {noun}'s coordinates must be numbers"
    x, y = point
    inside = x >= 0 and y >= 0 and (size is None or (x < size[0] and y < size[1]))
    return None if inside else f"{noun} ({x:g}, {y:g}) lies outside {_photo(size)}"


def prompt_problems(settings: Mapping[str, Any], size: Size | None) -> list[Problem]:
    """Every problem of the `bbox`, `points` and `background_points` of `settings` (absent or null: none) for a
    photo of `size` (W, H px; None: any photo), as (path, message), in that order; [] when they fit. See the
    module docstring for the rules; malformed values (not a list of 4 numbers, not [x, y] pairs of numbers, more
    than MAX_POINTS points, booleans or non-finite numbers) are problems too."""
    problems: list[Problem] = []
    box = settings.get("bbox")
    if box is not None and (why := _box_problem(box, size)):
        problems.append(("bbox", why))
    for name, noun in POINT_LISTS.items():
        points = settings.get(name)
        if points is None:
            continue
        if not isinstance(points, list | tuple) or len(points) > MAX_POINTS:
            problems.append((name, f"{name} must be a list of at most {MAX_POINTS} [x, y] pairs"))
            continue
        problems += [
            (f"{name}/{index}", why) for index, point in enumerate(points) if (why := _point_problem(point, noun, size))
        ]
    return problems
