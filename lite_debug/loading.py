"""Reading a user's sample-data file into numpy arrays.

Sample data reaches lite-debug as uploads, often attached to bug reports, so every file is
treated as hostile until proven otherwise: sizes are checked against ``LoadLimits`` *before*
anything is allocated, nothing is ever unpickled, and every failure of numpy, Pillow, ``json``
or ``zipfile`` is turned into a ``DataLoadError`` whose message is one sentence that names the
file, says what was wrong and what to do about it.

Formats, chosen by extension (case-insensitive) and confirmed by the file's magic bytes; when
the two disagree, the content wins, and a file without a known extension is recognised from its
content alone:

==========================  ===============================================================
``.npy``                    one array, as saved
``.npz``                    a dict ``member name -> array`` in archive order (``arr_0`` …)
``.png`` ``.jpg`` ``.bmp``  one H×W (gray) / H×W×2 (gray+alpha) / H×W×3 / H×W×4 array,
                            uint8, or uint16 for 16-bit gray PNG
``.csv`` ``.tsv`` ``.txt``  numbers only; one array, 1-D for one row, 2-D otherwise
``.json``                   a nested list (one array) or an object ``name -> nested list``
``.bin`` ``.raw`` ``.dat``  raw bytes; needs ``dtype`` and ``shape`` (so does any unknown
                            extension that should be read as raw bytes)
==========================  ===============================================================

Numbers from text (CSV, JSON) become float32 if any is a fraction, otherwise int32 when they
all fit, int64 when they all fit that, float32 beyond; JSON ``true``/``false`` become bool.
float32 and int32 are what TFLite models take most often; the diagnosis, not the loader, says
when a model wants something else. Arrays come back C-contiguous, writable, in native byte
order, and owned by the caller.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import struct
import warnings
from array import array
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image, ImageOps

from lite_debug.errors import DataLoadError

__all__ = [
    "DEFAULT_LIMITS",
    "LoadLimits",
    "describe_array",
    "load_data",
]

LoadedData = dict[str, np.ndarray] | list[np.ndarray]


@dataclass(frozen=True)
class LoadLimits:
    """How much a data file may make lite-debug read and allocate.

    ``max_bytes`` caps the file itself; ``max_array_bytes`` caps the size an array header
    declares, and for an ``.npz`` the total of all its arrays, so a small, well-compressed
    file cannot make lite-debug allocate gigabytes; ``max_pixels`` caps an image's width ×
    height before it is decoded; ``max_text_bytes`` caps CSV and JSON, whose parsing costs
    far more memory than their size; ``max_npz_members`` caps the members of an ``.npz``.
    """

    max_bytes: int = 1 << 30
    max_array_bytes: int = 1 << 30
    max_pixels: int = 50_000_000
    max_text_bytes: int = 64 << 20
    max_npz_members: int = 256


DEFAULT_LIMITS = LoadLimits()

_NPY_EXTS = {".npy": "npy", ".npz": "npz"}
_IMAGE_EXTS = {".png": "image", ".jpg": "image", ".jpeg": "image", ".jpe": "image", ".bmp": "image", ".dib": "image"}
_TEXT_EXTS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json"}
_RAW_EXTS = {".bin", ".raw", ".dat"}
_FORMAT_OF_EXT = {**_NPY_EXTS, **_IMAGE_EXTS, **_TEXT_EXTS}
_FORMAT_NAMES = {
    "npy": "a NumPy .npy file",
    "npz": "a NumPy .npz archive",
    "image": "a PNG, JPEG or BMP image",
    "csv": "CSV text",
    "json": "JSON",
}
_SUPPORTED = ".npy, .npz, PNG, JPEG, BMP, CSV, JSON, or raw bytes with a dtype and shape"

_NPY_MAGIC = b"\x93NUMPY"
_LFS_MAGIC = b"version https://git-lfs.github.com/spec/"
# How much of a member is read to parse an .npy header: numpy refuses headers over 10000
# bytes anyway, and reading a bounded prefix keeps a lying header-length field from making
# us read (or decompress) gigabytes just to look at it.
_NPY_HEADER_PREFIX = 1 << 16
_MAX_NDIM = 32
_IMAGE_FORMATS = ["PNG", "JPEG", "BMP"]
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_JSON_NUMBER_TYPES = (int, float, bool)

# Files people upload by mistake, recognised so that the message can say what they are.
_IMPOSTORS: tuple[tuple[Callable[[bytes], bool], str, str], ...] = (
    (
        lambda d: len(d) >= 2 and d[0] == 0x80 and 2 <= d[1] <= 5,
        "a Python pickle",
        "lite-debug never unpickles files because unpickling can run code from them; "
        "save the array with np.save or np.savez instead",
    ),
    (
        lambda d: d[4:8] == b"TFL3",
        "a TFLite model, not sample data",
        "upload it as the model and give the input data as a separate file",
    ),
    (
        lambda d: d.startswith(b"\x1f\x8b"),
        "a gzip-compressed file",
        "decompress it and upload the file inside",
    ),
    (
        lambda d: d.startswith((b"GIF87a", b"GIF89a")),
        "a GIF image",
        "convert it to PNG, which lite-debug reads",
    ),
    (
        lambda d: d.startswith((b"II*\x00", b"MM\x00*")),
        "a TIFF image",
        "convert it to PNG, which lite-debug reads",
    ),
    (
        lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP",
        "a WebP image",
        "convert it to PNG, which lite-debug reads",
    ),
    (
        lambda d: d.startswith(b"\x89HDF\r\n\x1a\n"),
        "an HDF5 file (for example a Keras .h5 model)",
        "export the arrays with np.save or np.savez and upload those",
    ),
    (
        lambda d: d.startswith(b"%PDF"),
        "a PDF document",
        f"export the data as one of: {_SUPPORTED}",
    ),
)

# A page starts with a tag (perhaps a comment first) and names itself html early on.
_HTML_RE = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]")


def load_data(
    name: str,
    data: bytes,
    *,
    dtype: str | None = None,
    shape: tuple[int, ...] | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
) -> LoadedData:
    """Read the bytes of a sample-data file into numpy arrays.

    ``name`` is the file's name as uploaded: its extension picks the format (see the module
    docstring) and it appears in every error message. ``dtype`` and ``shape`` are needed, and
    used, only for raw bytes (``.bin``, ``.raw``, ``.dat``, or an unknown extension); formats
    that describe themselves ignore them.

    Returns a one-element list for ``.npy``, an image, CSV, raw bytes and JSON holding one
    nested list; a dict ``name -> array`` for ``.npz`` (keys as stored, in archive order) and
    for a JSON object. Every array is a fresh copy the caller owns.

    Raises ``DataLoadError`` when the file is empty, truncated, corrupt, of an unknown or
    refused kind (object arrays, pickles, HTML pages, Git LFS pointers, …), or over one of
    ``limits``; and ``TypeError`` when ``data`` is not bytes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"load_data() needs the file's bytes, not {type(data).__name__}")
    data = bytes(data)
    label = _label(name)
    if not data:
        raise DataLoadError(f"{label} is empty (0 bytes); upload it again, or check that it was saved completely.")
    if len(data) > limits.max_bytes:
        raise DataLoadError(
            f"{label} is {_size(len(data))}, more than the {_size(limits.max_bytes)} lite-debug reads; "
            "send a smaller sample, for example a single batch."
        )
    _refuse_pointer_or_page(label, data)
    try:
        return _dispatch(name, label, data, dtype, shape, limits)
    except MemoryError:
        # Not swallowed: the user learns the file was too big for this machine, and why.
        raise DataLoadError(
            f"{label} needs more memory than this machine has free to load; send a smaller sample, "
            "for example a single batch."
        ) from None


