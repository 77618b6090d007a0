"""Thresholds fixed by a criterion on one set of scores, and their rates on another: known answers
worked by hand, the summarised stream against every score, and the FMR support rule."""
import numpy as np
import pytest

from facediag.metrics.operating_point import (DEFAULT_CRITERIA, apply_threshold, criterion_key, error_curve,
                                              fix_threshold, fmr_refusal, parse_criterion, rates_at)
from facediag.metrics.streaming import BIN_WIDTH, ImpostorScores, bin_counts

# Worked by hand: accept when score >= t. Candidates (lowest point of each stretch of equal rates):
#   t        0.1   0.1+  0.2+  0.3   0.4+  0.5+  0.6   0.7   0.8   0.8+
#   FMR      4/4   3/4   2/4   2/4   1/4   0     0     0     0     0
#   FNMR     0     0     0     0     1/4   1/4   1/4   2/4   3/4   4/4
GENUINE = np.array([0.3, 0.6, 0.7, 0.8])
IMPOSTOR = np.array([0.1, 0.2, 0.4, 0.5])
UP = np.nextafter


def test_error_curve_by_hand():
    c = error_curve(GENUINE, IMPOSTOR)
    assert c.thresholds.tolist() == [0.1, UP(0.1, 1), UP(0.2, 1), 0.3, UP(0.4, 1), UP(0.5, 1), 0.6, 0.7, 0.8,
                                     UP(0.8, 1)]
    assert c.n_false_accepts.tolist() == [4, 3, 2, 2, 1, 0, 0, 0, 0, 0]
    assert c.n_false_rejects.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 3, 4]
    assert c.resolution == 0


def test_each_criterion_by_hand():
    eer = fix_threshold(GENUINE, IMPOSTOR, "eer")
    # max(FMR, FNMR) is smallest (1/4) first just above 0.4, where the two rates cross
    assert eer.threshold == UP(0.4, 1) and eer.fmr == 0.25 and eer.fnmr == 0.25 and eer.hter == 0.25
    hter = fix_threshold(GENUINE, IMPOSTOR, "min-hter")
    # FMR + FNMR is smallest (1/4) first just above 0.5: no impostor passes, 0.3 is rejected
    assert hter.threshold == UP(0.5, 1) and hter.fmr == 0 and hter.fnmr == 0.25 and hter.hter == 0.125
    fmr = fix_threshold(GENUINE, IMPOSTOR, "fmr", 0.25, min_false_accepts=1)
    # at most floor(0.25 * 4) = 1 impostor may pass: just above the second highest (0.4)
    assert fmr.threshold == UP(0.4, 1) and fmr.fmr == 0.25 and fmr.fnmr == 0.25
    assert (fmr.key, eer.key, hter.key) == ("fmr=0.25", "eer", "min-hter")
    assert eer.as_dict()["set"] == "dev" and eer.as_dict()["criterion"] == "eer" and eer.supported


def test_perfectly_separated_scores_give_zero_errors_at_the_lowest_such_threshold():
    g, i = np.array([0.7, 0.8, 0.9]), np.array([0.1, 0.2, 0.3])
    for criterion in ("eer", "min-hter"):
        op = fix_threshold(g, i, criterion)
        assert op.threshold == UP(0.3, 1) and op.fmr == 0 and op.fnmr == 0


def test_an_fmr_target_the_impostors_cannot_support_is_refused():
    op = fix_threshold(GENUINE, IMPOSTOR, "fmr", 0.01)
    assert op.threshold is None and not op.supported and "FMR 0.01 needs >= 1,000 impostor pairs" in op.reason
    assert op.as_dict()["threshold"] is None and op.hter is None
    assert fmr_refusal(999, 0.01) is not None and fmr_refusal(1000, 0.01) is None
    assert "10,000" in fmr_refusal(2660, 1e-3) and "2,660" in fmr_refusal(2660, 1e-3)


