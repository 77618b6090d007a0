"""Shared fixtures. Real assets come from $FACEDIAG_TEST_ASSETS (CI: ../shared/assets)."""
import os
from pathlib import Path

import pytest


def _assets_dir():
    root = os.environ.get("FACEDIAG_TEST_ASSETS")
    return Path(root).resolve() if root else None


@pytest.fixture(scope="session")
def assets():
    """Folder with edgeface_xxs_q.pt, edgeface_xxs_fp32_dequantized.pt, orl_faces/ ..."""
    root = _assets_dir()
    if root is None:
        pytest.skip("FACEDIAG_TEST_ASSETS is not set: real-asset tests need ../shared/assets")
    if not root.is_dir():
        pytest.skip(f"FACEDIAG_TEST_ASSETS={root} is not a folder")
    return root


@pytest.fixture(scope="session")
def float_weights(assets):
    return assets / "edgeface_xxs_fp32_dequantized.pt"


@pytest.fixture(scope="session")
def quant_weights(assets):
    return assets / "edgeface_xxs_q.pt"


@pytest.fixture(scope="session")
def orl_root(assets):
    return assets / "orl_faces"


@pytest.fixture(scope="session")
def layouts(assets):
    import json
    return json.loads((assets / "edgeface_state_dict_layouts.json").read_text())
