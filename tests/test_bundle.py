"""Bug-report bundles: a round trip keeps everything; hostile archives are refused with a sentence."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lite_debug.bundle import BundleLimits, is_bundle, read_bundle, write_bundle
from lite_debug.diagnosis import diagnose, fix_all
from lite_debug.errors import BundleError
from lite_debug.gallery import example
from lite_debug.inspection import inspect_model
from lite_debug.records import Feed
from lite_debug.running import Limits, WorkerPool
from zipbombs import central_directory_bomb

FIXTURES = Path(__file__).parent / "fixtures"


def test_round_trip_keeps_model_inputs_outputs_and_diagnosis():
    ex = example("two-inputs-swapped")
    spec = inspect_model(ex.model_bytes)
    mismatches = diagnose(spec, ex.broken_inputs())
    out = fix_all(spec, ex.broken_inputs())
    feed = Feed(out.feed.arrays, resize={"features": (1, 10)})
    pool = WorkerPool(size=1, limits=Limits())
    try:
        result = pool.run(ex.model_bytes, spec, feed)
    finally:
        pool.close()
    data = write_bundle(ex.model_bytes, feed, mismatches=mismatches, result=result, fixes_applied=out.applied, model_name="two.tflite")
    assert is_bundle(data)
    b = read_bundle(data)
    assert b.model == ex.model_bytes and b.model_name == "two.tflite"
    assert list(b.feed.arrays) == list(feed.arrays)
    for k in feed.arrays:
        assert np.array_equal(b.feed.arrays[k], feed.arrays[k]) and b.feed.arrays[k].dtype == feed.arrays[k].dtype
    assert b.feed.resize == {"features": (1, 10)}
    (name,) = b.outputs
    assert np.array_equal(b.outputs[name], result.outputs[0].raw)
    assert [d["kind"] for d in b.diagnosis] == ["association", "association"]
    assert b.run["status"] == "ok" and b.fixes_applied[0]["kind"] == "reassign"
    assert {"python", "numpy", "ai-edge-litert"} <= set(b.versions)


def _zip(members: dict[str, bytes], manifest: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if manifest is not None:
            zf.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


MANIFEST = {"format": "lite-debug-bundle", "version": 1, "model": "model.tflite", "inputs": {}}


@pytest.mark.parametrize(
    "members, words",
    [
        ({"../evil.tflite": b"x"}, "not a safe relative path"),
        ({"/etc/passwd": b"x"}, "not a safe relative path"),
        ({"inputs\\0.npy": b"x"}, "not a safe relative path"),
        ({"inner.zip": b"PK"}, "nested archive"),
    ],
)
def test_unsafe_member_names_are_refused(members, words):
    with pytest.raises(BundleError, match=words):
        read_bundle(_zip(members, MANIFEST))


def test_not_a_bundle():
    with pytest.raises(BundleError, match="not a readable zip"):
        read_bundle(b"hello")
    with pytest.raises(BundleError, match="no lite-debug manifest"):
        read_bundle(_zip({"model.tflite": b"x"}))
    assert not is_bundle(_zip({"model.tflite": b"x"}))


def test_zip_bomb_is_stopped_by_what_decompresses_not_what_is_declared():
    bomb = _zip({"model.tflite": b"\0" * (8 << 20)}, MANIFEST)
    assert len(bomb) < 100_000
    with pytest.raises(BundleError, match="zip bomb|in all"):
        read_bundle(bomb, limits=BundleLimits(max_member_bytes=1 << 20))
    with pytest.raises(BundleError, match="in all"):
        read_bundle(bomb, limits=BundleLimits(max_total_bytes=1 << 20))


def test_too_many_members():
    with pytest.raises(BundleError, match="more than the 3 allowed"):
        read_bundle(_zip({f"f{i}.txt": b"" for i in range(5)}, MANIFEST), limits=BundleLimits(max_members=3))


def test_missing_member_and_malformed_manifest():
    with pytest.raises(BundleError, match="no such file"):
        read_bundle(_zip({}, MANIFEST))
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(_zip({"manifest.json": b"{"}))


def test_pickled_input_in_a_bundle_is_refused():
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    data = _zip({"model.tflite": b"m", "inputs/0.npy": pickled.getvalue()}, {**MANIFEST, "inputs": {"x": "inputs/0.npy"}})
    with pytest.raises(BundleError, match="inputs/0.npy"):
        read_bundle(data)


def _count_directory_parses(monkeypatch):
    parsed = []
    original = zipfile.ZipFile._RealGetContents

    def counting(self):
        parsed.append(self)
        return original(self)

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", counting)
    return parsed


@pytest.mark.parametrize(
    "bomb, words",
    [
        # The bomb listed 4 million entries; the end records say so before any is read.
        (central_directory_bomb(2, declared=4_000_000, zip64=True), "declares 4,000,000 files, more than the 256 allowed"),
        (central_directory_bomb(2, declared=60_000), "declares 60,000 files, more than the 256 allowed"),
        # The end record says 3, the directory holds 100,000 records: counted, stopped at 257.
        (central_directory_bomb(100_000, declared=3), "holds more files, more than the 256 allowed"),
    ],
    ids=["zip64", "classic", "lying-end-record"],
)
def test_a_central_directory_bomb_is_refused_before_zipfile_parses_it(monkeypatch, bomb, words):
    parsed = _count_directory_parses(monkeypatch)
    with pytest.raises(BundleError, match=words):
        read_bundle(bomb)
    assert not is_bundle(bomb)
    assert parsed == []


def test_a_nul_in_a_member_name_is_refused_although_zipfile_would_cut_it():
    data = _zip({"inputs/0.npyPPP": b"x"}, MANIFEST).replace(b"inputs/0.npyPPP", b"inputs/0.npy\0..")
    assert "inputs/0.npy" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    with pytest.raises(BundleError, match="NUL character"):
        read_bundle(data)


def test_a_damaged_directory_says_so():
    data = _zip({"model.tflite": b"m"}, MANIFEST)
    end = data.rfind(b"PK\x05\x06")
    damaged = data[: end + 12] + (10**6).to_bytes(4, "little") + data[end + 16 :]  # the directory's size
    with pytest.raises(BundleError, match="damaged zip archive"):
        read_bundle(damaged)
