"""Cases that survive a reload and can be shared: an embedded store of immutable cases.

A *case* is one saved workspace: a JSON manifest, plus the large things it names (the model, the
arrays) stored once each as content-addressed *blobs*. A blob's address is ``sha256:<hex>`` of
its bytes; a manifest refers to a blob by writing that string anywhere inside it, and the store
finds the references itself, so what a case needs can never drift from what it says.

Cases are immutable: a change is saved as a new case whose ``parent`` is the old one, so two
people holding the same address never overwrite each other. A case id is an unguessable
capability (144 random bits from ``secrets``): whoever has the address can open the case, and
nobody can list or guess anyone else's.

``CaseStore`` is the one small interface the dashboard uses. ``LocalStore`` implements it with
SQLite for the index (WAL mode, one writer at a time) and plain files under one directory::

    <directory>/                 0700
        index.sqlite             cases, blobs, and which case uses which blob (0600)
        blobs/ab/cdef...         one file per blob, named by its SHA-256, verified on every read
        tmp/                     blobs being written; renamed into blobs/ once complete
        trash/                   blobs being removed; deleted once the removal is committed
        quarantine/              blob files that failed their hash check, kept for inspection
        .lock                    serialises opening and repairing the index across processes

Every change to ``blobs/`` (a blob placed, a blob removed) happens while the writer holds the
index's write lock, so the files and the index never disagree in a way a reader could see.
``open_store`` chooses the directory and the retention limits from the environment and never
fails: a store it cannot use is replaced by a fresh one, with a sentence in ``store.warning``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

from .errors import StoreError

try:
    import fcntl
except ImportError:  # Windows: opening and repair are then serialised within one process only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Case",
    "CaseStore",
    "CaseSummary",
    "Eviction",
    "LocalStore",
    "Retention",
    "StoreStats",
    "data_dir",
    "is_case_id",
    "is_digest",
    "new_case_id",
    "open_store",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4C444247  # "LDBG": tells our index from any other SQLite file
ID_BYTES = 18  # 144 random bits, 24 URL-safe characters
MAX_MANIFEST_BYTES = 1 << 20
MAX_RECENT = 100  # ids a browser may ask about at once
TITLE_CHARS = 200
BUSY_SECONDS = 10.0
CHUNK = 1 << 20
STALE_TMP_SECONDS = 86400.0  # a half-written blob older than this was left by a crash

_ID = re.compile(r"[A-Za-z0-9_-]{24}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_BLOB_NAME = re.compile(r"[0-9a-f]{62}")
_TRASH_NAME = re.compile(r"([0-9a-f]{64})\.[A-Za-z0-9_-]+")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS cases (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        parent TEXT,
        title TEXT NOT NULL,
        manifest TEXT NOT NULL,
        manifest_bytes INTEGER NOT NULL,
        size INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS cases_by_age ON cases (created)",
    """CREATE TABLE IF NOT EXISTS blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        put_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS refs (
        case_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (case_id, digest))""",
    "CREATE INDEX IF NOT EXISTS refs_by_digest ON refs (digest)",
)


# -- records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Retention:
    """How much the store keeps. ``0`` turns a limit off.

    ``grace_seconds`` protects what is in flight: a blob put less than this long ago and not yet
    named by any case is never collected, so a session that puts its blobs and then saves its
    case does not lose them to an eviction running in between.
    """

    max_bytes: int = 2048 << 20
    max_age_seconds: float = 30 * 86400.0
    grace_seconds: float = 3600.0
    evict_every_seconds: float = 60.0  # a save runs an eviction at most this often (unless over the cap)


@dataclass(frozen=True)
class Case:
    """One saved case, read back. ``manifest`` is a fresh copy: changing it changes nothing stored."""

    id: str
    created: float  # seconds since the epoch
    parent: str | None
    manifest: dict[str, Any]
    blobs: tuple[str, ...]  # the blob addresses the manifest names, sorted
    size: int  # bytes: the manifest's JSON and every blob it names


@dataclass(frozen=True)
class CaseSummary:
    """What a list of recent cases shows about one. ``title`` is the manifest's, as text."""

    id: str
    created: float
    parent: str | None
    title: str
    size: int


@dataclass(frozen=True)
class Eviction:
    """What one eviction removed."""

    cases: tuple[str, ...]
    blobs: int
    freed_bytes: int


@dataclass(frozen=True)
class StoreStats:
    """The store's contents at one moment."""

    location: str
    cases: int
    blobs: int
    bytes: int  # every blob file plus every manifest
    oldest: float | None
    newest: float | None
    retention: Retention
    warning: str | None = None


