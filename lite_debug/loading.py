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
``.wav`` ``.flac``          a recording: float32 samples in [-1, 1], ``[samples]`` for mono,
``.ogg`` ``.mp3``           ``[samples, channels]`` otherwise; ``load_file`` adds its sample
                            rate, channels, duration and sample format (``AudioInfo``)
``.bin`` ``.raw`` ``.dat``  raw bytes; needs ``dtype`` and ``shape`` (so does any unknown
                            extension that should be read as raw bytes)
==========================  ===============================================================

Audio is decoded by libsndfile through the ``soundfile`` package, whose wheels bundle it
(with FLAC, Ogg Vorbis/Opus and MP3 support) so that no system package is needed; a WAV
header is walked here first, so that a header declaring billions of frames, zero channels
or an absurd sample rate is refused before anything is allocated.

CSV and JSON are parsed by pandas' C reader a chunk at a time, in time and memory in
proportion to the file. Numbers from text (CSV, JSON) become float32 if any is a fraction, otherwise int32 when they
all fit, int64 when they all fit that, float32 beyond; JSON ``true``/``false`` become bool.
float32 and int32 are what TFLite models take most often; the diagnosis, not the loader, says
when a model wants something else. Arrays come back C-contiguous, writable, in native byte
order, and owned by the caller.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import struct
import warnings
from array import array
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image, ImageOps

from lite_debug.errors import DataLoadError
from lite_debug.records import AudioInfo

__all__ = [
    "DEFAULT_LIMITS",
    "LoadLimits",
    "LoadedFile",
    "describe_array",
    "load_data",
    "load_file",
]

LoadedData = dict[str, np.ndarray] | list[np.ndarray]


@dataclass(frozen=True)
class LoadedFile:
    """What ``load_file`` read from one file: its arrays and the facts known about them.

    ``arrays`` is exactly what ``load_data`` returns for the file. ``format`` is how it was
    read: ``"npy"``, ``"npz"``, ``"image"``, ``"csv"``, ``"json"``, ``"raw"`` or ``"audio"``.
    ``audio`` holds the facts about a recording (sample rate, channels, duration, original
    sample format, clipped fraction) when the file was one, and ``None`` otherwise; an audio
    file always yields exactly one array, ``arrays[0]``, which ``audio`` describes.
    """

    arrays: LoadedData
    format: str
    audio: AudioInfo | None = None


@dataclass(frozen=True)
class LoadLimits:
    """How much a data file may make lite-debug read and allocate.

    ``max_bytes`` caps the file itself; ``max_array_bytes`` caps the size an array header
    declares, and for an ``.npz`` the total of all its arrays, so a small, well-compressed
    file cannot make lite-debug allocate gigabytes; ``max_pixels`` caps an image's width ×
    height before it is decoded; ``max_text_bytes`` caps CSV and JSON, whose parsing costs
    more memory than their size; ``max_npz_members`` caps the members of an ``.npz`` and
    ``max_json_keys`` the keys of a JSON object (each would become an array a model is fed);
    ``max_audio_seconds`` caps a recording's duration, checked on its header before decoding.
    """

    max_bytes: int = 1 << 30
    max_array_bytes: int = 1 << 30
    max_pixels: int = 50_000_000
    max_text_bytes: int = 64 << 20
    max_npz_members: int = 256
    max_json_keys: int = 256
    max_audio_seconds: float = 600.0


DEFAULT_LIMITS = LoadLimits()

