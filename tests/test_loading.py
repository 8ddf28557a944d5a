"""Tests for lite_debug.loading: every format round-trips, every bad file gets a sentence."""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format
from PIL import Image

from lite_debug.errors import DataLoadError
from lite_debug.loading import DEFAULT_LIMITS, LoadLimits, describe_array, load_data, load_file

# --- helpers -------------------------------------------------------------------------------


def npy_bytes(a: np.ndarray, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def npz_bytes(*args: np.ndarray, compressed: bool = False, **kwargs: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, *args, **kwargs)
    return buf.getvalue()


def image_bytes(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A genuine 1-bit gray PNG of width×height zeros: a decompression bomb of a few hundred KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then packed pixels
    packer = zlib.compressobj(9)
    rows_per_block = max(1, (1 << 22) // len(row))
    block = row * rows_per_block
    idat = bytearray()
    done = 0
    while done < height:
        n = min(rows_per_block, height - done)
        idat += packer.compress(block if n == rows_per_block else row * n)
        done += n
    idat += packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b"")


def load_error(name: str, data: bytes, **kwargs: object) -> str:
    """The message of the DataLoadError that loading must raise, checked to be one sentence."""
    with pytest.raises(DataLoadError) as info:
        load_data(name, data, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert name in message, message
    assert message.endswith("."), message
    assert not re.search(r"\.\s+[A-Z]", message), f"more than one sentence: {message}"
    assert "\n" not in message
    return message


class Evil:
    """Unpickling this creates ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def evil_object_array(marker: Path) -> np.ndarray:
    a = np.empty(1, dtype=object)
    a[0] = Evil(marker)
    return a


# --- .npy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4),
        np.array([-128, 0, 127], dtype=np.int8),
        np.arange(6, dtype=np.uint8).reshape(2, 3),
        np.array([2**40, -(2**40)], dtype=np.int64),
        np.array([0.5, np.nan, np.inf], dtype=np.float16),
        np.array([True, False]),
        np.array([1 + 2j], dtype=np.complex64),
        np.array(3.5, dtype=np.float64),
        np.zeros((0, 3), dtype=np.float32),
    ],
    ids=lambda a: f"{a.dtype}{a.shape}",
)
def test_npy_round_trip(array: np.ndarray) -> None:
    [loaded] = load_data("x.npy", npy_bytes(array))
    assert loaded.dtype == array.dtype
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    assert loaded.flags.writeable and loaded.flags.c_contiguous


def test_npy_fortran_order_and_big_endian_come_back_c_contiguous_and_native() -> None:
    a = np.asfortranarray(np.arange(12, dtype=">f4").reshape(3, 4))
    [loaded] = load_data("BIG.NPY", npy_bytes(a))
    assert loaded.dtype == np.dtype("float32") and loaded.dtype.isnative
    assert loaded.flags.c_contiguous
    np.testing.assert_array_equal(loaded, a)


def test_npy_with_version_2_header() -> None:
    a = np.arange(5, dtype=np.int32)
    buf = io.BytesIO()
    npy_format.write_array(buf, a, version=(2, 0))
    [loaded] = load_data("v2.npy", buf.getvalue())
    np.testing.assert_array_equal(loaded, a)


def test_npy_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    # The payload is live: numpy with allow_pickle=True does run it.
    control = tmp_path / "control"
    unpickled = np.load(io.BytesIO(npy_bytes(evil_object_array(control), allow_pickle=True)), allow_pickle=True)
    unpickled[0].close()
    assert control.exists()

    marker = tmp_path / "pwned"
    message = load_error("evil.npy", npy_bytes(evil_object_array(marker), allow_pickle=True))
    assert not marker.exists()
    assert "object array" in message and "unpickling" in message and "numeric dtype" in message


def test_npy_declaring_a_huge_shape_is_refused_before_allocating() -> None:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    data = buf.getvalue() + bytes(64)
    start = time.perf_counter()
    message = load_error("huge.npy", data)
    assert time.perf_counter() - start < 1.0
    assert "(1000000, 1000000)" in message and "float64" in message
    assert "7.3 TiB" in message and "1.0 GiB" in message


def test_npy_over_a_custom_array_limit_is_refused() -> None:
    data = npy_bytes(np.zeros(1000, dtype=np.float32))
    message = load_error("big.npy", data, limits=LoadLimits(max_array_bytes=1000))
    assert "3.9 KiB" in message and "1000 bytes" in message


def test_truncated_npy_is_refused_with_both_sizes() -> None:
    data = npy_bytes(np.arange(100, dtype=np.float32))
    message = load_error("cut.npy", data[:-40])
    assert "truncated" in message and "400 bytes" in message and "360 bytes" in message


def test_npy_with_damaged_header() -> None:
    data = b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4!!\n"
    assert "damaged NumPy header" in load_error("bad.npy", data)


def test_npy_structured_dtype_is_refused() -> None:
    a = np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")])
    assert "structured array" in load_error("rec.npy", npy_bytes(a))


# --- .npz ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_round_trip_keeps_keys_and_archive_order(compressed: bool) -> None:
    z = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = np.array([1, 2, 3], dtype=np.int64)
    m = np.array([[True]])
    loaded = load_data("in.npz", npz_bytes(compressed=compressed, z=z, a=a, m=m))
    assert isinstance(loaded, dict)
    assert list(loaded) == ["z", "a", "m"]
    for key, want in {"z": z, "a": a, "m": m}.items():
        assert loaded[key].dtype == want.dtype
        np.testing.assert_array_equal(loaded[key], want)


def test_npz_positional_arrays_are_named_as_stored() -> None:
    loaded = load_data("pos.NPZ", npz_bytes(np.zeros(2), np.ones(3)))
    assert isinstance(loaded, dict) and list(loaded) == ["arr_0", "arr_1"]
    assert loaded["arr_1"].shape == (3,)


def test_npz_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = npz_bytes(ok=np.zeros(2), evil=evil_object_array(marker))
    message = load_error("evil.npz", data)
    assert not marker.exists()
    assert "'evil.npy'" in message and "object array" in message


def test_npz_member_declaring_a_huge_array_is_refused() -> None:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 100)})
    message = load_error("bomb.npz", zip_bytes({"x.npy": buf.getvalue()}))
    assert "'x.npy'" in message and "(1000000000, 100)" in message


def test_npz_total_over_the_array_limit_is_refused() -> None:
    data = npz_bytes(a=np.zeros(100, np.float32), b=np.zeros(100, np.float32))
    message = load_error("two.npz", data, limits=LoadLimits(max_array_bytes=500))
    assert "totalling more than" in message


def test_npz_with_too_many_members_is_refused() -> None:
    data = npz_bytes(*[np.zeros(1) for _ in range(5)])
    message = load_error("many.npz", data, limits=LoadLimits(max_npz_members=4))
    assert "more than 4 members" in message or "5 members" in message


def test_npz_with_a_non_npy_member_is_refused() -> None:
    data = zip_bytes({"a.npy": npy_bytes(np.zeros(2)), "notes.txt": b"hello"})
    message = load_error("mixed.npz", data)
    assert "'notes.txt'" in message and "not a .npy array" in message


def test_npz_member_without_npy_magic_is_refused() -> None:
    message = load_error("fake.npz", zip_bytes({"a.npy": b"not an array"}))
    assert "'a.npy'" in message and "not a .npy array" in message


@pytest.mark.parametrize("inner_name", ["inner.npz", "sneaky.npy"])
def test_nested_archive_is_refused(inner_name: str) -> None:
    data = zip_bytes({inner_name: npz_bytes(a=np.zeros(2))})
    message = load_error("outer.npz", data)
    assert f"'{inner_name}'" in message and "archives inside archives" in message


def test_npz_with_duplicate_member_names_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr("a.npy", npy_bytes(np.zeros(2)))
        zf.writestr("a.npy", npy_bytes(np.ones(2)))
    assert "two members named 'a.npy'" in load_error("dup.npz", buf.getvalue())


def test_empty_archive_is_refused() -> None:
    assert "no arrays" in load_error("none.npz", zip_bytes({}))


def test_truncated_npz_is_refused() -> None:
    data = npz_bytes(a=np.arange(1000, dtype=np.float32))
    message = load_error("cut.npz", data[: len(data) // 2])
    assert "corrupt or truncated" in message


# --- images --------------------------------------------------------------------------------


def gradient(h: int, w: int, channels: int) -> np.ndarray:
    a = (np.arange(h * w * max(channels, 1)) % 251).astype(np.uint8)
    return a.reshape((h, w, channels) if channels > 1 else (h, w))


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGB", 3), ("RGBA", 4), ("LA", 2)])
def test_png_round_trip(mode: str, channels: int) -> None:
    want = gradient(5, 7, channels)
    [loaded] = load_data("img.png", image_bytes(Image.fromarray(want, mode=mode), "PNG"))
    assert loaded.dtype == np.uint8
    assert loaded.shape == want.shape
    np.testing.assert_array_equal(loaded, want)


def test_16_bit_png_comes_back_uint16() -> None:
    want = np.array([[0, 1000, 65535], [1, 2, 40000]], dtype=np.uint16)
    [loaded] = load_data("depth.png", image_bytes(Image.fromarray(want), "PNG"))
    assert loaded.dtype == np.uint16
    np.testing.assert_array_equal(loaded, want)


def test_palette_png_becomes_rgb() -> None:
    img = Image.new("P", (4, 3))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (2, 0, 4, 3))
    [loaded] = load_data("pal.png", image_bytes(img, "PNG"))
    assert loaded.shape == (3, 4, 3) and loaded.dtype == np.uint8
    assert loaded[0, 0].tolist() == [255, 0, 0] and loaded[0, 3].tolist() == [0, 0, 255]


def test_palette_png_with_transparency_keeps_alpha() -> None:
    img = Image.new("P", (4, 3))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (2, 0, 4, 3))
    [loaded] = load_data("pal.png", image_bytes(img, "PNG", transparency=1))
    assert loaded.shape == (3, 4, 4)
    assert loaded[0, 0].tolist() == [255, 0, 0, 255] and loaded[0, 3, 3] == 0


def test_bilevel_png_becomes_gray_0_or_255() -> None:
    img = Image.new("1", (8, 2))
    img.paste(1, (0, 0, 4, 2))
    [loaded] = load_data("bits.png", image_bytes(img, "PNG"))
    assert loaded.dtype == np.uint8 and loaded.shape == (2, 8)
    assert set(np.unique(loaded).tolist()) == {0, 255}


def test_bmp_round_trip() -> None:
    want = gradient(4, 6, 3)
    [loaded] = load_data("frame.BMP", image_bytes(Image.fromarray(want), "BMP"))
    np.testing.assert_array_equal(loaded, want)


def test_jpeg_round_trip_is_close() -> None:
    want = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    [loaded] = load_data("photo.jpg", image_bytes(Image.fromarray(want), "JPEG", quality=95))
    assert loaded.dtype == np.uint8 and loaded.shape == (16, 16, 3)
    assert np.abs(loaded.astype(int) - want).max() <= 3


def test_jpeg_exif_orientation_is_applied() -> None:
    # Stored 16 wide and 8 high, left half red, right half blue; orientation 6 means a viewer
    # turns it 90° clockwise, so it shows 8 wide and 16 high with red on top.
    stored = np.zeros((8, 16, 3), dtype=np.uint8)
    stored[:, :8] = (255, 0, 0)
    stored[:, 8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = image_bytes(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    [loaded] = load_data("rotated.jpeg", data)
    assert loaded.shape == (16, 8, 3)
    assert loaded[2, 4, 0] > 200 and loaded[2, 4, 2] < 50  # top: red
    assert loaded[13, 4, 2] > 200 and loaded[13, 4, 0] < 50  # bottom: blue


def test_jpeg_named_png_loads_as_what_it_is() -> None:
    data = image_bytes(Image.new("RGB", (3, 2), (0, 255, 0)), "JPEG")
    [loaded] = load_data("actually-jpeg.png", data)
    assert loaded.shape == (2, 3, 3)


def test_decompression_bomb_png_is_refused() -> None:
    data = png_declaring(30000, 30000)
    assert len(data) < 1_000_000
    start = time.perf_counter()
    message = load_error("bomb.png", data)
    assert time.perf_counter() - start < 1.0
    assert "900,000,000 pixels" in message and "decompression bomb" in message


def test_pillow_bomb_warning_is_converted_too() -> None:
    # Over Pillow's warning threshold (~89 M pixels) while our own limit is set higher.
    data = png_declaring(10000, 10000)
    message = load_error("warned.png", data, limits=LoadLimits(max_pixels=10**9))
    assert "100,000,000 pixels" in message and "decompression bomb" in message


def test_image_over_max_pixels_is_refused_before_decoding() -> None:
    data = image_bytes(Image.new("RGB", (20, 10)), "PNG")
    message = load_error("big.png", data, limits=LoadLimits(max_pixels=100))
    assert "20×10 = 200 pixels" in message and "more than the 100" in message


def test_truncated_png_is_refused() -> None:
    data = image_bytes(Image.fromarray(gradient(64, 64, 3)), "PNG")
    message = load_error("cut.png", data[: len(data) // 2])
    assert "could not be decoded" in message


# --- CSV -----------------------------------------------------------------------------------


def test_csv_of_ints_without_header() -> None:
    [loaded] = load_data("a.csv", b"1,2,3\n4,5,6\n")
    assert loaded.dtype == np.int32 and loaded.shape == (2, 3)
    np.testing.assert_array_equal(loaded, [[1, 2, 3], [4, 5, 6]])


def test_csv_with_header_and_floats() -> None:
    [loaded] = load_data("b.CSV", b"\xef\xbb\xbfx,y\r\n0.5,1\r\n-2,3e2\r\n")
    assert loaded.dtype == np.float32 and loaded.shape == (2, 2)
    np.testing.assert_array_equal(loaded, np.array([[0.5, 1], [-2, 300]], dtype=np.float32))


def test_csv_single_row_is_1d() -> None:
    [loaded] = load_data("row.csv", b"a,b,c\n1.5,2,3\n")
    assert loaded.shape == (3,) and loaded.dtype == np.float32


def test_csv_ints_past_int32_become_int64() -> None:
    [loaded] = load_data("ids.csv", b"1\n3000000000\n")
    assert loaded.dtype == np.int64 and loaded.shape == (2, 1)
    assert loaded[1, 0] == 3_000_000_000


@pytest.mark.parametrize("text", [b"1;2\n3;4\n", b"1\t2\n3\t4\n", b"1 2\n  3   4\n", b"1,2,\n3,4,\n"])
def test_csv_delimiters(text: bytes) -> None:
    [loaded] = load_data("d.csv", text)
    np.testing.assert_array_equal(loaded, [[1, 2], [3, 4]])


def test_csv_ragged_rows_name_the_line() -> None:
    message = load_error("ragged.csv", b"a,b,c\n1,2,3\n4,5\n")
    assert "line 3 has 2 values" in message and "line 2 has 3" in message


def test_csv_non_number_names_line_and_column() -> None:
    message = load_error("words.csv", b"1,2\n3,cat\n")
    assert "'cat'" in message and "line 2, column 2" in message


def test_csv_empty_cell_is_refused() -> None:
    assert "empty value on line 2, column 1" in load_error("gap.csv", b"1,2\n,4\n")


def test_csv_header_only_is_refused() -> None:
    assert "no rows of numbers" in load_error("head.csv", b"x,y,z\n")


def test_csv_that_is_not_utf8_is_refused() -> None:
    assert "not UTF-8 text" in load_error("latin.csv", b"1,2\n\xff\xfe,3\n")


def test_text_over_the_text_limit_is_refused() -> None:
    message = load_error("long.csv", b"1,2\n" * 100, limits=LoadLimits(max_text_bytes=100))
    assert "400 bytes" in message and "np.save" in message


# --- JSON ----------------------------------------------------------------------------------


def test_json_list_of_floats_is_one_float32_array() -> None:
    [loaded] = load_data("a.json", b"[[0.5, 1], [2, 3.25]]")
    assert loaded.dtype == np.float32 and loaded.shape == (2, 2)
    np.testing.assert_array_equal(loaded, [[0.5, 1], [2, 3.25]])


def test_json_ints_and_bools() -> None:
    [ints] = load_data("i.json", b"[[1, 2, 3]]")
    assert ints.dtype == np.int32 and ints.shape == (1, 3)
    [flags] = load_data("b.json", b"[true, false]")
    assert flags.dtype == np.bool_ and flags.tolist() == [True, False]


def test_json_object_maps_input_names_to_arrays_in_order() -> None:
    loaded = load_data("feed.json", json.dumps({"tokens": [[101, 2023, 102]], "mask": [[1, 1, 1]], "scale": 0.5}).encode())
    assert isinstance(loaded, dict) and list(loaded) == ["tokens", "mask", "scale"]
    assert loaded["tokens"].dtype == np.int32 and loaded["tokens"].shape == (1, 3)
    assert loaded["scale"].shape == () and loaded["scale"].dtype == np.float32


def test_json_empty_list_is_an_empty_array() -> None:
    [loaded] = load_data("e.json", b"[]")
    assert loaded.shape == (0,)


def test_json_ragged_list_names_the_key() -> None:
    message = load_error("r.json", b'{"image": [[1, 2, 3], [4, 5]]}')
    assert "key 'image'" in message and "not rectangular" in message and "[1] has 2 items" in message


def test_json_ragged_depth_is_refused() -> None:
    message = load_error("d.json", b"[[1, 2], 3]")
    assert "not rectangular" in message and "[1]" in message


def test_json_non_numeric_value_names_key_and_position() -> None:
    message = load_error("s.json", b'{"x": [[1, "two"]]}')
    assert "key 'x'" in message and "'two'" in message and "[0][1]" in message


def test_json_null_and_nested_object_are_refused() -> None:
    assert "null" in load_error("n.json", b"[1, null]")
    assert "an object" in load_error("o.json", b'{"x": {"y": [1]}}')


def test_json_mixing_bools_and_numbers_is_refused() -> None:
    assert "true/false" in load_error("m.json", b"[true, 2]")


def test_invalid_json_is_refused() -> None:
    assert "not valid JSON" in load_error("bad.json", b"[1, 2,")


def test_deeply_nested_json_is_refused() -> None:
    assert "nested too deeply" in load_error("deep.json", b"[" * 100_000 + b"]" * 100_000)
    message = load_error("deep.json", b"[" * 40 + b"1" + b"]" * 40)
    assert "nested more than 32" in message


# --- parsing costs: time and memory in proportion to the file (issue 15, item 8) -----------
#
# Each case is a scaled copy of one measured on the 64 MiB cap (a one-row CSV took 27 s and
# 1.26 GB; a 16.5 M-row CSV 79 s of CPU; a JSON with 2 M keys 36 s and 1.1 GB). The work is
# bounded by counting it, not by timing it: the peak of memory traced while parsing, against
# the file's size, and the Python function calls made, against the number of values (the old
# parsers made one or more per value). Times at the cap are measured by bench/, not here.


class _Work:
    peak: int = 0
    calls: int = 0


def _measured(name: str, data: bytes, **kwargs: object) -> tuple[object, _Work]:
    import sys
    import tracemalloc

    load_data("warm-up.csv", b"1,2\n3,4\n")  # pandas' import is not the file's cost
    work = _Work()

    def count(frame: object, event: str, arg: object) -> None:
        if event == "call":
            work.calls += 1

    tracemalloc.start()
    sys.setprofile(count)
    try:
        result: object = load_data(name, data, **kwargs)  # type: ignore[arg-type]
    except DataLoadError as exc:
        result = exc
    finally:
        sys.setprofile(None)
        work.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, work


_VALUES = 1 << 19


@pytest.mark.parametrize(
    ("name", "data", "shape"),
    [
        ("one-row.csv", (b"0.5," * _VALUES)[:-1], (_VALUES,)),
        ("many-rows.csv", b"0.5\n" * _VALUES, (_VALUES, 1)),
        ("ints.csv", b"7\n" * _VALUES, (_VALUES, 1)),
        ("wide.csv", (b",".join([b"1.5"] * 2048) + b"\n") * (_VALUES // 2048), (_VALUES // 2048, 2048)),
        ("list.json", b"[" + b"0.5," * (_VALUES - 1) + b"0.5]", (_VALUES,)),
        ("lists.json", b"[" + b"[1]," * (_VALUES - 1) + b"[1]]", (_VALUES, 1)),
        ("rows.json", b"[" + (b"[" + b"0.5," * 63 + b"0.5],") * (_VALUES // 64 - 1) + b"[" + b"0.5," * 63 + b"0.5]]", (_VALUES // 64, 64)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_text_parses_in_memory_and_calls_proportional_to_the_file(name: str, data: bytes, shape: tuple[int, ...]) -> None:
    result, work = _measured(name, data)
    assert isinstance(result, list), result
    assert result[0].shape == shape
    # The densest numbers (two bytes each) become four-byte values: the array alone is twice
    # the file, and the old parsers peaked at 7 to 31 times it.
    assert work.peak < 6 * len(data), f"peak {work.peak / len(data):.1f} x the file"
    assert work.calls < _VALUES // 20, f"{work.calls} Python calls for {_VALUES} values"


def test_csv_values_come_back_exact_through_every_path() -> None:
    rng = np.random.default_rng(0)
    want = rng.integers(-(2**31), 2**31 - 1, size=(300, 5), dtype=np.int64)
    text = "\n".join(",".join(str(v) for v in row) for row in want).encode()
    [loaded] = load_data("ints.csv", text)
    assert loaded.dtype == np.int32
    np.testing.assert_array_equal(loaded, want)
    floats = rng.standard_normal((40, 3000)).astype(np.float32)  # wide: read as one column
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in floats).encode()
    [loaded] = load_data("wide.csv", text)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, floats)


def test_json_object_with_a_million_keys_is_refused_at_the_cap() -> None:
    data = b"{" + b",".join(b'"k%d": 0.5' % i for i in range(200_000)) + b"}"
    assert len(data) > 2 << 20
    result, work = _measured("keys.json", data)
    assert isinstance(result, DataLoadError)
    message = str(result)
    assert "more than 256 keys" in message and "one key per model input" in message
    assert work.peak < len(data), f"peak {work.peak / len(data):.1f} x the file"
    assert work.calls < 20_000  # a few dozen per key up to the cap, and none for the keys after it


def test_json_with_20000_keys_is_refused_with_the_figure_in_one_sentence() -> None:
    # The 209 KB file of the report: 20,000 keys, each of which once became an array and a
    # warning of its own.
    data = json.dumps({f"k{i}": [i] for i in range(20_000)}).encode()
    message = load_error("keys.json", data)
    assert "20,000 keys" in message and "256 arrays" in message


def test_json_key_cap_is_a_limit() -> None:
    data = json.dumps({f"k{i}": [i] for i in range(5)}).encode()
    assert "5 keys" in load_error("five.json", data, limits=LoadLimits(max_json_keys=4))
    assert len(load_data("five.json", data, limits=LoadLimits(max_json_keys=5))) == 5  # type: ignore[arg-type]


def test_json_with_a_duplicate_key_is_refused() -> None:
    assert "two keys named 'a'" in load_error("dup.json", b'{"a": [1], "a": [2]}')


def _large(document: bytes, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The same JSON padded past the size the standard library parses, so the large path reads it.

    Values are read as numbers by pandas from 4 KiB on; the test lowers that to 0 so that
    these small values take that way too.
    """
    import lite_debug.loading as loading

    monkeypatch.setattr(loading, "_JSON_SMALL_VALUE", 0)
    return document + b" " * (1 << 20)


def test_large_json_reads_what_small_json_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    for document in [
        b"[[0.5, 1], [2, 3.25]]",
        b"[[1, 2, 3]]",
        b"[true, false]",
        b"[]",
        b"[[], []]",
        b"3.5",
        b"[NaN, Infinity, -Infinity]",
        b"[3000000000]",
        b"[[[1], [2]], [[3], [4]]]",
        b'{"tokens": [[101, 2023, 102]], "mask": [[true, true, false]], "scale": 0.5}',
        b'{"caf\\u00e9": [1]}',
    ]:
        small = load_data("s.json", document)
        large = load_data("l.json", _large(document, monkeypatch))
        assert type(small) is type(large), document
        pairs = zip(small.values(), large.values()) if isinstance(small, dict) else zip(small, large)  # type: ignore[union-attr,arg-type]
        if isinstance(small, dict):
            assert list(small) == list(large), document  # type: ignore[arg-type]
        for a, b in pairs:
            assert a.dtype == b.dtype and a.shape == b.shape, document
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"[[1, 2], [3]]", "not a rectangular"),
        (b"[[1, 2], 3]", "not a rectangular"),
        (b"[1,,2]", "holds 2 numbers where its shape (3,) needs 3"),
        (b"[1 2]", "'1 2'"),
        (b"[[], [1]]", "not rectangular"),
        (b"[true, 2]", "mixes true/false"),
        (b'{"x": [1, null]}', "key 'x' holds null"),
        (b'{"x": "text"}', "key 'x' holds a string"),
        (b'{"x": {"y": [1]}}', "key 'x' holds an object"),
        (b'{"x": [1], "x": [2]}', "two keys named 'x'"),
        (b'{"x": [1]', "not valid JSON"),
        (b'{"x" [1]}', "a colon after the key"),
        (b"[" * 40 + b"1" + b"]" * 40, "nested more than 32"),
        (b"{}", "empty JSON object"),
        (b"[0x10]", "'x'"),
    ],
)
def test_large_json_problems_get_a_sentence(document: bytes, words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert words in load_error("big.json", _large(document, monkeypatch))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"x,y\n1,2\n\n3,4,5\n", "the row on line 4 has 3 values but the row on line 2 has 2"),
        (b"x,y\n1,2\n\n3\n", "the row on line 4 has 1 value but the row on line 2 has 2"),
        (b"x,y\n1,2\n\n3,\n", "an empty value on line 4, column 2"),
        (b"1,2\n3,4\n5,cat\n", "'cat' on line 3, column 2"),
        (b"1,2\n3,1_000\n", "'1_000' on line 2, column 2"),
        (b'1,"2\n3,4\n', "not valid CSV"),
    ],
)
def test_csv_problems_name_the_line_after_blank_lines(text: bytes, words: str) -> None:
    assert words in load_error("t.csv", text)