def test_applied_rates_by_hand():
    r = rates_at(0.45, GENUINE, IMPOSTOR)  # 0.5 passes; 0.3 is rejected
    assert (r.fmr, r.fnmr, r.hter, r.n_false_accepts, r.n_false_rejects) == (0.25, 0.25, 0.25, 1, 1)
    r = apply_threshold(0.65, GENUINE, n_false_accepts=3, n_impostor=1000)
    assert (r.fmr, r.fnmr) == (0.003, 0.5) and r.fmr_supported(0.01) and not r.fmr_supported(0.001)


def _summary(impostor: np.ndarray, top: int) -> ImpostorScores:
    """Impostor scores as the matching pass summarises a large set: a histogram and the exact top."""
    desc = np.sort(impostor)[::-1]
    zeros = np.zeros(top, int)
    return ImpostorScores(len(impostor), float(impostor.sum()), float(impostor @ impostor), bin_counts(impostor),
                          desc[:top], zeros, zeros, impostor[::10], np.zeros(len(impostor[::10]), int), 0.1)


def test_summarised_impostors_give_the_same_thresholds_within_one_bin():
    rng = np.random.default_rng(0)
    g = np.clip(rng.normal(0.55, 0.15, 3000), -1, 1)
    imp = np.clip(rng.normal(0.05, 0.1, 100_000), -1, 1)
    summary = _summary(imp, top=400)
    for criterion, target in (("eer", None), ("min-hter", None), ("fmr", 1e-3), ("fmr", 0.05)):
        exact, summed = fix_threshold(g, imp, criterion, target), fix_threshold(g, summary, criterion, target)
        assert summed.resolution == BIN_WIDTH and exact.resolution == 0
        # the summary sees bin edges only: its choice costs at most what one bin either side of the
        # exact threshold holds (a tie over empty bins may put it several bins lower at the same rates)
        t = exact.threshold
        near_i = ((imp >= t - BIN_WIDTH) & (imp < t + BIN_WIDTH)).sum() / len(imp)
        near_g = ((g >= t - BIN_WIDTH) & (g < t + BIN_WIDTH)).sum() / len(g)
        if criterion == "fmr":
            assert summed.fmr <= target and abs(summed.threshold - t) <= BIN_WIDTH
        else:
            cost = (lambda op: max(op.fmr, op.fnmr)) if criterion == "eer" else (lambda op: op.fmr + op.fnmr)
            assert cost(exact) <= cost(summed) <= cost(exact) + near_i + near_g, criterion
        # the summary's counts are exact at its own threshold
        assert summed.n_false_accepts == int((imp >= summed.threshold).sum())
        assert summed.n_false_rejects == int((g < summed.threshold).sum())
    # FMR 1e-3 lets 100 pass: within the kept top of 400, so the threshold is exactly the all-scores one
    assert fix_threshold(g, summary, "fmr", 1e-3).threshold == fix_threshold(g, imp, "fmr", 1e-3).threshold


def test_criteria_are_parsed_or_refused_in_one_sentence():
    assert parse_criterion("EER") == ("eer", None) and parse_criterion(" min-hter ") == ("min-hter", None)
    assert parse_criterion("fmr=1e-3") == ("fmr", 0.001) and parse_criterion("fmr = 0.01") == ("fmr", 0.01)
    for bad in ("fmr=0", "fmr=1.5", "fmr=abc", "far=0.01", "hter", ""):
        with pytest.raises(ValueError, match="criterion|FMR target"):
            parse_criterion(bad)
    assert [criterion_key(*parse_criterion(c)) for c in DEFAULT_CRITERIA] == list(DEFAULT_CRITERIA)
    with pytest.raises(ValueError):
        fix_threshold(GENUINE, IMPOSTOR, "fmr")  # no target
    with pytest.raises(ValueError, match="need genuine and impostor"):
        fix_threshold([], IMPOSTOR, "eer")