def describe_array(a: np.ndarray) -> dict[str, Any]:
    """Summarise an array for a table: shape, dtype, size, min, max, mean and NaN/inf counts.

    ``min``, ``max`` and ``mean`` are taken over the finite values only (NaN and infinities
    are counted separately), and are ``None`` when there are none or the dtype has no order
    (complex, strings). Values are plain Python numbers, so the dict serialises as JSON.
    Raises nothing for any ndarray.
    """
    a = np.asarray(a)
    summary: dict[str, Any] = {
        "shape": tuple(int(d) for d in a.shape),
        "dtype": str(a.dtype),
        "size": int(a.size),
        "min": None,
        "max": None,
        "mean": None,
        "nan": 0,
        "inf": 0,
    }
    kind = a.dtype.kind
    if kind in "fc":
        nan = np.isnan(a)
        inf = np.isinf(a)
        summary["nan"] = int(np.count_nonzero(nan))
        summary["inf"] = int(np.count_nonzero(inf))
    if kind not in "biuf" or a.size == 0:
        return summary
    values = a
    if kind == "f" and (summary["nan"] or summary["inf"]):
        values = a[np.isfinite(a)]
        if values.size == 0:
            return summary
    if kind == "b":
        values = values.astype(np.uint8)
    summary["min"] = values.min().item()
    summary["max"] = values.max().item()
    # float64 accumulation: a float16/int8 sum would overflow long before a table row does.
    summary["mean"] = float(values.mean(dtype=np.float64))
    return summary


