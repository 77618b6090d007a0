"""The align extra (facenet-pytorch, scikit-image) in tests: a skip mark for the tests that need it,
giving the reason it is not usable here, and ways to make it missing or broken, whatever is installed."""
import sys

import pytest

from facediag.data.detect import INSTALL_ALIGN, missing_extra

WHY_NOT = missing_extra()  # None where the extra imports
needs_extra = pytest.mark.skipif(WHY_NOT is not None, reason=f"the align extra is not usable here: {WHY_NOT}")


def make_missing(monkeypatch) -> None:
    """facenet-pytorch not installed: its import fails as a missing module's does."""
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)


def make_broken(monkeypatch, tmp_path) -> None:
    """facenet-pytorch installed but broken, as after ``pip install --no-deps facenet-pytorch``
    where ``requests`` is absent: the package is found, and importing it fails on ``import requests``."""
    root = tmp_path / "broken-extra"
    (root / "facenet_pytorch").mkdir(parents=True)
    (root / "facenet_pytorch" / "__init__.py").write_text("import requests  # noqa: F401\nMTCNN = None\n")
    monkeypatch.setitem(sys.modules, "requests", None)
    monkeypatch.delitem(sys.modules, "facenet_pytorch", raising=False)
    monkeypatch.syspath_prepend(str(root))


__all__ = ["INSTALL_ALIGN", "WHY_NOT", "make_broken", "make_missing", "needs_extra"]