def test_csv_special_values_and_line_ends() -> None:
    [loaded] = load_data("s.csv", b"1,nan\r\n3,-inf\r\n")
    assert loaded.dtype == np.float32 and np.isnan(loaded[0, 1]) and loaded[1, 1] == -np.inf
    [loaded] = load_data("mac.csv", b"1,2\r3,4\r")
    np.testing.assert_array_equal(loaded, [[1, 2], [3, 4]])
    [loaded] = load_data("q.csv", b'"1","2"\n3,4\n  \n')
    np.testing.assert_array_equal(loaded, [[1, 2], [3, 4]])
    [loaded] = load_data("big.csv", b"1\n99999999999999999999\n")
    assert loaded.dtype == np.float32 and loaded[1, 0] == np.float32(1e20)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"1,2,3\n5,6\n", "the row on line 2 has 2 values but the row on line 1 has 3"),
        (b"1,2,3\n5,,6\n", "an empty value on line 2, column 2"),
        (b"1,2,3\n5,x,6\n", "'x' on line 2, column 2"),
    ],
)
def test_wide_csv_problems_name_the_line(monkeypatch: pytest.MonkeyPatch, text: bytes, words: str) -> None:
    import lite_debug.loading as loading

    monkeypatch.setattr(loading, "_WIDE_COLUMNS", 2)  # the wide path, on a file small enough to read
    assert words in load_error("w.csv", text)