# --- choosing the format -------------------------------------------------------------------


def _dispatch(
    name: str,
    label: str,
    data: bytes,
    dtype: str | None,
    shape: tuple[int, ...] | None,
    limits: LoadLimits,
) -> LoadedData:
    ext = _extension(name)
    sniffed = _sniff(data)
    raw_requested = ext in _RAW_EXTS or (ext not in _FORMAT_OF_EXT and (dtype is not None or shape is not None))
    if raw_requested:
        if dtype is not None and shape is not None:
            if sniffed is not None and not _raw_size_fits(len(data), dtype, shape):
                # Callers may pass the model's dtype and shape for every file (the command
                # line does); a .npy or image named .bin that does not fit them is what it says.
                return _LOADERS[sniffed](label, data, limits)
            return [_load_raw(label, data, dtype, shape, sniffed)]
        if sniffed is not None and dtype is None and shape is None:
            # A .npy or an image renamed to .bin: it says what it is, so read it as that.
            return _LOADERS[sniffed](label, data, limits)
        impostor = _impostor(data)
        if impostor is not None and dtype is None and shape is None:
            what, remedy = impostor
            raise DataLoadError(f"{label} is {what}; {remedy}.")
        missing = " and ".join(w for w, v in (("dtype", dtype), ("shape", shape)) if v is None)
        raise DataLoadError(
            f"{label} is raw bytes with no header, so lite-debug needs its {missing} to read it; "
            "give both (for example dtype float32 and shape 1,224,224,3), or save the array with np.save."
        )

    expected = _FORMAT_OF_EXT.get(ext)
    if sniffed is not None:
        # The magic bytes are certain where the extension is only a name: a JPEG saved as
        # .png, or an .npz renamed .npy, loads as what it is.
        return _LOADERS[sniffed](label, data, limits)
    if expected is not None:
        if expected in ("npy", "npz", "image") or _impostor(data) is not None:
            raise DataLoadError(_not_what_it_claims(label, data, expected))
        if expected == "csv" and (_peek_text(data) or "").lstrip().startswith(("[", "{")):
            expected = "json"  # no CSV of numbers starts so; JSON saved as .txt does
        return _LOADERS[expected](label, data, limits)

    impostor = _impostor(data)
    if impostor is not None:
        what, remedy = impostor
        raise DataLoadError(f"{label} is {what}; {remedy}.")
    text = _peek_text(data)
    if text is not None:
        stripped = text.lstrip()
        if stripped.startswith(("[", "{")):
            return _load_json(label, data, limits)
        if stripped and re.match(r"[-+.\w\"' \t,;]+$", stripped.splitlines()[0]):
            return _load_csv(label, data, limits)
    shown = f"extension {ext!r}" if ext else "no extension"
    raise DataLoadError(
        f"{label} has {shown} and its content is not a format lite-debug knows; "
        f"upload {_SUPPORTED}."
    )


def _extension(name: str) -> str:
    return PurePosixPath(str(name).replace("\\", "/")).suffix.lower()


def _sniff(data: bytes) -> str | None:
    """The format the magic bytes prove, for the formats that have magic bytes."""
    if data.startswith(_NPY_MAGIC):
        return "npy"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    if data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        return "image"
    # "BM" alone is too weak a sign; the size of the info header that follows narrows it.
    if data.startswith(b"BM") and len(data) >= 18 and struct.unpack_from("<I", data, 14)[0] in {12, 16, 40, 52, 56, 64, 108, 124}:
        return "image"
    return None


def _impostor(data: bytes) -> tuple[str, str] | None:
    for test, what, remedy in _IMPOSTORS:
        if test(data):
            return what, remedy
    return None


def _refuse_pointer_or_page(label: str, data: bytes) -> None:
    """Refuse the two commonest non-data downloads: LFS pointers and web pages."""
    if data.startswith(_LFS_MAGIC):
        m = re.search(rb"^size (\d+)\s*$", data[:1024], re.MULTILINE)
        real = f" to a {_size(int(m.group(1)))} file" if m else ""
        raise DataLoadError(
            f"{label} is a Git LFS pointer{real}, not the data itself; run 'git lfs pull' in the "
            "repository (or use the file's download link) and upload the real file."
        )
    head = data[:4096].lower().removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<") and _HTML_RE.search(head):
        raise DataLoadError(
            f"{label} is an HTML web page, not data (it was probably saved from a browser or a "
            "'blob' link); download the raw file instead, for example with GitHub's 'Raw' button."
        )
    if head.startswith(b"<?xml"):
        raise DataLoadError(
            f"{label} is an XML document (often an error page from a download or storage service), "
            "not data; download the file again and check that you get the data itself."
        )


