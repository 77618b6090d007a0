"""facediag.data.degradation: bicubic is today's downsample bit for bit; realistic is seeded by
content (same image, same result, in any batch, in another process), stays inside its stated
ranges, and its linear part is the blur and interpolation it claims to be."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import facediag.data.degradation as deg
from facediag.data.degradation import MODES, degrade, describe, key_token
from facediag.data.images import downsample, load_face
from facediag.errors import FacediagError


def _faces(n: int, seed: int = 0) -> torch.Tensor:
    from helpers import face_like
    imgs = [torch.from_numpy(np.array(face_like(seed + i))).permute(2, 0, 1) for i in range(n)]
    return torch.stack(imgs).float() / 255


def test_bicubic_is_downsample_bit_for_bit(orl_root):
    faces = torch.stack([load_face(orl_root / "s1" / f"{k}.pgm") for k in (1, 2, 3)])
    for size in (8, 16, 24, 32):
        assert torch.equal(degrade(faces, size), downsample(faces, size))
        assert torch.equal(degrade(faces[0], size, "bicubic"), downsample(faces[0], size))


def test_realistic_same_image_same_result_any_batch_any_call():
    x = _faces(6)
    a = degrade(x, 16, "realistic")
    assert a.shape == (6, 3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, degrade(x.clone(), 16, "realistic"))
    singles = torch.stack([degrade(x[i], 16, "realistic") for i in range(6)])
    assert torch.equal(a, singles)
    assert torch.equal(a[2:5], degrade(x[2:5], 16, "realistic"))
    assert torch.equal(a.flip(0), degrade(x.flip(0), 16, "realistic"))


def test_realistic_is_the_same_in_another_process():
    x = _faces(2, seed=40)
    here = degrade(x, 16, "realistic").numpy().tobytes()
    code = ("import sys, torch; from facediag.data.degradation import degrade; "
            "x = torch.load(sys.argv[1]); sys.stdout.buffer.write(degrade(x, 16, 'realistic').numpy().tobytes())")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(x, f"{tmp}/x.pt")
        there = subprocess.run([sys.executable, "-c", code, f"{tmp}/x.pt"], capture_output=True, check=True).stdout
    assert there == here


def test_different_images_draw_differently_and_sizes_share_draws():
    x = _faces(40)
    pixels = x.numpy()
    draws = [deg._Draws(np.random.default_rng(list(deg._seed_bytes(pixels[i], None, None)))) for i in range(40)]
    assert len({d.sigma for d in draws}) == 40
    assert len({d.quality for d in draws}) > 10
    assert {d.interpolation for d in draws} == set(deg.INTERPOLATIONS)
    # The draws do not depend on the size: 16 and 24 px probes of one face share blur, noise and JPEG.
    same = [deg._Draws(np.random.default_rng(list(deg._seed_bytes(pixels[0], None, None)))) for _ in range(2)]
    assert vars(same[0]) == vars(same[1])
    a, b = degrade(x[0], 16, "realistic"), degrade(x[1], 16, "realistic")
    assert not torch.equal(a, b)


def test_seed_replaces_content():
    x = _faces(2)
    one = degrade(x[0], 16, "realistic", seed=b"run-1")
    assert torch.equal(one, degrade(x[0], 16, "realistic", seed=b"run-1"))
    assert not torch.equal(one, degrade(x[0], 16, "realistic", seed=b"run-2"))
    assert not torch.equal(one, degrade(x[0], 16, "realistic"))
    # In a batch image i gets sha256(seed + i): the two faces get different draws from one seed.
    batch = degrade(torch.stack([x[0], x[0]]), 16, "realistic", seed=b"run-1")
    assert not torch.equal(batch[0], batch[1])


def test_draws_stay_inside_the_stated_ranges_and_span_them():
    rngs = [np.random.default_rng([k]) for k in range(2000)]
    draws = [deg._Draws(r) for r in rngs]
    sig = np.array([d.sigma for d in draws])
    gau = np.array([d.gaussian_sigma for d in draws]) * 255
    poi = np.array([d.poisson_scale for d in draws])
    q = np.array([d.quality for d in draws])
    for values, (lo, hi) in ((sig, deg.BLUR_SIGMA), (gau, deg.GAUSSIAN_SIGMA_255), (poi, deg.POISSON_SCALE),
                             (q, deg.JPEG_QUALITY)):
        assert values.min() >= lo and values.max() <= hi
        assert values.min() < lo + 0.05 * (hi - lo) and values.max() > hi - 0.05 * (hi - lo)
    assert set(q) >= {deg.JPEG_QUALITY[0], deg.JPEG_QUALITY[1]}
    gray = np.mean([d.gaussian_gray for d in draws])
    assert abs(gray - deg.GRAY_NOISE_PROB) < 0.05


def test_output_is_an_8bit_image_in_range():
    out = degrade(_faces(4), 20, "realistic")
    assert out.shape == (4, 3, 20, 20)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(torch.round(out * 255) / 255, out)


def test_blur_and_resize_matrices_are_the_operations_they_claim():
    x = _faces(2).double()
    for mode in deg.INTERPOLATIONS:
        r = torch.from_numpy(deg._resize_matrix(112, 16, mode))
        kwargs = {} if mode == "area" else {"align_corners": False, "antialias": False}
        assert torch.allclose(r @ x @ r.T, F.interpolate(x, size=(16, 16), mode=mode, **kwargs), atol=1e-12)
    img = x[0, 0].numpy()
    for sigma in (0.2, 1.3, 3.0):
        k = deg._gaussian_kernel(sigma)
        rad = len(k) // 2
        assert rad == max(1, int(np.ceil(3 * sigma)))
        padded = np.pad(img, ((rad, rad), (0, 0)), mode="reflect")
        expected = sum(k[j] * padded[j:j + 112] for j in range(len(k)))
        np.testing.assert_allclose(deg._blur_matrix(112, sigma) @ img, expected, atol=1e-12)
    # The chain's linear part: the blur at σ·H/(4·size) on the face, then the drawn interpolation.
    draw = deg._Draws(np.random.default_rng([7]))
    hr_sigma = draw.sigma * 112 / (deg.BLUR_SCALE * 16)
    a = deg._resize_matrix(112, 16, draw.interpolation) @ deg._blur_matrix(112, hr_sigma)
    np.testing.assert_allclose(deg._blur_and_resize(x[:1].numpy(), [draw], 16)[0], a @ x[0].numpy() @ a.T, atol=1e-12)
    # A blur keeps a flat image flat (rows sum to one); a planted unnormalised kernel would not.
    assert np.allclose(deg._blur_matrix(112, 2.5).sum(axis=1), 1.0)


def test_realistic_differs_from_bicubic(orl_root):
    faces = torch.stack([load_face(orl_root / f"s{s}" / "1.pgm") for s in range(1, 9)])
    bic, real = degrade(faces, 16, "bicubic"), degrade(faces, 16, "realistic")
    diff = (bic - real).abs().mean(dim=(1, 2, 3))
    assert (diff > 0.01).all()
    # Still the same face: closer to its own bicubic probe than to another person's.
    own = diff
    other = (bic.roll(1, 0) - real).abs().mean(dim=(1, 2, 3))
    assert (own < other).float().mean() >= 0.75


def test_noise_and_jpeg_are_applied():
    flat = torch.full((8, 3, 112, 112), 0.5)
    out = degrade(flat, 24, "realistic", seed=b"x")
    assert (out.std(dim=(1, 2, 3)) > 0.003).all()  # bicubic of a flat image is exactly flat
    assert torch.equal(degrade(flat, 24), torch.full((8, 3, 24, 24), 0.5))


def test_describe_and_keys():
    for mode in MODES:
        d = describe(mode)
        assert d["mode"] == mode
        json.dumps(d)
    steps = {s["step"]: s for s in describe("realistic")["steps"]}
    assert steps["blur"]["sigma"] == list(deg.BLUR_SIGMA) and str(deg.BLUR_SCALE) in steps["blur"]["sigma_unit"]
    assert steps["downsample"]["interpolations"] == list(deg.INTERPOLATIONS)
    assert steps["gaussian noise"]["sigma_255"] == list(deg.GAUSSIAN_SIGMA_255)
    assert steps["poisson noise"]["scale"] == list(deg.POISSON_SCALE)
    assert steps["jpeg"]["quality"] == list(deg.JPEG_QUALITY)
    assert describe("realistic")["version"] == deg.REALISTIC_VERSION
    line = deg.summary(describe("realistic"))
    lo, hi = deg.GAUSSIAN_SIGMA_255
    assert f"{lo:g}–{hi:g}/255" in line and f"{deg.JPEG_QUALITY[0]}–{deg.JPEG_QUALITY[1]}" in line
    assert "area-downsampled" in deg.summary(describe("bicubic"))
    assert key_token("bicubic", 16) == "area16"  # the token caches have always used
    assert key_token("realistic", 16) == f"realistic-{deg.REALISTIC_VERSION}-16"
    assert key_token("realistic", 16) != key_token("realistic", 24)


@pytest.mark.parametrize("call", [lambda: degrade(torch.rand(3, 8, 8), 4, "lanczos"),
                                  lambda: describe("jpeg"),
                                  lambda: degrade(torch.rand(1, 8, 8), 4, "realistic"),
                                  lambda: degrade(torch.rand(3, 8, 8), 0, "realistic")])
def test_bad_arguments_are_one_line_errors(call):
    with pytest.raises(FacediagError) as info:
        call()
    assert "\n" not in str(info.value)