def test_wide_csv_with_spaces_tabs_and_trailing_delimiters(monkeypatch: pytest.MonkeyPatch) -> None:
    import lite_debug.loading as loading

    monkeypatch.setattr(loading, "_WIDE_COLUMNS", 2)
    for text in [b"a,b,c\n1,2,3\n\n4,5,6\n", b"1 2 3\n4  5\t6\n", b"1,2,3,\n4,5,6,\n"]:
        [loaded] = load_data("w.csv", text)
        np.testing.assert_array_equal(loaded, [[1, 2, 3], [4, 5, 6]])


def test_a_line_far_longer_than_the_first_row_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import lite_debug.loading as loading

    monkeypatch.setattr(loading, "_LONG_LINE", 16)
    message = load_error("long.csv", b"1,2\n" + b"3," * 40 + b"4\n")
    assert "on line 2" in message and "row on line 1 with 2 values" in message
    [loaded] = load_data("row.csv", b",".join([b"1"] * 40))  # one long row is a row
    assert loaded.shape == (40,)


# --- raw bytes -----------------------------------------------------------------------------


def test_raw_bin_with_dtype_and_shape() -> None:
    want = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    [loaded] = load_data("in.bin", want.tobytes(), dtype="float32", shape=(1, 3, 4))
    assert loaded.dtype == np.float32 and loaded.shape == (1, 3, 4)
    np.testing.assert_array_equal(loaded, want)
    assert loaded.flags.writeable


