"""A big upload is cut and scaled down in Pillow's 8 bits before any float work (engine.request.picture).

Peak memory is measured in a fresh subprocess, as its peak resident memory (``VmHWM``) less its
resident memory just before the picture is opened. Not ``getrusage``'s ``ru_maxrss``: Linux carries
it across ``exec``, so a child of a big test process would start with the parent's peak and the
assertion could not fail. The fitted result is compared with fitting the whole picture at full size.
"""

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.request.picture import fit, prepare_picture, resize_in_bands, to_rgb

MEASURE = textwrap.dedent(
    """
    import sys
    from engine.request.picture import prepare_picture

    def status_kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    data = open(sys.argv[1], "rb").read()
    before = status_kib("VmRSS")
    fitted = prepare_picture(data)
    print(fitted.pixels.shape, fitted.source_size, (status_kib("VmHWM") - before) * 1024)
    """
)


def _encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _mostly_transparent(width: int, height: int) -> Image.Image:
    """A dark shape on a transparent sheet: the kind of PNG that is tiny on disk and huge decoded."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(20, 40, 60, 255))
    draw.rectangle((width // 3, height // 3, width // 2, height // 2), fill=(200, 30, 30, 128))
    return image


def _photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients with fine noise: detail at every scale, like a photograph."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = np.random.RandomState(seed).randint(-12, 13, (height, width, 3))
    base = np.stack([x / width * 200, y / height * 200, (np.sin(x / 37) * np.cos(y / 23) + 1) * 100], axis=-1)
    return np.clip(base + 30 + noise, 0, 255).astype(np.uint8)


def _fitted_whole(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """What fitting gave before shrinking: the whole picture made RGB in floats, then fitted."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return fit(to_rgb(image), *size)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS and VmHWM from Linux's /proc")
def test_a_40_megapixel_transparent_png_fits_in_400_mb(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_encode(_mostly_transparent(8000, 5000), compress_level=1))
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True)
    grown = int(result.stdout.split()[-1])
    assert result.stdout.startswith("(512, 768, 3) (8000, 5000) ")
    # The decoded RGBA picture alone is 160 MB; compositing it in floats took gigabytes.
    assert grown < 400 * 10**6, f"fitting grew the peak RSS by {grown / 1e6:.0f} MB"


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_a_large_picture_fits_as_when_fitted_whole(format):
    data = _encode(Image.fromarray(_photo(2400, 1600)), format, **({"quality": 95} if format == "JPEG" else {}))
    shrunk = prepare_picture(data, (768, 512)).pixels.astype(np.int16)
    whole = _fitted_whole(data, (768, 512)).astype(np.int16)
    difference = np.abs(shrunk - whole)
    assert difference.mean() < 1.5 and np.percentile(difference, 99) <= 8


def test_a_large_transparent_picture_composites_as_when_fitted_whole():
    data = _encode(_mostly_transparent(2400, 3600))
    shrunk = prepare_picture(data, (512, 768)).pixels.astype(np.int16)
    whole = _fitted_whole(data, (512, 768)).astype(np.int16)
    assert shrunk[0, 0].tolist() == [255, 255, 255]  # the dark shape still gets a white background
    difference = np.abs(shrunk - whole)
    assert difference.mean() < 1.0 and np.percentile(difference, 99.9) <= 16


def test_a_long_strip_keeps_only_the_middle_it_shows():
    strip = np.zeros((400, 12000, 3), dtype=np.uint8)
    strip[:, 5700:6300] = 200  # a grey middle, black far out
    data = _encode(Image.fromarray(strip))
    fitted = prepare_picture(data, (512, 512)).pixels.astype(np.int16)
    np.testing.assert_allclose(fitted, _fitted_whole(data, (512, 512)), atol=2)


def test_resizing_in_bands_gives_the_one_piece_resize():
    rgba = Image.fromarray(np.random.RandomState(1).randint(0, 256, (1000, 700, 4), dtype=np.uint8), "RGBA")
    box = (13, 21, 687, 979)
    banded = np.asarray(resize_in_bands(rgba, (150, 211), box)).astype(np.int16)
    whole = np.asarray(rgba.resize((150, 211), Image.Resampling.LANCZOS, box=box)).astype(np.int16)
    # The same but for the float rounding of each band's box: a handful of values off by a step or two.
    assert np.abs(banded - whole).max() <= 2 and (banded != whole).mean() < 1e-4
