"""Workspaces kept as cases in the server's store, so a reload or a shared address finds them.

The dashboard calls ``CaseKeeper.keep(ws)`` after every page: when the workspace changed since
it was last kept (new model or data, a fix, a pick, a run), the keeper gives it a new case id at
once (the page puts it in its address) and saves it in a background thread, so a click costs
no serialisation. Cases never change: the new case names the one it came from as its parent,
so a teammate who changes a shared case makes a case of their own. ``load`` waits for a save
of that id still under way in this process, then rebuilds the workspace (``casefile``).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .casefile import dump_workspace, load_workspace
from .errors import StoreError
from .store import CaseStore, CaseSummary, is_case_id, new_case_id

if TYPE_CHECKING:
    from .session import Workspace

__all__ = ["CaseKeeper"]

log = logging.getLogger(__name__)
_RECENT = 12  # how many case ids a browser remembers
SAVE_AFTER = 1.5  # seconds: a case is saved this long after it is kept (at once when asked for)


class CaseKeeper:
    """Saves and loads workspaces as cases of one store; shared by every session of a server."""

    def __init__(self, store: CaseStore, save_after: float = SAVE_AFTER) -> None:
        self.store = store
        self.save_after = save_after
        self._hurry = threading.Event()  # set: pending saves go now (someone waits for one)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lite-debug-case")
        self._pending: dict[str, Future] = {}
        self._failed: dict[str, str] = {}  # case id -> why its background save failed
        self._stored: set[str] = set()  # blobs this keeper put (a 100 MB model is not written again per click)
        self._lock = threading.Lock()

    @staticmethod
    def state(ws: "Workspace") -> tuple:
        """What makes a case: compared by identity for the objects (held, so never reused)."""
        steps = tuple((s.fix.kind, s.fix.input, repr(sorted(dict(s.fix.params).items())), s.click) for s in ws.steps)
        return (ws.model_bytes, ws.original, steps, tuple(sorted(ws.preferences.items())), ws.signature,
                ws.result, ws.result_stale)

    def keep(self, ws: "Workspace") -> str | None:
        """Give ``ws`` a new case id and save it in the background when it changed since it
        was last kept; return the new id, or None when nothing changed (or nothing to keep)."""
        state = self.state(ws)
        last = getattr(ws, "_kept", None)
        if last is not None and len(last) == len(state) and all(a is b or a == b for a, b in zip(last, state)):
            return None
        parent = getattr(ws, "case_id", None)
        case_id = new_case_id()
        title = f"{ws.model_name} — {ws.data_source or 'no data'}"[:200]
        # Serialising (hashing a 100 MB model, writing arrays as .npy, the diagnosis of the data
        # as given) happens in the background, on a snapshot: the next click may change the
        # workspace's lists while it runs. The arrays themselves are never changed in place.
        snapshot = copy.copy(ws)
        snapshot.steps, snapshot.clicks = list(ws.steps), list(ws.clicks)
        snapshot.preferences, snapshot._cache = dict(ws.preferences), {}
        due = time.monotonic() + self.save_after
        with self._lock:
            self._pending[case_id] = self._pool.submit(self._save, case_id, parent, title, snapshot, due)
        ws.case_id, ws._kept = case_id, state
        return case_id

    def _save(self, case_id: str, parent: str | None, title: str, ws: "Workspace", due: float = 0.0) -> None:
        # Not while the page that kept it is drawn: on two cores a save (hashing and writing
        # the model, data and outputs) beside the server's script, the worker and the browser
        # held a run's numbers and figures back by a third. Someone waiting for it hurries it.
        self._hurry.wait(max(0.0, due - time.monotonic()))
        try:
            manifest, members = dump_workspace(ws)
            record = {"title": title, "case": manifest}
            parent = parent if is_case_id(parent) else None
            self._put(members, skip_known=True)
            try:
                self.store.save_case(record, parent=parent, case_id=case_id)
            except StoreError:
                # A blob put earlier may have been evicted since: put them all, then save again.
                self._stored.clear()
                self._put(members, skip_known=False)
                self.store.save_case(record, parent=parent, case_id=case_id)
        except Exception as exc:  # noqa: BLE001 - kept to be said when the case is asked for
            log.warning("case %s not saved: %s", case_id, exc)
            with self._lock:
                self._failed[case_id] = str(exc)
                while len(self._failed) > 1000:
                    self._failed.pop(next(iter(self._failed)))
        finally:
            with self._lock:
                self._pending.pop(case_id, None)
                if not self._pending:
                    self._hurry.clear()

    def _put(self, members: dict, *, skip_known: bool) -> None:
        for address, data in members.items():
            if skip_known and address in self._stored:
                continue
            put = self.store.put_blob(data)
            if put != address:  # the store names blobs as the manifest does
                raise StoreError(f"The store filed a part of the case under {put}, not {address}.")
            self._stored.add(address)

    def wait(self, case_id: str, timeout: float = 60.0) -> None:
        """Wait for a save of ``case_id`` still under way here. Raises ``StoreError`` when it failed."""
        with self._lock:
            future = self._pending.get(case_id)
        if future is not None:
            self._hurry.set()
            try:
                future.result(timeout)
            finally:
                with self._lock:
                    if not self._pending:
                        self._hurry.clear()
        with self._lock:
            failed = self._failed.get(case_id)
        if failed is not None:
            raise StoreError(f"The case could not be saved when it was made ({failed.rstrip('.')}); it cannot be opened.")

    def load(self, case_id: str) -> "Workspace":
        """The workspace of a case, as it was kept: its data, fixes, picks and last run.

        Raises ``StoreError`` for an id of the wrong shape or one the store does not have (or
        no longer has), ``BundleError`` when the kept case does not read back.
        """
        if not is_case_id(case_id):
            raise StoreError("The address does not name a case (a case id is 24 letters, digits, - and _).")
        self.wait(case_id)
        case = self.store.load_case(case_id)
        inner = case.manifest.get("case") if isinstance(case.manifest, dict) else None
        ws = load_workspace(inner, self.store.get_blob)
        recorded = ws.recorded
        if recorded is not None:
            # A kept case is this session again, not a bundle from elsewhere: its run is the run.
            ws.result, ws.result_stale = recorded.run, recorded.stale if recorded.run is not None else False
            ws.recorded = None
        ws.case_id, ws._kept = case_id, self.state(ws)
        return ws

    def recent(self, case_ids: list[str]) -> list[CaseSummary]:
        return self.store.recent([c for c in case_ids if is_case_id(c)][-_RECENT:])

    def delete(self, case_id: str) -> bool:
        self.wait(case_id)
        return self.store.delete_case(case_id)

    @staticmethod
    def remember(ids: list[str], case_id: str) -> list[str]:
        """The browser's list of recent case ids with ``case_id`` last (at most a dozen)."""
        return ([c for c in ids if c != case_id and is_case_id(c)] + [case_id])[-_RECENT:]

    def close(self) -> None:
        self._hurry.set()
        self._pool.shutdown(wait=True)


def parse_cookie(value: Any) -> list[str]:
    """Case ids from the browser's cookie (dot-separated); anything else is dropped."""
    if not isinstance(value, str):
        return []
    return [c for c in value.split(".") if is_case_id(c)][-_RECENT:]