def test_raw_with_unknown_extension_when_dtype_and_shape_are_given() -> None:
    [loaded] = load_data("frame.rgb", bytes(range(6)), dtype="uint8", shape=(2, 3))
    assert loaded.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_raw_with_wrong_size_names_both_numbers() -> None:
    message = load_error("in.bin", bytes(40), dtype="float32", shape=(1, 3, 4))
    assert "40 bytes" in message and "48 bytes" in message and "10 float32 values" in message


def test_raw_without_dtype_and_shape_is_refused() -> None:
    message = load_error("in.bin", bytes(48))
    assert "dtype and shape" in message


def test_raw_with_bad_or_object_dtype_is_refused() -> None:
    assert "not a numpy dtype" in load_error("in.bin", bytes(8), dtype="float33", shape=(2,))
    assert "plain numbers only" in load_error("in.bin", bytes(8), dtype="object", shape=(1,))


def test_npy_renamed_bin_loads_as_npy_when_no_dtype_is_given() -> None:
    [loaded] = load_data("saved.bin", npy_bytes(np.arange(3)))
    assert loaded.tolist() == [0, 1, 2]


def test_self_describing_files_ignore_a_dtype_and_shape_that_do_not_fit() -> None:
    # The command line passes the model's dtype and shape along with every file.
    hints = {"dtype": "float32", "shape": (1, 4)}
    [npy] = load_data("x.npy", npy_bytes(np.arange(3)), **hints)  # type: ignore[arg-type]
    assert npy.tolist() == [0, 1, 2]
    [png] = load_data("noext", image_bytes(Image.new("L", (2, 2)), "PNG"), **hints)  # type: ignore[arg-type]
    assert png.shape == (2, 2)
    [renamed] = load_data("x.bin", npy_bytes(np.arange(3)), **hints)  # type: ignore[arg-type]
    assert renamed.tolist() == [0, 1, 2]
    # ... while raw bytes that happen to start like a .npy but fit exactly stay raw.
    raw = npy_bytes(np.arange(3))[:16]
    [kept] = load_data("x.bin", raw, **hints)  # type: ignore[arg-type]
    assert kept.tobytes() == raw