def _not_what_it_claims(label: str, data: bytes, expected: str) -> str:
    impostor = _impostor(data)
    if impostor is not None:
        what, remedy = impostor
        return f"{label} is named like {_FORMAT_NAMES[expected]} but is {what}; {remedy}."
    looks = "text" if _peek_text(data) is not None else "unrecognised binary data"
    return (
        f"{label} is named like {_FORMAT_NAMES[expected]} but its content is {looks}, so the file "
        "is corrupt or in another format; save or download it again."
    )


def _peek_text(data: bytes) -> str | None:
    """The first few KiB as text, or ``None`` when they are not plain UTF-8 text."""
    head = data[:4096]
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the 4 KiB boundary is still text.
        if len(data) <= len(head) or exc.start < len(head) - 3:
            return None
        text = head[: exc.start].decode("utf-8-sig")
    if any(ord(c) < 32 and c not in "\t\r\n\f" for c in text):
        return None
    return text


# --- .npy and .npz -------------------------------------------------------------------------


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    nbytes: int


def _check_npy_header(what: str, prefix: bytes, available: int, limits: LoadLimits) -> _NpyHeader:
    """Parse and vet an .npy header without allocating the array it describes.

    ``prefix`` is the start of the .npy stream; ``available`` its full length in bytes.
    """
    fp = io.BytesIO(prefix)
    try:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = npy_format.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            # 3.0 only differs from 2.0 in allowing UTF-8 in the header, which matters for
            # structured-dtype field names alone, and those are refused below anyway.
            shape, _fortran, dtype = npy_format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not one numpy writes")
    except MemoryError:
        raise
    except Exception as exc:  # numpy raises ValueError, SyntaxError, EOFError, … for bad headers
        raise DataLoadError(
            f"{what} has a damaged NumPy header ({_reason(exc)}); save the array again with np.save."
        ) from None
    if dtype.hasobject:
        raise DataLoadError(
            f"{what} holds an object array, and object arrays need unpickling, which could run code "
            "from the file, so lite-debug refuses them; save the array with a numeric dtype "
            "(for example np.save(path, x.astype(np.float32)))."
        )
    if dtype.names is not None or dtype.kind == "V" or dtype.subdtype is not None:
        raise DataLoadError(
            f"{what} holds a structured array of dtype {dtype}, not plain numbers; save each field "
            "as its own array, for example with np.savez(path, **{n: x[n] for n in x.dtype.names})."
        )
    if any(d < 0 for d in shape):
        raise DataLoadError(f"{what} has a damaged NumPy header (negative shape {shape}); save the array again with np.save.")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise DataLoadError(
            f"{what} declares a {dtype} array of shape {shape}, which would take {_size(nbytes)}, "
            f"more than the {_size(limits.max_array_bytes)} lite-debug allows; send a smaller sample, "
            "for example a single batch."
        )
    offset = fp.tell()
    if available - offset < nbytes:
        raise DataLoadError(
            f"{what} is truncated: its header declares a {dtype} array of shape {shape} ({nbytes} bytes) "
            f"but only {max(available - offset, 0)} bytes follow it; download or save the file again."
        )
    return _NpyHeader(shape=tuple(shape), dtype=dtype, offset=offset, nbytes=nbytes)


def _load_npy(label: str, data: bytes, limits: LoadLimits) -> LoadedData:
    _check_npy_header(label, data[:_NPY_HEADER_PREFIX], len(data), limits)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise DataLoadError(f"{label} could not be read as a NumPy array ({_reason(exc)}); save it again with np.save.") from None
    return [_owned(array)]


