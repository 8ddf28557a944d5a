"""The case store: immutable cases with unguessable ids, verified blobs, retention, repair, and
several threads and processes using one store at once."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lite_debug import errors
from lite_debug.errors import LiteDebugError, StoreError
from lite_debug.store import (
    APPLICATION_ID,
    Case,
    CaseStore,
    CaseSummary,
    LocalStore,
    Retention,
    data_dir,
    is_case_id,
    is_digest,
    open_store,
)

ROOT = Path(__file__).resolve().parent.parent
REAL = Path(__file__).resolve().parent / "real_models"
OFF = Retention(max_bytes=0, max_age_seconds=0)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path, clock) -> LocalStore:
    return LocalStore(tmp_path / "cases", retention=Retention(grace_seconds=10), clock=clock)


@pytest.fixture(scope="module")
def model() -> bytes:
    models = sorted(REAL.glob("*.tflite"))
    if not models:
        pytest.skip("the real models are not in tests/real_models (scripts/fetch_real_models.py)")
    return min(models, key=lambda p: p.stat().st_size).read_bytes()


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def blob_file(store: LocalStore, digest: str) -> Path:
    return store.directory / "blobs" / digest[7:9] / digest[9:]


def save_with(store: LocalStore, *payloads: bytes, title: str = "") -> tuple[str, list[str]]:
    digests = [store.put_blob(p) for p in payloads]
    return store.save_case({"title": title, "files": [{"blob": d} for d in digests]}), digests


# -- round trips ------------------------------------------------------------------------------
def test_a_workspace_with_a_real_model_and_an_array_comes_back_whole(store, model):
    array = np.random.default_rng(0).standard_normal((1, 128, 128, 3)).astype(np.float32)
    model_ref, data_ref = store.put_blob(model), store.put_blob(npy(array))
    manifest = {
        "title": "face_detection on photo.png",
        "model": {"name": "face.tflite", "blob": model_ref},
        "feed": {"input": {"blob": data_ref, "dtype": "float32"}},
        "history": [{"code": "resize", "line": "x = resize(x)"}],
        "stats": {"nan": math.nan},
    }
    case_id = store.save_case(manifest)
    case = store.load_case(case_id)

    assert isinstance(case, Case) and case.id == case_id and case.parent is None
    assert case.manifest["model"] == manifest["model"] and case.manifest["history"] == manifest["history"]
    assert math.isnan(case.manifest["stats"]["nan"])
    assert set(case.blobs) == {model_ref, data_ref}
    assert store.get_blob(model_ref) == model
    np.testing.assert_array_equal(np.load(io.BytesIO(store.get_blob(data_ref))), array)
    assert case.size > len(model) + array.nbytes
    assert model_ref == "sha256:" + hashlib.sha256(model).hexdigest()


def test_putting_the_same_bytes_twice_gives_one_address_and_one_file(store, model):
    first = store.put_blob(model)
    again = store.put_blob(bytearray(model))
    view = store.put_blob(memoryview(model))
    assert first == again == view and is_digest(first)
    assert store.stats().blobs == 1
    files = [p for p in (store.directory / "blobs").rglob("*") if p.is_file()]
    assert files == [blob_file(store, first)]


def test_a_large_blob_is_written_in_pieces_and_renamed_into_place(store):
    data = np.random.default_rng(1).integers(0, 255, 12 << 20, dtype=np.uint8)
    digest = store.put_blob(memoryview(data))  # a view of the array: no copy of it is needed
    assert digest == "sha256:" + hashlib.sha256(data.tobytes()).hexdigest()
    assert store.get_blob(digest) == data.tobytes()
    assert list((store.directory / "tmp").iterdir()) == []  # nothing half-written is left


def test_a_blob_must_be_contiguous_bytes(store):
    strided = np.arange(100, dtype=np.float32)[::2]
    with pytest.raises(StoreError, match="contiguous"):
        store.put_blob(memoryview(strided))
    with pytest.raises(StoreError, match="bytes"):
        store.put_blob("text")  # type: ignore[arg-type]


# -- immutability and ids ---------------------------------------------------------------------
def test_a_change_is_a_new_case_and_the_old_one_stays_as_it_was(store):
    first = store.save_case({"title": "before", "fixes": []})
    loaded = store.load_case(first)
    loaded.manifest["fixes"].append("resize")  # the copy handed out is the caller's own
    second = store.save_case(loaded.manifest, parent=first)

    assert second != first
    assert store.load_case(first).manifest == {"title": "before", "fixes": []}
    changed = store.load_case(second)
    assert changed.parent == first and changed.manifest["fixes"] == ["resize"]
    # The same manifest saved twice is still two cases: nobody can overwrite another's address.
    assert store.save_case({"title": "before", "fixes": []}) != first


def test_case_ids_are_unguessable(store):
    ids = [store.save_case({"i": i}) for i in range(300)]
    assert len(set(ids)) == len(ids)
    assert all(is_case_id(i) and len(i) == 24 for i in ids)
    assert ids != sorted(ids)  # not a counter or a timestamp: creation order is not their order
    assert len({i[:6] for i in ids}) == len(ids)
    for position in range(24):  # every position varies, including the first ones
        assert len({i[position] for i in ids}) >= 50
    counts = Counter("".join(ids))
    total = sum(counts.values())
    entropy = -sum(n / total * math.log2(n / total) for n in counts.values())
    assert entropy > 5.85  # of the 6 bits per character a URL-safe alphabet can carry


BAD_IDS = [
    "../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "' OR '1'='1' --           ",
    "x'; DROP TABLE cases; --  ",
    "",
    "a" * 23,
    "a" * 25,
    "a" * 24 + "\n",
    "a" * 23 + "/",
    "aaaaaaaaaaaa aaaaaaaaaaa",
    "ａ" * 24,  # full-width letters
    "*" * 24,
    None,
    123,
    b"a" * 24,
]


@pytest.mark.parametrize("bad", BAD_IDS, ids=range(len(BAD_IDS)))
def test_an_id_from_an_address_is_checked_before_any_lookup(store, bad):
    kept = store.save_case({"title": "kept"})
    with pytest.raises(StoreError, match="does not name a case") as raised:
        store.load_case(bad)
    assert str(raised.value).endswith(".")
    with pytest.raises(StoreError, match="does not name a case"):
        store.delete_case(bad)
    with pytest.raises(StoreError, match="wrong shape"):
        store.save_case({}, parent=bad if bad is not None else "x")
    assert store.recent([bad, kept]) == store.recent([kept])
    assert store.load_case(kept).manifest == {"title": "kept"}
    assert sorted(p.name for p in store.directory.parent.iterdir()) == ["cases"]


def test_an_unknown_id_of_the_right_shape_is_a_sentence(store):
    with pytest.raises(StoreError, match="No case A{24} is stored on this server"):
        store.load_case("A" * 24)
    assert store.delete_case("A" * 24) is False


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:../../index.sqlite",
        "sha256:" + "A" * 64,
        "sha256:" + "0" * 63,
        "sha256:" + "0" * 64 + "\n",
        "md5:" + "0" * 32,
        "0" * 64,
    ],
)
def test_a_blob_address_is_checked_before_the_disk_is_touched(store, bad):
    with pytest.raises(StoreError, match="not 'sha256:' and 64 hex digits"):
        store.get_blob(bad)


# -- what a case names ------------------------------------------------------------------------
def test_the_store_finds_a_manifests_blob_addresses_wherever_they_are(store):
    a, b = store.put_blob(b"a" * 100), store.put_blob(b"b" * 100)
    case_id = store.save_case({"deep": [{"x": [a]}], "b": b, a: "a key is a name, not a reference"})
    assert store.load_case(case_id).blobs == tuple(sorted({a, b}))


def test_a_manifest_that_names_a_blob_never_put_is_refused(store):
    with pytest.raises(StoreError, match="put them again, then save"):
        store.save_case({"model": "sha256:" + "0" * 64})
    assert store.stats().cases == 0


@pytest.mark.parametrize(
    "manifest, message",
    [
        (["not", "a", "mapping"], "must be a mapping"),
        ({"data": np.zeros(3)}, "not plain JSON"),
        ({"data": b"raw"}, "not plain JSON"),
        ({"data": {1, 2}}, "not plain JSON"),
        ({"big": "x" * 2_000_000}, "over the 1,048,576 allowed"),
    ],
)
def test_a_manifest_must_be_small_plain_json(store, manifest, message):
    with pytest.raises(StoreError, match=message):
        store.save_case(manifest)
    assert store.stats().cases == 0


def test_recent_answers_for_the_ids_that_still_exist_in_the_order_given(store):
    a = store.save_case({"title": "first"})
    b = store.save_case({"title": "second <b>bold</b>"})
    c = store.save_case({"title": 42})
    store.delete_case(a)
    found = store.recent([c, "junk", b, a, b, "B" * 24])
    assert [s.id for s in found] == [c, b]
    assert all(isinstance(s, CaseSummary) for s in found)
    assert found[1].title == "second <b>bold</b>" and found[0].title == ""
    assert store.recent([]) == [] and store.recent(b) == store.recent([b])


# -- damaged blobs ----------------------------------------------------------------------------
def test_a_tampered_blob_is_an_error_never_wrong_data_and_putting_it_again_repairs(store, model):
    case_id, (digest,) = save_with(store, model)
    path = blob_file(store, digest)
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))

    with pytest.raises(StoreError, match="no longer matches its SHA-256") as raised:
        store.get_blob(digest)
    assert str(raised.value).endswith(".")
    kept = list((store.directory / "quarantine").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(damaged)
    with pytest.raises(StoreError, match="cannot be restored"):
        store.load_case(case_id)

    assert store.put_blob(model) == digest
    assert store.load_case(case_id).blobs == (digest,) and store.get_blob(digest) == model


def test_a_missing_blob_fails_its_case_only(store):
    broken, (lost,) = save_with(store, b"lost" * 1000)
    fine, _ = save_with(store, b"fine" * 1000)
    blob_file(store, lost).unlink()
    with pytest.raises(StoreError, match=f"Case {broken} cannot be restored: its stored file sha256:"):
        store.load_case(broken)
    with pytest.raises(StoreError, match="is missing from the case store"):
        store.get_blob(lost)
    assert store.get_blob(store.load_case(fine).blobs[0]) == b"fine" * 1000


def test_a_truncated_blob_fails_its_case(store):
    case_id, (digest,) = save_with(store, b"x" * 5000)
    with open(blob_file(store, digest), "r+b") as f:
        f.truncate(100)
    with pytest.raises(StoreError, match="missing or cut short"):
        store.load_case(case_id)


# -- retention ----------------------------------------------------------------------------------
def test_eviction_by_age_removes_old_cases_and_the_blobs_only_they_used(tmp_path, clock):
    store = LocalStore(tmp_path / "s", retention=OFF, clock=clock)
    shared = b"shared" * 100
    old, (only_old, shared_ref) = save_with(store, b"old" * 100, shared)
    clock.t += 100
    middle, _ = save_with(store, b"middle" * 100, shared)
    clock.t += 100
    new, _ = save_with(store, b"new" * 100)

    clock.t += 4000  # past the grace period, so unreferenced blobs can go
    evicted = store.evict(max_bytes=0, max_age_seconds=4150)
    assert evicted.cases == (old,) and evicted.blobs == 1 and evicted.freed_bytes == 300
    with pytest.raises(StoreError, match="No case"):
        store.load_case(old)
    assert not blob_file(store, only_old).exists()
    assert store.get_blob(shared_ref) == shared  # the middle case still uses it
    assert [s.id for s in store.recent([old, middle, new])] == [middle, new]


def test_eviction_by_size_removes_the_oldest_first_and_never_the_newest(tmp_path, clock):
    store = LocalStore(tmp_path / "s", retention=OFF, clock=clock)
    ids = []
    shared = b"s" * 500
    for i in range(4):
        clock.t += 1
        ids.append(save_with(store, bytes([65 + i]) * 1000, shared)[0])
    clock.t += 4000
    total = store.stats().bytes
    manifest = total - 4 * 1000 - 500
    per_case = manifest // 4 + 1000

    evicted = store.evict(max_bytes=total - per_case, max_age_seconds=0)
    assert evicted.cases == (ids[0],)
    assert store.stats().bytes <= total - per_case
    assert [s.id for s in store.recent(ids)] == ids[1:]

    evicted = store.evict(max_bytes=1, max_age_seconds=0)
    assert evicted.cases == tuple(ids[1:3])
    only = store.load_case(ids[3])  # the newest stays, with every blob it names
    assert sorted(store.get_blob(d) for d in only.blobs) == sorted([b"D" * 1000, shared])


def test_a_save_over_the_size_limit_evicts_the_oldest_and_a_case_over_it_is_refused(tmp_path, clock):
    store = LocalStore(tmp_path / "s", retention=Retention(max_bytes=5000, max_age_seconds=0), clock=clock)
    first, _ = save_with(store, b"1" * 2000)
    clock.t += 1
    second, _ = save_with(store, b"2" * 2000)
    clock.t += 1
    third, _ = save_with(store, b"3" * 2000)  # over 5000 with all three: the first goes at once
    assert [s.id for s in store.recent([first, second, third])] == [second, third]
    with pytest.raises(StoreError, match="more than the 5,000 bytes the case store keeps in all"):
        save_with(store, b"4" * 6000)
    assert [s.id for s in store.recent([second, third])] == [second, third]


def test_a_blob_put_for_a_save_in_flight_survives_an_eviction(store, clock):
    digest = store.put_blob(b"in flight" * 100)
    clock.t += 5  # within the grace period (10 s here)
    assert store.evict(max_bytes=0, max_age_seconds=0).blobs == 0
    case_id = store.save_case({"data": digest})
    clock.t += 10_000
    assert store.evict(max_bytes=0, max_age_seconds=0).blobs == 0  # a live case names it
    assert store.get_blob(store.load_case(case_id).blobs[0]) == b"in flight" * 100


def test_a_save_after_its_blob_was_collected_is_refused_and_putting_it_again_works(store, clock):
    digest = store.put_blob(b"late" * 100)
    clock.t += 60  # the session stalled past the grace period
    assert store.evict(max_bytes=0, max_age_seconds=0).blobs == 1
    assert not blob_file(store, digest).exists()
    with pytest.raises(StoreError, match="removed by the retention limits since they were put; put them again"):
        store.save_case({"data": digest})
    assert store.put_blob(b"late" * 100) == digest
    case_id = store.save_case({"data": digest})
    assert store.get_blob(store.load_case(case_id).blobs[0]) == b"late" * 100


def test_deleting_a_case_removes_its_own_blobs_at_once_and_keeps_shared_ones(store, clock):
    shared = b"shared" * 50
    gone, (own, shared_ref) = save_with(store, b"own" * 50, shared)
    kept, _ = save_with(store, b"kept" * 50, shared)
    assert store.delete_case(gone) is True
    assert not blob_file(store, own).exists()
    assert store.get_blob(shared_ref) == shared
    assert store.delete_case(gone) is False
    with pytest.raises(StoreError, match="No case"):
        store.load_case(gone)
    assert [s.id for s in store.recent([gone, kept])] == [kept]


def test_deleting_a_case_keeps_a_blob_someone_put_again_since(store, clock):
    case_id, (digest,) = save_with(store, b"model" * 50)
    clock.t += 5
    assert store.put_blob(b"model" * 50) == digest  # another session, about to save
    assert store.delete_case(case_id)
    other = store.save_case({"model": digest})
    assert store.get_blob(store.load_case(other).blobs[0]) == b"model" * 50


# -- concurrency --------------------------------------------------------------------------------
def test_threads_saving_loading_and_evicting_at_once_lose_nothing(tmp_path):
    # No grace period: the evictor collects every blob the moment no case names it, so the
    # race between a put and the save that names it is as tight as it can be.
    store = LocalStore(tmp_path / "s", retention=Retention(max_bytes=0, max_age_seconds=0, grace_seconds=0))
    saved: dict[str, bytes] = {}
    errors_seen: list[BaseException] = []
    retries = Counter()
    stop = threading.Event()

    def saver(n: int) -> None:
        try:
            for i in range(15):
                payload = f"{n}-{i}-".encode() * 300
                shared = b"the same model for everyone" * 200
                while True:
                    refs = [store.put_blob(payload), store.put_blob(shared)]
                    try:
                        case_id = store.save_case({"refs": refs})
                        break
                    except StoreError as exc:
                        assert "put them again" in str(exc), exc
                        retries[n] += 1
                saved[case_id] = payload
                assert refs[0] in store.load_case(case_id).blobs and store.get_blob(refs[0]) == payload
        except BaseException as exc:
            errors_seen.append(exc)

    def evictor() -> None:
        try:
            while not stop.is_set():
                store.evict()
                time.sleep(0.001)
        except BaseException as exc:
            errors_seen.append(exc)

    threads = [threading.Thread(target=saver, args=(n,)) for n in range(4)]
    cleaner = threading.Thread(target=evictor)
    cleaner.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    cleaner.join()

    assert not errors_seen, errors_seen
    assert len(saved) == 60
    for case_id, payload in saved.items():
        blobs = [store.get_blob(d) for d in store.load_case(case_id).blobs]
        assert payload in blobs


PROCESS = r"""
import json, random, sys
from lite_debug.errors import StoreError
from lite_debug.store import LocalStore, Retention

