"""Checks: the contract (base), the registry, and one module per built-in check.

Importing this package registers the built-in checks, in the order a report lists them.
"""
from facediag.checks import (  # noqa: F401
    weights_integrity,
    gallery_enrollment,
    subject_overlap,
    norm_sanity,
    preprocessing,
    alignment,
    arcface_head,
    pretrained_baseline,
    pair_gap,
    dsr,
    identification,
    verification,
    operating_point,
    demographic,
)
