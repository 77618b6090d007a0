"""Fixtures of the trainer tests."""
import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def make_faces():
    """make_faces(root, subjects, per_subject): folder layout root/p<i>/<j>.png, 112×112
    noise around a per-person pattern (no real faces needed)."""

    def make_faces(root, subjects=6, per_subject=6, seed=0):
        """Folder layout: root/p<i>/<j>.png, 112×112 noise around a per-person pattern."""
        rng = np.random.default_rng(seed)
        for s in range(subjects):
            base = rng.integers(0, 256, (112, 112, 3))
            (root / f"p{s}").mkdir(parents=True)
            for j in range(per_subject):
                img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / f"p{s}" / f"{j}.png")
        return root

    return make_faces
