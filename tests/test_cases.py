"""Workspaces kept as cases: saved in the background, loaded back as they were, never changed."""

from __future__ import annotations

import numpy as np
import pytest

from lite_debug.cases import CaseKeeper, parse_cookie
from lite_debug.errors import StoreError
from lite_debug.session import Workspace
from lite_debug.store import LocalStore, is_case_id


@pytest.fixture
def keeper(tmp_path):
    k = CaseKeeper(LocalStore(tmp_path / "cases"))
    yield k
    k.close()


def test_a_workspace_is_kept_and_loaded_back_as_it_was(keeper):
    ws = Workspace.from_example("image-size")
    first = keeper.keep(ws)
    assert is_case_id(first) and ws.case_id == first
    loaded = keeper.load(first)  # a kept case opens as the session it was, not as a bundle from elsewhere
    assert loaded.recorded is None and loaded.result is None
    assert keeper.keep(ws) is None  # nothing changed: no new case
    ws.apply_all()
    ws.choose(f"resize method:{ws.inputs[0].name}", "pillow")
    ws.run()
    second = keeper.keep(ws)
    assert second not in (None, first)
    again = keeper.load(second)
    assert [s.fix.to_dict() for s in again.steps] == [s.fix.to_dict() for s in ws.steps]
    assert again.preferences == ws.preferences
    name = ws.inputs[0].name
    assert np.array_equal(again.feed.arrays[name], ws.feed.arrays[name])
    assert again.result is not None and again.result.ok and not again.result_stale
    assert np.array_equal(again.result.outputs[0].values, ws.result.outputs[0].values)
    keeper.wait(second)
    assert keeper.store.load_case(second).parent == first
    # The case loaded is unchanged by what is done to it: a change makes another case.
    again.undo()
    third = keeper.keep(again)
    keeper.wait(third)
    assert third not in (first, second) and keeper.store.load_case(third).parent == second
    assert len(keeper.load(second).steps) == len(ws.steps)


def test_unknown_and_malformed_ids_are_sentences(keeper):
    with pytest.raises(StoreError, match="does not name a case"):
        keeper.load("../../etc/passwd")
    with pytest.raises(StoreError, match="No case"):
        keeper.load("A" * 24)


def test_a_deleted_case_is_gone(keeper):
    ws = Workspace.from_example("image-size")
    case = keeper.keep(ws)
    assert keeper.delete(case)
    with pytest.raises(StoreError):
        keeper.load(case)


def test_recent_ids_from_the_cookie_are_checked():
    good = "A" * 24
    assert parse_cookie(f"{good}.bad..{'B' * 24}") == [good, "B" * 24]
    assert parse_cookie(None) == [] and parse_cookie("<script>") == []
    assert CaseKeeper.remember([good, "B" * 24], good) == ["B" * 24, good]


def test_a_save_that_failed_in_the_background_is_said_when_its_case_is_opened(keeper, monkeypatch):
    ws = Workspace.from_example("image-size")

    def broken(*args, **kwargs):
        raise StoreError("The disk is full.")

    monkeypatch.setattr(keeper.store, "save_case", broken)
    case = keeper.keep(ws)
    with pytest.raises(StoreError, match="could not be saved.*disk is full"):
        keeper.load(case)


def test_a_case_is_saved_after_the_page_is_drawn_and_at_once_when_asked_for(tmp_path):
    """The save waits (a click's page draws first, on two cores); opening the case hurries it."""
    import time

    keeper = CaseKeeper(LocalStore(tmp_path / "cases"), save_after=30.0)
    try:
        ws = Workspace.from_example("image-size")
        case_id = keeper.keep(ws)
        time.sleep(0.3)
        with pytest.raises(StoreError):
            keeper.store.load_case(case_id)  # not yet: it waits for its turn
        t0 = time.monotonic()
        loaded = keeper.load(case_id)  # a reload asks for it: saved now, not in 30 s
        assert time.monotonic() - t0 < 10 and loaded.model_name == ws.model_name
        assert keeper.store.load_case(case_id) is not None
    finally:
        t0 = time.monotonic()
        keeper.close()  # pending saves go at once too
        assert time.monotonic() - t0 < 10


def test_the_dashboards_cookie_reader_agrees_with_the_engines():
    """pages/_ui.py reads the cookie without importing the engine (start-up time): same ids kept."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent.parent))
    from pages._ui import _parse_cookie

    from lite_debug.store import new_case_id

    ids = [new_case_id() for _ in range(14)]
    for value in (".".join(ids), ".".join(ids[:3] + ["../etc", "", "x" * 24 + "!", "<b>" * 8]), None, 42, "a.b"):
        assert _parse_cookie(value) == parse_cookie(value)
    assert _parse_cookie(".".join(ids)) == ids[-12:]
