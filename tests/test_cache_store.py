"""The embedding store (facediag.cache): one SQLite file, batched, checksummed, shared by processes,
and never the reason a run stops."""
import multiprocessing
import sqlite3

import numpy as np
import pytest
import torch

from facediag.cache import DB_NAME, EmbeddingCache
from facediag.embed import Embedder, Item

NS = "0" * 32  # a literal namespace: these tests need no model


def vector(key: str, dim: int = 512) -> np.ndarray:
    """A deterministic vector per key, so any writer's value for a key is the right one."""
    seed = int.from_bytes(key.encode()[-8:].rjust(8, b"\0"), "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def rows(root):
    db = sqlite3.connect(root / DB_NAME)
    try:
        return db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    finally:
        db.close()


def test_round_trip_single_and_batched(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put(NS, "one", vector("one"))
    got = cache.get(NS, "one")
    np.testing.assert_array_equal(got, vector("one"))
    assert got.dtype == np.float32 and got.flags.writeable
    cache.put_many(NS, {f"k{i}": vector(f"k{i}") for i in range(3000)})  # more than one transaction's rows
    keys = [f"k{i}" for i in range(0, 3200, 7)]  # some are missing
    found = cache.get_many(NS, keys)
    assert set(found) == {k for k in keys if int(k[1:]) < 3000}
    for key, vec in found.items():
        np.testing.assert_array_equal(vec, vector(key))
    assert cache.get_many(NS, keys, dim=128) == {}  # another dim is a miss
    assert cache.get_many("1" * 32, keys) == {}  # another namespace is a miss
    assert rows(tmp_path) == 3001
    assert {p.name for p in tmp_path.iterdir()} <= {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"}  # no file per image


class Tiny(torch.nn.Module):
    """A counting linear embedder over 4×4-pooled pixels."""

    def __init__(self, explode=False):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3 * 16, 32, generator=torch.Generator().manual_seed(0)))
        self.explode = explode

    def forward(self, x):
        assert not self.explode, "the model ran although every entry was cached and intact"
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) @ self.w


def items(n=10):
    return [Item(f"img:{i}", lambda i=i: torch.full((3, 112, 112), i / n)) for i in range(n)]


def embedder(cache, explode=False):
    return Embedder(Tiny(explode), torch.device("cpu"), fingerprint="tiny-v1", cache=cache, progress=False)


