"""Planted failures and healthy runs on the real assets, shared by the check tests.

Each report is built once per test session; embeddings go to the session's one cache (`cache`),
so a model is embedded once however many tests read its report."""

import pytest
import torch

from facediag.runner import run_all
from helpers import copy_orl_subset, finetune


@pytest.fixture(scope="session")
def run(cache):
    def _run(weights=None, data=None, **kw):
        kw.setdefault("cache_dir", cache)
        kw.setdefault("progress", False)
        kw.setdefault("device", "cpu")
        return run_all(weights, data, **kw)
    return _run


@pytest.fixture(scope="session")
def pretrained_report(run, float_weights, quant_weights, orl_root):
    """The healthy case: official float xxs on ORL, HR gallery, 16 px probes through bicubic,
    the official int8 model as baseline."""
    return run(float_weights, orl_root, vlr_size=16, baseline_weights=quant_weights)


@pytest.fixture(scope="session")
def paired_only_report(run, paired_only_weights, float_weights, orl_root):
    return run(paired_only_weights, orl_root, vlr_size=16, baseline_weights=float_weights)


@pytest.fixture(scope="session")
def instance_infonce_weights(float_weights, orl_root, tmp_path_factory):
    """Instance-level InfoNCE: each DSR output's only positive is its own HR pair."""
    out = tmp_path_factory.mktemp("instance") / "instance_infonce.pt"
    return finetune(float_weights, orl_root, out, "instance", steps=60, lr=1e-4)


@pytest.fixture(scope="session")
def random_init_weights(tmp_path_factory):
    """Right keys, random values: what a training run saves when it never loaded the weights."""
    from facediag.models.checkpoint import save_state_dict
    from facediag.models.edgeface import build_edgeface

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("random") / "random_init.pt"
    save_state_dict(build_edgeface("edgeface_xxs"), out)
    return out


@pytest.fixture(scope="session")
def orl10(orl_root, tmp_path_factory):
    """ORL subjects 1–10, copied so tests can plant files in it."""
    return copy_orl_subset(orl_root, tmp_path_factory.mktemp("orl10") / "orl10")
