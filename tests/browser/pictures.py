"""Images the browser tests upload: a frame template with a transparent window, and a booth photo."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw

from tests.support.booth import jpeg

TEMPLATE_SIZE = (600, 400)


def frame_template() -> bytes:
    """A PNG frame: an opaque border around a transparent window where the photo shows."""
    img = Image.new("RGBA", TEMPLATE_SIZE, (120, 40, 160, 255))
    ImageDraw.Draw(img).rectangle((60, 50, 540, 350), fill=(0, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def booth_photo() -> bytes:
    return jpeg(480, 300)


def as_file(name: str, mime: str, data: bytes) -> dict[str, object]:
    """A file for Playwright's set_input_files / file chooser."""
    return {"name": name, "mimeType": mime, "buffer": data}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