def _load_npz(label: str, data: bytes, limits: LoadLimits) -> LoadedData:
    # Every central-directory entry starts with this signature, so its count bounds what
    # zipfile would parse (entries cost memory) before zipfile is let anywhere near the file.
    if data.count(b"PK\x01\x02") > limits.max_npz_members:
        raise DataLoadError(
            f"{label} has more than {limits.max_npz_members} members, more than lite-debug reads from "
            "one archive; put only the model's inputs in it."
        )
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise DataLoadError(
            f"{label} is not a readable .npz archive ({_reason(exc)}); the file is corrupt or truncated, "
            "so save it again with np.savez."
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):  # np.load only returns an NpzFile for zips
        raise DataLoadError(f"{label} is not a readable .npz archive; save it again with np.savez.")
    with npz:
        infos = [info for info in npz.zip.infolist() if not info.filename.endswith("/")]
        if not infos:
            raise DataLoadError(f"{label} is an archive with no arrays in it; save the inputs into it with np.savez.")
        if len(infos) > limits.max_npz_members:
            raise DataLoadError(
                f"{label} has {len(infos)} members, more than the {limits.max_npz_members} lite-debug reads "
                "from one archive; put only the model's inputs in it."
            )
        names = [info.filename for info in infos]
        duplicate = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if duplicate is not None:
            # zipfile reads a name's last entry, so a checked first entry could hide another.
            raise DataLoadError(
                f"{label} has two members named {duplicate!r}, so which array is meant is unclear; "
                "save the archive again with np.savez."
            )
        total = 0
        for info in infos:
            what = f"Member {info.filename!r} of {label}"
            lower = info.filename.lower()
            if info.flag_bits & 0x1:
                raise DataLoadError(f"{what} is encrypted; save the archive again without a password, with np.savez.")
            if lower.endswith((".npz", ".zip")):
                raise DataLoadError(
                    f"{what} is itself an archive, and lite-debug does not open archives inside archives; "
                    "put the arrays directly into one .npz with np.savez."
                )
            try:
                with npz.zip.open(info) as member:
                    prefix = member.read(_NPY_HEADER_PREFIX)
            except MemoryError:
                raise
            except Exception as exc:
                raise DataLoadError(
                    f"{what} could not be read ({_reason(exc)}); the archive is corrupt, so save it again with np.savez."
                ) from None
            if prefix.startswith((b"PK\x03\x04", b"PK\x05\x06")):
                raise DataLoadError(
                    f"{what} is itself an archive, and lite-debug does not open archives inside archives; "
                    "put the arrays directly into one .npz with np.savez."
                )
            if not lower.endswith(".npy") or not prefix.startswith(_NPY_MAGIC):
                raise DataLoadError(
                    f"{what} is not a .npy array, and lite-debug reads .npz archives of .npy arrays only; "
                    "save the arrays with np.savez."
                )
            header = _check_npy_header(what, prefix, info.file_size, limits)
            total += header.nbytes
            if total > limits.max_array_bytes:
                raise DataLoadError(
                    f"{label} declares arrays totalling more than the {_size(limits.max_array_bytes)} "
                    "lite-debug allows; send a smaller sample, for example a single batch."
                )
        arrays: dict[str, np.ndarray] = {}
        for info in infos:
            try:
                array = npz[info.filename]
            except MemoryError:
                raise
            except Exception as exc:
                raise DataLoadError(
                    f"Member {info.filename!r} of {label} could not be read ({_reason(exc)}); the archive "
                    "is corrupt or truncated, so save it again with np.savez."
                ) from None
            if not isinstance(array, np.ndarray):  # unreachable: every member starts with the magic
                raise DataLoadError(f"Member {info.filename!r} of {label} is not a .npy array; save the arrays with np.savez.")
            arrays[info.filename[:-4]] = _owned(array)
    return arrays


# --- images --------------------------------------------------------------------------------


def _load_image(label: str, data: bytes, limits: LoadLimits) -> LoadedData:
    try:
        # catch_warnings swaps process-wide filters, so a concurrent load in another thread can
        # briefly see these too; both are harmless there. Pillow's UserWarnings are about
        # damaged EXIF it skips over, which is no reason to refuse (or log) an image.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS) as img:
                width, height = img.size
                if width * height > limits.max_pixels:
                    raise DataLoadError(
                        f"{label} is an image of {width}×{height} = {width * height:,} pixels, more than the "
                        f"{limits.max_pixels:,} lite-debug decodes; resize it to the model's input size and "
                        "upload it again."
                    )
                img.load()
                # Viewers show photos turned by their EXIF orientation; the model should see
                # what the user saw. (A no-op for images without the tag.)
                shown = ImageOps.exif_transpose(img) or img
                array = _image_to_array(shown)
    except DataLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard, which fires while the header is read, before our size check.
        m = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"of {int(m.group(1)):,} pixels" if m else "so large"
        raise DataLoadError(
            f"{label} declares an image {size}, too large to decode safely (it may be a decompression "
            "bomb); resize it to the model's input size and upload it again."
        ) from None
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, struct.error, …
        raise DataLoadError(
            f"{label} could not be decoded as a PNG, JPEG or BMP image ({_reason(exc)}); the file is "
            "corrupt, truncated or in another format, so save or download it again."
        ) from None
    return [_owned(array)]


