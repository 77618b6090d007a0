"""Hostile images: decompression bombs, oversize photos and high bit depths never fail a run."""
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from helpers import face_like, write_folders_dataset, write_paired_dataset
from PIL import Image

from facediag.data.images import (
    MAX_PIXELS,
    DecodeError,
    header_size,
    load_face,
    load_lowres,
    read_rgb,
)
from facediag.session import Session, SessionConfig
from helpers import loaded_model


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_header(path, width, height, rows=4):
    """A tiny PNG that declares width×height (one colour, only ``rows`` rows of data): what a
    decompression bomb looks like to the header reader, without spending 225 MB to make one."""
    raw = zlib.compress(b"\x00" * (width + 1) * rows)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + _chunk(b"IDAT", raw) + _chunk(b"IEND", b""))
    return path


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def test_decompression_bomb_is_a_decode_error_naming_the_size(tmp_path, quiet):
    bomb = write_png_header(tmp_path / "bomb.png", 15000, 15000)  # PIL itself refuses this one
    with pytest.raises(DecodeError, match="too large: 225 megapixels"):
        load_face(bomb)
    with pytest.raises(DecodeError, match="too large"):
        load_lowres(bomb)
    assert header_size(bomb) is None  # the header probe never raises


def test_oversize_image_refused_before_decoding(tmp_path, quiet):
    big = write_png_header(tmp_path / "big.png", 10000, 10000)  # under PIL's bomb limit, over ours
    assert 10000 * 10000 > MAX_PIXELS
    with pytest.raises(DecodeError, match=r"too large: 10000×10000 pixels"):
        load_face(big)
    assert header_size(big) == (10000, 10000, "L")


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_large_image_is_shrunk_while_decoding(tmp_path, fmt):
    path = tmp_path / f"photo.{fmt}"
    Image.fromarray(face_like(3, (1500, 2000))).save(path)
    rgb = read_rgb(path)
    assert 224 <= max(rgb.shape[:2]) < 448 and rgb.shape[2] == 3  # not 2000×1500×3
    assert abs(rgb.shape[1] / rgb.shape[0] - 2000 / 1500) < 0.02  # aspect kept
    x = load_face(path)
    assert x.shape == (3, 112, 112)
    assert x[:, :14].max() == 0 and x[:, -14:].max() == 0  # 2000×1500 -> 112×84, padded top and bottom


def test_ordinary_crops_decode_exactly_as_before(tmp_path):
    """Below 448 px nothing is shrunk early: the pixels are the plain RGB decode."""
    for i, size in enumerate([(112, 112), (128, 128), (250, 250), (447, 300)]):
        path = tmp_path / f"{i}.png"
        img = face_like(i, size)
        Image.fromarray(img).save(path)
        np.testing.assert_array_equal(read_rgb(path), img)


def _grey_to_16bit_png(grey8: np.ndarray, path):
    Image.fromarray(grey8.astype(np.uint16) * 257).save(path)  # 0..255 -> 0..65535
    with Image.open(path) as img:
        assert img.mode in ("I;16", "I") and img.format == "PNG"
    return path


def test_16bit_png_of_an_orl_face_matches_its_8bit_version(orl_root, tmp_path):
    src = orl_root / "s1" / "1.pgm"
    with Image.open(src) as img:
        grey8 = np.asarray(img.convert("L"))
    png16 = _grey_to_16bit_png(grey8, tmp_path / "face16.png")
    x16, x8 = load_face(png16), load_face(src)
    assert x16.max() < 1.0  # not the pure white face of a clipped decode
    assert (x16 - x8).abs().max() <= 1 / 255 + 1e-6
    assert np.abs(read_rgb(png16).astype(int) - np.repeat(grey8[:, :, None], 3, 2).astype(int)).max() <= 1


def test_16bit_and_float_greys_scaled_by_depth(tmp_path):
    grey8 = face_like(7)[:, :, 0]
    _grey_to_16bit_png(grey8, tmp_path / "g16.png")
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "g16.tif")
    Image.fromarray(grey8.astype(np.int32) * 257).save(tmp_path / "i32.tif")  # 16-bit data in 32 bits
    Image.fromarray(grey8.astype(np.float32) / 255).save(tmp_path / "f01.tif")
    Image.fromarray(grey8.astype(np.float32)).save(tmp_path / "f255.tif")
    maxval = 4095  # a 12-bit PGM: PIL scales it to 16 bits
    (tmp_path / "g12.pgm").write_bytes(b"P5\n112 112\n4095\n"
                                       + np.rint(grey8 / 255 * maxval).astype(">u2").tobytes())
    want = np.repeat(grey8[:, :, None], 3, 2).astype(int)
    for name in ("g16.png", "g16.tif", "i32.tif", "f01.tif", "f255.tif", "g12.pgm"):
        got = read_rgb(tmp_path / name).astype(int)
        assert np.abs(got - want).max() <= 1, name


def test_mixed_modes_decode_to_rgb(tmp_path):
    base = Image.fromarray(face_like(1, (40, 60)))
    for mode in ("1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "I", "F"):
        img = base.convert("P").convert("PA") if mode == "PA" else base.convert(mode)
        path = tmp_path / f"{mode}.{'tif' if mode in ('CMYK', 'YCbCr', 'I', 'F', 'PA') else 'png'}"
        try:
            img.save(path)
        except OSError:
            continue  # a format that cannot hold this mode
        rgb = read_rgb(path)
        assert rgb.dtype == np.uint8 and rgb.shape == (40, 60, 3), mode


class _Projector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3 * 64, 512, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1) @ self.w


def test_a_bomb_in_the_gallery_is_reported_by_name_and_the_run_goes_on(tmp_path, quiet):
    data = write_folders_dataset(tmp_path / "faces", subjects=3, images=4)
    bomb = write_png_header(data / "p1" / "0.png", 15000, 15000)  # natural order: enrolled first
    big = write_png_header(data / "p2" / "0.png", 10000, 10000)
    model = loaded_model(_Projector(), sha256="b" * 64)
    session = Session(SessionConfig(data=data, progress=False, device="cpu", use_cache=False,
                                    gallery_per_subject=2, vlr_size=16), models={"model": model})
    session.evaluation("model")  # the run goes on: the evaluation is built, not refused
    problems = dict(session.problems)
    assert "too large" in problems[str(bomb)] and "too large" in problems[str(big)]
    sizes = session.image_sizes()
    assert (10000, 10000, "L") in sizes and len(sizes) == 3 * 4 + 1  # the bomb's header is skipped
    info = session.dataset_info()
    assert {p["path"] for p in info["problems"]} >= {str(bomb), str(big)}


def test_a_kept_file_with_an_index_problem_still_reports_its_decode_failure(tmp_path, quiet):
    """An HR file without a VLR twin is kept (an index problem); when it is also unreadable,
    both reasons are listed."""
    root = write_paired_dataset(tmp_path / "split", subjects=2, images=3)
    bomb = write_png_header(root / "hr_images" / "001_09_crop_128.png", 15000, 15000)  # no VLR twin
    model = loaded_model(_Projector(), sha256="c" * 64)
    session = Session(SessionConfig(data=root, progress=False, device="cpu", use_cache=False,
                                    gallery_per_subject=1, vlr_size=16), models={"model": model})
    session.evaluation("model")
    reasons = [why for path, why in session.problems if path == str(bomb)]
    assert len(reasons) == 2 and "without a VLR twin" in reasons[0] and "too large" in reasons[1]
