"""facediag cache info / prune / clear as a user meets them."""
import json

import numpy as np
import pytest

from cli_helpers import invoke, one_line_exit_2
from facediag.cache import DB_NAME, EmbeddingCache


@pytest.fixture
def filled(tmp_path):
    """A cache with two namespaces (300 and 100 entries) and three legacy .npy files."""
    cache = EmbeddingCache(tmp_path)
    rng = np.random.default_rng(0)
    cache.put_many("a" * 32, {f"hr:{i}": rng.standard_normal(512).astype(np.float32) for i in range(300)})
    cache.put_many("b" * 32, {f"hr:{i}": rng.standard_normal(512).astype(np.float32) for i in range(100)})
    shard = tmp_path / ("c" * 32) / "0a"
    shard.mkdir(parents=True)
    for i in range(3):
        (shard / f"{i:064x}.npy").write_bytes(b"x" * 1000)
    return tmp_path


def test_info_json(filled):
    res = invoke("cache", "info", "--cache-dir", filled, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["path"] == str(filled / DB_NAME) and info["exists"]
    assert info["entries"] == 400 and info["file_bytes"] > 400 * 2048
    assert [(ns["namespace"], ns["entries"]) for ns in info["namespaces"]] == [("a" * 32, 300), ("b" * 32, 100)]
    assert info["entry_bytes"] == sum(ns["bytes"] for ns in info["namespaces"]) > 400 * 2048
    assert info["oldest_use"] <= info["newest_use"] and info["newest_use"].endswith("+00:00")
    assert (info["legacy_files"], info["legacy_bytes"]) == (3, 3000)


def test_info_of_a_cache_not_made_yet_makes_nothing(tmp_path):
    res = invoke("cache", "info", "--cache-dir", tmp_path / "none", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["exists"] is False
    assert not (tmp_path / "none").exists()


def test_info_reads_the_cache_dir_from_the_environment(filled, monkeypatch):
    monkeypatch.setenv("FACEDIAG_CACHE", str(filled))
    res = invoke("cache", "info")
    assert res.exit_code == 0 and str(filled / DB_NAME) in res.stdout and "400 embeddings" in res.stdout
    assert "clear --legacy" in res.stdout  # says how to remove the legacy .npy files


def test_prune_shrinks_the_file_and_dry_run_does_not(filled):
    before = EmbeddingCache(filled).info()
    res = invoke("cache", "prune", "--max-size", "500kB", "--dry-run", "--cache-dir", filled)
    assert res.exit_code == 0 and "would drop" in res.stdout
    assert EmbeddingCache(filled).info().entries == 400
    res = invoke("cache", "prune", "--max-size", "500kB", "--cache-dir", filled)
    assert res.exit_code == 0, res.output
    after = EmbeddingCache(filled).info()
    assert 0 < after.entries < 400 and after.file_bytes <= 500_000 < before.file_bytes
    assert after.legacy_files == 3  # prune leaves the legacy .npy files to clear --legacy


@pytest.mark.parametrize("size", ["five", "5XB", "-1GB", "", "1e40", "GB"])
def test_bad_max_size_is_one_line_exit_2(filled, size):
    one_line_exit_2(invoke("cache", "prune", "--max-size", size, "--cache-dir", filled), "--max-size")
    assert EmbeddingCache(filled).info().entries == 400  # validated before any work


def test_clear_and_clear_legacy(filled):
    res = invoke("cache", "clear", "--legacy", "--cache-dir", filled)
    assert res.exit_code == 0 and "3 legacy" in res.stdout
    info = EmbeddingCache(filled).info()
    assert info.legacy_files == 0 and info.entries == 400
    res = invoke("cache", "clear", "--cache-dir", filled)
    assert res.exit_code == 0 and "400 embeddings" in res.stdout
    assert EmbeddingCache(filled).info().entries == 0


def test_help_teaches_where_and_by_what(filled):
    res = invoke("cache", "--help")
    assert res.exit_code == 0
    for needle in ("FACEDIAG_CACHE", "embeddings.sqlite3", "sha256", "preprocessing", "Example"):
        assert needle in res.stdout
    for cmd in ("info", "prune", "clear"):
        assert "Example" in invoke("cache", cmd, "--help").stdout