def _image_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "1":
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode.startswith("I;16"):
        return np.array(img).astype(np.uint16)  # native byte order whatever the PNG's
    elif mode == "I":
        array = np.array(img)
        if array.size and array.min() >= 0 and array.max() <= 0xFFFF:
            return array.astype(np.uint16)
        return array
    elif mode not in ("L", "LA", "RGB", "RGBA", "F"):
        img = img.convert("RGBA" if "A" in mode else "RGB")  # CMYK and YCbCr JPEGs, RGBX BMPs
    return np.array(img)


# --- text: CSV and JSON --------------------------------------------------------------------


def _decode_text(label: str, data: bytes, limits: LoadLimits, kind: str) -> str:
    if len(data) > limits.max_text_bytes:
        raise DataLoadError(
            f"{label} is {_size(len(data))} of {kind}, more than the {_size(limits.max_text_bytes)} lite-debug "
            "parses; save the data with np.save instead, which is smaller and faster to read."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataLoadError(
            f"{label} is not UTF-8 text (byte {exc.start} is not valid), so it cannot be {kind}; "
            "check that this is the right file, or save it again as UTF-8."
        ) from None
    if "\x00" in text:
        raise DataLoadError(
            f"{label} contains NUL bytes, so it is binary data rather than {kind}; check that this is "
            "the right file and format."
        )
    return text


def _parse_number(cell: str) -> int | float | None:
    s = cell.strip()
    if not s:
        return None
    try:
        value = int(s)
    except ValueError:
        pass
    else:
        # Python ints are unbounded; past int64 the value can only be kept approximately.
        return value if _INT64[0] <= value <= _INT64[1] else float(s)
    try:
        return float(s)
    except ValueError:
        return None


def _parse_row(cells: list[str]) -> list[int | float | None]:
    # Whole rows of ints or of floats are the common case, and converting a row at once is
    # several times faster than trying int() then float() on each cell.
    try:
        return [int(c) for c in cells]
    except ValueError:
        pass
    try:
        return [float(c) for c in cells]  # type: ignore[misc]
    except ValueError:
        return [_parse_number(c) for c in cells]


def _load_csv(label: str, data: bytes, limits: LoadLimits) -> LoadedData:
    text = _decode_text(label, data, limits, "CSV")
    first_line = next((line for line in io.StringIO(text, newline=None) if line.strip()), None)
    if first_line is None:
        raise DataLoadError(f"{label} holds no numbers, only blank lines; upload the file with the data in it.")
    delimiter = next((d for d in (",", "\t", ";") if d in first_line), None)
    numbers = _Numbers()
    n_rows = 0
    try:
        rows = _csv_rows(text, delimiter)
        first = next(rows, None)
        if first is None:
            raise DataLoadError(f"{label} holds no numbers, only empty rows; upload the file with the data in it.")
        # A header is a first row with anything that is not a number in it: column names, or
        # the empty corner cell pandas writes above its index column.
        if any(_parse_number(c) is None for c in _without_trailing_empty(first[1])):
            first = next(rows, None)
            if first is None:
                raise DataLoadError(
                    f"{label} has a header row but no rows of numbers under it; upload the file with the data in it."
                )
        head_line, head_cells = first
        # "1,2,3," is a trailing delimiter, not an empty last column.
        trailing = delimiter is not None and len(_without_trailing_empty(head_cells)) < len(head_cells)
        width = len(head_cells) - trailing
        for line, cells in itertools.chain([first], rows):
            if trailing:
                cells = _without_trailing_empty(cells)
            if len(cells) != width:
                raise DataLoadError(
                    f"{label} has ragged rows: the row on line {line} has {_count(len(cells), 'value')} but the row "
                    f"on line {head_line} has {width}; give every row the same number of values."
                )
            row = _parse_row(cells)
            if None in row:
                column = row.index(None)
                cell = cells[column]
                found = f"the non-number {_excerpt(cell)}" if cell.strip() else "an empty value"
                raise DataLoadError(
                    f"{label} has {found} on line {line}, column {column + 1}, and lite-debug reads numbers only; "
                    "replace it with a number or remove the row."
                )
            numbers.extend(row)  # type: ignore[arg-type]  # no None left
            n_rows += 1
    except csv.Error as exc:
        raise DataLoadError(f"{label} is not valid CSV ({_reason(exc)}); save it again as plain comma-separated numbers.") from None
    array = numbers.to_array()
    return [array if n_rows == 1 else array.reshape(n_rows, width)]


def _csv_rows(text: str, delimiter: str | None) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of CSV text as (line number, cells), split on ``delimiter``."""
    if delimiter is None:
        for number, line in enumerate(io.StringIO(text, newline=None), 1):
            cells = line.split()
            if cells:
                yield number, cells
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for cells in reader:
        if any(c.strip() for c in cells):
            yield reader.line_num, cells


def _without_trailing_empty(cells: list[str]) -> list[str]:
    return cells[:-1] if len(cells) > 1 and not cells[-1].strip() else cells


class _Numbers:
    """Numbers gathered from text at 8 bytes each, instead of 32 as Python objects in a list.

    Collected as int64 until the first fraction (or an int past int64) turns up, then as
    float64; ``to_array`` narrows to the documented dtypes.
    """

    def __init__(self) -> None:
        self._ints: array[int] | None = array("q")
        self._floats: array[float] | None = None
        self.kinds: set[type] = set()

    def extend(self, items: list[int | float | bool]) -> None:
        self.kinds.update(map(type, items))
        if self._ints is not None and float not in self.kinds:
            n = len(self._ints)
            try:
                self._ints.extend(items)
                return
            except OverflowError:  # an int past int64: only a float can hold it, approximately
                del self._ints[n:]
        if self._floats is None:
            self._floats = array("d", self._ints or ())
            self._ints = None
        n = len(self._floats)
        try:
            self._floats.extend(items)
        except OverflowError:  # an int past float64 too: becomes ±inf, as the float would
            del self._floats[n:]
            self._floats.extend(_float(v) for v in items)

    def to_array(self) -> np.ndarray:
        if self._floats is not None:
            with np.errstate(over="ignore"):
                return np.frombuffer(self._floats, dtype=np.float64).astype(np.float32)
        assert self._ints is not None
        ints = np.frombuffer(self._ints, dtype=np.int64)
        if not ints.size:
            return np.zeros(0, dtype=np.float32)
        if self.kinds == {bool}:
            return ints.astype(np.bool_)
        if _INT32[0] <= ints.min() and ints.max() <= _INT32[1]:
            return ints.astype(np.int32)
        return ints.copy()


def _load_json(label: str, data: bytes, limits: LoadLimits) -> LoadedData:
    text = _decode_text(label, data, limits, "JSON")
    try:
        document = json.loads(text)
    except RecursionError:
        raise DataLoadError(
            f"{label} has lists nested too deeply to parse, far more than any model input has; check the file's structure."
        ) from None
    except ValueError as exc:
        raise DataLoadError(f"{label} is not valid JSON ({_reason(exc)}); fix the file or save it again.") from None
    if isinstance(document, dict):
        if not document:
            raise DataLoadError(
                f"{label} is an empty JSON object; give each input's name and its values, "
                'for example {"input": [[1, 2, 3]]}.'
            )
        return {str(key): _json_to_array(label, f"key {key!r}", value) for key, value in document.items()}
    return [_json_to_array(label, "", document)]


def _json_to_array(label: str, key: str, value: Any) -> np.ndarray:
    where = f"{label} {key}".rstrip()
    numbers = _Numbers()
    shape: list[int] = []
    if isinstance(value, list):
        probe: Any = value
        while isinstance(probe, list):
            if len(shape) == _MAX_NDIM:
                raise DataLoadError(
                    f"{where} is nested more than {_MAX_NDIM} lists deep, more than any model input has; "
                    "check the file's structure."
                )
            shape.append(len(probe))
            if not probe:
                break
            probe = probe[0]
        _collect(where, value, tuple(shape), (), numbers)
    elif type(value) in _JSON_NUMBER_TYPES:
        numbers.extend([value])
    else:
        raise DataLoadError(
            f"{where} holds {_json_kind(value)} where a number or a list of numbers was expected; "
            "lite-debug reads numbers only, so give the values as (nested) lists of numbers."
        )
    if bool in numbers.kinds and numbers.kinds != {bool}:
        raise DataLoadError(
            f"{where} mixes true/false with numbers, so its dtype is unclear; write the booleans as 0 and 1."
        )
    return numbers.to_array().reshape(shape)


def _collect(where: str, items: list[Any], shape: tuple[int, ...], path: tuple[int, ...], out: _Numbers) -> None:
    """Add the leaves of a nested list to ``out``, refusing ragged or non-numeric ones."""
    if len(items) != shape[0]:
        raise DataLoadError(
            f"{where} is not rectangular: the list at {_path(path)} has {_count(len(items), 'item')} but the list "
            f"at {_path((0,) * len(path))} has {shape[0]}; give every row the same length."
        )
    if len(shape) == 1:
        if all(type(v) in _JSON_NUMBER_TYPES for v in items):
            out.extend(items)
            return
        for i, v in enumerate(items):
            if type(v) not in _JSON_NUMBER_TYPES:
                if isinstance(v, list):
                    raise DataLoadError(
                        f"{where} is not rectangular: {_path(path + (i,))} is a list where the first row has a "
                        "number; give every row the same depth."
                    )
                raise DataLoadError(
                    f"{where} holds {_json_kind(v)} at {_path(path + (i,))}, and lite-debug reads numbers only; "
                    "replace it with a number."
                )
        return
    for i, item in enumerate(items):
        if not isinstance(item, list):
            raise DataLoadError(
                f"{where} is not rectangular: {_path(path + (i,))} is {_json_kind(item)} where the first row "
                "has a list; give every row the same depth."
            )
        _collect(where, item, shape[1:], path + (i,), out)


def _float(v: int | float) -> float:
    try:
        return float(v)
    except OverflowError:
        return math.copysign(math.inf, v)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {_excerpt(value)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _path(path: tuple[int, ...]) -> str:
    return "".join(f"[{i}]" for i in path) or "the top level"


# --- raw bytes -----------------------------------------------------------------------------


def _raw_size_fits(size: int, dtype: str, shape: Sequence[int]) -> bool:
    try:
        return size == math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize
    except Exception:  # a bad dtype or shape: _load_raw explains it, if it gets that far
        return False


def _load_raw(label: str, data: bytes, dtype: str, shape: Sequence[int], sniffed: str | None) -> np.ndarray:
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):
        raise DataLoadError(
            f"{label} cannot be read as raw bytes because {dtype!r} is not a numpy dtype; give one such as "
            "float32, uint8 or int32."
        ) from None
    if dt.kind not in "biufc" or dt.names is not None or dt.subdtype is not None:
        raise DataLoadError(
            f"{label} cannot be read as raw bytes of dtype {dt}, because lite-debug reads raw bytes as plain "
            "numbers only; give a numeric dtype such as float32, uint8 or int32."
        )
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise DataLoadError(
            f"{label} cannot be read as raw bytes because the shape {shape!r} is not a list of whole numbers; "
            "give one such as 1,224,224,3."
        ) from None
    if any(d < 0 for d in dims):
        raise DataLoadError(
            f"{label} cannot be read as raw bytes because the shape {dims} has a negative dimension; give the "
            "actual sizes, such as 1,224,224,3."
        )
    needed = math.prod(dims) * dt.itemsize
    if needed != len(data):
        hint = ""
        if sniffed is not None:
            hint = f" (its content looks like {_FORMAT_NAMES[sniffed]}, so name it accordingly and leave dtype and shape out)"
        elif len(data) % dt.itemsize == 0:
            hint = f" (it holds {len(data) // dt.itemsize} {dt} values)"
        raise DataLoadError(
            f"{label} is {len(data)} bytes but shape {dims} of {dt} needs {needed} bytes{hint}; check the dtype "
            "and shape the data was saved with."
        )
    return _owned(np.frombuffer(data, dtype=dt).reshape(dims).copy())


# --- helpers -------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[str, bytes, LoadLimits], LoadedData]] = {
    "npy": _load_npy,
    "npz": _load_npz,
    "image": _load_image,
    "csv": _load_csv,
    "json": _load_json,
}


def _owned(array: np.ndarray) -> np.ndarray:
    """C-contiguous, writable, native byte order: what the interpreter and the fixes expect."""
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = np.array(array, order="C", copy=True)
    return array


def _label(name: str) -> str:
    """The file name, fit for a message: control characters removed, long names shortened."""
    clean = re.sub(r"[\x00-\x1f\x7f]", "", str(name)).strip()
    if not clean:
        return "'(unnamed file)'"
    if len(clean) > 120:
        clean = clean[:50] + "…" + clean[-50:]
    return f"'{clean}'"


def _excerpt(text: str) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]", "", text.strip())
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _reason(exc: BaseException) -> str:
    """A library exception as a short clause for the middle of a sentence."""
    text = re.sub(r"\s+", " ", str(exc)).strip().rstrip(".")
    if not text:
        return type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        value /= 1024
        if value < 1024 or unit == "EiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
