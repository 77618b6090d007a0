"""data.matfile: the .mat lists of the low-resolution benchmarks, read only when their headers say
they are MATLAB v5 lists of a sane size. Each hostile file is one DataError naming the file;
the release's own form (a cell array of names, a column of ids, written by scipy.io.savemat) reads."""
import struct
import zlib

import numpy as np
import pytest
from scipy.io import savemat

from facediag.data.matfile import MAX_ELEMENTS, integers, read_mat, strings
from facediag.errors import DataError

KEYS = ("probe_set", "probe_ids")


def cell(names) -> np.ndarray:
    out = np.empty((len(names), 1), dtype=object)
    for k, n in enumerate(names):
        out[k, 0] = n
    return out


def release_list(path, names=("1_1.jpg", "1_2.jpg", "27_3.jpg"), ids=(1.0, 1.0, 27.0)):
    savemat(path, {"probe_set": cell(list(names)), "probe_ids": np.array(ids, dtype=np.float64)[:, None]})
    return path


def test_the_release_form_reads(tmp_path):
    path = release_list(tmp_path / "probe_img_ID_pairs.mat")
    arrays = read_mat(path, KEYS)
    assert strings(path, arrays["probe_set"], "probe_set") == ["1_1.jpg", "1_2.jpg", "27_3.jpg"]
    ids = integers(path, arrays["probe_ids"], "probe_ids")
    assert ids.dtype == np.int64 and ids.tolist() == [1, 1, 27]


def test_a_char_matrix_of_names_reads(tmp_path):
    path = tmp_path / "chars.mat"
    savemat(path, {"probe_set": np.array(["1_1.jpg", "2_1.jpg"]), "probe_ids": np.array([1, 2])})
    arrays = read_mat(path, KEYS)
    assert strings(path, arrays["probe_set"], "probe_set") == ["1_1.jpg", "2_1.jpg"]


def _refused(path, *needles, keys=KEYS):
    with pytest.raises(DataError) as err:
        arrays = read_mat(path, keys)
        strings(path, arrays[keys[0]], keys[0])
        integers(path, arrays[keys[1]], keys[1])
    text = str(err.value)
    assert "\n" not in text and str(path) in text, text
    for needle in needles:
        assert needle in text, text
    return text


def v73_file(path):
    """What MATLAB's save -v7.3 writes: a 512-byte text header, then an HDF5 file."""
    head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    path.write_bytes(head.ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64))
    return path


def test_a_v73_hdf5_file_is_refused(tmp_path):
    _refused(v73_file(tmp_path / "v73.mat"), "v7.3 (HDF5)")
    bare = tmp_path / "bare.mat"
    bare.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    _refused(bare, "v7.3 (HDF5)")


def test_wrong_keys_are_refused_naming_what_is_there(tmp_path):
    path = tmp_path / "keys.mat"
    savemat(path, {"probe_list": cell(["1_1.jpg"]), "probe_ids": np.array([[1.0]])})
    _refused(path, "no variable 'probe_set'", "it has probe_ids, probe_list")


def test_a_struct_where_a_list_belongs_is_refused(tmp_path):
    path = tmp_path / "struct.mat"
    savemat(path, {"probe_set": {"name": "1_1.jpg"}, "probe_ids": np.array([[1.0]])})
    _refused(path, "'probe_set' is a MATLAB struct, not a list")


def test_an_object_array_of_dicts_is_refused(tmp_path):
    path = tmp_path / "dicts.mat"
    dicts = np.empty((2, 1), dtype=object)
    dicts[0, 0], dicts[1, 0] = {"a": 1}, {"b": "1_1.jpg"}
    savemat(path, {"probe_set": dicts, "probe_ids": np.array([[1.0], [2.0]])})
    _refused(path, "'probe_set' holds a", "cell", "not a file name")


def test_numbers_where_names_belong_and_names_where_ids_belong_are_refused(tmp_path):
    path = tmp_path / "swapped.mat"
    savemat(path, {"probe_set": np.array([[1.0], [2.0]]), "probe_ids": cell(["a", "b"])})
    _refused(path, "'probe_set' is float64 data, not a list of file names")
    path2 = tmp_path / "matrix_ids.mat"
    savemat(path2, {"probe_set": cell(["1_1.jpg", "2_1.jpg"]), "probe_ids": np.ones((2, 2))})
    _refused(path2, "has shape (2, 2), not a vector")
    path3 = tmp_path / "fractional.mat"
    savemat(path3, {"probe_set": cell(["1_1.jpg"]), "probe_ids": np.array([[1.5]])})
    _refused(path3, "not whole numbers")


def test_a_huge_declared_size_is_refused_before_anything_is_allocated(tmp_path):
    path = tmp_path / "huge.mat"
    savemat(path, {"probe_set": cell(["1_1.jpg"]), "probe_ids": np.zeros((3, 7))})
    data = path.read_bytes()
    assert data.count(struct.pack("<ii", 3, 7)) == 1
    path.write_bytes(data.replace(struct.pack("<ii", 3, 7), struct.pack("<ii", 100_000, 100_000)))
    text = _refused(path, "'probe_ids' declares 100000×100000 elements")
    assert f"{MAX_ELEMENTS:,}" in text


def test_a_zlib_bomb_is_refused_before_it_is_inflated(tmp_path):
    """A few hundred kB that would inflate to 300 MB: refused while inflating in bounded steps."""
    path = tmp_path / "bomb.mat"
    savemat(path, {"probe_set": cell(["1_1.jpg"]), "probe_ids": np.array([[1.0]])})
    header = path.read_bytes()[:128]
    # one compressed element: a valid double-matrix header, then 300 MB of zeros
    inner = struct.pack("<II", 14, 0x7FFFFFF0) + struct.pack("<IIII", 6, 8, 6, 0) + struct.pack("<IIii", 5, 8, 1, 1)
    inner += struct.pack("<II", 1, 8) + b"probe_id"
    z = zlib.compressobj(1)
    body = z.compress(inner) + b"".join(z.compress(bytes(1 << 20)) for _ in range(300)) + z.flush()
    path.write_bytes(header + struct.pack("<II", 15, len(body)) + body)
    assert path.stat().st_size < 2_000_000
    _refused(path, "expand beyond", keys=("probe_id", "probe_id"))


@pytest.mark.parametrize("content", [b"", b"garbage, not a .mat file" * 20, bytes(range(256)) * 8],
                         ids=["empty", "text", "bytes"])
def test_garbage_bytes_are_refused(tmp_path, content):
    path = tmp_path / "garbage.mat"
    path.write_bytes(content)
    _refused(path, "not a readable MATLAB v5 file")


def test_a_truncated_file_is_refused(tmp_path):
    path = release_list(tmp_path / "cut.mat")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    _refused(path, "not a readable MATLAB v5 file")


def test_a_missing_file_is_refused(tmp_path):
    _refused(tmp_path / "absent.mat", "no such file")