# --- things that are not data --------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.npy", "empty.png", "empty.csv", "empty.bin"])
def test_empty_file_is_refused(name: str) -> None:
    assert "is empty (0 bytes)" in load_error(name, b"")


def test_file_over_max_bytes_is_refused() -> None:
    assert "more than the 10 bytes" in load_error("x.npy", bytes(11), limits=LoadLimits(max_bytes=10))


@pytest.mark.parametrize("name", ["noise.npy", "noise.npz", "noise.png", "noise.jpg"])
def test_random_bytes_under_a_binary_extension(name: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    assert "corrupt" in load_error(name, noise)


def test_random_bytes_with_no_known_extension() -> None:
    noise = np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    assert "not a format lite-debug knows" in load_error("mystery", noise)


@pytest.mark.parametrize("name", ["input.npy", "image.png", "data.csv", "data.json", "download"])
def test_html_page_is_recognised(name: str) -> None:
    page = b"\n<!DOCTYPE html>\n<html lang='en'><head><title>input.npy at main</title></head><body></body></html>"
    message = load_error(name, page)
    assert "HTML web page" in message and "raw file" in message


def test_git_lfs_pointer_is_recognised() -> None:
    pointer = (
        b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        b"size 602112\n"
    )
    message = load_error("input.npy", pointer)
    assert "Git LFS pointer" in message and "588.0 KiB file" in message and "git lfs pull" in message


def test_pickle_is_refused_by_name_and_never_loaded(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"
    payload = pickle.dumps(Evil(marker), protocol=4)
    for name in ("sample.npy", "sample.pkl", "sample.bin"):
        message = load_error(name, payload)
        assert "Python pickle" in message and "never unpickles" in message
    assert not marker.exists()


def test_tflite_model_uploaded_as_data_is_recognised() -> None:
    model = b"\x1c\x00\x00\x00TFL3" + bytes(100)
    assert "TFLite model" in load_error("model.tflite", model)


def test_unnamed_file_still_gets_a_sentence() -> None:
    with pytest.raises(DataLoadError, match=r"^'\(unnamed file\)' is empty"):
        load_data("", b"")


# --- describe_array ------------------------------------------------------------------------


def test_describe_array_counts_nan_and_inf_and_skips_them_in_stats() -> None:
    summary = describe_array(np.array([[1.0, np.nan], [3.0, -np.inf]], dtype=np.float32))
    assert summary == {
        "shape": (2, 2),
        "dtype": "float32",
        "size": 4,
        "min": 1.0,
        "max": 3.0,
        "mean": 2.0,
        "nan": 1,
        "inf": 1,
    }


def test_describe_array_of_ints_bools_and_empty() -> None:
    ints = describe_array(np.array([-128, 127], dtype=np.int8))
    assert (ints["min"], ints["max"], ints["mean"]) == (-128, 127, -0.5)
    assert isinstance(ints["min"], int)
    flags = describe_array(np.array([True, False, True]))
    assert (flags["min"], flags["max"]) == (0, 1)
    empty = describe_array(np.zeros((0, 3), dtype=np.float32))
    assert empty["shape"] == (0, 3) and empty["min"] is None and empty["mean"] is None
    all_nan = describe_array(np.array([np.nan]))
    assert all_nan["nan"] == 1 and all_nan["min"] is None
    json.dumps(describe_array(np.ones((2, 2), dtype=np.uint8)))


# --- fuzzing: any bytes give arrays or a DataLoadError, never anything else ----------------

_EXTENSIONS = ["x.npy", "x.npz", "x.png", "x.jpg", "x.bmp", "x.csv", "x.json", "x.bin", "x.dat", "x"]
_PREFIXES = [
    b"",
    b"\x93NUMPY\x01\x00",
    b"\x93NUMPY\x02\x00",
    b"PK\x03\x04",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"BM",
    b"[",
    b"{",
    b"1,2\n",
]


def _valid_files() -> list[tuple[str, bytes]]:
    return [
        ("v.npy", npy_bytes(np.arange(6, dtype=np.float32).reshape(2, 3))),
        ("v.npz", npz_bytes(a=np.arange(4), b=np.ones((2, 2)), compressed=True)),
        ("v.png", image_bytes(Image.fromarray(gradient(6, 5, 3)), "PNG")),
        ("v.jpg", image_bytes(Image.fromarray(gradient(8, 8, 3)), "JPEG")),
        ("v.bmp", image_bytes(Image.fromarray(gradient(3, 4, 1)), "BMP")),
        ("v.csv", b"a,b\n1,2.5\n3,4\n"),
        ("v.json", b'{"x": [[1, 2], [3, 4]], "y": [true]}'),
    ]


_VALID = _valid_files()


def _loads_or_refuses(name: str, data: bytes, **kwargs: object) -> None:
    try:
        result = load_data(name, data, limits=LoadLimits(max_pixels=1_000_000), **kwargs)  # type: ignore[arg-type]
    except DataLoadError as exc:
        assert str(exc).endswith("."), str(exc)
        return
    arrays = list(result.values()) if isinstance(result, dict) else result
    assert arrays and all(isinstance(a, np.ndarray) for a in arrays)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(_EXTENSIONS),
    prefix=st.sampled_from(_PREFIXES),
    body=st.binary(max_size=300),
    raw=st.booleans(),
)
def test_random_bytes_never_raise_anything_but_data_load_error(name: str, prefix: bytes, body: bytes, raw: bool) -> None:
    data = prefix + body
    kwargs: dict[str, object] = {"dtype": "uint8", "shape": (len(data),)} if raw else {}
    _loads_or_refuses(name, data, **kwargs)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    file=st.sampled_from(_VALID),
    cut=st.integers(min_value=0, max_value=10_000),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)), max_size=4),
)
def test_damaged_valid_files_never_raise_anything_but_data_load_error(
    file: tuple[str, bytes], cut: int, flips: list[tuple[int, int]]
) -> None:
    name, original = file
    data = bytearray(original)
    for position, value in flips:
        data[position % len(data)] = value
    if cut < len(data):
        del data[cut:]
    _loads_or_refuses(name, bytes(data))