_NPY_EXTS = {".npy": "npy", ".npz": "npz"}
_IMAGE_EXTS = {".png": "image", ".jpg": "image", ".jpeg": "image", ".jpe": "image", ".bmp": "image", ".dib": "image"}
_TEXT_EXTS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json"}
_AUDIO_EXTS = {e: "audio" for e in (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3")}
_RAW_EXTS = {".bin", ".raw", ".dat"}
_FORMAT_OF_EXT = {**_NPY_EXTS, **_IMAGE_EXTS, **_TEXT_EXTS, **_AUDIO_EXTS}
_FORMAT_NAMES = {
    "npy": "a NumPy .npy file",
    "npz": "a NumPy .npz archive",
    "image": "a PNG, JPEG or BMP image",
    "csv": "CSV text",
    "json": "JSON",
    "audio": "a WAV, FLAC, Ogg or MP3 recording",
}
_SUPPORTED = ".npy, .npz, PNG, JPEG, BMP, CSV, JSON, WAV, FLAC, Ogg, MP3, or raw bytes with a dtype and shape"

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

    Returns a one-element list for ``.npy``, an image, CSV, raw bytes, audio and JSON holding
    one nested list; a dict ``name -> array`` for ``.npz`` (keys as stored, in archive order)
    and for a JSON object. Every array is a fresh copy the caller owns. ``load_file`` returns
    the same arrays with the facts known about them (an audio file's sample rate, …).

    Raises ``DataLoadError`` when the file is empty, truncated, corrupt, of an unknown or
    refused kind (object arrays, pickles, HTML pages, Git LFS pointers, …), or over one of
    ``limits``; and ``TypeError`` when ``data`` is not bytes.
    """
    return load_file(name, data, dtype=dtype, shape=shape, limits=limits).arrays


def load_file(
    name: str,
    data: bytes,
    *,
    dtype: str | None = None,
    shape: tuple[int, ...] | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
) -> LoadedFile:
    """``load_data`` with the facts about what was read: a ``LoadedFile``.

    Takes the same arguments and raises the same errors as ``load_data``; its ``arrays`` are
    what ``load_data`` returns. For a recording (WAV, FLAC, Ogg, MP3) ``audio`` is an
    ``AudioInfo``: the samples are float32 in [-1, 1], shaped ``[samples]`` for mono and
    ``[samples, channels]`` otherwise, as the file interleaves them.
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
) -> LoadedFile:
    ext = _extension(name)
    sniffed = _sniff(data)
    raw_requested = ext in _RAW_EXTS or (ext not in _FORMAT_OF_EXT and (dtype is not None or shape is not None))
    if raw_requested:
        if dtype is not None and shape is not None:
            if sniffed is not None and not _raw_size_fits(len(data), dtype, shape):
                # Callers may pass the model's dtype and shape for every file (the command
                # line does); a .npy or image named .bin that does not fit them is what it says.
                return _read_as(sniffed, label, data, limits)
            return LoadedFile(arrays=[_load_raw(label, data, dtype, shape, sniffed)], format="raw")
        if sniffed is not None and dtype is None and shape is None:
            # A .npy or an image renamed to .bin: it says what it is, so read it as that.
            return _read_as(sniffed, label, data, limits)
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
        return _read_as(sniffed, label, data, limits)
    if expected is not None:
        if expected == "audio" and _impostor(data) is None and _peek_text(data) is None:
            return _read_as("audio", label, data, limits)  # MP3 without an ID3 tag: libsndfile decides
        if expected in ("npy", "npz", "image", "audio") or _impostor(data) is not None:
            raise DataLoadError(_not_what_it_claims(label, data, expected))
        if expected == "csv" and (_peek_text(data) or "").lstrip().startswith(("[", "{")):
            expected = "json"  # no CSV of numbers starts so; JSON saved as .txt does
        return _read_as(expected, label, data, limits)

    impostor = _impostor(data)
    if impostor is not None:
        what, remedy = impostor
        raise DataLoadError(f"{label} is {what}; {remedy}.")
    text = _peek_text(data)
    if text is not None:
        stripped = text.lstrip()
        if stripped.startswith(("[", "{")):
            return _read_as("json", label, data, limits)
        if stripped and re.match(r"[-+.\w\"' \t,;]+$", stripped.splitlines()[0]):
            return _read_as("csv", label, data, limits)
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
    if (data[:4] in _WAV_FORMS and data[8:12] == b"WAVE") or data.startswith((b"fLaC", b"OggS", b"ID3")):
        return "audio"
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

# Text is parsed by pandas' C reader, a chunk of rows at a time, so that parsing costs time and
# memory in proportion to the file with small constants: numbers are kept as they arrive in
# the narrowest array that holds them, never as Python objects. Rows wider than this many
# values are read another way (pandas' cost per column grows with their number).
_WIDE_COLUMNS = 1024
# A chunk of about this many cells is the most text ever held as Python objects at once.
_CHUNK_CELLS = 1 << 18
# A line longer than this is read by turning its delimiters into line breaks (one value a
# line), which the reader handles without a per-column cost.
_LONG_LINE = 1 << 20
# How much of the first line is looked at to tell a header row from data, and how long a row
# may be to be split into cells for a message or for counting its values.
_HEADER_PEEK = 1 << 12
_HEAD_PEEK = 1 << 16
# JSON up to this size is parsed by the standard library, which points at the exact place a
# problem is; larger JSON is read only as numbers, in the same reader as CSV.
_JSON_SMALL = 1 << 20
_JSON_SMALL_VALUE = 1 << 12
# Cells that pandas' reader leaves as text but that are numbers all the same (what numpy,
# pandas and Python write for NaN and infinity in their various spellings).
_FLOAT_WORDS = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
# Anchored at line starts, so a long run of blanks is crossed once, not once per position.
_CONTENT_LINE = re.compile(rb"^[ \t\r\f\v]*\S[^\n]*", re.MULTILINE)
_NONSPACE = re.compile(rb"\S")
_FIELD_SEPARATOR = "\x1f"  # the unit separator: a single-column read never splits a line


def _check_text(label: str, data: bytes, limits: LoadLimits, kind: str) -> bytes:
    """The file's bytes without a BOM, once they are known to be UTF-8 text under the cap."""
    if len(data) > limits.max_text_bytes:
        raise DataLoadError(
            f"{label} is {_size(len(data))} of {kind}, more than the {_size(limits.max_text_bytes)} lite-debug "
            "parses; save the data with np.save instead, which is smaller and faster to read."
        )
    if not data.isascii():
        try:
            data.decode("utf-8-sig")  # to check it only: the text is parsed as bytes
        except UnicodeDecodeError as exc:
            raise DataLoadError(
                f"{label} is not UTF-8 text (byte {exc.start} is not valid), so it cannot be {kind}; "
                "check that this is the right file, or save it again as UTF-8."
            ) from None
    if b"\x00" in data:
        raise DataLoadError(
            f"{label} contains NUL bytes, so it is binary data rather than {kind}; check that this is "
            "the right file and format."
        )
    return data.removeprefix(b"\xef\xbb\xbf")


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


def _content_line(body: bytes, start: int) -> tuple[int, int] | None:
    """The first line at or after ``start`` with something other than white space in it."""
    m = _NONSPACE.search(body, start)
    if m is None:
        return None
    begin = body.rfind(b"\n", start, m.start()) + 1 or start
    end = body.find(b"\n", m.start())
    return begin, len(body) if end == -1 else end


def _line_number(body: bytes, position: int) -> int:
    return body.count(b"\n", 0, position) + 1


def _split_cells(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _without_trailing_empty(cells: list[str]) -> list[str]:
    return cells[:-1] if len(cells) > 1 and not cells[-1].strip() else cells


def _count_fields(line: bytes, delimiter: str | None) -> int:
    """How many values a line holds, without splitting it into one object per value."""
    if delimiter is not None:
        return line.count(delimiter.encode()) + 1
    fields = 0
    was_space = True
    for at in range(0, len(line), _LONG_LINE):  # a few bool arrays of a block at a time
        block = np.frombuffer(line, dtype=np.uint8, count=min(_LONG_LINE, len(line) - at), offset=at)
        space = (block == 0x20) | (block == 0x09) | (block == 0x0D)
        starts = ~space
        starts[1:] &= space[:-1]
        starts[0] &= was_space
        fields += int(np.count_nonzero(starts))
        was_space = bool(space[-1])
    return fields


@dataclass
class _Chunks:
    """Blocks of numbers in the narrowest dtype each fits, and the dtype they all fit."""

    parts: list[np.ndarray]
    rows: int = 0
    floats: bool = False
    wide_ints: bool = False

    def add(self, block: np.ndarray) -> None:
        if block.dtype.kind == "f":
            self.floats = True
            with np.errstate(over="ignore"):  # past float32 a value becomes ±inf, as old files expect
                block = block.astype(np.float32)
        elif block.size and (block.min() < _INT32[0] or block.max() > _INT32[1]):
            self.wide_ints = True
        else:
            block = block.astype(np.int32)
        self.parts.append(block)
        self.rows += len(block)

    def to_array(self, width: int) -> np.ndarray:
        dtype = np.float32 if self.floats else np.int64 if self.wide_ints else np.int32
        out = np.empty((self.rows, width), dtype=dtype)
        done = 0
        self.parts.reverse()
        while self.parts:  # each block is freed once copied, so the peak is one array plus the blocks
            block = self.parts.pop()
            out[done : done + len(block)] = block.reshape(len(block), width)
            done += len(block)
        return out


def _read_chunks(
    label: str,
    source: bytes,
    *,
    delimiter: str | None,
    skip_lines: int,
    columns: int,
    on_bad: Callable[[int, int, Any], DataLoadError],
    on_ragged: Callable[[str], DataLoadError],
) -> _Chunks:
    """Read rows of numbers with pandas' C reader, ``_CHUNK_CELLS`` at a time.

    ``columns`` is the number of values a row must hold (a trailing empty column, when the
    rows end in a delimiter, is checked and dropped). ``on_bad(row, column, value)`` makes the
    error for a cell that is not a number (``row`` counts rows of data from 0);
    ``on_ragged(reason)`` the one for a row longer than the first.
    """
    import pandas as pd  # imported here: pandas takes a second to import, and most files are not text

    chunks = _Chunks(parts=[])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' ParserWarning/DtypeWarning: we check the dtypes ourselves
            reader = pd.read_csv(
                io.BytesIO(source),
                sep=r"\s+" if delimiter is None else delimiter,
                header=None,
                skiprows=skip_lines,
                dtype=None,
                engine="c",
                na_filter=False,  # "" and "nan" stay text: the first is an error, the second a number
                skip_blank_lines=True,
                quotechar='"',
                comment=None,
                encoding="utf-8",
                chunksize=max(1, _CHUNK_CELLS // max(columns, 1)),
            )
            with reader:
                for frame in reader:
                    chunks.add(_frame_numbers(frame, columns, chunks.rows, on_bad))
    except DataLoadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # pandas.errors.ParserError, EmptyDataError, UnicodeDecodeError, …
        if type(exc).__name__ == "EmptyDataError":
            raise DataLoadError(f"{label} holds no numbers, only blank lines; upload the file with the data in it.") from None
        raise on_ragged(re.sub(r"^Error tokenizing data\. C error: ", "", _reason(exc))) from None
    return chunks


def _frame_numbers(frame: Any, columns: int, first_row: int, on_bad: Callable[[int, int, Any], DataLoadError]) -> np.ndarray:
    """One chunk of pandas' reader as an int64 or float64 block, every cell checked."""
    if frame.shape[1] > columns:
        # The rows end in a delimiter: the column after it must be empty wherever it exists.
        extra = frame.iloc[:, columns:].to_numpy(dtype=object)
        blank = np.vectorize(lambda v: v == "" or (isinstance(v, float) and math.isnan(v)), otypes=[bool])(extra)
        if not blank.all():
            row, column = np.argwhere(~blank)[0]
            raise on_bad(first_row + int(row), columns + int(column), extra[row, column])
        frame = frame.iloc[:, :columns]
    if all(dt.kind in "iuf" for dt in frame.dtypes):
        block = frame.to_numpy()
        return block.astype(np.float64) if block.dtype.kind == "u" else block
    out = np.empty(frame.shape, dtype=np.float64)
    ints = True
    for j, dt in enumerate(frame.dtypes):
        column = frame.iloc[:, j]
        if dt.kind in "iu":
            values = column.to_numpy()
            if dt.kind == "u" and values.size and values.max() > _INT64[1]:
                ints = False
            out[:, j] = values
            continue
        if dt.kind == "f":
            ints = False
            out[:, j] = column.to_numpy()
            continue
        cells = column.to_numpy(dtype=object)
        try:
            if dt.kind == "b":
                raise ValueError("true/false is not a number")
            out[:, j] = _float_cells(cells)
        except (TypeError, ValueError, OverflowError):
            bad = next(i for i, v in enumerate(cells) if not _is_float_cell(v))
            raise on_bad(first_row + bad, j, cells[bad]) from None
        ints = False
    if ints:
        return out.astype(np.int64)
    return out


def _float_cells(cells: np.ndarray) -> np.ndarray:
    for v in cells:
        if isinstance(v, str) and ("_" in v or not v.strip()):
            raise ValueError(v)  # float() reads '1_000'; an empty cell is not a number
    return cells.astype(np.float64)


def _is_float_cell(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    return isinstance(v, str) and "_" not in v and _parse_number(v) is not None


def _load_csv(label: str, data: bytes, limits: LoadLimits) -> LoadedData:
    body = _check_text(label, data, limits, "CSV")
    if b"\r" in body and body.count(b"\r") != body.count(b"\r\n"):
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")  # old Mac line ends
    first = _content_line(body, 0)
    if first is None:
        raise DataLoadError(f"{label} holds no numbers, only blank lines; upload the file with the data in it.")
    head = body[first[0] : min(first[1], first[0] + _HEADER_PEEK)].decode("utf-8", "replace")
    delimiter = next((d for d in (",", "\t", ";") if d in head), None)
    head_cells = _split_cells(head, delimiter)
    if first[1] - first[0] > _HEADER_PEEK:
        head_cells = head_cells[:-1]  # the last one may be cut short
    # A header is a first row with anything that is not a number in it: column names, or
    # the empty corner cell pandas writes above its index column.
    data_line = first
    if any(_parse_number(c) is None for c in _without_trailing_empty(head_cells)):
        found = _content_line(body, first[1])
        if found is None:
            raise DataLoadError(
                f"{label} has a header row but no rows of numbers under it; upload the file with the data in it."
            )
        data_line = found
    line = body[data_line[0] : data_line[1]]
    if delimiter is None:  # a header of one name says nothing about how the numbers are separated
        peek = line[:_HEAD_PEEK]
        delimiter = next((d for d in (",", "\t", ";") if d.encode() in peek), None)
    if len(line) <= _HEAD_PEEK:
        cells = _split_cells(line.decode("utf-8", "replace"), delimiter)
        # "1,2,3," is a trailing delimiter, not an empty last column.
        trailing = delimiter is not None and len(_without_trailing_empty(cells)) < len(cells)
        width = len(cells) - trailing
    else:
        trailing = delimiter is not None and line.rstrip().endswith(delimiter.encode())
        width = _count_fields(line, delimiter) - trailing
    start = _CsvLayout(label, body, delimiter, data_line, width, trailing)
    long_line = _long_line(body, data_line[0])
    if width > _WIDE_COLUMNS or (long_line is not None and long_line[0] == data_line[0]):
        array = _csv_wide(start)
    else:
        if long_line is not None:
            raise DataLoadError(
                f"{label} has a line of {_size(long_line[1] - long_line[0])} on line "
                f"{_line_number(body, long_line[0])}, far longer than the row on line {start.head_line_number} "
                f"with {_count(width, 'value')}; give every row the same number of values."
            )
        array = _csv_narrow(start)
    return [array[0] if len(array) == 1 else array]


@dataclass(frozen=True)
class _CsvLayout:
    label: str
    body: bytes
    delimiter: str | None
    first: tuple[int, int]  # the first row of data: its start and end in body
    width: int
    trailing: bool

    @property
    def head_line_number(self) -> int:
        return _line_number(self.body, self.first[0])

    def row_line(self, row: int) -> tuple[int, int]:
        """The span of the ``row``-th row of data (from 0), skipping blank lines; error paths only."""
        span: tuple[int, int] | None = self.first
        for _ in range(row):
            assert span is not None
            span = _content_line(self.body, span[1])
        if span is None:  # pandas and this scan disagree on what a row is: point at the first
            return self.first
        return span

    def cell_error(self, span: tuple[int, int], column: int | None = None) -> DataLoadError:
        """The sentence for the first problem in the row at ``span``: its length or a cell."""
        line_no = _line_number(self.body, span[0])
        raw = self.body[span[0] : span[1]]
        cells = _split_cells(raw[: _HEAD_PEEK * 4].decode("utf-8", "replace"), self.delimiter)
        if self.trailing:
            cells = _without_trailing_empty(cells)
        count = len(cells) if len(raw) <= _HEAD_PEEK * 4 else _count_fields(raw, self.delimiter) - self.trailing
        if count != self.width:
            return DataLoadError(
                f"{self.label} has ragged rows: the row on line {line_no} has {_count(count, 'value')} but the row "
                f"on line {self.head_line_number} has {self.width}; give every row the same number of values."
            )
        columns = range(len(cells)) if column is None else [column, *range(len(cells))]
        for c in columns:
            if c < len(cells) and not _is_float_cell(cells[c]):
                cell = cells[c]
                found = f"the non-number {_excerpt(cell)}" if cell.strip() else "an empty value"
                return DataLoadError(
                    f"{self.label} has {found} on line {line_no}, column {c + 1}, and lite-debug reads numbers only; "
                    "replace it with a number or remove the row."
                )
        return DataLoadError(
            f"{self.label} has a value on line {line_no} that is not a number, and lite-debug reads numbers only; "
            "replace it with a number or remove the row."
        )


def _long_line(body: bytes, start: int) -> tuple[int, int] | None:
    """The span of a line longer than 2 × ``_LONG_LINE`` from ``start`` on, if there is one.

    Looks for a newline in every window of ``_LONG_LINE`` bytes: a few dozen searches for the
    largest file instead of one step per line.
    """
    at = start
    while at < len(body):
        if body.find(b"\n", at, at + _LONG_LINE) == -1 and len(body) - at > _LONG_LINE:
            begin = body.rfind(b"\n", 0, at) + 1
            end = body.find(b"\n", at + _LONG_LINE)
            return begin, len(body) if end == -1 else end
        at += _LONG_LINE
    return None


def _csv_narrow(layout: _CsvLayout) -> np.ndarray:
    """Rows of up to ``_WIDE_COLUMNS`` values, none longer than ``_LONG_LINE``: pandas reads them as rows."""

    def on_bad(row: int, column: int, value: Any) -> DataLoadError:
        return layout.cell_error(layout.row_line(row), column)

    def on_ragged(reason: str) -> DataLoadError:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", reason)
        if m:
            line_no = int(m.group(2))
            saw = int(m.group(3)) - layout.trailing
            return DataLoadError(
                f"{layout.label} has ragged rows: the row on line {line_no} has {_count(saw, 'value')} but the row "
                f"on line {layout.head_line_number} has {layout.width}; give every row the same number of values."
            )
        return DataLoadError(
            f"{layout.label} is not valid CSV ({reason}); save it again as plain comma-separated numbers."
        )

    chunks = _read_chunks(
        layout.label,
        layout.body,
        delimiter=layout.delimiter,
        skip_lines=layout.body.count(b"\n", 0, layout.first[0]),
        columns=layout.width,
        on_bad=on_bad,
        on_ragged=on_ragged,
    )
    return chunks.to_array(layout.width)


def _csv_wide(layout: _CsvLayout) -> np.ndarray:
    """Rows of many values: every row's length is checked, then all values are read as one column."""
    body, delimiter, width = layout.body, layout.delimiter, layout.width
    spans: list[tuple[int, int]] = []
    # Each row holds more than _WIDE_COLUMNS values (or is over a MiB), so there are few rows
    # and a step per row is cheap; blank lines between them are skipped by the regex, in C.
    for m in _CONTENT_LINE.finditer(body, layout.first[0]):
        span = (m.start(), m.end())
        line = body[span[0] : span[1]]
        trailing = layout.trailing and line.rstrip().endswith(delimiter.encode())  # type: ignore[union-attr]
        if _count_fields(line, delimiter) - trailing != width:
            raise layout.cell_error(span)
        spans.append(span)
    piece = body[layout.first[0] :]
    if delimiter is None:
        flat = piece.translate(_SPACES_TO_NEWLINES)
    else:
        flat = piece.replace(delimiter.encode(), b"\n")
    del piece

    def on_bad(index: int, column: int, value: Any) -> DataLoadError:
        row = min(index // width, len(spans) - 1)
        return layout.cell_error(spans[row], index % width)

    def on_ragged(reason: str) -> DataLoadError:
        return DataLoadError(f"{layout.label} is not valid CSV ({reason}); save it again as plain comma-separated numbers.")

    chunks = _read_chunks(
        layout.label, flat, delimiter=_FIELD_SEPARATOR, skip_lines=0, columns=1, on_bad=on_bad, on_ragged=on_ragged
    )
    del flat
    if chunks.rows != len(spans) * width:
        # A value went missing: an empty cell, which became a blank line and was skipped.
        for span in spans:
            error = layout.cell_error(span)
            if "an empty value" in str(error):
                raise error
        raise DataLoadError(
            f"{layout.label} holds {chunks.rows} values where {len(spans)} rows of {width} need {len(spans) * width}; "
            "check that every row has the same number of values."
        )
    return chunks.to_array(1).reshape(len(spans), width)


_SPACES_TO_NEWLINES = bytes.maketrans(b" \t", b"\n\n")


# --- JSON ----------------------------------------------------------------------------------

_JSON_WS = re.compile(rb"[ \t\r\n]*")
_JSON_KEY = re.compile(rb'"(?:[^"\\\x00-\x1f]|\\.)*"')
_JSON_NUMBER_CHARS = b"0123456789+-.eE"
_JSON_SPACE = b" \t\r\n"
# Brackets become spaces and commas line breaks: the numbers of a nested list, one a line.
_JSON_FLATTEN = bytes.maketrans(b"[],", b"  \n")


class _DuplicateKey(Exception):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _load_json(label: str, data: bytes, limits: LoadLimits) -> LoadedData:
    body = _check_text(label, data, limits, "JSON")
    if len(body) > _JSON_SMALL:
        return _load_json_large(label, body, limits)
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_pairs)
    except RecursionError:
        raise DataLoadError(
            f"{label} has lists nested too deeply to parse, far more than any model input has; check the file's structure."
        ) from None
    except _DuplicateKey as exc:
        raise _duplicate_key(label, exc.args[0]) from None
    except ValueError as exc:
        raise DataLoadError(f"{label} is not valid JSON ({_reason(exc)}); fix the file or save it again.") from None
    if isinstance(document, dict):
        if not document:
            raise _empty_object(label)
        if len(document) > limits.max_json_keys:
            raise _too_many_keys(label, f"{len(document):,}", limits)
        return {str(key): _json_to_array(label, f"key {key!r}", value) for key, value in document.items()}
    return [_json_to_array(label, "", document)]


def _empty_object(label: str) -> DataLoadError:
    return DataLoadError(
        f"{label} is an empty JSON object; give each input's name and its values, for example {{\"input\": [[1, 2, 3]]}}."
    )


def _too_many_keys(label: str, how_many: str, limits: LoadLimits) -> DataLoadError:
    return DataLoadError(
        f"{label} is a JSON object with {how_many} keys, more than the {limits.max_json_keys:,} arrays lite-debug reads "
        "from one file; keep one key per model input in it."
    )


def _duplicate_key(label: str, key: str) -> DataLoadError:
    return DataLoadError(
        f"{label} has two keys named {key!r}, so which array is meant is unclear; keep one of them."
    )


def _json_syntax(label: str, body: bytes, at: int, wanted: str) -> DataLoadError:
    line = _line_number(body, at)
    column = at - (body.rfind(b"\n", 0, at) + 1) + 1
    return DataLoadError(
        f"{label} is not valid JSON (expected {wanted} at line {line}, column {column}); fix the file or save it again."
    )


def _load_json_large(label: str, body: bytes, limits: LoadLimits) -> LoadedData:
    """JSON over ``_JSON_SMALL``: the top level walked here, each value read as numbers only.

    An object's keys are read one at a time, so a file with millions of them is refused at the
    first key over the cap; values must be numbers, true/false or (nested) lists of them, which
    is what lets a value end at the next double quote.
    """
    at = _JSON_WS.match(body, 0).end()  # type: ignore[union-attr]
    if body[at : at + 1] != b"{":
        return [_json_numbers(label, "", body[at:].rstrip(_JSON_SPACE))]
    at = _JSON_WS.match(body, at + 1).end()  # type: ignore[union-attr]
    if body[at : at + 1] == b"}":
        if body[at + 1 :].strip(_JSON_SPACE):
            raise _json_syntax(label, body, at + 1, "the end of the file")
        raise _empty_object(label)
    arrays: dict[str, np.ndarray] = {}
    while True:
        m = _JSON_KEY.match(body, at)
        if m is None:
            raise _json_syntax(label, body, at, "a key in double quotes")
        try:
            key = json.loads(m.group().decode("utf-8"))
        except ValueError:
            raise _json_syntax(label, body, at, "a key in double quotes") from None
        at = _JSON_WS.match(body, m.end()).end()  # type: ignore[union-attr]
        if body[at : at + 1] != b":":
            raise _json_syntax(label, body, at, "a colon after the key")
        at = _JSON_WS.match(body, at + 1).end()  # type: ignore[union-attr]
        if len(arrays) == limits.max_json_keys:
            raise _too_many_keys(label, f"more than {limits.max_json_keys:,}", limits)
        if key in arrays:
            raise _duplicate_key(label, key)
        quote = body.find(b'"', at)
        end = len(body) if quote == -1 else quote
        segment = body[at:end].rstrip(_JSON_SPACE)
        closer = b"}" if quote == -1 else b","
        where = f"{label} key {key!r}"
        if not segment.endswith(closer):
            if b"{" in segment:
                raise DataLoadError(
                    f"{where} holds an object where a number or a list of numbers was expected; lite-debug reads "
                    "numbers only, so give the values as (nested) lists of numbers."
                )
            if not segment:
                raise DataLoadError(
                    f"{where} holds a string where a number or a list of numbers was expected; lite-debug reads "
                    "numbers only, so give the values as (nested) lists of numbers."
                )
            raise _json_syntax(label, body, at + len(segment), "a comma or a closing brace after the value")
        arrays[key] = _json_numbers(label, f"key {key!r}", segment[:-1].rstrip(_JSON_SPACE))
        if quote == -1:
            return arrays
        at = quote


def _json_numbers(label: str, key: str, value: bytes) -> np.ndarray:
    """A JSON number or nested list of numbers (or of true/false), read without Python objects.

    The structure is checked on the value's skeleton (its brackets and commas alone) against
    the skeleton a rectangular array of the shape it starts with would have; the numbers are
    then read as one column by pandas' reader.
    """
    where = f"{label} {key}".rstrip()
    if not value:
        raise DataLoadError(f"{where} has no value; give the numbers as (nested) lists, for example [[1, 2, 3]].")
    if len(value) <= _JSON_SMALL_VALUE:
        # Cheaper through the standard library, which also points at the exact place of a problem.
        try:
            parsed = json.loads(value.decode("utf-8"))
        except ValueError as exc:
            raise DataLoadError(f"{where} is not valid JSON ({_reason(exc)}); fix the file or save it again.") from None
        return _json_to_array(label, key, parsed)
    is_bool = False
    if value.translate(None, _JSON_NUMBER_CHARS + b"[]," + _JSON_SPACE):
        if b"true" in value or b"false" in value:
            if len(value.translate(None, b"0123456789")) != len(value):
                raise DataLoadError(
                    f"{where} mixes true/false with numbers, so its dtype is unclear; write the booleans as 0 and 1."
                )
            value = value.replace(b"true", b"1").replace(b"false", b"0")
            is_bool = True
        if b"NaN" in value or b"Infinity" in value:
            value = value.replace(b"NaN", b"nan").replace(b"Infinity", b"inf")
        rest = value.translate(None, _JSON_NUMBER_CHARS + b"[],naif" + _JSON_SPACE)
        if rest:
            what = "null" if b"null" in value else "an object" if b"{" in rest else f"the character {_excerpt(rest[:1].decode('utf-8', 'replace'))}"
            raise DataLoadError(
                f"{where} holds {what} where numbers were expected, and lite-debug reads numbers only; "
                "give the values as (nested) lists of numbers."
            )
    skeleton = value.translate(None, _JSON_NUMBER_CHARS + b"naif" + _JSON_SPACE)
    depth = len(skeleton) - len(skeleton.lstrip(b"["))
    if depth > _MAX_NDIM:
        raise DataLoadError(
            f"{where} is nested more than {_MAX_NDIM} lists deep, more than any model input has; check the file's structure."
        )
    shape = _json_shape(value, skeleton, depth)
    if shape is None:
        raise DataLoadError(
            f"{where} is not a rectangular nested list of numbers (or not valid JSON); give every row the same "
            "length and depth."
        )
    count = math.prod(shape)
    if count == 0:
        if value.translate(None, b"[]," + _JSON_SPACE):
            raise DataLoadError(
                f"{where} is not rectangular: its first innermost list is empty but others are not; give every row "
                "the same length."
            )
        return np.zeros(shape, dtype=np.bool_ if is_bool else np.float32)
    flat = value.translate(_JSON_FLATTEN)

    def on_bad(index: int, column: int, cell: Any) -> DataLoadError:
        shown = _excerpt(str(cell)) if str(cell).strip() else "an empty place"
        return DataLoadError(
            f"{where} holds {shown} where a number was expected (value number {index + 1:,}); lite-debug reads "
            "numbers only, so give the values as (nested) lists of numbers."
        )

    def on_ragged(reason: str) -> DataLoadError:
        return DataLoadError(f"{label} is not valid JSON ({reason}); fix the file or save it again.")

    chunks = _read_chunks(label, flat, delimiter=_FIELD_SEPARATOR, skip_lines=0, columns=1, on_bad=on_bad, on_ragged=on_ragged)
    del flat
    if chunks.rows != count:
        raise DataLoadError(
            f"{where} holds {chunks.rows:,} numbers where its shape {shape} needs {count:,}, so a place is empty "
            "(as in [1,,2]) or holds two numbers; give every row the same length."
        )
    array = chunks.to_array(1).reshape(shape)
    return array.astype(np.bool_) if is_bool else array


def _json_shape(value: bytes, skeleton: bytes, depth: int) -> tuple[int, ...] | None:
    """The shape a nested list's first elements give it, if its whole skeleton agrees; else None."""
    if depth == 0:
        return () if not skeleton else None
    close = skeleton.find(b"]")
    if close < depth or b"[" in skeleton[depth:close]:
        return None
    commas = close - depth
    last = commas + 1
    if commas == 0:
        # "[]" and "[5]" have the same skeleton: the text between the brackets tells them apart.
        opened = -1
        for _ in range(depth):
            opened = value.find(b"[", opened + 1)
        if not value[opened + 1 : value.find(b"]", opened)].strip(_JSON_SPACE):
            last = 0
    dims = [last]
    length = commas + 2
    for level in range(depth - 2, -1, -1):
        run = skeleton.find(b"]" * (depth - level))
        if run == -1:
            return None
        outer = run + (depth - level) - level
        n, rest = divmod(outer - 1, length + 1)
        if rest or n < 1:
            return None
        dims.insert(0, n)
        length = outer
    if length != len(skeleton):
        return None
    canonical = b"[" + b"," * commas + b"]"
    for n in reversed(dims[:-1]):
        # Repetition, not b",".join: join holds an 80-byte buffer struct per item.
        canonical = b"[" + (canonical + b",") * (n - 1) + canonical + b"]"
    return tuple(dims) if canonical == skeleton else None


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


# --- audio ---------------------------------------------------------------------------------

# The highest rate audio interfaces record at; anything above is a damaged header.
_MAX_SAMPLE_RATE = 768_000
_MAX_CHANNELS = 256
_WAV_FORMS = (b"RIFF", b"RF64", b"BW64")
_AUDIO_CONTAINERS = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "WAV", "FLAC": "FLAC", "OGG": "Ogg", "MP3": "MP3"}
# The largest sample value of an integer format, as a float in [-1, 1]: a sample at either
# end of the scale is one the recording clipped.
_FULL_SCALE = {"PCM_S8": 127 / 128, "PCM_U8": 127 / 128, "PCM_16": 32767 / 32768, "PCM_24": (2**23 - 1) / 2**23}


@dataclass(frozen=True)
class _WavHeader:
    channels: int
    sample_rate: int
    block_align: int
    declared_bytes: int  # of samples, as the data chunk says
    present_bytes: int  # of samples actually in the file


def _wav_header(label: str, data: bytes) -> _WavHeader:
    """Walk a RIFF/RF64 WAVE file's chunks up to its samples, checking what they declare.

    The RIFF size itself is not trusted (recorders that were interrupted, or that write to a
    pipe, leave it wrong; libsndfile ignores it too): only the chunks that are there count.
    """
    if len(data) < 12:
        raise DataLoadError(f"{label} is a WAV file cut short inside its header; record or export it again.")
    ds64_data: int | None = None
    fmt: tuple[int, int, int] | None = None
    at = 12
    while at + 8 <= len(data):
        chunk, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        body = at + 8
        if chunk == b"ds64" and len(data) >= body + 16:
            ds64_data = struct.unpack_from("<Q", data, body + 8)[0]
        elif chunk == b"fmt ":
            if size < 16 or len(data) < body + 16:
                raise DataLoadError(f"{label} has a damaged WAV format chunk; record or export it again.")
            _tag, channels, rate, _bytes_per_second, block_align = struct.unpack_from("<HHIIH", data, body)
            fmt = (channels, rate, block_align)
        elif chunk == b"data":
            if fmt is None:
                raise DataLoadError(
                    f"{label} has its samples before its format chunk, so how to read them is unknown; "
                    "record or export it again."
                )
            channels, rate, block_align = fmt
            declared = ds64_data if (size == 0xFFFFFFFF and ds64_data is not None) else size
            present = len(data) - body
            if size == 0xFFFFFFFF and ds64_data is None:
                declared = present  # "unknown length", as streaming writers put it
            return _WavHeader(channels, rate, block_align, declared, present)
        at = body + size + (size & 1)  # chunks are padded to an even length
    missing = "format chunk" if fmt is None else "data chunk"
    raise DataLoadError(f"{label} is a WAV file without a {missing}, so it holds no samples lite-debug can read; record or export it again.")


def _check_audio_shape(label: str, channels: int, rate: int, frames: int, limits: LoadLimits) -> None:
    if channels < 1:
        raise DataLoadError(f"{label} declares 0 channels, so it holds no audio; record or export it again.")
    if channels > _MAX_CHANNELS:
        raise DataLoadError(
            f"{label} declares {channels:,} channels, more than the {_MAX_CHANNELS} any recording has; the header is "
            "damaged, so record or export it again."
        )
    if not 1 <= rate <= _MAX_SAMPLE_RATE:
        raise DataLoadError(
            f"{label} declares a sample rate of {rate:,} Hz, outside the 1 Hz to {_MAX_SAMPLE_RATE:,} Hz any recording "
            "has; the header is damaged, so record or export it again."
        )
    seconds = frames / rate
    if seconds > limits.max_audio_seconds:
        raise DataLoadError(
            f"{label} holds {_duration(seconds)} of audio ({frames:,} samples at {rate:,} Hz), more than the "
            f"{_duration(limits.max_audio_seconds)} lite-debug decodes; cut it to the part the model should hear."
        )
    nbytes = frames * channels * 4
    if nbytes > limits.max_array_bytes:
        raise DataLoadError(
            f"{label} would take {_size(nbytes)} as float32 samples, more than the {_size(limits.max_array_bytes)} "
            "lite-debug allows; cut it to the part the model should hear."
        )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s" if s else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _load_audio(label: str, data: bytes, limits: LoadLimits) -> LoadedFile:
    """Decode a recording into float32 samples in [-1, 1] with its facts (see ``AudioInfo``).

    WAV headers are checked here before libsndfile sees them; for FLAC, Ogg and MP3 the
    frame count libsndfile reads from the header is checked before a sample is decoded.
    """
    wav = _wav_header(label, data) if data[:4] in _WAV_FORMS and data[8:12] == b"WAVE" else None
    if wav is not None:
        if wav.block_align < 1:
            raise DataLoadError(f"{label} has a damaged WAV format chunk (0 bytes per frame); record or export it again.")
        _check_audio_shape(label, wav.channels, wav.sample_rate, 0, limits)
        if wav.declared_bytes > wav.present_bytes:
            raise DataLoadError(
                f"{label} is truncated: its header declares {wav.declared_bytes // wav.block_align:,} frames "
                f"({_size(wav.declared_bytes)}) but only {_size(wav.present_bytes)} of samples follow; "
                "download or export it again."
            )
        _check_audio_shape(label, wav.channels, wav.sample_rate, wav.declared_bytes // wav.block_align, limits)
    try:
        import soundfile
    except (ImportError, OSError):
        raise DataLoadError(
            f"{label} is audio, and reading audio needs the soundfile package, which is not installed here; "
            "run pip install soundfile."
        ) from None
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            frames, channels, rate = int(f.frames), int(f.channels), int(f.samplerate)
            container, subtype = str(f.format), str(f.subtype)
            _check_audio_shape(label, channels, rate, frames, limits)
            samples = f.read(frames=frames, dtype="float32", always_2d=True)
    except DataLoadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, ValueError, …
        # libsndfile names our in-memory file in its message ("Error opening <_io.BytesIO …>: "): drop that.
        reason = re.sub(r"^Error opening <[^>]*>: ", "", _reason(exc))
        raise DataLoadError(
            f"{label} could not be decoded as WAV, FLAC, Ogg or MP3 audio ({reason}); the file is corrupt or "
            "in another format, so export it again as WAV."
        ) from None
    if samples.shape[0] == 0:
        raise DataLoadError(f"{label} holds no samples (0 frames); record or export it again.")
    from lite_debug.audio import clipped_fraction

    array = _owned(samples[:, 0] if channels == 1 else samples)
    info = AudioInfo(
        sample_rate=rate,
        channels=channels,
        frames=int(samples.shape[0]),
        container=_AUDIO_CONTAINERS.get(container, container),
        sample_format=subtype,
        clipped_fraction=clipped_fraction(array, _FULL_SCALE.get(subtype, 1.0)),
    )
    return LoadedFile(arrays=[array], format="audio", audio=info)


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

_LOADERS: dict[str, Callable[[str, bytes, LoadLimits], LoadedData | LoadedFile]] = {
    "npy": _load_npy,
    "npz": _load_npz,
    "image": _load_image,
    "csv": _load_csv,
    "json": _load_json,
    "audio": _load_audio,
}


def _read_as(kind: str, label: str, data: bytes, limits: LoadLimits) -> LoadedFile:
    result = _LOADERS[kind](label, data, limits)
    return result if isinstance(result, LoadedFile) else LoadedFile(arrays=result, format=kind)


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
