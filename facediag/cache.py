"""The embedding store: one SQLite file (WAL mode) under the cache root, keyed by
(namespace = model fingerprint + preprocessing, item key).

A row holds the float32 vector (little-endian bytes), its dim, a CRC32 of the bytes, the bytes
the entry takes on disk (about) and when it was last used, so ``facediag cache prune`` can drop
the least recently used first. A row that fails its checks (length, checksum, dim) is a miss
and the next put overwrites it: never trusted. Several processes may read and write at once:
WAL lets readers go on beside a writer, and writers queue on a busy timeout, then retry.

The store never raises into a run. A file that is not a database is moved aside
(``embeddings.sqlite3.corrupt-<time>``, one warning line) and a fresh store is made; a
read-only or full disk turns caching off for the rest of the run, with one warning line.
Maintenance (info, prune, clear: the ``facediag cache`` commands) raises FacediagError instead.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import sqlite3
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facediag.errors import FacediagError

DB_NAME = "embeddings.sqlite3"
SCHEMA_VERSION = 1  # PRAGMA user_version of a store this code made
PAGE_SIZE = 16384  # 512-d rows are 2 KB: on the default 4 KB pages each row would take a page
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another process's write to finish ...
WRITE_ATTEMPTS = 3  # ... and how often it tries before it skips the write (a cache costs only speed)
TOUCH_AFTER_S = 600  # last-used times are refreshed at most this often: reads stay reads
ROWS_PER_TRANSACTION = 2048  # a writer never holds the lock for long
KEYS_PER_QUERY = 500  # under SQLite's limit on bound parameters

# Vectors live apart from their entries, so refreshing a last-used time rewrites a page of small
# entries, not the 2 KB vector beside it (a warm run would otherwise rewrite the whole file).
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, key TEXT NOT NULL, dim INTEGER NOT NULL,
        crc INTEGER NOT NULL, size INTEGER NOT NULL, last_used INTEGER NOT NULL, UNIQUE (namespace, key))""",
    "CREATE INDEX IF NOT EXISTS entries_by_last_used ON entries (last_used)",
    "CREATE TABLE IF NOT EXISTS vectors (id INTEGER PRIMARY KEY, vec BLOB NOT NULL)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_UPSERT_ENTRY = ("INSERT INTO entries (namespace, key, dim, crc, size, last_used) VALUES (?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (namespace, key) DO UPDATE SET dim = excluded.dim, crc = excluded.crc, "
                 "size = excluded.size, last_used = excluded.last_used")
_UPSERT_VECTOR = "INSERT OR REPLACE INTO vectors (id, vec) SELECT id, ? FROM entries WHERE namespace = ? AND key = ?"
# The entries beyond a size budget, most recently used first: what prune drops.
_OVER_BUDGET = ("SELECT id FROM (SELECT id, SUM(size) OVER (ORDER BY last_used DESC, id DESC) AS running "
                "FROM entries) WHERE running > ?")

# SQLite primary result codes (exc.sqlite_errorcode & 0xFF) that decide what a failure means.
_BUSY, _LOCKED, _READONLY, _CORRUPT, _FULL, _NOTADB = 5, 6, 8, 11, 13, 26
# The legacy layout, one .npy file per image: <root>/<32 hex namespace>/<2 hex>/<64 hex digest>.npy.
# Never read; `cache info` counts it and `cache clear --legacy` frees its disk.
_LEGACY_NAMESPACE, _LEGACY_SHARD = re.compile(r"[0-9a-f]{32}"), re.compile(r"[0-9a-f]{2}")
_LEGACY_FILE = re.compile(r"[0-9a-f]{64}\.npy")


