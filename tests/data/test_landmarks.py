"""Five-point geometry: known transforms are recovered, the warp puts the points on the template."""
import numpy as np
import pytest

pytest.importorskip("skimage", reason="the align extra (scikit-image) is not installed")

from facediag.data.landmarks import INTER_OCULAR, TEMPLATE, fit, nme, warp  # noqa: E402


def _moved(deg, scale, shift):
    """The template as it would appear in an image that needs -deg, 1/scale to be aligned."""
    t = np.radians(deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    centre = TEMPLATE.mean(axis=0)
    return (TEMPLATE - centre) @ rot.T * scale + centre + np.asarray(shift)


def test_the_template_itself_needs_no_transform():
    f = fit(TEMPLATE)
    np.testing.assert_allclose(f.matrix, np.eye(3), atol=1e-9)
    assert f.residual < 1e-9 and nme(TEMPLATE) == 0.0


@pytest.mark.parametrize("deg,scale", [(20, 1.0), (-12, 0.6), (5, 1.5)])
def test_rotation_and_scale_are_recovered(deg, scale):
    f = fit(_moved(deg, scale, (7, -4)))
    assert f.rotation_deg == pytest.approx(-deg, abs=1e-6)
    assert f.scale == pytest.approx(1 / scale, rel=1e-6)
    assert f.residual < 1e-6


def test_nme_is_distance_over_inter_ocular():
    assert nme(TEMPLATE + [INTER_OCULAR * 0.3, 0]) == pytest.approx(0.3)


def test_warp_puts_a_marked_point_on_the_template():
    img = np.zeros((200, 240, 3), dtype=np.uint8)
    pts = _moved(15, 1.6, (60, 40))
    x, y = np.rint(pts[2]).astype(int)  # the nose tip, marked white
    img[y - 1:y + 2, x - 1:x + 2] = 255
    out = warp(img, fit(pts))
    assert out.shape == (112, 112, 3)
    yy, xx = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert abs(xx - TEMPLATE[2, 0]) <= 1.5 and abs(yy - TEMPLATE[2, 1]) <= 1.5


def test_degenerate_points_are_refused():
    with pytest.raises(ValueError):
        fit(np.zeros((5, 2)))
    with pytest.raises(ValueError):
        fit(np.full((5, 2), np.nan))
