"""The Session's rooms: the data room indexes and builds the protocol without decoding an
image; one cache store serves every room; a model with no fingerprint is never cached."""
import pytest
import torch
from torch import nn

from facediag.data.protocol import build_protocol
from facediag.errors import FacediagError
from facediag.session import Data, Session, SessionConfig
from facediag.distributed import Distributed
from helpers import loaded_model, write_demo_faces


@pytest.fixture
def faces(tmp_path):
    return write_demo_faces(tmp_path / "faces", 4)


def _model(**fields):
    torch.manual_seed(0)
    return loaded_model(nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 32)), **fields)


def test_the_data_room_indexes_every_root_one_way_and_decodes_nothing(faces, tmp_path, decodes):
    train = write_demo_faces(tmp_path / "train", 2, prefix="t")
    data = Data(SessionConfig(data=faces, train_root=train, progress=False), Distributed())
    assert len(data.index.hr) == 20 and data.probe_index is None and data.distractor_index is None
    assert len(data.train_index.hr) == 10 and data.train_index.subjects != data.index.subjects
    assert len(data.protocol.gallery) == 12 and len(data.protocol.probes) == 8
    assert data.probes_need_dsr and data.index_problems() == []
    assert sum(decodes.values()) == 0


def test_a_session_over_a_given_protocol_does_not_index_its_roots(faces, tmp_path):
    proto = build_protocol(Data(SessionConfig(data=faces, progress=False), Distributed()).index,
                           gallery_per_subject=2, vlr_size=16)
    s = Session(SessionConfig(data=tmp_path / "nowhere", use_cache=False, progress=False, device="cpu"),
                models={"model": _model()},
                protocol=proto)
    assert s.protocol is proto and len(s.evaluation("model").probe_rows) == 12
    with pytest.raises(FacediagError):
        s.index  # noqa: B018 - the root itself was never read


def test_the_alignment_state_is_settled_once_before_embedding(faces):
    s = Session(SessionConfig(data=faces, progress=False, device="cpu"), models={"model": _model()})
    assert s.alignment == "none" and not s.data.aligning
    s.embeddings("model", "gallery")
    with pytest.raises(RuntimeError, match="after embedding started"):
        s.settle_alignment("none", "too late")


def test_one_cache_store_serves_every_room_and_a_live_model_is_not_cached(faces, tmp_path):
    cfg = SessionConfig(data=faces, cache_dir=tmp_path / "cache", progress=False, device="cpu")
    named = Session(cfg, models={"model": _model(sha256="a" * 64)})
    assert named.embedder().cache is named.data.store is not None
    live = Session(cfg, models={"model": _model()})  # sha256 None: weights that may change
    assert live.data.store is not None and live.embedder().cache is None
    off = Session(SessionConfig(data=faces, use_cache=False, progress=False, device="cpu"),
                  models={"model": _model(sha256="a" * 64)})
    assert off.data.store is None and off.embedder().cache is None
