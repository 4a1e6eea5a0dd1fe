"""A member's picture as frame 0: checked, decoded, made upright and RGB, and fitted to the render size.

Pure Pillow and numpy (no torch), so the bot can refuse a bad picture before anything is queued and
a bot host without a GPU never loads torch. Everything a member can get wrong is a ``UserError``
with one sentence: not a picture, undecodable, over ``MAX_PICTURE_BYTES`` or ``MAX_PICTURE_PIXELS``
(decompression bombs are refused from the header, before any pixel is decoded).

Fitting: EXIF orientation is applied; CMYK, palette, greyscale and 16-bit pictures become 8-bit RGB;
transparency is composited on black or white, whichever contrasts with the opaque pixels it shows;
then the picture is scaled to cover the render size and centre-cropped. Before any of that is done
in floats, the part the frame shows is cut out and scaled down in Pillow to at most ``OVERSAMPLE``
times the render size, so a 40-megapixel upload costs about its own 8-bit pixels in memory, not
gigabytes. Without a size, the size follows the picture's aspect: the closest of ``SIZES``.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from engine.errors import UserError

MAX_PICTURE_BYTES = 10 * 1024 * 1024
MAX_PICTURE_PIXELS = 40_000_000
# The three sizes members choose from; a picture without an explicit size gets the closest aspect.
SIZES = {"square": (512, 512), "landscape": (768, 512), "portrait": (512, 768)}
ANIMATED_NOTE = "That picture is animated, so its first frame is used."
# A picture enters the float work (compositing) at most this many times the frame's width and height:
# a 40-megapixel upload becomes ~1.5 megapixels in Pillow's 8 bits first.
OVERSAMPLE = 2
BAND_ROWS = 64  # output rows shrunk at a time
LANCZOS_REACH = 3  # output pixels the Lanczos filter reaches on each side
TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class FittedPicture:
    """A picture ready to be frame 0: ``pixels`` (H×W×3 uint8), their PNG and its sha256 ``key``."""

    pixels: np.ndarray
    png: bytes
    key: str
    animated: bool  # the upload had several frames; the first is used
    source_size: tuple[int, int]  # the upright picture's width and height before fitting

    @property
    def note(self) -> str | None:
        """What to tell the member besides "queued" (the animated picture's first frame is used)."""
        return ANIMATED_NOTE if self.animated else None


def prepare_picture(data: bytes, size: tuple[int, int] | None = None) -> FittedPicture:
    """Check, decode and fit ``data`` (the uploaded file) to ``size`` (None: from the picture's aspect)."""
    image, animated = open_picture(data)  # checked from its header; nothing decoded yet
    try:
        upright = upright_size(image)
        width, height = size if size is not None else size_for(*upright)
        decoded = decode_for_frame(image, width, height)
    except (OSError, ValueError, SyntaxError, EOFError):
        raise UserError(
            "That picture could not be decoded (the file is damaged or cut short); save it again and attach it once more."
        ) from None
    pixels = fit(decoded, width, height)
    png = encode_png(pixels)
    return FittedPicture(pixels, png, picture_key(png), animated, upright)


def check_picture_size(size: int) -> None:
    """``UserError`` when a file of ``size`` bytes is over the cap (also used while downloading)."""
    if size > MAX_PICTURE_BYTES:
        raise UserError(
            f"That picture is {size / 2**20:.1f} MiB; pictures can be at most {MAX_PICTURE_BYTES // 2**20} MiB, "
            "so send a smaller one."
        )


def read_picture_file(path: str | Path) -> bytes:
    """A picture file's bytes, refusing a missing or oversized file before reading it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Picture file {path} does not exist; check the path.")
    check_picture_size(path.stat().st_size)
    return path.read_bytes()


def open_picture(data: bytes) -> tuple[Image.Image, bool]:
    """The opened picture (only its header read) and whether the file is animated; ``UserError`` if it is no good."""
    check_picture_size(len(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap is lower
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise _too_many_pixels(None) from None
    except (UnidentifiedImageError, ValueError, SyntaxError):
        raise UserError("That file is not a picture; use a PNG, JPEG, WebP or GIF image.") from None
    if image.width * image.height > MAX_PICTURE_PIXELS:  # from the header: nothing decoded yet
        raise _too_many_pixels(image.size)
    return image, getattr(image, "n_frames", 1) > 1


def upright_size(image: Image.Image) -> tuple[int, int]:
    """``image``'s width and height once its EXIF orientation is applied."""
    turned = image.getexif().get(ExifTags.Base.Orientation, 1) in TURNED
    return (image.height, image.width) if turned else image.size


def decode_for_frame(image: Image.Image, width: int, height: int) -> Image.Image:
    """The first frame of the opened ``image``, decoded upright as 8-bit RGB and already cut and scaled
    down to at most ``OVERSAMPLE`` times a ``width``×``height`` frame (see :func:`shrink`).

    The full-size picture is only ever 8-bit pixels inside Pillow (a JPEG is even decoded at a reduced
    scale, Pillow's ``draft``); the float work of :func:`to_rgb` sees the shrunk picture only.
    A damaged file raises Pillow's ``OSError``, ``ValueError``, ``SyntaxError`` or ``EOFError``.
    """
    if upright_size(image) != image.size:
        width, height = height, width  # the frame as the stored, unturned picture sees it
    image.seek(0)
    scale = min(1.0, OVERSAMPLE * _cover_scale(image.size, width, height))
    image.draft(None, (math.ceil(image.width * scale), math.ceil(image.height * scale)))  # JPEG only
    image.load()
    return to_rgb(ImageOps.exif_transpose(shrink(expand(image), width, height)))


def _too_many_pixels(size: tuple[int, int] | None) -> UserError:
    limit = MAX_PICTURE_PIXELS // 1_000_000
    if size is None:
        return UserError(f"That picture has far more than {limit} megapixels; scale it down and send it again.")
    width, height = size
    return UserError(
        f"That picture is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); pictures can be at most "
        f"{limit} megapixels, so scale it down and send it again."
    )


def expand(image: Image.Image) -> Image.Image:
    """A mode Pillow can resample: palette and the rarer modes become RGB (RGBA where transparent);
    L, LA, RGB, RGBA and the 16-bit and float modes stay as they are."""
    if image.mode in ("L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "F"):
        return image
    if image.mode in ("PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")


def _cover_scale(size: tuple[int, int], width: int, height: int) -> float:
    """The scale at which a picture of ``size`` just covers a ``width``×``height`` frame."""
    return max(width / size[0], height / size[1])


def shrink(image: Image.Image, width: int, height: int) -> Image.Image:
    """The centre of ``image`` that a ``width``×``height`` frame shows, scaled down (Lanczos, in
    Pillow's 8 bits, alpha premultiplied) to at most ``OVERSAMPLE`` times the frame's size.

    The cut keeps a margin of the final resampling filter's reach and removes as many pixels on each
    side, so the centre, and :func:`fit`'s crop of it, stay where they were in the whole picture.
    """
    scale = _cover_scale(image.size, width, height)
    margin = math.ceil(LANCZOS_REACH / scale) + 1
    left = max(0, (image.width - math.ceil(width / scale)) // 2 - margin)
    top = max(0, (image.height - math.ceil(height / scale)) // 2 - margin)
    box = (left, top, image.width - left, image.height - top)
    if OVERSAMPLE * scale >= 1.0:
        return image if (left, top) == (0, 0) else image.crop(box)
    factor = OVERSAMPLE * scale
    size = (max(1, round((box[2] - box[0]) * factor)), max(1, round((box[3] - box[1]) * factor)))
    return resize_in_bands(image, size, box)


def resize_in_bands(image: Image.Image, size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """``image.resize(size, LANCZOS, box=box)``, computed a band of rows at a time: Pillow resamples an
    RGBA picture from a premultiplied copy, which here is one band's, never the whole picture's.

    Each band's source rows reach as far as the filter does, so the result is the one-piece resize's
    (but for the float rounding of each band's box: a value off by one or two, rarely).
    """
    out = Image.new(image.mode, size)
    step = (box[3] - box[1]) / size[1]  # source rows per output row
    reach = math.ceil(LANCZOS_REACH * step) + 1
    for y in range(0, size[1], BAND_ROWS):
        rows = min(BAND_ROWS, size[1] - y)
        top, bottom = box[1] + y * step, box[1] + (y + rows) * step
        first = max(0, math.floor(top) - reach)
        band = image.crop((0, first, image.width, min(image.height, math.ceil(bottom) + reach)))
        out.paste(
            band.resize((size[0], rows), Image.Resampling.LANCZOS, box=(box[0], top - first, box[2], bottom - first)),
            (0, y),
        )
    return out


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: palette and CMYK converted, 16-bit and float scaled, transparency composited."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = float(values.max()) or 1.0
        image = Image.fromarray(np.clip(values * (255.0 / max(top, 255.0)), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        rgb, alpha = rgba[..., :3], rgba[..., 3:]
        background = _contrasting_background(rgb, alpha)
        out = rgb * alpha + background * (1.0 - alpha)
        return Image.fromarray(np.round(out * 255.0).astype(np.uint8), "RGB")
    return image.convert("RGB")


def _contrasting_background(rgb: np.ndarray, alpha: np.ndarray) -> float:
    """1.0 (white) behind dark opaque pixels, 0.0 (black) behind light ones."""
    weight = float(alpha.sum())
    if weight == 0.0:
        return 0.0
    luminance = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    return 1.0 if float((luminance * alpha).sum()) / weight < 0.5 else 0.0


def size_for(width: int, height: int) -> tuple[int, int]:
    """The one of ``SIZES`` whose aspect is closest to ``width``×``height`` (on a log scale)."""
    aspect = math.log(width / height)
    return min(SIZES.values(), key=lambda size: abs(math.log(size[0] / size[1]) - aspect))


def fit(image: Image.Image, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to cover ``width``×``height`` and crop the centre: H×W×3 uint8."""
    fitted = ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return np.array(fitted, dtype=np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(png: bytes) -> np.ndarray:
    """A stored fitted picture back to H×W×3 uint8 (exactly the pixels that were encoded)."""
    with Image.open(io.BytesIO(png)) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)


def picture_key(png: bytes) -> str:
    """The key a fitted picture is kept under: the sha256 of its PNG."""
    return hashlib.sha256(png).hexdigest()
