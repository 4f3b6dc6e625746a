"""Turbotext answer parsing and form values, on the shapes shown in Turbotext's documentation."""

from __future__ import annotations

import pytest

from boothbridge.catalog import Catalog
from boothbridge.providers.turbotext.wire import (
    Answer,
    MethodSpec,
    WireError,
    form_value,
    is_auth_error,
    method_spec,
    parse_answer,
    parse_retry_after,
)
from boothbridge.settings import DEFAULT_CATALOG


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"success": True, "queueid": 4711}, Answer("queued", ref="4711")),
        ({"success": True, "asyncid": 12}, Answer("parked", ref="12")),
        ({"action": "reconnect"}, Answer("reconnect")),
        # mix_images, as documented
        (
            {
                "success": True,
                "error": "",
                "data": {"prompt": "в стиле дисней", "width": 768, "height": 576, "seed": 1, "strength": 50},
                "uploaded_image": "https://www.turbotext.ru/download.php?f=abc.png",
            },
            Answer("result", image_url="https://www.turbotext.ru/download.php?f=abc.png"),
        ),
        # deepfake_photo: the image list holds absolute URLs; uploaded_image wins
        (
            {
                "success": True,
                "error": "",
                "data": {"image": ["https://cdn.example/a.png"], "width": 980, "height": 1472},
                "uploaded_image": "https://www.turbotext.ru/download.php?f=b.png",
            },
            Answer("result", image_url="https://www.turbotext.ru/download.php?f=b.png"),
        ),
        (
            {"success": True, "error": "", "data": {"image": ["https://cdn.example/a.png"]}},
            Answer("result", image_url="https://cdn.example/a.png"),
        ),
        # generate_image2image's example: a relative path only -> a result without an image
        (
            {"success": True, "error": "", "data": {"image": ["image/generate_image2image_id12_0.png"]}},
            Answer("result", image_url=None),
        ),
        ({"success": False, "error": "Недостаточно средств"}, Answer("error", error="Недостаточно средств")),
        ({"success": "false"}, Answer("error", error="the provider reported an error")),
        ({"success": "true", "uploaded_image": "http://h/x.png"}, Answer("result", image_url="http://h/x.png")),
        ({"success": True, "uploaded_image": "javascript:alert(1)"}, Answer("result", image_url=None)),
    ],
)
def test_parse_answer(answer: object, expected: Answer) -> None:
    assert parse_answer(answer) == expected


@pytest.mark.parametrize("answer", [[1, 2], "ok", None, {"queueid": 5}, {}])
def test_answers_not_in_the_format_are_wire_errors(answer: object) -> None:
    with pytest.raises(WireError):
        parse_answer(answer)


def test_form_values() -> None:
    assert [form_value(v) for v in (True, False, 55, 40.0, 7.5, "текст")] == [
        "True",
        "False",
        "55",
        "40",
        "7.5",
        "текст",
    ]


def test_the_catalog_maps_operations_to_the_documented_methods_and_fields() -> None:
    catalog = Catalog.load(DEFAULT_CATALOG)

    def spec(op: str) -> MethodSpec:
        operation = catalog.operation(op)
        assert operation is not None
        return method_spec(operation.provider_overrides["turbotext"])

    assert spec("style_transfer") == MethodSpec(
        "mix_images", (("url_image_target", "ingest_media"), ("url", "reference_media_id"), ("content", "prompt"))
    )
    assert spec("face_swap") == MethodSpec(
        "deepfake_photo",
        (("url", "ingest_media"), ("url_image_target", "target_media_id"), ("face_restore", "face_restore")),
    )
    assert spec("change_image") == MethodSpec(
        "generate_image2image", (("url", "ingest_media"), ("content", "prompt"), ("strength", "strength"))
    )


@pytest.mark.parametrize("override", [None, {}, {"method": "../admin"}, {"method": "mix_images", "fields": [1]}])
def test_malformed_overrides_are_refused(override: object) -> None:
    with pytest.raises(WireError):
        method_spec(override)


def test_auth_errors_and_retry_after() -> None:
    assert is_auth_error("Неверный API ключ") and is_auth_error("Unauthorized") and is_auth_error("bad api key")
    assert not is_auth_error("лицо не найдено") and not is_auth_error("Недостаточно средств")
    assert (parse_retry_after("2"), parse_retry_after(None), parse_retry_after("Wed, 21 Oct 2015")) == (2.0, None, None)