# -- the interface ------------------------------------------------------------------------------
@runtime_checkable
class CaseStore(Protocol):
    """Where cases live. ``LocalStore`` is the implementation; another (a database shared by
    several servers plus object storage) would implement these same calls."""

    @property
    def warning(self) -> str | None:
        """A sentence to show users when the store had to start afresh or fall back, else None."""
        ...

    def put_blob(self, data: bytes | bytearray | memoryview) -> str: ...

    def get_blob(self, digest: str) -> bytes: ...

    def save_case(self, manifest: Mapping[str, Any], *, parent: str | None = None, case_id: str | None = None) -> str: ...

    def load_case(self, case_id: str) -> Case: ...

    def delete_case(self, case_id: str) -> bool: ...

    def recent(self, case_ids: Sequence[str]) -> list[CaseSummary]: ...

    def evict(self, max_bytes: int | None = None, max_age_seconds: float | None = None) -> Eviction: ...

    def stats(self) -> StoreStats: ...


def new_case_id() -> str:
    """A fresh, unguessable case id, for a caller that must know the id before the case is
    saved (the dashboard puts it in the page's address at once and saves in the background)."""
    return secrets.token_urlsafe(ID_BYTES)


def is_case_id(value: object) -> bool:
    """Whether ``value`` has the shape of a case id (it may still name no case)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def is_digest(value: object) -> bool:
    """Whether ``value`` has the shape of a blob address, ``sha256:`` and 64 lower-case hex digits."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def _short(digest: str) -> str:
    return digest[:19] + "…"


