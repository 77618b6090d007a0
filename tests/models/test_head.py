"""ArcFace head: cosine to normalised class centres, label map, shape checks."""
import pytest
import torch
import torch.nn.functional as F

from facediag.errors import CheckpointError
from facediag.models import ArcFaceHead


def test_cosine_to_normalised_centres():
    torch.manual_seed(0)
    weight = torch.randn(4, 512) * torch.tensor([[1.0], [5.0], [0.1], [2.0]])
    head = ArcFaceHead(weight, {"alice": 0, "bob": 1, "carol": 3})
    emb = F.normalize(torch.randn(3, 512), dim=1)
    expected = torch.stack([F.cosine_similarity(emb, w.expand(3, -1)) for w in weight], dim=1)
    assert torch.allclose(head.cosine(emb), expected, atol=1e-6)
    assert torch.allclose(head.cosine(weight[1:2] * 7)[0, 1], torch.tensor(1.0))
    assert (head.classes, head.dim) == (4, 512)
    assert head.subjects == ["alice", "bob", None, "carol"]


def test_wrong_shapes_and_label_ids_are_refused():
    head = ArcFaceHead(torch.randn(3, 512))
    assert head.subjects is None
    with pytest.raises(CheckpointError, match=r"expects \[N, 512\] embeddings"):
        head.cosine(torch.randn(2, 256))
    with pytest.raises(CheckpointError, match="must be a \\[classes, dim\\] tensor"):
        ArcFaceHead(torch.randn(512))
    with pytest.raises(CheckpointError, match="outside 0..2"):
        ArcFaceHead(torch.randn(3, 512), {"x": 3})


def test_from_checkpoint_without_head_is_none():
    class Loaded:
        head, label_map = None, None
    assert ArcFaceHead.from_checkpoint(Loaded) is None
    Loaded.head = torch.randn(2, 512)
    assert ArcFaceHead.from_checkpoint(Loaded).classes == 2
