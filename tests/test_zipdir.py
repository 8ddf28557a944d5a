"""The zip entry count is read from the end records before zipfile parses a directory.

``_zipdir`` must find the same directory zipfile then reads, or the check protects nothing;
the packed-file reader of ``inspection`` uses it (a ``.tflite`` packing a zip of 3 million
entries took 40 s and 1.8 GB to open: issue 15 item 5).
"""

from __future__ import annotations

import io
import zipfile

import pytest

from lite_debug._zipdir import DamagedDirectory, TooManyEntries, check_directory, find_directory
from lite_debug.gallery import EXAMPLES_DIR
from lite_debug.inspection import inspect_model, packed_file
from zipbombs import central_directory_bomb, count_directory_parses

PACKED = (EXAMPLES_DIR / "image_classifier.tflite").read_bytes()  # packs labels.txt as TFLite Support does


def _zip(members: dict[str, bytes], comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = comment
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        _zip({"a.txt": b"a", "b/c.npy": b"c" * 1000}),
        _zip({"a.txt": b"a"}, comment=b"made by hand"),
        # A comment that holds the end record's signature: zipfile takes the last one it
        # finds, and so must the check.
        _zip({"a.txt": b"a", "b.txt": b"b"}, comment=b"xx PK\x05\x06" + b"\0" * 30),
        central_directory_bomb(5, zip64=True),
        central_directory_bomb(7, prefix=b"\0" * 1000),
        PACKED,
        _zip({}),
    ],
    ids=["plain", "comment", "signature-in-comment", "zip64", "behind-a-prefix", "packed-in-a-model", "empty"],
)
def test_the_check_walks_the_directory_zipfile_reads(data):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        with pytest.raises(DamagedDirectory):
            check_directory(data, 256)
        return
    with zf:
        directory = find_directory(data)
        assert directory is not None and directory.start == zf.start_dir
        names = check_directory(data, 256)
        assert [n.decode("utf-8") for n in names] == [i.orig_filename for i in zf.infolist()]


def test_counts_refuse_in_proportion_to_the_limit_not_the_directory():
    with pytest.raises(TooManyEntries) as err:
        check_directory(central_directory_bomb(2, declared=4_000_000, zip64=True), 256)
    assert (err.value.count, err.value.declared) == (4_000_000, True)
    with pytest.raises(TooManyEntries) as err:
        check_directory(central_directory_bomb(100_000, declared=2), 256)
    assert (err.value.count, err.value.declared) == (257, False)
    assert check_directory(b"no zip here", 256) is None
    cut = central_directory_bomb(10)
    with pytest.raises(DamagedDirectory, match="not a file entry|cut short"):
        check_directory(cut[:40] + cut[60:], 256)


@pytest.mark.parametrize("declared", [None, 3], ids=["declared", "lying-end-record"])
def test_a_model_packing_a_directory_bomb_is_described_without_parsing_it(monkeypatch, declared):
    # 100,000 directory records (the had 3 million) behind a real model; the end
    # record declares them all, or lies and says 3.
    model = central_directory_bomb(100_000, declared=declared, prefix=PACKED)
    parsed = count_directory_parses(monkeypatch)
    spec = inspect_model(model)
    assert spec.packed_files == ()  # treated as no packed zip, like a damaged one
    assert spec.ops and spec.problem == ""  # the rest of the model is still described
    with pytest.raises(KeyError):
        packed_file(model, "a")
    assert parsed == []


def test_a_real_packed_file_is_still_read():
    spec = inspect_model(PACKED)
    assert [f.name for f in spec.packed_files] == ["labels.txt"]
    assert packed_file(PACKED, "labels.txt").decode().splitlines()[:2] == ["alpine meadow", "harbour"]
