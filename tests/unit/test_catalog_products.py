"""What a provider's operation produces (`Catalog.produces`, `OperationEntry.produces`): an image, a video or a
record, from `provider_overrides.<provider>.output`; an image without one; an unknown output refuses the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from boothbridge.catalog import PRODUCTS, Catalog, CatalogError

CATALOG = Catalog.load(Path(__file__).resolve().parents[2] / "configs" / "providers.json")


def _catalog(overrides: dict[str, Any]) -> Catalog:
    ingest = {"max_parallel_jobs": 1, "timeout_sec": 10, "allowed_mime": ["image/png"], "max_file_size_mb": 1}
    return Catalog.parse(
        {
            "providers": [
                {"id": "a", "title": "A", "ingest": ingest, "operations": ["op"]},
                {"id": "b", "title": "B", "ingest": ingest, "operations": ["op"]},
            ],
            "operations": {
                "op": {"title": "Op", "settings_schema": {"type": "object"}, "provider_overrides": overrides}
            },
        }
    )


@pytest.mark.parametrize(
    ("provider_id", "operation_id", "product"),
    [
        ("fal", "image_to_video", "video"),
        ("fal", "finetune", "record"),
        ("fal", "upscale", "image"),  # output "image"
        ("fal", "edit", "image"),  # output "images"
        ("gemini", "change_image", "image"),  # an override without output
        ("local", "resize", "image"),  # no override at all
    ],
)
def test_the_real_catalog_says_what_each_operation_makes(provider_id: str, operation_id: str, product: str) -> None:
    assert CATALOG.produces(provider_id, operation_id) == product
    assert product in PRODUCTS


def test_the_product_is_the_running_provider_s() -> None:
    catalog = _catalog({"a": {"output": "video"}, "b": {"output": "images"}})
    assert (catalog.produces("a", "op"), catalog.produces("b", "op"), catalog.produces("c", "op")) == (
        "video",
        "image",
        "image",
    )


def test_an_unknown_output_refuses_the_catalog() -> None:
    with pytest.raises(CatalogError, match="output 'hologram'"):
        _catalog({"a": {"output": "hologram"}})


def test_an_unknown_operation_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        CATALOG.produces("fal", "nope")


def _with_schema(schema: dict[str, Any]) -> Catalog:
    ingest = {"max_parallel_jobs": 1, "timeout_sec": 10, "allowed_mime": ["image/png"], "max_file_size_mb": 1}
    return Catalog.parse(
        {
            "providers": [{"id": "a", "title": "A", "ingest": ingest, "operations": ["op"]}],
            "operations": {"op": {"title": "Op", "settings_schema": schema, "provider_overrides": {}}},
        }
    )


@pytest.mark.parametrize("schema", [{"type": 5}, {"type": "object", "properties": {"x": {"minimum": "low"}}}])
def test_an_invalid_settings_schema_refuses_the_catalog_every_time(schema: dict[str, Any]) -> None:
    # Valid schemas are checked once per process (Catalog.parse remembers them); an invalid one is never remembered.
    for _ in range(2):
        with pytest.raises(CatalogError, match="invalid settings_schema"):
            _with_schema(schema)
    _with_schema({"type": "object", "properties": {"x": {"minimum": 1}}})  # a valid neighbour still parses
