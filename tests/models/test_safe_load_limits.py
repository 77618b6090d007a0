"""A small file cannot make the loader read, build or walk something huge: zip bombs, opcode
floods, deep or cyclic or exponentially shared structures and allocation requests are
refused early, in one line, before torch (or anything recursive) sees them."""
import struct
import sys
import time
import tracemalloc
import zipfile

import hostile_pickles as H
from cli_helpers import invoke, one_line_exit_2
import pytest
import torch

from facediag.errors import CheckpointError
from facediag.models import build_edgeface, safe_load
from facediag.models.checkpoint import load_checkpoint
from facediag.models.safe_load import load_pickled


def refused(path, loader=load_checkpoint, **kwargs):
    with pytest.raises(CheckpointError) as info:
        loader(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(path.name + ": "), message
    return message


def write_bomb(path, member, inflated, prefix=b"", chunk=b"Na"):
    """A zip whose ``member`` deflates to ``inflated`` bytes of a valid-looking pickle."""
    block = chunk * (2**20 // len(chunk))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(member, "w", force_zip64=True) as f:
            f.write(prefix)
            for _ in range(inflated // len(block)):
                f.write(block)
            f.write(H.STOP)
        zf.writestr("archive/version", b"3\n")
    return path


def test_data_pkl_that_inflates_past_the_limit_is_refused_before_reading(tmp_path):
    # The audit's case: 0.4 MB on disk, data.pkl inflating to hundreds of MB of opcodes.
    path = write_bomb(tmp_path / "bomb.pth", "archive/data.pkl", 80 * 2**20,
                      prefix=H.PROTO + H.EMPTY_LIST)
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    start = time.perf_counter()
    message = refused(path)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "data.pkl' inflates to 80.0 MiB (limit 64.0 MiB for a pickle)" in message
    assert elapsed < 2 and peak < 8 * 2**20  # the member was never read


def test_storage_members_that_inflate_far_beyond_the_file_are_refused(tmp_path):
    path = tmp_path / "storage-bomb.pth"
    numel = 16 * 2**20  # 64 MiB of zeros, a few KB deflated
    data = H.pickle_bytes(H.dict_of(w=H.tensor("0", numel)))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", data)
        zf.writestr("archive/data/0", bytes(4 * numel))
        zf.writestr("archive/version", b"3\n")
    assert "(zip bomb?)" in refused(path, load_pickled)


def test_opcode_flood_is_refused_while_scanning(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_load, "MAX_PICKLE_OPS", 10_000)
    path = H.write_torch_zip(tmp_path / "flood.pth", H.pickle_bytes(
        H.EMPTY_LIST + (H.NONE + H.APPEND) * 20_000))
    assert "refused, the pickle has over 10,000 opcodes" in refused(path, load_pickled)


@pytest.fixture(scope="module")
def weights():
    """A real EdgeFace-xxs state_dict: hostile metadata must be refused even when the
    weights are fine (that is when the old loader went on to render the metadata)."""
    torch.manual_seed(0)
    return build_edgeface("edgeface_xxs").state_dict()


def training_dict_with_config(path, weights, fragment):
    """torch.save of {backbone_state_dict, epoch, config}, then ``config``'s value (None)
    replaced by a hand-made pickle fragment that pushes one object."""
    torch.save({"backbone_state_dict": weights, "epoch": 3, "config": None}, path)
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    pkl = next(n for n in members if n.endswith("/data.pkl"))
    key = H.s("config")
    at = members[pkl].rindex(key) + len(key)
    at += 2 if members[pkl][at:at + 1] == b"q" else 5 if members[pkl][at:at + 1] == b"r" else 0
    assert members[pkl][at:at + 1] == H.NONE
    members[pkl] = members[pkl][:at] + fragment + members[pkl][at + 1:]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return path


MEMO = 1_000_000  # memo slots far above torch.save's own


def memo_nested(depth):
    """{"top": {"a": {"a": ...}}} ``depth`` deep with a constant stack: each level is built
    from the memoised one below, then parked under the same key of the outer dict
    (torch's unpickler has no POP), so no opcode-level nesting shows it."""
    body = H.EMPTY_DICT + H.s("top") + H.EMPTY_DICT + H.put(MEMO) + H.SETITEM
    for k in range(1, depth + 1):
        body += (H.s("top") + H.EMPTY_DICT + H.s("a") + H.get(MEMO + k - 1) + H.SETITEM
                 + H.put(MEMO + k) + H.SETITEM)
    return body


def test_config_nested_5000_deep_is_one_line_not_a_recursion_error(tmp_path, weights):
    deep = {}
    for _ in range(5000):
        deep = {"a": deep}
    path = tmp_path / "deep.pth"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)  # so that pickle itself can write it
    try:
        torch.save({"backbone_state_dict": weights, "config": deep}, path)
    finally:
        sys.setrecursionlimit(limit)
    assert "nests deeper than 100 levels" in refused(path)


def test_deep_nesting_built_through_the_memo_is_refused_too(tmp_path, weights):
    path = training_dict_with_config(tmp_path / "memo.pth", weights, memo_nested(5000))
    assert "nests deeper than 100 levels" in refused(path)


def test_nesting_within_the_limit_loads(tmp_path, weights):
    path = training_dict_with_config(tmp_path / "ok.pth", weights, memo_nested(60))
    config = load_checkpoint(path).meta["config"]["top"]
    for _ in range(60):
        config = config["a"]
    assert config == {}


def test_mark_nesting_is_bounded_while_scanning(tmp_path):
    path = H.write_torch_zip(tmp_path / "marks.pth", H.pickle_bytes(
        H.MARK * 5000 + H.TUPLE * 5000))
    assert "the pickle nests deeper than 100 levels" in refused(path, load_pickled)


def test_reference_cycle_is_refused(tmp_path, weights):
    # config = []; config.append(config)
    path = training_dict_with_config(tmp_path / "cycle.pth", weights,
                                     H.EMPTY_LIST + H.put(MEMO) + H.get(MEMO) + H.APPEND)
    assert "refers to itself" in refused(path)


def test_exponential_sharing_is_refused(tmp_path, weights):
    # level k = [level k-1, level k-1]: 24 levels expand to 2^25 objects for any recursive
    # reader (to_plain, JSON) though the fragment is 200 opcodes.
    body = H.EMPTY_LIST + H.NONE + H.put(MEMO) + H.APPEND  # a list holding each level
    for k in range(1, 25):
        body += (H.EMPTY_LIST + H.get(MEMO + k - 1) + H.APPEND + H.get(MEMO + k - 1) + H.APPEND
                 + H.put(MEMO + k) + H.APPEND)
    path = training_dict_with_config(tmp_path / "laughs.pth", weights, body)
    start = time.perf_counter()
    assert "expands to more than 5,000,000 objects" in refused(path)
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("constructor", ["builtins.bytearray", "torch.FloatTensor"])
def test_constructor_asked_for_a_huge_allocation_is_refused_unbuilt(tmp_path, constructor):
    # bytearray(n) zero-fills n bytes: 256 MiB asked for by a 60-byte pickle.
    path = H.write_torch_zip(tmp_path / "alloc.pth", H.pickle_bytes(
        H.dict_of(x=H.call(H.g(constructor), H.i(256 * 2**20)))))
    assert f"asks {constructor} for 268,435,456 elements" in refused(path, load_pickled)


def test_legacy_file_declaring_more_tensor_data_than_it_holds_is_refused(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.zeros(10)}, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    at = raw.index(b"K\x0aNt")  # the storage's numel, 10
    path.write_bytes(raw[:at] + b"J" + struct.pack("<i", 2**30) + raw[at + 2:])
    assert "declares 4,096.0 MiB of tensor data" in refused(path, load_pickled)


def test_names_that_collide_for_torchs_case_insensitive_reader_are_refused(tmp_path):
    benign = H.pickle_bytes(H.dict_of(w=H.NONE))
    path = H.write_torch_zip(tmp_path / "twins.pth", benign,
                             extra={"archive/DATA.PKL": H.pickle_bytes(H.NONE)})
    assert "twice" in refused(path, load_pickled)


def test_limits_leave_real_checkpoints_a_wide_margin(quant_weights, float_weights):
    for path in (quant_weights, float_weights):
        with zipfile.ZipFile(path) as zf:
            info = next(i for i in zf.infolist() if i.filename.endswith("data.pkl"))
            scan = safe_load._PickleScan(path.name)
            scan.storage_budget = path.stat().st_size
            scan.run(zf.open(info), 1)
        assert info.file_size * 100 < safe_load.MAX_PICKLE_BYTES
        assert scan.ops * 100 < safe_load.MAX_PICKLE_OPS
        assert load_checkpoint(path).matched_fraction == 1.0


def test_cli_reports_a_hostile_file_in_one_line_with_exit_2(tmp_path, weights):
    deep = training_dict_with_config(tmp_path / "deep.pth", weights, memo_nested(5000))
    one_line_exit_2(invoke("inspect", deep), "nests deeper than 100 levels")
