"""The images an ArtMancer edit sends besides the photo, built before the task is submitted (pure: bytes in, bytes
out; CPU-bound, call it in a worker thread).

The edit runs as the catalog's `combine_images` (the photo, ONE more image, a prompt: Gemini's image editing takes
no mask of its own), so the mask and the reference image are said in that one image:
- removal: the mask itself (white: the object to remove);
- insertion: the **guide**, an image of the mask's size, black, with the reference object fitted (aspect kept,
  centred) into the bounding box of the mask's white area and shown only where the mask is white; with
  `reference_mask_R` the object is first cut from the reference by that mask (white: the object) and cropped to it.
  The prompt (`mapping.edit_prompt`) tells the model what the guide shows.

Errors (`AppError`, `details.field` naming the body field): the task engine's for an input that is no image
(`tasks.inputs`: 400 `input_base64_invalid`, 413 `input_too_large`, 415 `input_not_image`, 422
`image_undecodable` / `image_too_many_pixels`); 400 `mask_empty` for a mask with no white at all (nothing to place
the object in).
"""

from __future__ import annotations

import io

from PIL import Image, ImageChops

from boothbridge.errors import AppError
from boothbridge.images import codec
from boothbridge.images.boundary import normalise
from boothbridge.images.upload import inspect_image
from boothbridge.tasks.fetch import decode_base64
from boothbridge.tasks.inputs import ACCEPTED_MIME

WHITE = 128  # a mask pixel at or above this is "white" (keeps / marks), below it "black"


def decoded(text: str, field: str, max_bytes: int, max_pixels: int) -> bytes:
    """The bytes of a base64 image field, checked as a task input is (type by bytes, full decode within
    `max_pixels`); errors as the module docstring says, with `details.field`."""
    try:
        data = decode_base64(text, max_bytes)
        if not data:
            raise AppError(400, "input_empty", "the input image is empty")
        inspect_image(data, ACCEPTED_MIME, max_pixels)
    except AppError as err:
        if err.status == 415:
            err = AppError(415, "input_not_image", "the input is not a JPEG, PNG or WebP image", err.details)
        err.details["field"] = field
        raise err from None
    return data


def size_label(data: bytes) -> str | None:
    """`"<width>x<height>"` of an image as it is seen upright (EXIF orientation applied), from its header; None when
    it cannot be read."""
    size = codec.upright_size(data)
    return f"{size[0]}x{size[1]}" if size else None


def _open(data: bytes) -> Image.Image:
    """The image as RGBA, as the image boundary gives every photo to a provider: upright, sRGB, 8 bits (Pillow's
    own conversion of a 16-bit grey clips it: 20000/65535, a dark grey, would become white)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        normalised, _changes = normalise(img)
        return normalised.convert("RGBA")


def _mask(data: bytes, size: tuple[int, int] | None = None) -> Image.Image:
    """A mask as black/white `L` (transparent pixels count as black), resized to `size` when given."""
    img = _open(data)
    grey = ImageChops.multiply(img.convert("L"), img.getchannel("A"))
    if size is not None and grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return grey.point(lambda v: 255 if v >= WHITE else 0)


def insertion_guide(mask: bytes, reference: bytes, reference_mask: bytes | None = None) -> bytes:
    """The insertion guide (see the module docstring) as PNG bytes, the size of `mask`."""
    area = _mask(mask)
    box = area.getbbox()
    if box is None:
        raise AppError(400, "mask_empty", "the mask has no white area", {"field": "conditional_images.0"})
    obj = _open(reference)
    if reference_mask is not None:
        cut = _mask(reference_mask, obj.size)
        obj_box = cut.getbbox()
        if obj_box is None:
            raise AppError(400, "mask_empty", "the mask has no white area", {"field": "reference_mask_R"})
        obj.putalpha(ImageChops.multiply(obj.getchannel("A"), cut))
        obj = obj.crop(obj_box)
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    scale = min(box_w / obj.width, box_h / obj.height)
    fitted = obj.resize((max(1, round(obj.width * scale)), max(1, round(obj.height * scale))), Image.Resampling.LANCZOS)
    placed = Image.new("RGBA", area.size, (0, 0, 0, 0))
    placed.paste(fitted, (box[0] + (box_w - fitted.width) // 2, box[1] + (box_h - fitted.height) // 2))
    alpha = ImageChops.multiply(placed.getchannel("A"), area)
    guide = Image.new("RGB", area.size, (0, 0, 0))
    guide.paste(placed.convert("RGB"), (0, 0), alpha)
    out = io.BytesIO()
    guide.save(out, "PNG")
    return out.getvalue()
