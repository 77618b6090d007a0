"""Property tests of decoding: any file either becomes a 3×112×112 float face in [0, 1] or
raises DecodeError, never anything else, and decoding never modifies the file."""
import hashlib
import itertools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from facediag.data.images import DecodeError, header_size, load_face, load_lowres

# Formats that can hold each mode (PIL saves them all); a few modes have several.
FORMATS = {
    "1": ["png", "bmp", "tif"],
    "L": ["png", "jpg", "pgm", "bmp", "tif", "webp", "gif"],
    "LA": ["png", "tif"],
    "P": ["png", "gif", "bmp", "tif"],
    "RGB": ["png", "jpg", "ppm", "bmp", "tif", "webp"],
    "RGBA": ["png", "tif", "webp"],
    "CMYK": ["jpg", "tif"],
    "I;16": ["png", "tif"],
    "I": ["png", "tif", "pgm"],
    "F": ["tif"],
}
SIZES = st.one_of(
    st.tuples(st.integers(1, 48), st.integers(1, 48)),
    st.sampled_from([(1, 1), (1, 2), (2, 1), (3000, 1), (1, 3000), (1200, 3), (5, 900), (500, 460), (112, 112)]),
)
_names = itertools.count()
settings.register_profile("decode", max_examples=80, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("decode-properties")


def _pixels(mode: str, size: tuple[int, int], seed: int, depth: int, kind: str) -> Image.Image:
    w, h = size
    rng = np.random.default_rng(seed)
    if kind == "flat":
        values = np.full((h, w), rng.integers(0, 2 ** depth), dtype=np.int64)
    elif kind == "max":
        values = np.full((h, w), 2 ** depth - 1, dtype=np.int64)
    else:
        values = rng.integers(0, 2 ** depth, size=(h, w), dtype=np.int64)
    if mode == "I;16":
        return Image.fromarray(np.clip(values, 0, 65535).astype(np.uint16))
    if mode == "I":
        return Image.fromarray((values - (2 ** (depth - 1) if kind == "signed" else 0)).astype(np.int32))
    if mode == "F":
        scale = {"flat": 1.0, "max": 255.0, "signed": -3.0}.get(kind, 1 / 2 ** depth)
        f = values.astype(np.float32) * np.float32(scale)
        if kind == "signed" and f.size > 1:
            f.flat[0] = np.nan
            f.flat[-1] = np.inf
        return Image.fromarray(f)
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    if mode == "RGBA":
        return Image.fromarray(np.dstack([rgb, rng.integers(0, 256, size=(h, w), dtype=np.uint8)]))
    if mode == "LA":
        return img.convert("LA")
    if mode == "P":
        return img.quantize(colors=int(rng.integers(2, 256)))
    return img.convert(mode)


def _check(path):
    """The property: a valid face tensor or DecodeError, and the file untouched."""
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's own notices (palette transparency, EXIF, bombs)
        size = header_size(path)
        assert size is None or (len(size) == 3 and size[0] > 0 and size[1] > 0)
        try:
            x = load_face(path)
        except DecodeError as exc:
            assert str(exc)  # a reason to report
            x = None
        if x is not None:
            assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (3, 112, 112)
            assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
        try:
            lr = load_lowres(path)
        except DecodeError:
            lr = None
        if lr is not None:
            assert lr.dtype == torch.float32 and lr.dim() == 3 and lr.shape[0] == 3 and min(lr.shape[1:]) >= 1
            assert max(lr.shape[1:]) < 448 and lr.min() >= 0 and lr.max() <= 1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    return x


@settings(settings.get_profile("decode"))
@given(mode=st.sampled_from(sorted(FORMATS)), size=SIZES, seed=st.integers(0, 2 ** 32 - 1),
       depth=st.sampled_from([1, 8, 12, 16, 31]), kind=st.sampled_from(["noise", "flat", "max", "signed"]),
       fmt_pick=st.integers(0, 6), truncate=st.one_of(st.none(), st.floats(0.0, 0.999)), data=st.data())
def test_any_saved_image_decodes_to_a_face_or_decode_error(folder, mode, size, seed, depth, kind, fmt_pick,
                                                          truncate, data):
    formats = FORMATS[mode]
    fmt = formats[fmt_pick % len(formats)]
    if fmt == "gif" or fmt == "webp":
        assume(max(size) <= 16383)
    img = _pixels(mode, size, seed, depth, kind)
    path = folder / f"{next(_names)}.{fmt}"
    try:
        img.save(path)
    except (OSError, ValueError, KeyError, TypeError):
        assume(False)  # that format cannot hold this mode/size: not a decoding case
    if truncate is not None:
        raw = path.read_bytes()
        path.write_bytes(raw[:int(len(raw) * truncate)])
    x = _check(path)
    if truncate is None:
        assert x is not None, f"a valid {mode} {fmt} {size} image must decode"


@settings(settings.get_profile("decode"))
@given(raw=st.binary(max_size=4096),
       prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"P5\n4 4\n255\n", b"GIF89a", b"BM"]),
       suffix=st.sampled_from(["png", "jpg", "pgm", "gif", "bmp", "tif"]))
def test_random_bytes_are_a_decode_error_or_a_face(folder, raw, prefix, suffix):
    path = folder / f"{next(_names)}.{suffix}"
    path.write_bytes(prefix + raw)
    _check(path)


def test_the_property_sees_a_16_bit_image_as_grey_not_white(folder):
    """A regression the property above would not notice: values are scaled, not clipped."""
    path = folder / "mid16.png"
    Image.fromarray(np.full((20, 20), 32768, np.uint16)).save(path)
    x = _check(path)
    assert abs(float(x[:, 50, 50].mean()) - 128 / 255) < 1.5 / 255
