"""Error-versus-discard characteristic, size bins and blur against hand-worked answers."""
import json

import numpy as np
import pytest
from scipy import ndimage

from facediag.metrics.edc import (MIN_BIN_PROBES, SIZE_EDGES, edc_curve, laplacian_variance, partial_area,
                                  quality_section, size_bins, thin_curve)


def test_edc_curve_known_answer_and_partial_areas():
    # sorted by quality: error, ok, error, ok -> kept errors 2/4, 1/3, 1/2, 0/1, then the closing point
    c = edc_curve([3, 1, 4, 2], [True, True, False, False], limit=0.2)
    assert c["discard"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert c["error"] == pytest.approx([0.5, 1 / 3, 0.5, 0.0, 0.0])
    assert c["n"] == 4 and c["errors"] == 2
    assert c["pauc"] == pytest.approx(0.2 * 0.5)
    assert partial_area(c["discard"], c["error"], 0.6) == pytest.approx(0.25 * 0.5 + 0.25 / 3 + 0.1 * 0.5)
    assert partial_area(c["discard"], c["error"], 1.0) == pytest.approx(0.25 * 0.5 + 0.25 / 3 + 0.25 * 0.5)
    assert partial_area(c["discard"], c["error"], 0.25) == pytest.approx(0.125)   # limit on a step edge


def test_ties_are_discarded_together_whatever_their_order():
    a = edc_curve([1, 1, 2], [False, True, True], limit=1.0)
    b = edc_curve([1, 2, 1], [True, True, False], limit=1.0)
    assert a == b
    assert a["discard"] == pytest.approx([0, 2 / 3, 1]) and a["error"] == pytest.approx([2 / 3, 1, 0])
    assert a["pauc"] == pytest.approx(2 / 3 * 2 / 3 + 1 / 3)


def test_all_equal_quality_and_a_single_probe():
    flat = edc_curve([5, 5, 5], [True, False, False])
    assert flat["discard"] == [0.0, 1.0] and flat["error"] == pytest.approx([1 / 3, 0.0])
    assert flat["pauc"] == pytest.approx(0.2 / 3)       # nothing can be discarded short of everything
    one = edc_curve([7.0], [True])
    assert one["discard"] == [0.0, 1.0] and one["error"] == [1.0, 0.0] and one["pauc"] == pytest.approx(0.2)


def test_a_predictive_quality_beats_its_reverse_and_a_random_one():
    rng = np.random.default_rng(0)
    q = rng.normal(size=400)
    errors = q < np.quantile(q, 0.15)                    # the 15 % lowest-quality probes fail
    oracle = edc_curve(q, errors)
    reverse = edc_curve(-q, errors)
    shuffled = edc_curve(rng.permutation(q), errors)
    assert oracle["error"][0] == pytest.approx(0.15)
    # the oracle reaches zero error once 15 % is discarded: area = triangle-ish, well below the others
    assert oracle["pauc"] < shuffled["pauc"] < reverse["pauc"]
    assert oracle["pauc"] == pytest.approx(sum(e / 400 for e in [(60 - k) / (400 - k) for k in range(60)]))


def test_edc_refuses_bad_input():
    with pytest.raises(ValueError, match="no probes"):
        edc_curve([], [])
    with pytest.raises(ValueError, match="finite"):
        edc_curve([1.0, np.nan], [True, False])
    with pytest.raises(ValueError, match="3 quality values for 2"):
        edc_curve([1, 2, 3], [True, False])
    with pytest.raises(ValueError, match="limit"):
        edc_curve([1], [True], limit=0.0)


def test_thinning_keeps_the_step_function_on_its_grid_and_the_full_pauc():
    rng = np.random.default_rng(1)
    full = edc_curve(rng.normal(size=3000), rng.random(3000) < 0.3)
    thin = thin_curve(full, max_points=101)
    assert len(thin["discard"]) <= 101 and thin["thinned_from"] == 3001 and thin["pauc"] == full["pauc"]
    grid = np.linspace(0, 1, 100, endpoint=False)

    def step(curve, x):
        return np.asarray(curve["error"])[np.searchsorted(curve["discard"], x, side="right") - 1]
    assert np.array_equal(step(full, grid), step(thin, grid))
    assert thin_curve(thin, max_points=101) is thin     # short curves pass through untouched


def test_size_bins_hand_made_sizes():
    sizes = [10, 15.9, 16, 23, 24, 31, 32, 47, 48, 100, 100]
    correct = [0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0]
    genuine = [0.1, np.nan, 0.3, 0.5, 0.2, 0.4, 0.6, 0.8, 0.9, 0.7, np.nan]
    bins = size_bins(sizes, correct, genuine)
    assert [b["label"] for b in bins] == ["< 16 px", "16–24 px", "24–32 px", "32–48 px", "≥ 48 px"]
    assert [b["n"] for b in bins] == [2, 2, 2, 2, 3]
    assert [b["rank1"] for b in bins] == pytest.approx([0.5, 1.0, 0.0, 1.0, 2 / 3])
    assert [b["genuine_mean"] for b in bins] == pytest.approx([0.1, 0.4, 0.3, 0.7, 0.8])
    assert [b["n_genuine"] for b in bins] == [1, 2, 2, 2, 2]
    assert all(b["few"] and "too few" in b["note"] for b in bins)
    empty = size_bins([50] * MIN_BIN_PROBES, [1] * MIN_BIN_PROBES)
    assert empty[0] == {"label": "< 16 px", "lo": None, "hi": 16.0, "n": 0, "rank1": None, "genuine_mean": None,
                        "n_genuine": 0, "few": True, "note": "no probes"}
    assert empty[-1]["n"] == MIN_BIN_PROBES and not empty[-1]["few"] and "note" not in empty[-1]
    with pytest.raises(ValueError, match="increasing"):
        size_bins([1], [1], edges=(16, 16))


def test_laplacian_variance_known_value_and_sharp_beats_blurred():
    impulse = np.zeros((5, 5))
    impulse[2, 2] = 1.0
    # Laplacian: -4 at the centre, 1 at its four neighbours; mean 0, variance (16 + 4) / 25
    assert laplacian_variance(impulse) == pytest.approx(0.8)
    assert laplacian_variance(np.full((8, 8), 128.0)) == 0.0
    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 256, size=(32, 32)).astype(float)
    blurred = ndimage.gaussian_filter(sharp, 1.5)
    assert laplacian_variance(sharp) > 10 * laplacian_variance(blurred)
    with pytest.raises(ValueError, match="2-D"):
        laplacian_variance(np.zeros((4, 4, 3)))