def test_default_limits_are_documented_values() -> None:
    assert DEFAULT_LIMITS == LoadLimits(
        max_bytes=1 << 30,
        max_array_bytes=1 << 30,
        max_pixels=50_000_000,
        max_text_bytes=64 << 20,
        max_npz_members=256,
        max_json_keys=256,
        max_audio_seconds=600.0,
    )


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = image_bytes(Image.new("CMYK", (5, 4), (0, 255, 255, 0)), "JPEG", quality=95)
    [loaded] = load_data("print.jpg", data)
    assert loaded.shape == (4, 5, 3) and loaded.dtype == np.uint8
    assert loaded[0, 0, 0] > 200 and loaded[0, 0, 1] < 50  # cyan-free, magenta+yellow: red


def test_memory_error_becomes_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(np, "load", out_of_memory)
    message = load_error("x.npy", npy_bytes(np.zeros(3)))
    assert "more memory than this machine has free" in message


# --- audio (issue 16, item 1) --------------------------------------------------------------

sf = pytest.importorskip("soundfile")

_RATE = 16_000


def _tone(frames: int, channels: int) -> np.ndarray:
    """A distinct sine per channel at half scale, as float32 [frames, channels]."""
    t = np.arange(frames) / _RATE
    return np.stack([0.5 * np.sin(2 * np.pi * (220 * (c + 1)) * t) for c in range(channels)], axis=1).astype(np.float32)


