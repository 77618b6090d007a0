"""The validation flags of an epoch row (no training needed)."""
from facediag.metrics.distribution import COLLAPSE_IMPOSTOR, collapsed
from facediag.train.history import flags, severe

START = {"epoch": 0, "val_rank1": 0.9, "val_impostor_mean": 0.05, "val_genuine_mean": 0.6}


def row(gen, imp, rank1=0.9, far=0.0):
    return {"epoch": 1, "val_rank1": rank1, "val_genuine_mean": gen, "val_impostor_mean": imp,
            "val_far_at_threshold": far}


def collapse_flagged(r):
    return any(f.startswith("COLLAPSE") for f in flags(r, START, 0.35))


def test_collapse_flag_is_the_shared_rule():
    cases = [(0.781, 0.749), (0.935, 0.920), (0.6, 0.55), (0.95, COLLAPSE_IMPOSTOR),
             (0.6, 0.05), (0.3, 0.25), (0.9, 0.45)]
    for gen, imp in cases:
        assert collapse_flagged(row(gen, imp)) == collapsed(gen, imp), (gen, imp)
    # The trainer's former rule (impostor >= 0.5 and separation < 0.1) still fires...
    assert collapse_flagged(row(0.55, 0.5))
    # ...and so does a high impostor mean however far the genuine mean is above it.
    assert collapse_flagged(row(0.99, 0.8))
    # Low similarity all round is lost signal, not collapse.
    assert not collapse_flagged(row(0.12, 0.1))


def test_collapse_is_severe_a_threshold_flag_is_not():
    collapsed_row = row(0.95, 0.93, far=1.0)
    collapsed_row["flags"] = flags(collapsed_row, START, 0.35)
    assert severe(collapsed_row)
    threshold_row = row(0.7, 0.3, far=0.2)
    threshold_row["flags"] = flags(threshold_row, START, 0.35)
    assert [f.split(":")[0] for f in threshold_row["flags"]] == ["THRESHOLD"]
    assert not severe(threshold_row)
