"""A member's picture as frame 0: checked, decoded, made upright and RGB, and fitted to the render size.

Pure Pillow and numpy (no torch), so the bot can refuse a bad picture before anything is queued and
a bot host without a GPU never loads torch. Everything a member can get wrong is a ``UserError``
with one sentence: not a picture, undecodable, over ``MAX_PICTURE_BYTES`` or ``MAX_PICTURE_PIXELS``
(decompression bombs are refused from the header, before any pixel is decoded).

Fitting: EXIF orientation is applied; CMYK, palette, greyscale and 16-bit pictures become 8-bit RGB;
transparency is composited on black or white, whichever contrasts with the opaque pixels; then the
picture is scaled to cover the render size and centre-cropped. Without a size, the size follows the
picture's aspect: the closest of ``SIZES``.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import UserError

MAX_PICTURE_BYTES = 10 * 1024 * 1024
MAX_PICTURE_PIXELS = 40_000_000
# The three sizes members choose from; a picture without an explicit size gets the closest aspect.
SIZES = {"square": (512, 512), "landscape": (768, 512), "portrait": (512, 768)}
ANIMATED_NOTE = "That picture is animated, so its first frame is used."


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
    image, animated = open_picture(data)
    width, height = size if size is not None else size_for(*image.size)
    pixels = fit(image, width, height)
    png = encode_png(pixels)
    return FittedPicture(pixels, png, picture_key(png), animated, image.size)


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
    """The decoded, upright RGB picture and whether the file was animated; ``UserError`` if it is no good."""
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
    animated = getattr(image, "n_frames", 1) > 1
    try:
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, EOFError):
        raise UserError(
            "That picture could not be decoded (the file is damaged or cut short); save it again and attach it once more."
        ) from None
    return to_rgb(image), animated


def _too_many_pixels(size: tuple[int, int] | None) -> UserError:
    limit = MAX_PICTURE_PIXELS // 1_000_000
    if size is None:
        return UserError(f"That picture has far more than {limit} megapixels; scale it down and send it again.")
    width, height = size
    return UserError(
        f"That picture is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); pictures can be at most "
        f"{limit} megapixels, so scale it down and send it again."
    )


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
