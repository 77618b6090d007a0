"""cache info, cache prune, cache clear: look after the embedding store (facediag.cache)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from facediag.cache import EmbeddingCache, default_cache_dir
from facediag.cli.options import AS_JSON, CACHE_DIR, byte_size, console, handle_errors

CACHE_DIR_HELP = "The cache folder (default $FACEDIAG_CACHE, else ~/.cache/facediag/embeddings)."


def _store(cache_dir):
    return EmbeddingCache(cache_dir or default_cache_dir())


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _when(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


@click.group()
def cache():
    """The embedding cache: what it holds, and keeping it small.

    \b
    Every embedding a run computes is kept in one SQLite file, <cache dir>/embeddings.sqlite3,
    keyed by the model (the checkpoint's sha256 fingerprint), the preprocessing, and the image
    (its content digest and view: HR, or the low-resolution size and DSR). A second run over the
    same images and weights embeds nothing; a changed checkpoint or image is a new key. Several
    runs may share the cache at once. The cache folder is $FACEDIAG_CACHE, else
    $XDG_CACHE_HOME/facediag/embeddings (~/.cache/facediag/embeddings); --cache-dir picks another,
    --no-cache turns it off for a run.

    \b
    Examples:
      facediag cache info
      facediag cache prune --max-size 5GB
      facediag cache clear --legacy
    """


@cache.command("info")
@CACHE_DIR(help=CACHE_DIR_HELP)
@AS_JSON(help="Print one JSON object (sizes in bytes, times in ISO 8601 UTC).")
@handle_errors
def cache_info(cache_dir, as_json):
    """Where the cache is, its size, entries per model namespace, oldest and newest use,
    and how much the old one-file-per-image layout still takes.

    \b
    Example:
      facediag cache info --cache-dir /data/facediag-cache --json
    """
    info = _store(cache_dir).info().to_dict()
    for row in (info, *info["namespaces"]):
        row["oldest_use"], row["newest_use"] = _when(row["oldest_use"]), _when(row["newest_use"])
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    console.print(f"cache   {info['path']}" + ("" if info["exists"] else "  (not made yet)"), highlight=False,
                  soft_wrap=True)
    console.print(f"size    {_size(info['file_bytes'])} on disk, {info['entries']:,} embeddings")
    if info["entries"]:
        console.print(f"used    {info['oldest_use']} (oldest) to {info['newest_use']} (newest)")
    for ns in info["namespaces"]:
        console.print(f"  {ns['namespace']}  {ns['entries']:>9,} embeddings  {_size(ns['bytes']):>9}  "
                      f"last used {ns['newest_use']}", highlight=False)
    if info["legacy_files"]:
        console.print(f"legacy  {info['legacy_files']:,} .npy files of the old layout ({_size(info['legacy_bytes'])}), "
                      "no longer read: remove them with facediag cache clear --legacy", highlight=False)


@cache.command("prune")
@click.option("--max-size", required=True, callback=byte_size, metavar="SIZE",
              help="Keep the cache file at most this big, e.g. 500MB, 5GB, 1.5GiB (kB/MB/GB: powers of 1000; "
                   "KiB/MiB/GiB: of 1024).")
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
@CACHE_DIR(help=CACHE_DIR_HELP)
@handle_errors
def cache_prune(max_size, dry_run, cache_dir):
    """Drop the least recently used embeddings until the cache file is at most --max-size,
    then compact the file (VACUUM) so the disk space really comes back. Dropped embeddings
    are simply recomputed when a run needs them again.

    \b
    Example:
      facediag cache prune --max-size 5GB --dry-run
    """
    result = _store(cache_dir).prune(max_size, dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    console.print(f"{verb} {result.removed_entries:,} embeddings (about {_size(result.removed_bytes)}), "
                  f"kept {result.kept_entries:,}; file {_size(result.file_bytes_before)}"
                  + ("" if dry_run else f" -> {_size(result.file_bytes_after)}"), highlight=False)
    if not dry_run and result.file_bytes_after > max_size:
        console.print("the file stays above --max-size: SQLite's own pages take about 100 kB even when empty",
                      highlight=False)


@cache.command("clear")
@click.option("--legacy", is_flag=True,
              help="Remove only the old layout's <namespace>/<xx>/<digest>.npy files (never read any more).")
@CACHE_DIR(help=CACHE_DIR_HELP)
@handle_errors
def cache_clear(legacy, cache_dir):
    """Remove every embedding from the cache (runs recompute what they need).

    \b
    Example:
      facediag cache clear --cache-dir /tmp/facediag-cache
    """
    store = _store(cache_dir)
    if legacy:
        files, size = store.remove_legacy()
        console.print(f"removed {files:,} legacy .npy files ({_size(size)}) from {store.root}", highlight=False)
    else:
        console.print(f"removed {store.clear():,} embeddings from {store.path}", highlight=False)