directory, n, model_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = LocalStore(directory, retention=Retention(max_bytes=0, max_age_seconds=0))
model = open(model_path, "rb").read()
rng = random.Random(n)
kept, deleted, retries = {}, [], 0
for i in range(12):
    own = f"process {n} sample {i} ".encode() * 200
    while True:
        refs = {"model": store.put_blob(model), "data": store.put_blob(own)}
        try:
            case_id = store.save_case({"title": f"{n}/{i}", "refs": refs})
            break
        except StoreError as exc:
            assert "put them again" in str(exc), exc
            retries += 1
    kept[case_id] = refs["data"]
    earlier = rng.choice(sorted(kept))
    assert store.load_case(earlier).manifest["refs"]["data"] == kept[earlier]
    assert store.get_blob(kept[earlier]).startswith(f"process {n} ".encode())
    if i % 4 == 3:
        store.evict()
    if i % 5 == 4:
        victim = rng.choice(sorted(kept))
        assert store.delete_case(victim)
        deleted.append(victim)
        del kept[victim]
print(json.dumps({"kept": kept, "deleted": deleted, "retries": retries}))
"""


def test_processes_saving_loading_deleting_and_evicting_at_once_lose_nothing(tmp_path, model):
    directory = tmp_path / "shared"
    model_path = min(REAL.glob("*.tflite"), key=lambda p: p.stat().st_size)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, str(directory), str(n), str(model_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(3)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out))

    store = LocalStore(directory, retention=OFF)
    kept = {k: v for r in results for k, v in r["kept"].items()}
    assert len(kept) == 3 * 10
    for case_id, data_ref in kept.items():
        case = store.load_case(case_id)
        assert data_ref in case.blobs
        assert store.get_blob(case.manifest["refs"]["model"]) == model
        assert store.get_blob(data_ref).startswith(f"process {case.manifest['title'].split('/')[0]} ".encode())
    for r in results:
        for case_id in r["deleted"]:
            with pytest.raises(StoreError, match="No case"):
                store.load_case(case_id)
    assert store.stats().cases == len(kept)


# -- a damaged or missing store -----------------------------------------------------------------
def _garbage(index: Path) -> None:
    index.write_bytes(b"this is not a database" + bytes(range(256)) * 16)


def _truncated(index: Path) -> None:
    with open(index, "r+b") as f:
        f.truncate(index.stat().st_size // 2)


def _future(index: Path) -> None:
    with sqlite3.connect(index) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()


def _foreign(index: Path) -> None:
    index.unlink()
    conn = sqlite3.connect(index)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_garbage, "cannot be read"),
        (_truncated, "(cannot be read|is damaged)"),
        (_future, "written by a newer lite-debug"),
        (_foreign, "did not write"),
    ],
)
def test_a_damaged_index_is_moved_aside_and_a_fresh_store_started(tmp_path, damage, reason):
    directory = tmp_path / "s"
    old = LocalStore(directory, retention=OFF)
    old_ids = [old.save_case({"title": "x" * 2000, "i": i}) for i in range(60)]
    old.close()  # the server stopped; the file was damaged before the next start
    index = directory / "index.sqlite"
    damage(index)
    damaged_bytes = index.read_bytes()

    store = LocalStore(directory, retention=OFF)
    assert store.warning and "could not be used because" in store.warning
    assert re.search(reason, store.warning), store.warning
    assert "cases saved before cannot be reopened" in store.warning
    aside = [p for p in directory.glob("index.sqlite.corrupt-*") if not p.name.endswith("-wal")]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged_bytes and aside[0].name in store.warning
    with pytest.raises(StoreError, match="No case"):
        store.load_case(old_ids[0])  # never another case's data, nor a half-read one
    fresh = store.save_case({"title": "fresh"})
    assert store.load_case(fresh).manifest == {"title": "fresh"}
    assert LocalStore(directory, retention=OFF).warning is None  # the fresh one is sound


def test_an_index_damaged_while_the_server_runs_is_replaced_on_the_next_call(store):
    old = store.save_case({"title": "old"})
    index = store.directory / "index.sqlite"
    _garbage(index)
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError, match="No case"):
        store.load_case(old)
    assert "moved to index.sqlite.corrupt-" in (store.warning or "")
    new = store.save_case({"title": "new"})
    assert store.load_case(new).manifest["title"] == "new"


def test_an_index_deleted_while_the_server_runs_is_started_afresh(store):
    old = store.save_case({"title": "old"})
    (store.directory / "index.sqlite").unlink()
    new = store.save_case({"title": "new"})
    assert "disappeared while the server ran" in (store.warning or "")
    assert [s.id for s in store.recent([old, new])] == [new]


def test_a_store_directory_removed_while_the_server_runs_is_made_again(store):
    import shutil

    shutil.rmtree(store.directory)
    case_id, _ = save_with(store, b"again" * 100)
    assert store.get_blob(store.load_case(case_id).blobs[0]) == b"again" * 100
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700


def test_an_unusable_directory_gives_a_temporary_store_and_a_sentence(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("in the way")
    store = open_store({"LITE_DEBUG_DATA_DIR": str(not_a_dir), "HOME": str(tmp_path)})
    assert isinstance(store, LocalStore) and store.directory != not_a_dir
    assert f"directory {not_a_dir} cannot be used" in store.warning
    assert "lost when the server stops" in store.warning
    case_id = store.save_case({"title": "still works"})
    assert store.load_case(case_id).manifest["title"] == "still works"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only directories")
def test_a_read_only_directory_gives_a_temporary_store_and_a_sentence(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        store = open_store({"LITE_DEBUG_DATA_DIR": str(locked), "HOME": str(tmp_path)})
        assert "cannot be used" in store.warning and store.directory != locked
        assert store.load_case(store.save_case({})).manifest == {}
    finally:
        locked.chmod(0o700)


def test_what_a_crash_left_is_put_back_or_removed_when_the_store_opens(tmp_path):
    directory = tmp_path / "s"
    store = LocalStore(directory, retention=OFF)
    case_id, (digest,) = save_with(store, b"needed" * 100)
    # A removal whose transaction never committed: the row is there, the file sits in trash/.
    os.replace(blob_file(store, digest), directory / "trash" / f"{digest[7:]}.crashed")
    orphan = directory / "blobs" / "ab" / ("c" * 62)
    orphan.parent.mkdir()
    orphan.write_bytes(b"no case names me")
    young = directory / "blobs" / "ab" / ("d" * 62)
    young.write_bytes(b"maybe a put in flight")
    stale_tmp = directory / "tmp" / "blob-crashed"
    stale_tmp.write_bytes(b"half")
    long_ago = time.time() - 2 * 86400
    for p in (orphan, stale_tmp):
        os.utime(p, (long_ago, long_ago))

    reopened = LocalStore(directory, retention=OFF)
    assert reopened.get_blob(reopened.load_case(case_id).blobs[0]) == b"needed" * 100
    assert not orphan.exists() and not stale_tmp.exists()
    assert young.exists()  # within the grace period
    assert list((directory / "trash").iterdir()) == []


# -- permissions --------------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_files_are_private_to_the_user(tmp_path):
    directory = tmp_path / "s"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    store = LocalStore(directory, retention=OFF)
    holder = sqlite3.connect(directory / "index.sqlite")  # keeps the write-ahead log in place
    holder.execute("SELECT COUNT(*) FROM cases").fetchone()
    _, (digest,) = save_with(store, b"private" * 10)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(directory) == 0o700
    for d in ("blobs", "tmp", "trash"):
        assert mode(directory / d) == 0o700
    assert mode(blob_file(store, digest).parent) == 0o700
    assert mode(blob_file(store, digest)) == 0o600
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", ".lock"):
        assert mode(directory / name) == 0o600, name
    holder.close()


# -- configuration ------------------------------------------------------------------------------
def test_open_store_reads_the_directory_and_the_limits_from_the_environment(tmp_path):
    env = {
        "LITE_DEBUG_DATA_DIR": str(tmp_path / "d"),
        "LITE_DEBUG_STORE_MAX_MB": "1.5",
        "LITE_DEBUG_STORE_MAX_DAYS": "0.5",
    }
    store = open_store(env)
    assert isinstance(store, CaseStore) and store.warning is None
    assert store.directory == tmp_path / "d"
    assert store.retention.max_bytes == int(1.5 * 2**20) and store.retention.max_age_seconds == 43200
    off = open_store({**env, "LITE_DEBUG_STORE_MAX_MB": "0", "LITE_DEBUG_STORE_MAX_DAYS": "0"})
    assert off.retention.max_bytes == 0 and off.retention.max_age_seconds == 0
    default = open_store({"LITE_DEBUG_DATA_DIR": str(tmp_path / "d")})
    assert default.retention.max_bytes == 2048 << 20 and default.retention.max_age_seconds == 30 * 86400


def test_a_case_saved_by_one_server_object_opens_in_another(tmp_path):
    env = {"LITE_DEBUG_DATA_DIR": str(tmp_path / "d")}
    case_id, _ = save_with(open_store(env), b"shared by address" * 10)  # type: ignore[arg-type]
    other = open_store(env)  # a restarted server, another tab, a teammate on the same server
    assert other.get_blob(other.load_case(case_id).blobs[0]) == b"shared by address" * 10


def test_bad_settings_become_sentences_and_defaults(tmp_path):
    store = open_store(
        {
            "LITE_DEBUG_DATA_DIR": str(tmp_path / "d"),
            "LITE_DEBUG_STORE_MAX_MB": "lots",
            "LITE_DEBUG_STORE_MAX_DAYS": "-3",
            "LITE_DEBUG_STORE_URL": "postgresql://db.internal/lite",
        }
    )
    assert store.retention == Retention()
    assert "LITE_DEBUG_STORE_MAX_MB is set to 'lots', which is not a number of MB" in store.warning
    assert "LITE_DEBUG_STORE_MAX_DAYS is set to '-3'" in store.warning
    assert "'postgresql' store, which this version of lite-debug does not have" in store.warning
    assert str(tmp_path / "d") in store.warning


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the XDG layout")
def test_the_default_directory_is_the_users_data_directory(tmp_path):
    assert data_dir({"HOME": str(tmp_path)}) == tmp_path / ".local" / "share" / "lite-debug"
    assert data_dir({"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "x")}) == tmp_path / "x" / "lite-debug"
    assert (
        data_dir({"HOME": str(tmp_path), "XDG_DATA_HOME": "relative"}) == tmp_path / ".local" / "share" / "lite-debug"
    )
    assert data_dir({"HOME": str(tmp_path), "LITE_DEBUG_DATA_DIR": "~/cases"}) == Path("~/cases").expanduser()


def test_open_store_applies_the_age_limit_when_it_opens(tmp_path):
    env = {"LITE_DEBUG_DATA_DIR": str(tmp_path / "d"), "LITE_DEBUG_STORE_MAX_DAYS": "1"}
    clock = Clock()
    old = open_store(env, clock=clock).save_case({"title": "old"})
    clock.t += 2 * 86400
    assert open_store(env, clock=clock).recent([old]) == []


def test_store_errors_are_in_the_exception_tree():
    assert issubclass(StoreError, LiteDebugError) and StoreError.__doc__
    assert "StoreError" in errors.__doc__ and "StoreError" in errors.__all__


def test_the_index_is_marked_as_ours(store):
    with sqlite3.connect(store.directory / "index.sqlite") as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