def audio_bytes(x: np.ndarray, rate: int = _RATE, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


# How far a decoded sample may be from the original: one step of the format, or the codec's loss.
_WAV_SUBTYPES = {"PCM_U8": 1 / 128, "PCM_16": 1 / 32768, "PCM_24": 1 / 2**23, "PCM_32": 1 / 2**31, "FLOAT": 0.0, "DOUBLE": 0.0}


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", sorted(_WAV_SUBTYPES))
def test_wav_of_every_sample_format_and_channel_count(subtype: str, channels: int) -> None:
    want = _tone(4000, channels)
    loaded = load_file("clip.wav", audio_bytes(want, subtype=subtype))
    assert loaded.format == "audio" and isinstance(loaded.arrays, list) and len(loaded.arrays) == 1
    [samples] = loaded.arrays
    assert samples.dtype == np.float32 and samples.flags.c_contiguous and samples.flags.writeable
    assert samples.shape == ((4000,) if channels == 1 else (4000, channels))
    np.testing.assert_allclose(samples.reshape(4000, channels), want, atol=_WAV_SUBTYPES[subtype] + 1e-7)
    info = loaded.audio
    assert info is not None
    assert (info.sample_rate, info.channels, info.frames, info.container) == (_RATE, channels, 4000, "WAV")
    assert info.sample_format == subtype and info.duration == pytest.approx(0.25)
    assert info.layout == ("[samples]" if channels == 1 else "[samples, channels]")
    assert info.clipped_fraction == 0.0


def test_int16_samples_are_divided_by_32768() -> None:
    codes = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    [samples] = load_data("codes.wav", audio_bytes(codes))
    np.testing.assert_array_equal(samples, codes.astype(np.float32) / 32768)


def test_clipped_fraction_counts_samples_at_full_scale() -> None:
    codes = np.array([32767, -32768, 100, -100, 32767, 0, 5, 6], dtype=np.int16)
    info = load_file("loud.wav", audio_bytes(codes)).audio
    assert info is not None and info.clipped_fraction == pytest.approx(3 / 8)
    u8 = load_file("loud8.wav", audio_bytes(np.array([1.0, -1.0, 0.0, 0.0], np.float32), subtype="PCM_U8")).audio
    assert u8 is not None and u8.clipped_fraction == pytest.approx(2 / 4)


@pytest.mark.parametrize(
    ("fmt", "subtype", "name", "tolerance"),
    [
        ("FLAC", "PCM_16", "clip.flac", 1 / 32768),
        ("FLAC", "PCM_24", "clip.flac", 1 / 2**23),
        ("OGG", "VORBIS", "clip.ogg", None),
        ("MP3", "MPEG_LAYER_III", "clip.mp3", None),
    ],
)
def test_flac_ogg_and_mp3_decode(fmt: str, subtype: str, name: str, tolerance: float | None) -> None:
    want = _tone(8000, 2)
    loaded = load_file(name, audio_bytes(want, fmt=fmt, subtype=subtype))
    info = loaded.audio
    assert info is not None and info.channels == 2 and info.sample_rate == _RATE and info.sample_format == subtype
    [samples] = loaded.arrays
    assert samples.dtype == np.float32 and samples.shape[1] == 2
    if tolerance is not None:  # lossless: the samples themselves
        np.testing.assert_allclose(samples, want, atol=tolerance)
    else:  # lossy: the same tones, at about the same level
        assert abs(samples.shape[0] - 8000) <= 2000
        assert float(np.sqrt(np.mean(samples**2))) == pytest.approx(0.5 / np.sqrt(2), rel=0.15)


def test_audio_is_recognised_by_content_under_any_name() -> None:
    data = audio_bytes(_tone(100, 1))
    assert load_file("recording.bin", data).format == "audio"  # no dtype/shape: what it says it is
    assert load_file("recording", data).format == "audio"
    flac = audio_bytes(_tone(100, 1), fmt="FLAC")
    assert load_file("x.wav", flac).audio.container == "FLAC"  # type: ignore[union-attr]


def test_wav_is_no_longer_read_as_raw_bytes_with_the_models_shape() -> None:
    # The command line and the dashboard pass each input's dtype and shape along; a .wav once
    # went to the raw reader with them and came back as "288,044 bytes but ... needs 576,000".
    data = audio_bytes(_tone(144_000, 1), rate=48_000)
    loaded = load_file("clip.wav", data, dtype="float32", shape=(1, 144_000))
    assert loaded.format == "audio" and loaded.arrays[0].shape == (144_000,)  # type: ignore[index]
    assert loaded.audio is not None and loaded.audio.duration == pytest.approx(3.0)


def test_load_data_still_returns_plain_arrays_for_audio_and_facts_are_none_elsewhere() -> None:
    result = load_data("clip.wav", audio_bytes(_tone(10, 1)))
    assert type(result) is list and isinstance(result[0], np.ndarray)
    assert load_file("x.npy", npy_bytes(np.zeros(3))).audio is None
    assert load_file("x.npy", npy_bytes(np.zeros(3))).format == "npy"
    assert load_file("x.csv", b"1,2\n").format == "csv"
    assert load_file("x.bin", bytes(4), dtype="uint8", shape=(4,)).format == "raw"


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def test_hostile_wav_headers_get_a_sentence_before_anything_is_allocated() -> None:
    import tracemalloc

    clip = audio_bytes(_tone(1000, 1), subtype="PCM_U8")  # 44-byte header: data size at 40
    cases = {
        "frames.wav": (_patched(clip, 40, "<I", 2**31), ["truncated", "2,147,483,648 frames"]),
        "cut.wav": (clip[:500], ["truncated", "1,000 frames", "456 bytes"]),
        "mono0.wav": (_patched(clip, 22, "<H", 0), ["0 channels"]),
        "rate.wav": (_patched(clip, 24, "<I", 3_000_000_000), ["3,000,000,000 Hz"]),
        "rate0.wav": (_patched(clip, 24, "<I", 0), ["0 Hz"]),
        "chunks.wav": (b"RIFF\x04\x00\x00\x00WAVEjunk\x00\x00\x00\x00", ["without a format chunk"]),
    }
    for name, (data, words) in cases.items():
        tracemalloc.start()
        message = load_error(name, data)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert all(w in message for w in words), message
        assert peak < 1 << 20, f"{name}: {peak} bytes"


def test_an_hour_of_silence_is_refused_by_the_duration_cap_from_its_header() -> None:
    silence = audio_bytes(np.zeros(8_000 * 3_700, dtype=np.int16), rate=8_000)  # 59 MB of 8 kHz silence
    message = load_error("silence.wav", silence)
    assert "1 h 1 min of audio" in message and "8,000 Hz" in message and "10 min" in message
    assert "3 s" in load_error("short.wav", audio_bytes(_tone(_RATE * 3, 1)), limits=LoadLimits(max_audio_seconds=2))


def test_a_riff_size_that_lies_is_ignored_as_libsndfile_does() -> None:
    clip = audio_bytes(_tone(1000, 1))
    for riff_size in (0xFFFFFFF0, 4):
        info = load_file("lie.wav", _patched(clip, 4, "<I", riff_size)).audio
        assert info is not None and info.frames == 1000


def test_damaged_audio_gets_a_sentence() -> None:
    assert "could not be decoded" in load_error("noise.mp3", b"\xff\xfb" + bytes(2000))
    assert "could not be decoded" in load_error("noise.flac", b"fLaC" + bytes(100))
    assert "named like a WAV" in load_error("text.wav", b"hello, this is text\n")