def test_corrupt_entries_are_recomputed_by_the_embedder_and_fixed(tmp_path):
    first = embedder(EmbeddingCache(tmp_path))
    expected, _ = first.embed(items())
    db = sqlite3.connect(tmp_path / DB_NAME)
    with db:
        vector_of = "WHERE id = (SELECT id FROM entries WHERE key = ?)"
        db.execute(f"UPDATE vectors SET vec = substr(vec, 1, 64) {vector_of}", ("img:3",))  # truncated
        db.execute(f"UPDATE vectors SET vec = zeroblob(length(vec)) {vector_of}", ("img:7",))  # checksum fails
        db.execute("UPDATE entries SET dim = 31 WHERE key = 'img:8'")  # length and dim disagree
        db.execute(f"DELETE FROM vectors {vector_of}", ("img:9",))  # the vector itself is gone
    db.close()
    second = embedder(EmbeddingCache(tmp_path))
    got, failures = second.embed(items())
    assert not failures and second.images_embedded == 4  # exactly the four damaged entries
    # recomputed in a batch of 4, not 10: float kernels may differ in the last bits with the batch shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    third = embedder(EmbeddingCache(tmp_path), explode=True)  # overwritten in place: all served now
    np.testing.assert_array_equal(third.embed(items())[0], got)
    assert third.forward_calls == 0 and rows(tmp_path) == 10


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path, capsys):
    garbage = b"this is not sqlite " * 300
    (tmp_path / DB_NAME).write_bytes(garbage)
    cache = EmbeddingCache(tmp_path)
    out, _ = embedder(cache).embed(items(4))  # the run goes on
    assert np.isfinite(out).all() and cache.disabled is None
    aside = list(tmp_path.glob(DB_NAME + ".corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage  # kept, not overwritten
    assert rows(tmp_path) == 4  # and a fresh store took the entries
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "moved aside" in err[0] and aside[0].name in err[0]


def test_an_unusable_cache_folder_costs_caching_not_the_run(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder is a file")  # the store cannot be made under it (even as root)
    cache = EmbeddingCache(blocker)
    out, _ = embedder(cache).embed(items(3))
    assert np.isfinite(out).all() and cache.disabled
    assert cache.get(NS, "img:1") is None
    cache.put(NS, "img:1", vector("x"))  # no raise
    assert len([ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]) == 1  # warned once


def test_a_full_disk_stops_writing_not_the_run(tmp_path, capsys):
    cache = EmbeddingCache(tmp_path)
    cache.put_many(NS, {"early": vector("early")})
    cache._connection().execute("PRAGMA max_page_count = 8")  # the file may not grow: SQLITE_FULL
    cache.put_many(NS, {f"k{i}": vector(f"k{i}") for i in range(500)})  # no raise
    assert cache.writes_off and "full" in cache.writes_off
    cache.put_many(NS, {"later": vector("later")})  # not even tried again
    np.testing.assert_array_equal(cache.get(NS, "early"), vector("early"))  # reads still served
    assert len([ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]) == 1


def _writer(root, worker, n_keys, batch):
    """One process writing keys worker*n/2 .. worker*n/2 + n: half overlaps the next worker's."""
    cache = EmbeddingCache(root)
    start = worker * n_keys // 2
    keys = [f"key{start + i}" for i in range(n_keys)]
    for s in range(0, len(keys), batch):
        cache.put_many(NS, {k: vector(k) for k in keys[s:s + batch]})
        cache.get_many(NS, keys[max(0, s - batch):s])  # readers beside the writers
    cache.put(NS, "shared", vector("shared"))  # every worker writes this one key
    return cache.disabled, cache.writes_off


def test_several_processes_writing_overlapping_keys_at_once(tmp_path):
    workers, n_keys = 4, 1200
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        outcomes = pool.starmap(_writer, [(tmp_path, w, n_keys, 64) for w in range(workers)])
    assert outcomes == [(None, None)] * workers  # nobody gave up on the store
    expected = [f"key{i}" for i in range((workers + 1) * n_keys // 2)] + ["shared"]
    found = EmbeddingCache(tmp_path).get_many(NS, expected)
    assert set(found) == set(expected) and rows(tmp_path) == len(expected)
    for key in expected:
        np.testing.assert_array_equal(found[key], vector(key))


def test_prune_drops_the_least_recently_used_first_and_shrinks_the_file(tmp_path):
    clock = {"now": 1_000_000}
    cache = EmbeddingCache(tmp_path, clock=lambda: clock["now"])
    groups = {name: [f"{name}{i}" for i in range(400)] for name in ("old", "middle", "new")}
    for name, keys in groups.items():  # written in this order, a day apart
        cache.put_many(NS, {k: vector(k) for k in keys})
        clock["now"] += 86400
    assert len(cache.get_many(NS, groups["old"])) == 400  # reading "old" makes it recent again
    before = cache.info().file_bytes
    max_bytes = 850 * 2600  # about 850 entries of 2.5 KB: room for "old", "new" and part of "middle"
    dry = cache.prune(max_bytes, dry_run=True)
    assert 0 < dry.removed_entries < 400 and rows(tmp_path) == 1200  # a dry run changes nothing
    result = cache.prune(max_bytes)
    assert 0 < result.removed_entries < 400
    assert result.file_bytes_after <= max_bytes < before  # the file itself shrank (VACUUM)
    assert cache.info().file_bytes == result.file_bytes_after
    left = cache.get_many(NS, [k for keys in groups.values() for k in keys])
    assert all(k in left for k in groups["old"] + groups["new"])  # the recently used stay ...
    assert sum(k in left for k in groups["middle"]) == 400 - result.removed_entries  # ... the least go


def test_prune_to_nothing_and_clear(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put_many(NS, {f"k{i}": vector(f"k{i}") for i in range(300)})
    assert cache.prune(0).kept_entries == 0 and rows(tmp_path) == 0
    cache.put_many(NS, {f"k{i}": vector(f"k{i}") for i in range(10)})
    assert cache.clear() == 10 and rows(tmp_path) == 0


@pytest.fixture
def legacy_tree(tmp_path):
    """The old layout beside the store, and a user's own file that must never be touched."""
    shard = tmp_path / ("a" * 32) / "3f"
    shard.mkdir(parents=True)
    for i in range(3):
        (shard / f"{i:064x}.npy").write_bytes(b"x" * 100)
    (tmp_path / ("a" * 32) / "notes.txt").write_text("mine")
    return tmp_path


def test_legacy_files_are_counted_and_removed_only_by_name(legacy_tree):
    cache = EmbeddingCache(legacy_tree)
    cache.put(NS, "k", vector("k"))
    info = cache.info()
    assert (info.legacy_files, info.legacy_bytes, info.entries) == (3, 300, 1)
    assert cache.remove_legacy() == (3, 300)
    assert (legacy_tree / ("a" * 32) / "notes.txt").read_text() == "mine"
    assert not (legacy_tree / ("a" * 32) / "3f").exists() and cache.info().legacy_files == 0
    assert cache.get(NS, "k") is not None  # the store is untouched