def _refs(value: Any) -> set[str]:
    """Every blob address anywhere in a JSON value (keys are names, not references)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _DIGEST.fullmatch(item):
                found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


# -- the local store ----------------------------------------------------------------------------
class _Write:
    """One write transaction: blob files it removes go to trash/ until the commit, so a rollback
    can put them back and the index never names a file that a committed change did not remove."""

    def __init__(self, store: LocalStore, conn: sqlite3.Connection) -> None:
        self.store = store
        self.conn = conn
        self.moved: list[tuple[Path, Path]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def remove_blob(self, digest: str) -> None:
        path = self.store._blob_path(digest)
        trash = self.store._trash / f"{digest[7:]}.{secrets.token_urlsafe(6)}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            pass
        else:
            self.moved.append((trash, path))
        self.conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))


class LocalStore:
    """Cases in an SQLite index plus content-addressed files, all under one directory.

    Safe to share between threads and between processes on one machine: each call opens its
    own connection (so a removed or replaced index is noticed at once), readers never block,
    and writers take turns (``BEGIN IMMEDIATE``, waiting up to ``busy_seconds``). Opening
    creates the directory (0700) and repairs what it can: an index that is not a database, is
    damaged, was written by a newer lite-debug or by another program is moved aside
    (``index.sqlite.corrupt-<time>``), a fresh one is started, and ``warning`` says so. Raises
    ``StoreError`` when the directory itself cannot be used.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        retention: Retention = Retention(),
        clock: Callable[[], float] = time.time,
        max_manifest_bytes: int = MAX_MANIFEST_BYTES,
        busy_seconds: float = BUSY_SECONDS,
    ) -> None:
        self.directory = Path(directory).expanduser().absolute()
        self.retention = retention
        self.max_manifest_bytes = max_manifest_bytes
        self._clock = clock
        self._busy = busy_seconds
        self._index = self.directory / "index.sqlite"
        self._blobs = self.directory / "blobs"
        self._tmp = self.directory / "tmp"
        self._trash = self.directory / "trash"
        self._quarantine = self.directory / "quarantine"
        self._state = threading.Lock()
        self._repairing = threading.Lock()
        self._warnings: list[str] = []
        self._last_evict = -math.inf
        self._anchor: sqlite3.Connection | None = None
        try:
            self._make_dirs()
            with self._dir_lock():
                problem = self._check_index()
                if problem:
                    self._move_aside(problem)
                self._init_index()
                self._tidy_files()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"The case store's index {self._index} cannot be opened ({exc}); move it aside or set "
                "LITE_DEBUG_DATA_DIR to another directory."
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"The case store's directory {self.directory} cannot be used ({exc.strerror or exc}); set "
                "LITE_DEBUG_DATA_DIR to a directory this user can write."
            ) from exc

    def __repr__(self) -> str:
        return f"LocalStore({str(self.directory)!r})"

    def close(self) -> None:
        """Let go of the index (the store stays usable: the next call simply works slower)."""
        with self._repairing:
            anchor, self._anchor = self._anchor, None
        if anchor is not None:
            anchor.close()

    def _hold(self, conn: sqlite3.Connection) -> None:
        # One idle connection held for the store's life. Without it every call's connection is
        # the last to close, and SQLite then copies its log into the database and syncs the disk:
        # 35 ms a save instead of 2. (An index moved aside or deleted is not copied into on close,
        # so dropping a stale one after a repair is safe.)
        anchor, self._anchor = self._anchor, conn
        if anchor is not None:
            with contextlib.suppress(sqlite3.Error):
                anchor.close()

    @property
    def warning(self) -> str | None:
        """Sentences about what opening or repairing the store did, or None when all was well."""
        with self._state:
            return " ".join(self._warnings) or None

    def _warn(self, sentence: str) -> None:
        log.warning("%s", sentence)
        with self._state:
            if sentence not in self._warnings:
                self._warnings.append(sentence)

    # -- blobs --------------------------------------------------------------------------------
    def put_blob(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` once and return its address, ``sha256:<hex>``.

        Idempotent: the same bytes give the same address and one file; putting them again
        renews their grace period (see ``Retention``). ``data`` must not change during the
        call. The bytes are written to a temporary
        file in pieces (no copy of ``data`` is made), flushed to disk, then renamed into place
        atomically, so a reader never sees half a blob. Raises ``StoreError`` when the disk
        refuses the write.
        """
        try:
            view = memoryview(data).cast("B")
        except TypeError as exc:
            raise StoreError(
                f"A case's file must be bytes in one contiguous piece, not {type(data).__name__} ({exc}); "
                "pass bytes(...) of it."
            ) from exc
        digest = "sha256:" + hashlib.sha256(view).hexdigest()
        size = view.nbytes
        tmp: Path | None = None
        try:
            while True:
                if self._run("store a file", lambda tmp=tmp: self._place(digest, size, tmp)):
                    return digest
                # Written outside the write lock: other sessions keep saving meanwhile.
                tmp = self._run("store a file", lambda: self._write_tmp(view))
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def _place(self, digest: str, size: int, tmp: Path | None) -> bool:
        with self._writing() as w:
            row = w.execute("SELECT size FROM blobs WHERE digest = ?", (digest,)).fetchone()
            path = self._blob_path(digest)
            if row is not None and row[0] == size and _file_size(path) == size:
                w.execute("UPDATE blobs SET put_at = ? WHERE digest = ?", (self._clock(), digest))
                return True
            if tmp is None or not tmp.exists():
                return False
            path.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(tmp, path)
            w.execute(
                "INSERT OR REPLACE INTO blobs (digest, size, put_at) VALUES (?, ?, ?)", (digest, size, self._clock())
            )
            return True

    def _write_tmp(self, view: memoryview) -> Path:
        try:
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")  # 0600
        except FileNotFoundError:  # the directory was removed under a running server
            self._make_dirs()
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        path = Path(name)
        try:
            with open(fd, "wb") as f:
                for start in range(0, view.nbytes, CHUNK):
                    f.write(view[start : start + CHUNK])
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def get_blob(self, digest: str) -> bytes:
        """The bytes stored at ``digest``, checked against it.

        Raises ``StoreError`` when the address is malformed, when no such blob is stored, and
        when the file no longer matches its hash: the damaged file is then moved to
        ``quarantine/`` (so putting the right bytes again repairs the store) and nothing of it
        is returned.
        """
        if not is_digest(digest):
            raise StoreError(
                "A case names a stored file by an address that is not 'sha256:' and 64 hex digits; "
                "the case is damaged, so start again from the model and data."
            )
        path = self._blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"The stored file {_short(digest)} is missing from the case store at {self.directory}; it was "
                "removed by the retention limits or outside lite-debug, so start again from the model and data."
            ) from None
        except OSError as exc:
            raise StoreError(
                f"The stored file {_short(digest)} cannot be read ({exc.strerror or exc}); check the case store "
                f"at {self.directory}."
            ) from exc
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            self._run("set a damaged file aside", lambda: self._set_aside(digest))
            raise StoreError(
                f"The stored file {_short(digest)} no longer matches its SHA-256: it was changed or damaged on "
                f"disk, so it was moved to {self._quarantine} and the case that uses it cannot be restored; "
                "start again from the model and data."
            )
        return data

    def _set_aside(self, digest: str) -> None:
        with self._writing() as w:
            path = self._blob_path(digest)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                return
            # Checked again under the write lock: a put may have repaired it meanwhile.
            if "sha256:" + hashlib.sha256(data).hexdigest() == digest:
                return
            self._quarantine.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, self._quarantine / f"{digest[7:]}.{int(time.time())}")
            w.execute("DELETE FROM blobs WHERE digest = ?", (digest,))

    def _blob_path(self, digest: str) -> Path:
        hexdigest = digest[7:]
        return self._blobs / hexdigest[:2] / hexdigest[2:]

    # -- cases --------------------------------------------------------------------------------
    def save_case(self, manifest: Mapping[str, Any], *, parent: str | None = None, case_id: str | None = None) -> str:
        """Save ``manifest`` as a new, immutable case and return its id (``case_id`` when given:
        one from ``new_case_id``, refused if a case already has it).

        The manifest must be plain JSON data (its ``"title"`` string, if any, is what
        ``recent`` shows); every ``sha256:...`` string in it must be a blob already put. Every
        call makes a new id, so a change to a case is saved as a new case with ``parent`` set
        to the old one. Raises ``StoreError`` when the manifest is not JSON, is over
        ``max_manifest_bytes``, names a blob that is not stored (put it again, then save), when
        the case alone is larger than the size limit, or when ``parent`` is not an id.
        """
        if not isinstance(manifest, Mapping):
            raise StoreError(f"A case's manifest must be a mapping, not {type(manifest).__name__}; pass a dict.")
        if parent is not None and not is_case_id(parent):
            raise StoreError("The case this one was changed from has an id of the wrong shape; pass None or its id.")
        if case_id is not None and not is_case_id(case_id):
            raise StoreError("A new case's id must come from new_case_id(); this one has the wrong shape.")
        chosen = case_id
        try:
            text = json.dumps(dict(manifest), sort_keys=True, separators=(",", ":"))
            refs = sorted(_refs(json.loads(text)))
        except (TypeError, ValueError, RecursionError) as exc:
            raise StoreError(
                f"The case cannot be saved: its manifest is not plain JSON data ({exc}); store arrays and files "
                "with put_blob and put their addresses in the manifest."
            ) from exc
        if len(text) > self.max_manifest_bytes:
            raise StoreError(
                f"The case cannot be saved: its manifest is {len(text):,} bytes of JSON, over the "
                f"{self.max_manifest_bytes:,} allowed; store large parts with put_blob and name them by address."
            )
        title = manifest.get("title")
        title = title[:TITLE_CHARS] if isinstance(title, str) else ""

        def save() -> tuple[str, bool]:
            with self._writing() as w:
                sizes: dict[str, int] = {}
                for start in range(0, len(refs), 500):
                    part = refs[start : start + 500]
                    marks = ",".join("?" * len(part))
                    sizes.update(w.execute(f"SELECT digest, size FROM blobs WHERE digest IN ({marks})", part))
                missing = [d for d in refs if d not in sizes or _file_size(self._blob_path(d)) != sizes[d]]
                if missing:
                    raise StoreError(
                        f"The case cannot be saved: {len(missing)} of the files it names (first {_short(missing[0])}) "
                        "are not in the store, or were removed by the retention limits since they were put; "
                        "put them again, then save."
                    )
                size = len(text) + sum(sizes.values())
                cap = self.retention.max_bytes
                if cap and size > cap:
                    raise StoreError(
                        f"The case cannot be saved: it holds {_amount(size)}, more than the "
                        f"{_amount(cap)} the case store keeps in all; raise LITE_DEBUG_STORE_MAX_MB "
                        "or work with a smaller model or less data."
                    )
                for _ in range(1 if chosen else 8):  # a collision among 2**144 ids is not expected
                    case_id = chosen or secrets.token_urlsafe(ID_BYTES)
                    try:
                        w.execute(
                            "INSERT INTO cases (id, created, parent, title, manifest, manifest_bytes, size) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (case_id, self._clock(), parent, title, text, len(text), size),
                        )
                        break
                    except sqlite3.IntegrityError:
                        continue
                else:
                    if chosen:
                        raise StoreError("A case with this id is already stored; cases never change: save under a new id.")
                    raise StoreError("The case store could not find a free id for a new case; try again.")
                w.conn.executemany("INSERT INTO refs (case_id, digest) VALUES (?, ?)", [(case_id, d) for d in refs])
                over = False
                if cap:
                    # What the size limit counts: manifests and the blobs cases name.
                    (total,) = w.execute(
                        "SELECT (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE digest IN (SELECT digest FROM refs)) "
                        "+ (SELECT COALESCE(SUM(manifest_bytes), 0) FROM cases)"
                    ).fetchone()
                    over = total > cap
                return case_id, over

        case_id, over = self._run("save the case", save)
        self._after_save(over)
        return case_id

    def _after_save(self, over: bool) -> None:
        r = self.retention
        if not (r.max_bytes or r.max_age_seconds):
            return
        with self._state:
            due = over or self._clock() - self._last_evict >= r.evict_every_seconds
        if due:
            try:
                self.evict()
            except StoreError as exc:  # the case is saved; the clean-up will run again later
                log.warning("%s", exc)

    def load_case(self, case_id: str) -> Case:
        """The case ``case_id``, with every blob it names present (their bytes via ``get_blob``).

        Raises ``StoreError`` when the id is malformed (it comes from an address, so it is
        checked before any lookup), when no such case is stored, and when a blob it names is
        missing or truncated: never part of a case, and never another case's data.
        """
        _check_id(case_id)

        def load() -> tuple[tuple[Any, ...], list[tuple[str, int | None]]] | None:
            with self._reading() as conn:
                conn.execute("BEGIN")  # one snapshot for both queries
                row = conn.execute(
                    "SELECT created, parent, manifest, size FROM cases WHERE id = ?", (case_id,)
                ).fetchone()
                refs = conn.execute(
                    "SELECT r.digest, b.size FROM refs r LEFT JOIN blobs b ON b.digest = r.digest "
                    "WHERE r.case_id = ? ORDER BY r.digest",
                    (case_id,),
                ).fetchall()
                conn.execute("COMMIT")
                return None if row is None else (row, refs)

        found = self._run("open the case", load)
        if found is None:
            raise StoreError(
                f"No case {case_id} is stored on this server: it was deleted, removed by the retention limits, "
                "or saved on another server; start again from the model and data."
            )
        (created, parent, text, size), refs = found
        for digest, blob_size in refs:
            if blob_size is None or _file_size(self._blob_path(digest)) != blob_size:
                raise StoreError(
                    f"Case {case_id} cannot be restored: its stored file {_short(digest)} is missing or cut short "
                    f"in {self.directory}, so start again from the model and data."
                )
        return Case(
            id=case_id,
            created=created,
            parent=parent,
            manifest=json.loads(text),
            blobs=tuple(d for d, _ in refs),
            size=size,
        )

    def delete_case(self, case_id: str) -> bool:
        """Remove the case ``case_id`` and the blobs no other case names; False if it was not stored.

        A blob put again since the case was saved is kept (another session may be about to
        save a case naming it); eviction collects it later if nothing does. Raises
        ``StoreError`` for a malformed id.
        """
        _check_id(case_id)

        def delete() -> bool:
            with self._writing() as w:
                row = w.execute("SELECT created FROM cases WHERE id = ?", (case_id,)).fetchone()
                if row is None:
                    return False
                digests = [d for (d,) in w.execute("SELECT digest FROM refs WHERE case_id = ?", (case_id,))]
                w.execute("DELETE FROM refs WHERE case_id = ?", (case_id,))
                w.execute("DELETE FROM cases WHERE id = ?", (case_id,))
                for digest in digests:
                    if w.execute("SELECT 1 FROM refs WHERE digest = ? LIMIT 1", (digest,)).fetchone():
                        continue
                    put = w.execute("SELECT put_at FROM blobs WHERE digest = ?", (digest,)).fetchone()
                    if put is not None and put[0] <= row[0]:
                        w.remove_blob(digest)
                return True

        return self._run("delete the case", delete)

    def recent(self, case_ids: Sequence[str]) -> list[CaseSummary]:
        """Summaries of those of ``case_ids`` that are still stored, in the order given.

        The ids come from a browser, so malformed ones are skipped, repeats are dropped, and
        only the first ``MAX_RECENT`` well-formed ones are looked up.
        """
        if isinstance(case_ids, str):
            case_ids = [case_ids]
        wanted = list(dict.fromkeys(i for i in case_ids if is_case_id(i)))[:MAX_RECENT]
        if not wanted:
            return []

        def find() -> dict[str, CaseSummary]:
            with self._reading() as conn:
                marks = ",".join("?" * len(wanted))
                rows = conn.execute(
                    f"SELECT id, created, parent, title, size FROM cases WHERE id IN ({marks})", wanted
                ).fetchall()
            return {r[0]: CaseSummary(*r) for r in rows}

        found = self._run("list recent cases", find)
        return [found[i] for i in wanted if i in found]

    # -- retention ----------------------------------------------------------------------------
    def evict(self, max_bytes: int | None = None, max_age_seconds: float | None = None) -> Eviction:
        """Apply the retention limits now; ``None`` means the store's own, ``0`` turns one off.

        Cases older than ``max_age_seconds`` go; then, while the cases' manifests and the blobs
        they name take more than ``max_bytes``, the oldest case goes (never the newest: a case
        larger than the limit is refused when saved). Last, blobs no case names and not put
        within the grace period are deleted. All under the write lock, so a save running at the
        same time either sees its blobs still there or is told to put them again.
        """
        cap = self.retention.max_bytes if max_bytes is None else max_bytes
        max_age = self.retention.max_age_seconds if max_age_seconds is None else max_age_seconds

        def run() -> Eviction:
            with self._writing() as w:
                now = self._clock()
                cases = w.execute("SELECT id, created, manifest_bytes FROM cases ORDER BY created, id").fetchall()
                by_case: dict[str, list[str]] = defaultdict(list)
                uses: Counter[str] = Counter()
                for case_id, digest in w.execute("SELECT case_id, digest FROM refs"):
                    by_case[case_id].append(digest)
                    uses[digest] += 1
                blobs = {d: (size, put_at) for d, size, put_at in w.execute("SELECT digest, size, put_at FROM blobs")}
                removed: list[str] = []

                def drop(case_id: str) -> int:
                    removed.append(case_id)
                    freed = 0
                    for digest in by_case[case_id]:
                        uses[digest] -= 1
                        if uses[digest] == 0:
                            freed += blobs.get(digest, (0, 0.0))[0]
                    return freed

                if max_age:
                    for case_id, created, _ in cases:
                        if created < now - max_age:
                            drop(case_id)
                if cap:
                    gone = set(removed)
                    live = [c for c in cases if c[0] not in gone]
                    total = sum(c[2] for c in live) + sum(blobs.get(d, (0, 0.0))[0] for d, n in uses.items() if n > 0)
                    for case_id, _, manifest_bytes in live[:-1]:
                        if total <= cap:
                            break
                        total -= manifest_bytes + drop(case_id)
                w.conn.executemany("DELETE FROM refs WHERE case_id = ?", [(c,) for c in removed])
                w.conn.executemany("DELETE FROM cases WHERE id = ?", [(c,) for c in removed])
                cutoff = now - self.retention.grace_seconds
                doomed = [d for d, (_, put_at) in blobs.items() if uses[d] <= 0 and put_at < cutoff]
                for digest in doomed:
                    w.remove_blob(digest)
                return Eviction(tuple(removed), len(doomed), sum(blobs[d][0] for d in doomed))

        result = self._run("clean up old cases", run)
        with self._state:
            self._last_evict = self._clock()
        return result

    def stats(self) -> StoreStats:
        """How many cases and blobs the store holds and how many bytes they take."""

        def count() -> tuple[Any, ...]:
            with self._reading() as conn:
                conn.execute("BEGIN")
                cases = conn.execute(
                    "SELECT COUNT(*), MIN(created), MAX(created), COALESCE(SUM(manifest_bytes), 0) FROM cases"
                ).fetchone()
                blobs = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs").fetchone()
                conn.execute("COMMIT")
                return cases + blobs

        n_cases, oldest, newest, manifest_bytes, n_blobs, blob_bytes = self._run("count its cases", count)
        return StoreStats(
            location=str(self.directory),
            cases=n_cases,
            blobs=n_blobs,
            bytes=manifest_bytes + blob_bytes,
            oldest=oldest,
            newest=newest,
            retention=self.retention,
            warning=self.warning,
        )

    # -- connections and repair ----------------------------------------------------------------
    def _connect(self, create: bool = False) -> sqlite3.Connection:
        # mode=rw: an index removed under a running server is an error to repair, not silently a new file.
        uri = self._index.as_uri() + ("?mode=rwc" if create else "?mode=rw")
        conn = sqlite3.connect(uri, uri=True, timeout=self._busy, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a power cut may lose the last saves, never corrupts
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_Write]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time, waiting up to busy_seconds
            w = _Write(self, conn)
            try:
                yield w
                conn.execute("COMMIT")
            except BaseException:
                # Files first, while the write lock is still held: nobody sees a row without its file.
                for trash, path in w.moved:
                    with contextlib.suppress(OSError):
                        os.replace(trash, path)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            for trash, _ in w.moved:
                trash.unlink(missing_ok=True)
        finally:
            conn.close()

    def _run(self, what: str, op: Callable[[], T]) -> T:
        """``op()``, with a damaged or vanished index repaired once (then ``op`` runs again on the
        fresh one) and SQLite's and the disk's errors turned into sentences."""
        for attempt in (0, 1):
            try:
                return op()
            except (sqlite3.DatabaseError, OSError) as exc:
                if attempt or not (isinstance(exc, sqlite3.DatabaseError) and self._damaged(exc)):
                    raise self._failure(what, exc) from exc
            try:
                self._repair()
            except (sqlite3.DatabaseError, OSError) as exc:
                raise StoreError(
                    f"The case store's index {self._index} is damaged and could not be replaced ({exc}); move "
                    "it aside by hand, or set LITE_DEBUG_DATA_DIR to another directory, and restart lite-debug."
                ) from exc
        raise AssertionError("unreachable")

    def _failure(self, what: str, exc: BaseException) -> StoreError:
        if isinstance(exc, OSError):
            return StoreError(
                f"The case store at {self.directory} could not {what} ({exc.strerror or exc}); check that the "
                "disk has room and the directory is writable, or lower LITE_DEBUG_STORE_MAX_MB."
            )
        if "locked" in str(exc) or "busy" in str(exc):
            return StoreError(
                f"The case store at {self.directory} is busy: another session held it for more than "
                f"{self._busy:g} s, so it could not {what}; try again in a moment."
            )
        return StoreError(
            f"The case store at {self.directory} could not {what} ({exc}); if this persists, move "
            f"{self._index} aside and restart lite-debug to begin a fresh store."
        )

    def _damaged(self, exc: sqlite3.DatabaseError) -> bool:
        missing = not self._index.exists()
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        if code is not None:
            primary = code & 0xFF
            if primary in (11, 26):  # SQLITE_CORRUPT, SQLITE_NOTADB
                return True
            if primary == 14 and missing:  # SQLITE_CANTOPEN because the file is gone
                return True
        text = str(exc).lower()
        return (
            "malformed" in text
            or "not a database" in text
            or "no such table" in text
            or ("unable to open" in text and missing)
        )

    def _repair(self) -> None:
        self._make_dirs()  # the whole directory may be gone, .lock with it
        with self._repairing, self._dir_lock():
            # Another thread or process may have repaired it already: check again under the lock.
            missing = not self._index.exists()
            problem = self._check_index()
            if problem:
                self._move_aside(problem)
            elif missing:
                self._warn(
                    f"The case store's index {self._index} disappeared while the server ran, so a fresh one was "
                    "started: cases saved before cannot be reopened."
                )
            self._init_index()

    def _check_index(self) -> str | None:
        """Why the index cannot be used (a phrase), or None when it is ours, sound, or absent."""
        if not self._index.exists():
            return None
        try:
            with contextlib.closing(self._connect()) as conn:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                if rows != [("ok",)]:
                    return "it is damaged (" + "; ".join(str(r[0]) for r in rows[:2]) + ")"
                app = conn.execute("PRAGMA application_id").fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            if self._damaged(exc):
                return f"it cannot be read ({exc})"
            raise
        if app == 0 and version == 0 and not tables:
            return None  # an empty file: a store that was never written to
        if app != APPLICATION_ID:
            return "it is an SQLite file that lite-debug did not write"
        if version > SCHEMA_VERSION:
            return f"it was written by a newer lite-debug (schema {version}, this one reads {SCHEMA_VERSION})"
        if not {"cases", "blobs", "refs"} <= tables:
            return "its tables are missing"
        return None

    def _move_aside(self, problem: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self._index.with_name(f"{self._index.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self._index.with_name(f"{self._index.name}.corrupt-{stamp}-{n}")
        os.replace(self._index, target)
        self._drop_journal(keep_as=target)
        self._warn(
            f"The case store's index {self._index} could not be used because {problem}, so it was moved to "
            f"{target.name} beside it and a fresh index was started: cases saved before cannot be reopened."
        )

    def _drop_journal(self, keep_as: Path | None = None) -> None:
        # A write-ahead log left from another database would be replayed into a fresh one.
        wal = Path(f"{self._index}-wal")
        if wal.exists():
            if keep_as is not None:
                os.replace(wal, Path(f"{keep_as}-wal"))
            else:
                wal.unlink()
        Path(f"{self._index}-shm").unlink(missing_ok=True)

    def _init_index(self) -> None:
        if not self._index.exists():
            self._drop_journal()
            # Created here, 0600, so SQLite's files (it gives -wal and -shm the same mode) never
            # exist with the umask's wider permissions.
            os.close(os.open(self._index, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self._index, 0o600)
        conn = self._connect(create=True)
        try:
            # Without syncs while the index is made (20-40 ms less per start): a crash now leaves
            # a file the next start finds damaged and moves aside, and there was nothing in it.
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        self._hold(conn)

    def _tidy_files(self) -> None:
        """Put back or delete what a crash left in trash/ and tmp/, and delete blob files the
        index does not know (left by a crash or by an index moved aside) once they are older
        than the grace period."""
        now = time.time()  # file times are wall-clock times, whatever clock the store was given
        with self._writing() as w:
            known = {d for (d,) in w.execute("SELECT digest FROM blobs")}
            for entry in self._trash.iterdir():
                match = _TRASH_NAME.fullmatch(entry.name)
                path = self._blob_path("sha256:" + match.group(1)) if match else None
                if path is not None and "sha256:" + match.group(1) in known and not path.exists():
                    path.parent.mkdir(mode=0o700, exist_ok=True)
                    os.replace(entry, path)  # removed by a transaction that never committed
                else:
                    entry.unlink(missing_ok=True)
            for entry in self._tmp.iterdir():
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > STALE_TMP_SECONDS:
                        entry.unlink()
            for shard in self._blobs.iterdir():
                if not shard.is_dir():
                    continue
                for entry in shard.iterdir():
                    digest = f"sha256:{shard.name}{entry.name}"
                    if _BLOB_NAME.fullmatch(entry.name) and digest in known:
                        continue
                    with contextlib.suppress(OSError):
                        if now - entry.stat().st_mtime > self.retention.grace_seconds:
                            entry.unlink()

    def _make_dirs(self) -> None:
        for d in (self.directory, self._blobs, self._tmp, self._trash):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            if d.stat().st_mode & 0o077:
                # A directory made earlier, or by hand, with wider permissions; one owned by
                # someone else stays as its owner set it.
                with contextlib.suppress(PermissionError):
                    os.chmod(d, 0o700)

    @contextlib.contextmanager
    def _dir_lock(self) -> Iterator[None]:
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _check_id(case_id: object) -> None:
    if not is_case_id(case_id):
        raise StoreError(
            "This address does not name a case: a case id is 24 letters, digits, '-' or '_'; "
            "check that the whole address was copied."
        )


def _amount(n: int) -> str:
    return f"{n / 2**20:,.1f} MB" if n >= 2**20 // 10 else f"{n:,} bytes"


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


# -- configuration ------------------------------------------------------------------------------
def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where cases are kept: ``LITE_DEBUG_DATA_DIR``, else the user's data directory
    (``$XDG_DATA_HOME/lite-debug``, ``~/.local/share/lite-debug``; ``~/Library/Application
    Support/lite-debug`` on macOS, ``%LOCALAPPDATA%\\lite-debug`` on Windows)."""
    explicit = env.get("LITE_DEBUG_DATA_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "lite-debug"
    if os.name == "nt":
        return Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local") / "lite-debug"
    xdg = env.get("XDG_DATA_HOME", "")
    # The XDG specification says a relative path there is to be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / "lite-debug"


def _limit(env: Mapping[str, str], name: str, default: float, unit: str, warnings: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
        if not math.isfinite(value) or value < 0:
            raise ValueError(raw)
    except ValueError:
        warnings.append(
            f"{name} is set to {raw[:40]!r}, which is not a number of {unit} (0 turns the limit off), so the "
            f"default, {default:g} {unit}, is used."
        )
        return default
    return value


def open_store(env: Mapping[str, str] = os.environ, *, clock: Callable[[], float] = time.time) -> CaseStore:
    """The server's case store, configured from ``env``; never raises.

    ``LITE_DEBUG_DATA_DIR`` (default: ``data_dir``), ``LITE_DEBUG_STORE_MAX_MB`` (2048) and
    ``LITE_DEBUG_STORE_MAX_DAYS`` (30); ``0`` turns a limit off. A directory that cannot be used
    gives a store in a new temporary directory instead (cases then last until the server
    stops), and a damaged index is moved aside; either way ``store.warning`` says what
    happened, in a sentence the dashboard shows. Runs one eviction before returning.
    """
    warnings: list[str] = []
    mb = _limit(env, "LITE_DEBUG_STORE_MAX_MB", 2048, "MB", warnings)
    days = _limit(env, "LITE_DEBUG_STORE_MAX_DAYS", 30, "days", warnings)
    retention = Retention(max_bytes=int(mb * 2**20), max_age_seconds=days * 86400.0)
    directory = data_dir(env)
    url = env.get("LITE_DEBUG_STORE_URL", "").strip()
    if url:
        scheme = url.split(":", 1)[0][:20] if ":" in url else "?"
        warnings.append(
            f"LITE_DEBUG_STORE_URL names a {scheme!r} store, which this version of lite-debug does not have, so "
            f"it was ignored and cases are kept on this machine in {directory}."
        )
    try:
        store = LocalStore(directory, retention=retention, clock=clock)
    except StoreError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="lite-debug-cases-"))
        store = LocalStore(fallback, retention=retention, clock=clock)
        warnings.append(f"{exc} Until then cases are kept in {fallback}, and are lost when the server stops.")
    for sentence in warnings:
        store._warn(sentence)
    try:
        store.evict()
    except StoreError as exc:
        log.warning("%s", exc)
    return store