def test_quality_section_is_json_ready_with_rank1_and_fnmr_curves():
    sizes = np.array([12, 20, 28, 40, 60, 60])
    correct = np.array([False, False, True, True, True, True])
    genuine = np.array([0.1, 0.3, 0.5, np.nan, 0.7, 0.9])
    section = quality_section(sizes=sizes, norms=sizes * 0.5, correct=correct, genuine=genuine, threshold=0.4)
    json.dumps(section, allow_nan=False)
    assert set(section["edc"]) == {"size", "norm"} and section["edges"] == list(map(float, SIZE_EDGES))
    r1 = section["edc"]["size"]["rank1_error"]
    assert r1["error"] == pytest.approx([2 / 6, 1 / 5, 0, 0, 0, 0])     # the two smallest fail; ties at 60
    assert r1["discard"] == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 1])
    fnmr = section["edc"]["size"]["fnmr"]                               # 5 mated probes, 2 below 0.4
    assert fnmr["n"] == 5 and fnmr["error"][0] == pytest.approx(0.4)
    assert section["edc"]["norm"]["rank1_error"] == r1                  # same order: same curve
    assert [b["n"] for b in section["size_bins"]] == [1, 1, 1, 1, 2]
    no_size = quality_section(blur=[3.0, 1.0], correct=[True, False])
    assert no_size["size_bins"] is None and no_size["edc"]["blur"]["fnmr"] is None
    assert no_size["edc"]["blur"]["rank1_error"]["error"] == [0.5, 0.0, 0.0]


def test_quality_section_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        quality_section(correct=[True])
    with pytest.raises(ValueError, match="2 size values for 3 probes"):
        quality_section(sizes=[1, 2], correct=[True, True, False])
    with pytest.raises(ValueError, match="threshold needs"):
        quality_section(sizes=[1], correct=[True], threshold=0.3)
    with pytest.raises(ValueError, match="no probes"):
        quality_section(sizes=[], correct=[])