def default_cache_dir() -> Path:
    """$FACEDIAG_CACHE, else $XDG_CACHE_HOME/facediag/embeddings (~/.cache/... by default)."""
    if os.environ.get("FACEDIAG_CACHE"):
        return Path(os.environ["FACEDIAG_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facediag" / "embeddings"


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF
    text = str(exc).lower()  # Python 3.10: only the message tells
    for needle, value in (("locked", _BUSY), ("busy", _BUSY), ("readonly", _READONLY), ("not a database", _NOTADB),
                          ("malformed", _CORRUPT), ("disk is full", _FULL)):
        if needle in text:
            return value
    return None


def _is_busy(exc: sqlite3.Error) -> bool:
    return _code(exc) in (_BUSY, _LOCKED)


def _is_corrupt(exc: sqlite3.Error) -> bool:
    return _code(exc) in (_CORRUPT, _NOTADB)


def _warn(message: str) -> None:
    print(f"facediag: warning: {message}", file=sys.stderr, flush=True)


def _chunks(seq: Sequence, n: int) -> Iterable[Sequence]:
    for start in range(0, len(seq), n):
        yield seq[start:start + n]


def _entry_size(namespace: str, key: str, blob: bytes) -> int:
    """About the bytes an entry takes in the file: its vector and the room left unused on its
    pages (a 2 KB vector fits seven times in a 16 KB page), namespace and key in the entry and
    again in its index, and SQLite's headers; within a few % of a vacuumed file of 512-d vectors."""
    return len(blob) * 8 // 7 + 2 * (len(namespace) + len(key.encode())) + 96


def _decode(dim: int, blob, crc: int, want: int | None) -> np.ndarray | None:
    """The vector of a row, or None when the row is damaged or of another dim."""
    if not isinstance(blob, bytes) or dim <= 0 or len(blob) != 4 * dim or zlib.crc32(blob) != crc:
        return None
    if want is not None and dim != want:
        return None
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)  # a writable copy in native order


@dataclass
class NamespaceInfo:
    namespace: str
    entries: int
    bytes: int
    oldest_use: float | None
    newest_use: float | None


@dataclass
class CacheInfo:
    """What ``facediag cache info`` shows; times are Unix seconds."""
    root: str
    path: str
    exists: bool
    file_bytes: int  # the database with its -wal and -shm files
    entries: int = 0
    entry_bytes: int = 0
    oldest_use: float | None = None
    newest_use: float | None = None
    namespaces: list[NamespaceInfo] = field(default_factory=list)
    legacy_files: int = 0  # .npy files of the legacy one-file-per-image layout (never read)
    legacy_bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PruneResult:
    removed_entries: int
    removed_bytes: int  # the entries' estimated size
    kept_entries: int
    file_bytes_before: int
    file_bytes_after: int  # after VACUUM; the same as before on a dry run
    dry_run: bool


class EmbeddingCache:
    """Raw embeddings by (namespace, key) in ``<root>/embeddings.sqlite3``; see the module doc."""

    def __init__(self, root: str | Path, *, clock=time.time):
        self.root = Path(root).expanduser()
        self.path = self.root / DB_NAME
        self._clock = clock  # tests age entries through it
        self._local = threading.local()  # one connection per thread (and per process, after a fork)
        self._lock = threading.Lock()
        self.disabled: str | None = None  # why the cache is off for this run, if it is
        self.writes_off: str | None = None  # why nothing more is written (full or read-only disk)

    @staticmethod
    def namespace(model_fingerprint: str) -> str:
        # Imported here, not at the top, so `facediag cache info` need not load torch with the data package.
        from facediag.data.images import PREPROCESS_ID

        return hashlib.sha256(f"{model_fingerprint}|{PREPROCESS_ID}".encode()).hexdigest()[:32]

    # ------------------------------------------------------------------ the run's calls: never raise
    def get(self, namespace: str, key: str, dim: int | None = None) -> np.ndarray | None:
        return self.get_many(namespace, [key], dim).get(key)

    def put(self, namespace: str, key: str, vec: np.ndarray) -> None:
        self.put_many(namespace, {key: vec})

    def get_many(self, namespace: str, keys: Iterable[str], dim: int | None = None) -> dict[str, np.ndarray]:
        """``{key: vector}`` for the keys present and intact (of ``dim``, when given); the rest are misses."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        conn = self._connection() if keys else None
        if conn is None:
            return found
        now = int(self._clock())
        stale: list[int] = []
        try:
            for chunk in _chunks(keys, KEYS_PER_QUERY):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT e.id, e.key, e.dim, v.vec, e.crc, e.last_used FROM entries e "
                                    f"JOIN vectors v ON v.id = e.id WHERE e.namespace = ? AND e.key IN ({marks})",
                                    (namespace, *chunk)).fetchall()
                for rowid, key, d, blob, crc, used in rows:
                    vec = _decode(d, blob, crc, dim)
                    if vec is not None:  # a damaged row is a miss; the caller's put overwrites it
                        found[key] = vec
                        if used < now - TOUCH_AFTER_S:
                            stale.append(rowid)
            if stale and not self.writes_off:
                self._write(conn, lambda c: c.executemany("UPDATE entries SET last_used = ? WHERE id = ?",
                                                          [(now, r) for r in stale]))
        except (sqlite3.Error, OSError) as exc:
            self._trouble(exc, "reading")
        return found

    def put_many(self, namespace: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Store every ``{key: vector}`` (float32), in transactions of ROWS_PER_TRANSACTION rows."""
        conn = self._connection() if vectors and not self.writes_off else None
        if conn is None:
            return
        now = int(self._clock())
        rows = []
        for key, vec in vectors.items():
            blob = np.ascontiguousarray(vec, dtype="<f4").reshape(-1).tobytes()
            rows.append((key, blob, (namespace, key, len(blob) // 4, zlib.crc32(blob),
                                     _entry_size(namespace, key, blob), now)))
        try:
            for chunk in _chunks(rows, ROWS_PER_TRANSACTION):
                if not self._write(conn, lambda c, chunk=chunk: _upsert(c, namespace, chunk)):
                    return
        except (sqlite3.Error, OSError) as exc:
            self._trouble(exc, "writing")

    # ------------------------------------------------------------------ maintenance: raise FacediagError
    def info(self) -> CacheInfo:
        legacy_files, legacy_bytes = self._legacy_totals()
        info = CacheInfo(root=str(self.root), path=str(self.path), exists=self.path.exists(),
                         file_bytes=self._file_bytes(), legacy_files=legacy_files, legacy_bytes=legacy_bytes)
        if not info.exists:
            return info
        with self._maintenance("read") as conn:
            for ns, n, size, oldest, newest in conn.execute(
                    "SELECT namespace, COUNT(*), SUM(size), MIN(last_used), MAX(last_used) FROM entries "
                    "GROUP BY namespace ORDER BY SUM(size) DESC"):
                info.namespaces.append(NamespaceInfo(ns, n, size, oldest, newest))
        info.entries = sum(n.entries for n in info.namespaces)
        info.entry_bytes = sum(n.bytes for n in info.namespaces)
        if info.namespaces:
            info.oldest_use = min(n.oldest_use for n in info.namespaces)
            info.newest_use = max(n.newest_use for n in info.namespaces)
        return info

    def prune(self, max_bytes: int, dry_run: bool = False) -> PruneResult:
        """Drop the least recently used entries until the file holds at most ``max_bytes``, then
        VACUUM so the file really shrinks. Entry sizes are estimates: when the vacuumed file is
        still over, another round drops more in proportion (three at most)."""
        before = self._file_bytes()
        if not self.path.exists():
            return PruneResult(0, 0, 0, before, before, dry_run)
        removed_entries = removed_bytes = 0
        with self._maintenance("prune") as conn:
            budget = max_bytes
            for _ in range(3):
                n, size = conn.execute(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries "
                                       f"WHERE id IN ({_OVER_BUDGET})", (budget,)).fetchone()
                if dry_run:
                    kept = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] - n
                    return PruneResult(n, size, kept, before, before, True)
                if n:
                    self._write(conn, lambda c: _delete(c, f"IN ({_OVER_BUDGET})", (budget,)), raise_busy=True)
                    removed_entries, removed_bytes = removed_entries + n, removed_bytes + size
                self._vacuum(conn)
                after = self._file_bytes()
                if after <= max_bytes or not n and budget <= 0:
                    break
                budget = int(budget * max_bytes / after * 0.98) if budget > 0 else 0  # a little under: no 4th round
            kept = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        return PruneResult(removed_entries, removed_bytes, kept, before, self._file_bytes(), False)

    def clear(self) -> int:
        """Remove every entry (the file stays, emptied: other processes may have it open). Returns the count."""
        if not self.path.exists():
            return 0
        with self._maintenance("clear") as conn:
            n = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            self._write(conn, lambda c: _delete(c), raise_busy=True)
            self._vacuum(conn)
        return n

    def legacy_files(self) -> Iterable[Path]:
        """The .npy files of the legacy layout (``<root>/<namespace>/<xx>/<digest>.npy``), which the store ignores."""
        for ns_dir in self._subdirs(self.root, _LEGACY_NAMESPACE):
            for shard in self._subdirs(ns_dir, _LEGACY_SHARD):
                try:
                    entries = list(os.scandir(shard))
                except OSError:
                    continue
                for entry in entries:
                    if _LEGACY_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                        yield Path(entry.path)

    def remove_legacy(self) -> tuple[int, int]:
        """Delete the legacy layout's files (only names it made) and its emptied folders: (files, bytes)."""
        files = size = 0
        for path in list(self.legacy_files()):
            try:
                n = path.stat().st_size
                path.unlink()
            except OSError:
                continue
            files, size = files + 1, size + n
        for ns_dir in self._subdirs(self.root, _LEGACY_NAMESPACE):
            for shard in self._subdirs(ns_dir, _LEGACY_SHARD):
                _rmdir_if_empty(shard)
            _rmdir_if_empty(ns_dir)
        return files, size

    # ------------------------------------------------------------------ connections
    def _connection(self) -> sqlite3.Connection | None:
        if self.disabled:
            return None
        local = self._local
        if getattr(local, "pid", None) == os.getpid() and local.conn is not None:
            return local.conn
        conn = self._open()
        local.conn, local.pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection | None:
        for attempt in range(2):
            inode = _inode(self.path)
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                       check_same_thread=False)
            except (sqlite3.Error, OSError) as exc:
                self._disable(f"cannot open {self.path}: {exc}")
                return None
            try:
                self._prepare(conn)
                return conn
            except sqlite3.Error as exc:
                conn.close()
                if _is_corrupt(exc) and attempt == 0:
                    self._move_aside(inode, str(exc))
                    continue
                self._disable(f"cannot use {self.path}: {exc}")
                return None
            except OSError as exc:
                conn.close()
                self._disable(f"cannot use {self.path}: {exc}")
                return None
        return None

    def _prepare(self, conn: sqlite3.Connection) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only takes effect on a new, empty file
                conn.execute("PRAGMA journal_mode = WAL")  # reads the header: a file that is not a database fails here
                conn.execute("PRAGMA synchronous = NORMAL")  # rows are checksummed; a crash may lose the last ones
                conn.execute("PRAGMA wal_autocheckpoint = 256")  # 4 MB of pages, then into the main file ...
                conn.execute(f"PRAGMA journal_size_limit = {8 << 20}")  # ... and the -wal file shrinks back
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    self._write(conn, lambda c: [c.execute(s) for s in _SCHEMA], raise_busy=True)
                elif version != SCHEMA_VERSION:
                    raise sqlite3.OperationalError(f"store format {version}, made by another facediag version "
                                                   f"(this one reads format {SCHEMA_VERSION})")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == WRITE_ATTEMPTS - 1:
                    raise
                _backoff(attempt)

    def _write(self, conn: sqlite3.Connection, fn, raise_busy: bool = False) -> bool:
        """Run ``fn(conn)`` in one write transaction, retrying while another writer holds the lock.
        False when it could not get the lock (the write is skipped: it only costs speed)."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                conn.execute("BEGIN IMMEDIATE")  # take the write lock now, so the busy timeout applies
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if attempt == WRITE_ATTEMPTS - 1:
                    if raise_busy:
                        raise
                    return False
                _backoff(attempt)
                continue
            try:
                fn(conn)
                conn.execute("COMMIT")
                return True
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return False

    def _vacuum(self, conn: sqlite3.Connection) -> None:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the -wal file holds the vacuumed pages until then

    def _maintenance(self, what: str):
        return _Maintenance(self, what)

    # ------------------------------------------------------------------ trouble
    def _trouble(self, exc: Exception, doing: str) -> None:
        if isinstance(exc, sqlite3.Error) and _is_busy(exc):
            return  # another process held the lock past every retry: this batch is not cached
        if isinstance(exc, sqlite3.Error) and _code(exc) in (_FULL, _READONLY):
            with self._lock:
                first = self.writes_off is None
                self.writes_off = str(exc)
            if first:
                _warn(f"embedding cache {self.path}: {exc}; the run goes on without writing the cache")
            return
        self._disable(f"embedding cache {self.path}: {doing} failed ({exc})")

    def _disable(self, reason: str) -> None:
        with self._lock:
            first = self.disabled is None
            self.disabled = reason
        if first:
            _warn(f"{reason}; the run goes on without the embedding cache")

    def _move_aside(self, inode: int | None, why: str) -> None:
        with self._lock:
            if _inode(self.path) != inode:
                return  # another process already replaced the bad file: use the new one
            stamp = time.strftime("%Y%m%dT%H%M%S")
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            n = 1
            while aside.exists():
                aside, n = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}"), n + 1
            try:
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):  # the bad file's journal must not be replayed into the new one
                    side = self.path.with_name(self.path.name + suffix)
                    if side.exists():
                        os.replace(side, aside.with_name(aside.name + suffix))
            except OSError:
                return  # moved by someone else meanwhile, or not ours to move: opening again will tell
        _warn(f"{self.path} was not a usable database ({why}): moved aside to {aside.name}, starting a fresh cache")

    # ------------------------------------------------------------------ files
    def _file_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += self.path.with_name(self.path.name + suffix).stat().st_size
            except OSError:
                pass
        return total

    def _legacy_totals(self) -> tuple[int, int]:
        files = size = 0
        for path in self.legacy_files():
            try:
                size += path.stat().st_size
            except OSError:
                continue
            files += 1
        return files, size

    @staticmethod
    def _subdirs(parent: Path, pattern: re.Pattern) -> list[Path]:
        try:
            return [Path(e.path) for e in os.scandir(parent)
                    if pattern.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
        except OSError:
            return []


class _Maintenance:
    """``with cache._maintenance("prune") as conn``: a connection, and any failure as one FacediagError line."""

    def __init__(self, cache: EmbeddingCache, what: str):
        self.cache, self.what = cache, what

    def __enter__(self) -> sqlite3.Connection:
        conn = self.cache._connection()
        if conn is None:
            raise FacediagError(f"cannot {self.what} the embedding cache: {self.cache.disabled}")
        return conn

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise FacediagError(f"cannot {self.what} the embedding cache {self.cache.path}: {exc}") from None
        return False


def _upsert(conn: sqlite3.Connection, namespace: str, chunk) -> None:
    conn.executemany(_UPSERT_ENTRY, [entry for _, _, entry in chunk])
    conn.executemany(_UPSERT_VECTOR, [(blob, namespace, key) for key, blob, _ in chunk])


def _delete(conn: sqlite3.Connection, which: str | None = None, params=()) -> None:
    """Delete the entries ``id <which>`` (all without it) with their vectors."""
    where = f" WHERE id {which}" if which else ""
    conn.execute(f"DELETE FROM vectors{where}", params)  # first: ``which`` may select from entries
    conn.execute(f"DELETE FROM entries{where}", params)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty (something of the user's), or gone


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0.01, 0.05) * 2 ** attempt)  # jitter, so retrying writers do not collide again
