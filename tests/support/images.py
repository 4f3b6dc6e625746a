"""Test images of the kinds the field sends: high bit depth, camera orientation, ICC profiles, personal metadata.

Built with Pillow where it can write the kind, by hand (PNG chunks, an ICC v2 profile) where it cannot.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageCms

ORIENTATION = 0x0112
GPS_IFD = 0x8825
BODY_SERIAL = 0xA431
MAKER_NOTE = 0x927C
EXIF_IFD = 0x8769


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png16(width: int, height: int, value: int, colour_type: int = 2) -> bytes:
    """A 16-bit PNG (colour type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA) with every sample equal to `value`."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" + struct.pack(">H", value) * (width * channels)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * height))
        + _chunk(b"IEND", b"")
    )


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` (a decompression bomb's opening)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (width * 3)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(row)) + _chunk(b"IEND", b"")


def encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def two_tone(width: int, height: int) -> Image.Image:
    """Left half red, right half green: which way is up shows in where the colours end up."""
    img = Image.new("RGB", (width, height), (220, 20, 20))
    img.paste((20, 200, 20), (width // 2, 0, width, height))
    return img


def camera_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a camera writes it: orientation, GPS position, body serial number and a maker note."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)})
    exif.get_ifd(EXIF_IFD).update({BODY_SERIAL: "SERIAL-0123456789", MAKER_NOTE: b"MAKERNOTE-SECRET-BYTES"})
    return exif


def camera_jpeg(width: int, height: int, orientation: int = 1, icc: bytes | None = None) -> bytes:
    """A two-tone JPEG stored as the camera saw it, with camera EXIF, an XMP packet and a comment."""
    params: dict[str, object] = {"exif": camera_exif(orientation).tobytes(), "quality": 92, "comment": b"owner: J. Doe"}
    params["xmp"] = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><GPSLatitude>52,31N</GPSLatitude></x:xmpmeta>'
    if icc is not None:
        params["icc_profile"] = icc
    return encoded(two_tone(width, height), "JPEG", **params)


PERSONAL_MARKERS = (b"SERIAL-0123456789", b"MAKERNOTE-SECRET-BYTES", b"owner: J. Doe", b"GPSLatitude", b"Canon")


# ---- ICC ---------------------------------------------------------------------------------------------------

# sRGB's primaries adapted to D50 (the ICC profile connection space), as XYZ.
_SRGB_RED = (0.4360, 0.2225, 0.0139)
_SRGB_GREEN = (0.3851, 0.7169, 0.0971)
_SRGB_BLUE = (0.1431, 0.0606, 0.7141)
_D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + b"".join(_s15(v) for v in xyz)


def _gamma_curve(gamma: float) -> bytes:
    return b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256)) + b"\x00\x00"


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\x00"
    return b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_)) + ascii_ + b"\x00" * (4 + 4 + 2 + 1 + 67)


def rgb_profile(
    description: str,
    red: tuple[float, float, float] = _SRGB_RED,
    green: tuple[float, float, float] = _SRGB_GREEN,
    blue: tuple[float, float, float] = _SRGB_BLUE,
    gamma: float = 2.2,
) -> bytes:
    """An ICC v2 matrix/TRC RGB display profile with these D50 colorants and one gamma for every channel."""
    tags = [
        (b"desc", _desc(description)),
        (b"wtpt", _xyz(_D50)),
        (b"rXYZ", _xyz(red)),
        (b"gXYZ", _xyz(green)),
        (b"bXYZ", _xyz(blue)),
        (b"rTRC", _gamma_curve(gamma)),
        (b"gTRC", _gamma_curve(gamma)),
        (b"bTRC", _gamma_curve(gamma)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += b"\x00" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\x00\x00\x00\x00"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\x00" * 24
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in _D50)
        + b"\x00" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def swapped_red_green_profile() -> bytes:
    """A profile whose red colorant is sRGB's green and vice versa, so a correct conversion to sRGB visibly turns
    red pixels green (and a dropped profile leaves them red)."""
    return rgb_profile("Swapped red/green test profile", red=_SRGB_GREEN, green=_SRGB_RED)


def linear_profile_named_srgb() -> bytes:
    """sRGB's primaries with a linear (gamma 1.0) curve, misleadingly named "Linear sRGB": linear 128 is sRGB 188."""
    return rgb_profile("Linear sRGB", gamma=1.0)


def srgb_profile() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
