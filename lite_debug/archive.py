"""Bug-report archives: find the model, the data and the reported error in any ``.zip`` or tar.

People attach whatever they have to a bug report: ``issue-1234/model.tflite`` beside an
``input.npy`` and a ``traceback.txt``, a Colab export with its ``__MACOSX/`` folder and
``.DS_Store`` files, a ``.tar.gz`` of a project folder. ``read_archive`` reads any of those in
memory (nothing is ever extracted to disk) and sorts what it holds into an ``Archive``:

- **models**: members whose bytes 4–8 are ``TFL3``, whatever their name or folder;
- **data files**: members with an extension ``load_data`` reads (kept as bytes, not loaded);
- **error texts**: ``.txt``/``.log``/``.md``/``.out`` files, READMEs and notebooks holding a
  traceback or an interpreter message, with the passage that matters explained by ``explain``;
- **others**, each with a sentence saying what it is (a Keras or SavedModel file that is not
  a TFLite model, a nested archive, a file named ``.tflite`` that is not one, …);
- **ignored**: what operating systems add (``__MACOSX/``, ``.DS_Store``, ``._*``, ``Thumbs.db``).

The format is recognised by its content (magic bytes), not by the extension: zip, tar, and tar
or a single file compressed with gzip, bzip2 or xz.

Archives come from strangers, so everything is checked as it streams, and every refusal is a
``BundleError`` whose sentence names the member and the reason:

- a member name with a ``..`` component, an absolute path, a backslash, a drive letter, or a
  NUL or other control character, or nested deeper than ``max_depth`` folders;
- a link (tar symlink or hardlink, or a zip member whose attributes mark a symlink), a device
  file or a FIFO;
- more than ``max_members`` members: for a zip, read from the end-of-central-directory record
  (and its ZIP64 twin) and then counted over the directory itself, *before* ``zipfile`` parses
  it; for a tar, counted as the headers stream past;
- more bytes than ``max_member_bytes`` in one member or ``max_total_bytes`` in all, counted as
  they decompress (declared sizes are never trusted), and a compressed stream that inflates past
  the same limit (plus room for tar headers);
- a damaged or truncated archive ("… is a damaged zip archive …"), an encrypted member, an
  unknown compression method.

Nested archives are **listed, not opened**: a ``.zip`` inside a ``.zip`` is named among the
other members with a sentence asking to upload it on its own. (``.npz`` files are data and
``.keras`` files Keras models, although both are zips.)
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import re
import struct
import tarfile
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Callable, Iterator, Sequence

from ._zipdir import DamagedDirectory, TooManyEntries, ViewReader, check_directory
from .errors import BundleError
from .explain import explain
from .records import Explanation

__all__ = [
    "Archive",
    "ArchiveFile",
    "ArchiveLimits",
    "ArchiveMember",
    "ErrorText",
    "archive_format",
    "read_archive",
    "read_files",
    "same_error",
]


@dataclass(frozen=True)
class ArchiveLimits:
    """How much an archive may make lite-debug read.

    ``max_members`` counts every entry (folders too); ``max_total_bytes`` and
    ``max_member_bytes`` count bytes as they are decompressed; ``max_depth`` caps the folders
    in a member's path; ``max_text_bytes`` is how much of a text file is searched for an error
    (its end, where logs put the error); ``max_header_bytes`` caps one tar metadata header (a
    pax record or a GNU long name). The defaults are those of ``BundleLimits``.
    """

    max_members: int = 256
    max_total_bytes: int = 1 << 30
    max_member_bytes: int = 512 << 20
    max_depth: int = 32
    max_text_bytes: int = 16 << 20
    max_header_bytes: int = 64 << 10


@dataclass(frozen=True, eq=False)
class ArchiveFile:
    """A model or a data file found in an archive: its path inside the archive and its bytes."""

    path: str
    data: bytes

    @property
    def name(self) -> str:
        """The file name without its folders (``issue-1/input_ids.npy`` → ``input_ids.npy``)."""
        return PurePosixPath(self.path).name

    @property
    def key(self) -> str:
        """The file name without folders or extension: what a data file is bound to an input by."""
        return PurePosixPath(self.path).stem

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class ArchiveMember:
    """A member that is neither a model, a data file nor an error text.

    ``kind`` is one of ``"not_tflite_model"`` (a Keras, SavedModel, ONNX, PyTorch, … file),
    ``"not_a_model"`` (named ``.tflite`` but not a TFLite flatbuffer), ``"nested_archive"``
    (listed, never opened), ``"text"`` (a text with no error in it) or ``"other"``; ``note``
    is a sentence saying what it is, or ``""``. ``size`` is the size the archive declares
    (for a zip member that was not read) or the bytes read.
    """

    path: str
    size: int
    kind: str = "other"
    note: str = ""


@dataclass(frozen=True)
class ErrorText:
    """An error reported in a file of the archive: the passage picked, and what it means.

    ``text`` is the part of the file that was explained (a traceback, an exception line, a
    paragraph of a log), as the file gives it; ``explanation.recognised`` is False when the
    passage looks like an error but is not one lite-debug knows.
    """

    path: str
    text: str
    explanation: Explanation

    @property
    def recognised(self) -> bool:
        return self.explanation.recognised

    def to_dict(self) -> dict[str, Any]:
        """The ``"reported"`` entry of ``--json``: the file, the passage and its explanation."""
        return {"path": self.path, "text": self.text, "explanation": self.explanation.to_dict()}


@dataclass(frozen=True, eq=False)
class Archive:
    """What a bug-report archive holds, sorted out; see the module docstring.

    ``format`` is ``"zip"``, ``"tar"``, ``"tar.gz"``, ``"tar.bz2"``, ``"tar.xz"``, or
    ``"gz"``/``"bz2"``/``"xz"`` for a single compressed file. ``error_texts`` come recognised
    ones first, then in archive order. ``is_bundle`` is True for a zip whose top-level
    ``manifest.json`` names the lite-debug bundle format: read it with ``read_bundle``.
    ``read_bytes`` is how many bytes were decompressed to find all this.
    """

    name: str
    format: str
    models: tuple[ArchiveFile, ...] = ()
    data_files: tuple[ArchiveFile, ...] = ()
    error_texts: tuple[ErrorText, ...] = ()
    others: tuple[ArchiveMember, ...] = ()
    ignored: tuple[str, ...] = ()
    is_bundle: bool = False
    member_count: int = 0
    read_bytes: int = 0

    @property
    def reported(self) -> ErrorText | None:
        """The error the archive reports: the first recognised error text, else the first one."""
        return self.error_texts[0] if self.error_texts else None

    def model(self, path: str) -> ArchiveFile:
        """The model at ``path``; raises ``KeyError`` when the archive holds no model there."""
        for m in self.models:
            if m.path == path:
                return m
        raise KeyError(path)

    def data_for(self, input_names: Sequence[str]) -> dict[str, ArchiveFile]:
        """Data files whose name matches an input's name, keyed by the input name.

        Names are compared the way ``bind`` compares them (``serving_default_x:0`` matches
        ``x.npy``), case-insensitively; an input matched by several files gets none, since
        picking one would be a guess.
        """
        from .binding import normalise_name

        by_key: dict[str, list[ArchiveFile]] = {}
        for f in self.data_files:
            by_key.setdefault(normalise_name(f.key), []).append(f)
        found = {}
        for name in input_names:
            files = by_key.get(normalise_name(name), [])
            if len(files) == 1:
                found[name] = files[0]
        return found

    def describe(self) -> str:
        """One sentence saying what the archive holds, for the dashboard and the command line."""
        parts: list[str] = []
        if self.models:
            parts.append(f"{_count(len(self.models), 'model')} ({_names(m.path for m in self.models)})")
        else:
            parts.append("no TFLite model")
        for m in self.others:
            if m.kind == "not_tflite_model":
                parts.append(f"{_what_model(m.path)} ({m.path}) that is not a TFLite model")
        if self.data_files:
            parts.append(_count(len(self.data_files), "data file"))
        if self.error_texts:
            what = "an error text" if len(self.error_texts) == 1 else f"{len(self.error_texts)} error texts"
            parts.append(f"{what} ({_names(e.path for e in self.error_texts)})")
        rest = [m for m in self.others if m.kind != "not_tflite_model"]
        nested = [m for m in rest if m.kind == "nested_archive"]
        if nested:
            what = "a nested archive" if len(nested) == 1 else f"{len(nested)} nested archives"
            parts.append(f"{what}, not opened ({_names(m.path for m in nested)})")
        plain = len(rest) - len(nested)
        if plain:
            parts.append(_count(plain, "other file"))
        if not (self.models or self.data_files or self.error_texts or self.others):
            if self.ignored:
                return (
                    f"{self.name} holds only files that operating systems add ({_names(self.ignored)}), "
                    "nothing lite-debug can use."
                )
            return f"{self.name} holds no files."
        lead = f"{self.name} is a lite-debug bundle and holds" if self.is_bundle else f"{self.name} holds"
        return f"{lead} {_join(parts)}."


def same_error(reported: Explanation, reproduced: Explanation) -> bool:
    """True when two explanations name the same error: same kind, and no fact they share differs.

    Compares what the messages say (input, dimension, got, expected, op, …), not their wording,
    so a message from another runtime version still counts as the same error. ``source``
    (a build-specific file and line) is ignored.
    """
    if not (reported.recognised and reproduced.recognised) or reported.kind != reproduced.kind:
        return False
    shared = (set(reported.facts) & set(reproduced.facts)) - {"source"}
    return all(reported.facts[k] == reproduced.facts[k] for k in shared)


# -- recognising the format -------------------------------------------------------------------

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_7Z_MAGIC = b"7z\xbc\xaf\x27\x1c"
_RAR_MAGIC = b"Rar!\x1a\x07"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TFLITE_ID = b"TFL3"


def archive_format(data: bytes | memoryview) -> str | None:
    """What kind of archive ``data`` is, by its magic bytes; None when it is not one.

    Returns ``"zip"``, ``"tar"``, ``"gzip"``, ``"bzip2"`` or ``"xz"`` (readable), or ``"7z"`` /
    ``"rar"`` (recognised, refused by ``read_archive`` with a sentence). A TFLite model is never
    an archive, even one that packs a zip at its end. Looks at the first 512 bytes only.
    """
    head = bytes(memoryview(data)[:512])
    if head[4:8] == _TFLITE_ID:
        return None
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZIP2_MAGIC) and len(head) > 3 and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if head.startswith(_7Z_MAGIC):
        return "7z"
    if head.startswith(_RAR_MAGIC):
        return "rar"
    if _is_tar_header(head):
        return "tar"
    return None


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512 or not any(block[:512]):
        return False
    if block[257:262] == b"ustar":
        return True
    # A pre-POSIX (v7) header has no magic: its checksum field is the only sign.
    field_ = block[148:156].replace(b"\0", b" ").strip()
    try:
        stored = int(field_, 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:512])


# -- reading ----------------------------------------------------------------------------------


def read_archive(name: str, data: bytes | memoryview, *, limits: ArchiveLimits = ArchiveLimits()) -> Archive:
    """Read a bug-report archive in memory and sort out what it holds.

    ``name`` is the archive's file name as uploaded (used in sentences only: the format comes
    from the content). Keeps the bytes of models, data files and error texts (copies of the
    decompressed members); other members are only listed, and for a zip only their first bytes
    are decompressed. Raises ``BundleError`` with a sentence naming the member and the reason
    when the archive is unsafe, over a limit, damaged, encrypted, of a kind lite-debug cannot
    read (7z, rar), or not an archive at all.
    """
    kind = archive_format(data)
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if kind is None:
        if bytes(view[4:8]) == _TFLITE_ID:
            raise BundleError(f"{name} is a TFLite model, not an archive; open it as a model.")
        raise BundleError(
            f"{name} is not a zip, tar or gzip archive (its first bytes match none of them); "
            "upload the model and data files themselves, or pack them as a .zip."
        )
    if kind in ("7z", "rar"):
        what = "a 7-Zip" if kind == "7z" else "a RAR"
        raise BundleError(
            f"{name} is {what} archive, which lite-debug cannot read; pack the files as a .zip or .tar.gz instead."
        )
    sorter = _Sorter(name, limits)
    _read_members(sorter, view, kind)
    return sorter.archive()


def _read_members(sink: Any, view: bytes | memoryview, kind: str) -> None:
    """Stream every member of an archive of ``kind`` (zip, tar, or a compressed tar) into ``sink``."""
    if kind == "zip":
        sink.format = "zip"
        _read_zip(sink, view)
    elif kind == "tar":
        sink.format = "tar"
        _read_tar(sink, _Stream(_plain_chunks(view), sink))
    else:
        _read_compressed(sink, view, kind)


def read_files(name: str, data: bytes | memoryview, *, limits: ArchiveLimits = ArchiveLimits()) -> tuple[ArchiveFile, ...]:
    """Every regular file of a zip or tar archive, with its path and bytes (a SavedModel's
    folder, zipped), read in memory with the same checks as ``read_archive``: no ``..``, no
    absolute path, no link or device, no more members or bytes than ``limits``. Folders and the
    files operating systems add (``__MACOSX/``, ``.DS_Store``) are left out. Raises
    ``BundleError`` with a sentence for anything ``read_archive`` refuses."""
    kind = archive_format(data)
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if kind not in ("zip", "tar", "gzip", "bzip2", "xz"):
        raise BundleError(f"{name} is not a zip or tar archive; pack the folder as a .zip.")
    keeper = _Keeper(name, limits)
    _read_members(keeper, view, kind)
    return tuple(keeper.models)


class _Sorter:
    """Sorts members as they stream past, and keeps the running counts the limits apply to."""

    def __init__(self, name: str, limits: ArchiveLimits) -> None:
        self.name, self.limits = name, limits
        self.format = ""
        self.members = 0
        self.total = 0  # bytes of members decompressed so far
        self.models: list[ArchiveFile] = []
        self.data: list[ArchiveFile] = []
        self.errors: list[ErrorText] = []
        self.others: list[ArchiveMember] = []
        self.ignored: list[str] = []
        self.is_bundle = False
        self.explain_calls, self.explain_seconds = 0, 0.0
        self.lines_left = _LINES_PER_ARCHIVE  # lines of all texts checked for an exception
        self.member_read = 0  # bytes of the current member decompressed so far

    # The sentences every refusal starts with.
    def refuse(self, path: str, why: str, remedy: str = "re-pack the files with plain relative names") -> BundleError:
        return BundleError(
            f"{self.name} holds a member named {_shown(path)}, {why}; lite-debug refuses such archives: {remedy}."
        )

    def damaged(self, what: str, detail: object) -> BundleError:
        return BundleError(f"{self.name} is a damaged {what} archive ({_detail(detail)}); download or pack it again.")

    def count_member(self, path: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise BundleError(
                f"{self.name} holds more than {self.limits.max_members} members (reading stopped at "
                f"{_shown(path)}); lite-debug reads at most {self.limits.max_members}: pack only the "
                "model, its inputs and the error text."
            )

    def check_path(self, path: str) -> str:
        """The member's path with ``.`` components dropped; raises for an unsafe one."""
        if not path:
            raise self.refuse(path, "an empty name")
        bad = next((c for c in path if _is_control(c)), None)
        if bad is not None:
            raise self.refuse(path, f"which contains the control character {bad!r}")
        if "\\" in path:
            raise self.refuse(path, "which contains a backslash (a Windows path, which other tools unpack elsewhere)")
        if path.startswith("/"):
            raise self.refuse(path, "an absolute path")
        if re.match(r"^[A-Za-z]:", path):
            raise self.refuse(path, "which starts with a drive letter")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse(path, "whose path climbs out of the archive with '..'")
        if len(parts) - 1 > self.limits.max_depth:
            raise self.refuse(
                path, f"nested {len(parts) - 1} folders deep, more than the {self.limits.max_depth} allowed",
                "re-pack the files in fewer folders",
            )
        return "/".join(parts)

    def read(self, path: str, fh: BinaryIO, size: int = -1) -> bytes:
        """Up to ``size`` more bytes of a member (the rest with -1), counted against the limits as they come."""
        chunks: list[bytes] = []
        got = 0
        while size < 0 or got < size:
            want = _CHUNK if size < 0 else min(_CHUNK, size - got)
            chunk = fh.read(want)
            if not chunk:
                break
            got += len(chunk)
            self.total += len(chunk)
            if self.member_read + got > self.limits.max_member_bytes:
                raise BundleError(
                    f"{self.name}'s member {_shown(path)} decompresses to more than "
                    f"{self.limits.max_member_bytes:,} bytes; refusing it as a possible archive bomb."
                )
            if self.total > self.limits.max_total_bytes:
                raise BundleError(
                    f"{self.name} decompresses to more than {self.limits.max_total_bytes:,} bytes in all; "
                    "refusing it as a possible archive bomb: pack only the model, its inputs and the error text."
                )
            chunks.append(chunk)
        self.member_read += got
        return b"".join(chunks)

    def add(self, path: str, declared: int, fh: BinaryIO) -> None:
        """Sort one regular file whose (checked) path is ``path``; reads what sorting needs."""
        self.member_read = 0
        if not path:
            raise self.refuse(path, "a name with no file in it", "re-pack the files with plain names")
        base = PurePosixPath(path).name
        lower = base.lower()
        ext = PurePosixPath(lower).suffix
        if _ignored(path):
            self.ignored.append(path)
            return
        head = self.read(path, fh, 64)
        if head[4:8] == _TFLITE_ID:
            self.models.append(ArchiveFile(path, head + self.read(path, fh)))
            return
        size_seen = len(head)
        if ext in (".tflite", ".lite"):
            self.others.append(ArchiveMember(path, max(declared, size_seen), "not_a_model", _not_tflite(path, head)))
            return
        model_kind = _other_model(lower, ext, head)
        if model_kind is not None:
            self.others.append(ArchiveMember(path, max(declared, size_seen), "not_tflite_model", f"{path} is {model_kind}"))
            return
        if ext in _DATA_EXTS:
            whole = head + self.read(path, fh)
            if path == "manifest.json" and self.format == "zip":
                self.is_bundle = _names_bundle(whole)
            self.data.append(ArchiveFile(path, whole))
            return
        if ext in _TEXT_EXTS or lower.startswith("readme") or ext == ".ipynb":
            self._text(path, head, fh, ext)
            return
        nested = _nested_kind(ext, head)
        if nested:
            self.others.append(ArchiveMember(
                path, max(declared, size_seen), "nested_archive",
                f"{path} is {nested} inside the archive; lite-debug does not open archives within "
                "archives: extract it and upload it on its own",
            ))
            return
        self.others.append(ArchiveMember(path, max(declared, size_seen)))

    def _text(self, path: str, head: bytes, fh: BinaryIO, ext: str) -> None:
        limit = self.limits.max_text_bytes
        if ext == ".ipynb":
            raw = head + self.read(path, fh, limit + 1 - len(head))
            if len(raw) > limit:
                self.others.append(ArchiveMember(
                    path, len(raw), "text",
                    f"{path} is a notebook larger than the {limit:,} bytes lite-debug searches for an error",
                ))
                return
            text = _notebook_errors(raw)
        else:
            raw = head + self.read(path, fh)
            # A log longer than the limit is searched from its end, where the error is.
            text = _decode(raw[-limit:])
        found = _find_error(text, self) if text else None
        if found is not None:
            passage, explanation = found
            self.errors.append(ErrorText(path, passage, explanation))
        elif ext == ".txt" and _numeric(text):
            self.data.append(ArchiveFile(path, raw))
        else:
            self.others.append(ArchiveMember(path, len(raw), "text"))

    def may_explain(self) -> bool:
        return self.explain_calls < _EXPLAIN_CALLS and self.explain_seconds < _EXPLAIN_SECONDS

    def explain(self, passage: str) -> Explanation:
        started = time.perf_counter()
        try:
            return explain(passage)
        finally:
            self.explain_calls += 1
            self.explain_seconds += time.perf_counter() - started

    def archive(self) -> Archive:
        errors = sorted(self.errors, key=lambda e: not e.recognised)  # stable: archive order within
        return Archive(
            name=self.name,
            format=self.format,
            models=tuple(self.models),
            data_files=tuple(self.data),
            error_texts=tuple(errors),
            others=tuple(self.others),
            ignored=tuple(self.ignored),
            is_bundle=self.is_bundle,
            member_count=self.members,
            read_bytes=self.total,
        )


class _Keeper(_Sorter):
    """Keeps every regular file whole (in ``models``), sorting nothing: ``read_files``."""

    def add(self, path: str, declared: int, fh: BinaryIO) -> None:
        self.member_read = 0
        if not path:
            raise self.refuse(path, "a name with no file in it", "re-pack the files with plain names")
        if _ignored(path):
            self.ignored.append(path)
            return
        self.models.append(ArchiveFile(path, self.read(path, fh)))


_CHUNK = 1 << 20


# -- zip --------------------------------------------------------------------------------------

# Everything zipfile and zlib raise on a damaged or hostile archive (NotImplementedError: an
# unknown zip version or compression; RuntimeError: an encrypted member; EOFError: a member cut short).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)
_S_IFMT, _S_IFLNK, _S_IFDIR = 0o170000, 0o120000, 0o040000
_UNIX_TYPES = {0o020000: "a character device", 0o060000: "a block device", 0o010000: "a FIFO (named pipe)", 0o140000: "a socket"}


def _read_zip(sorter: _Sorter, view: bytes | memoryview) -> None:
    limits = sorter.limits
    try:
        raw_names = check_directory(view, limits.max_members)
    except TooManyEntries as exc:
        counted = f"declares {exc.count:,} members" if exc.declared else f"holds more than {exc.limit} members"
        raise BundleError(
            f"{sorter.name} {counted}, more than the {exc.limit} lite-debug reads; refused before reading its "
            "directory: pack only the model, its inputs and the error text."
        ) from None
    except DamagedDirectory as exc:
        raise sorter.damaged("zip", exc) from None
    if raw_names is None:
        raise sorter.damaged("zip", "it has no end-of-central-directory record: the file is cut short or not a whole zip")
    for raw in raw_names:
        if b"\0" in raw:
            shown = raw.split(b"\0", 1)[0].decode("utf-8", "replace") + "\\x00…"
            raise BundleError(
                f"{sorter.name} holds a member named {shown!r}, which contains a NUL character; lite-debug "
                "refuses such archives: re-pack the files with plain relative names."
            )
    try:
        zf = zipfile.ZipFile(ViewReader(view))
    except _ZIP_ERRORS as exc:
        raise sorter.damaged("zip", exc) from None
    with zf:
        for info in zf.infolist():
            sorter.count_member(info.filename)
            path = sorter.check_path(info.filename)
            mode = info.external_attr >> 16
            kind = mode & _S_IFMT
            if kind == _S_IFLNK:
                raise sorter.refuse(
                    info.filename, "which is a symbolic link",
                    "re-pack the files without links, since a link can point outside the archive",
                )
            if kind in _UNIX_TYPES:
                raise sorter.refuse(info.filename, f"which is {_UNIX_TYPES[kind]}", "re-pack plain files only")
            if info.is_dir() or kind == _S_IFDIR:
                continue
            if info.flag_bits & 0x1:
                raise BundleError(
                    f"{sorter.name}'s member {_shown(info.filename)} is encrypted; lite-debug cannot read "
                    "password-protected archives: pack the files without a password."
                )
            try:
                with zf.open(info) as fh:
                    sorter.add(path, info.file_size, fh)
            except NotImplementedError as exc:
                raise BundleError(
                    f"{sorter.name}'s member {_shown(info.filename)} uses a compression lite-debug cannot read "
                    f"({_detail(exc)}); re-pack the archive with ordinary (deflate) compression."
                ) from None
            except _ZIP_ERRORS as exc:
                raise sorter.damaged("zip", f"{_shown(info.filename)}: {_detail(exc)}") from None


# -- tar and compressed streams ---------------------------------------------------------------

_STREAM_CHUNK = 64 << 10


class _Stream(io.RawIOBase):
    """A read-only stream over chunks of decompressed bytes that refuses to inflate past a cap.

    The cap is the limit on members' bytes plus room for every member's tar headers, so a
    gzip bomb (or a tar of millions of empty members behind one) stops at the cap, counted on
    what actually came out of the decompressor.
    """

    def __init__(self, chunks: Iterator[bytes], sorter: _Sorter) -> None:
        self.chunks, self.sorter = chunks, sorter
        limits = sorter.limits
        self.cap = limits.max_total_bytes + (limits.max_members + 2) * (3 * limits.max_header_bytes + 2048)
        self.pending = memoryview(b"")
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                return 0
            self.count += len(chunk)
            if self.count > self.cap:
                raise BundleError(
                    f"{self.sorter.name} decompresses to more than {self.cap:,} bytes (the "
                    f"{self.sorter.limits.max_total_bytes:,}-byte limit on its files, plus room for tar headers); "
                    "refusing it as a possible archive bomb."
                )
            self.pending = memoryview(chunk)
        n = min(len(buffer), len(self.pending))
        memoryview(buffer).cast("B")[:n] = self.pending[:n]
        self.pending = self.pending[n:]  # a view: no copy of the rest
        return n


def _plain_chunks(view: bytes | memoryview) -> Iterator[bytes]:
    for i in range(0, len(view), _STREAM_CHUNK):
        yield bytes(view[i : i + _STREAM_CHUNK])


class _Truncated(Exception):
    pass


class _Zlib:
    """zlib's gzip decompressor with the interface of bz2's and lzma's."""

    def __init__(self) -> None:
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    eof = property(lambda self: self.d.eof)
    unused_data = property(lambda self: self.d.unused_data)
    needs_input = property(lambda self: not self.d.unconsumed_tail)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self.d.decompress(data or self.d.unconsumed_tail, max_length)


_DECOMPRESSORS: dict[str, tuple[Callable[[], Any], bytes, str]] = {
    "gzip": (_Zlib, _GZIP_MAGIC, "gz"),
    "bzip2": (bz2.BZ2Decompressor, _BZIP2_MAGIC, "bz2"),
    "xz": (lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), _XZ_MAGIC, "xz"),
}


def _inflate(view: bytes | memoryview, kind: str) -> Iterator[bytes]:
    """The decompressed bytes of ``view``, at most 64 KiB at a time, across concatenated streams.

    Raises ``_Truncated`` when the input ends inside a stream; bytes after the last stream that
    do not start another one are ignored, as gzip does with padding.
    """
    factory, magic, _ = _DECOMPRESSORS[kind]
    pos, n = 0, len(view)
    while True:
        d = factory()
        fed = pos
        while not d.eof:
            if d.needs_input:
                if pos >= n:
                    out = d.decompress(b"", _STREAM_CHUNK)
                    if not out:
                        raise _Truncated
                else:
                    chunk = bytes(view[pos : pos + _STREAM_CHUNK])
                    pos += len(chunk)
                    out = d.decompress(chunk, _STREAM_CHUNK)
            else:
                out = d.decompress(b"", _STREAM_CHUNK)
            if out:
                yield out
        pos -= len(d.unused_data)
        if pos <= fed or bytes(view[pos : pos + len(magic)]) != magic:
            return


def _read_compressed(sorter: _Sorter, view: bytes | memoryview, kind: str) -> None:
    _, _, suffix = _DECOMPRESSORS[kind]
    what = {"gzip": "gzip", "bzip2": "bzip2", "xz": "xz"}[kind]

    def chunks() -> Iterator[bytes]:
        try:
            yield from _inflate(view, kind)
        except _Truncated:
            raise sorter.damaged(what, "the compressed stream ends early: the file is cut short") from None
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            raise sorter.damaged(what, exc) from None

    stream = _Stream(_first_at_least(chunks(), 512), sorter)
    buffered = io.BufferedReader(stream, buffer_size=_STREAM_CHUNK)
    first = buffered.peek(512)[:512]  # one whole chunk: at least 512 bytes unless the file is shorter
    if _is_tar_header(first):
        sorter.format = f"tar.{suffix}"
        _read_tar(sorter, buffered)
        return
    sorter.format = suffix
    path = _inner_name(sorter.name, view, kind, suffix)
    sorter.count_member(path)
    sorter.add(sorter.check_path(path), 0, buffered)


def _first_at_least(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """The same bytes, with the first chunk at least ``size`` long (unless all of them are shorter)."""
    first = b""
    for chunk in chunks:
        first += chunk
        if len(first) >= size:
            break
    if first:
        yield first
    yield from chunks


def _inner_name(name: str, view: bytes | memoryview, kind: str, suffix: str) -> str:
    """The name of the single file a .gz/.bz2/.xz holds: gzip's stored name, else the archive's without the suffix."""
    if kind == "gzip":
        header = bytes(view[:1024])
        flags, pos = header[3] if len(header) > 3 else 0, 10
        if flags & 4 and len(header) >= 12:  # FEXTRA
            pos += 2 + struct.unpack_from("<H", header, 10)[0]
        if flags & 8:  # FNAME, zero-terminated
            end = header.find(b"\0", pos)
            stored = header[pos:end].decode("latin-1") if end > pos else ""
            unsafe = any(c in "/\\" or _is_control(c) for c in stored)
            if stored not in ("", ".", "..") and not unsafe:
                return stored
    base = PurePosixPath(name.replace("\\", "/")).name
    for ext in (f".{suffix}", ".gzip", ".tgz", ".bz2", ".xz"):
        if base.lower().endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)]
    return base or "unnamed"


# Tar header types that are not files or folders but describe the next member.
_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


def _read_tar(sorter: _Sorter, stream: BinaryIO) -> None:
    limits = sorter.limits

    class _TarInfo(tarfile.TarInfo):
        # tarfile reads a pax record or a GNU long name whole, whatever size its header
        # declares: refuse an outsized one before it is read.
        def _proc_member(self, tf):  # type: ignore[override]
            if self.type in _META_TYPES and self.size > limits.max_header_bytes:
                raise BundleError(
                    f"{sorter.name} holds a tar metadata header of {self.size:,} bytes, more than the "
                    f"{limits.max_header_bytes:,} allowed; the archive is damaged or crafted: pack it again."
                )
            return super()._proc_member(tf)

    what = sorter.format  # "tar", "tar.gz", …
    try:
        tf = tarfile.open(fileobj=stream, mode="r|", tarinfo=_TarInfo, bufsize=_STREAM_CHUNK)
        with tf:
            for member in tf:
                sorter.count_member(member.name)
                path = sorter.check_path(member.name)
                if member.issym() or member.islnk():
                    link = "a symbolic link" if member.issym() else "a hard link"
                    raise sorter.refuse(
                        member.name, f"which is {link} to {_shown(member.linkname)}",
                        "re-pack the files without links, since a link can point outside the archive",
                    )
                if member.isdev():
                    kind = (
                        "a FIFO (named pipe)" if member.isfifo()
                        else "a character device" if member.ischr() else "a block device"
                    )
                    raise sorter.refuse(member.name, f"which is {kind}", "re-pack plain files only")
                if member.isdir():
                    continue
                if not member.isreg():
                    raise sorter.refuse(
                        member.name, f"which is a tar entry of unusual type {member.type!r}", "re-pack plain files only"
                    )
                if member.size > limits.max_member_bytes:
                    raise BundleError(
                        f"{sorter.name}'s member {_shown(member.name)} is {member.size:,} bytes, more than the "
                        f"{limits.max_member_bytes:,} lite-debug reads; pack a smaller sample."
                    )
                fh = tf.extractfile(member)
                if fh is None:  # cannot happen for a regular file; refuse rather than guess
                    raise sorter.damaged(what, f"{_shown(member.name)} cannot be read")
                sorter.add(path, member.size, fh)
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeError, RecursionError, struct.error) as exc:
        raise sorter.damaged(what, exc) from None


# -- sorting members --------------------------------------------------------------------------

_DATA_EXTS = frozenset({
    ".npy", ".npz", ".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".csv", ".tsv", ".json",
    ".bin", ".raw", ".dat", ".wav", ".flac", ".ogg", ".mp3",
})
_TEXT_EXTS = frozenset({".txt", ".log", ".md", ".markdown", ".out", ".err", ".rst"})
_IGNORED_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".localized"})
_IGNORED_FOLDERS = frozenset({"__MACOSX", ".ipynb_checkpoints", ".Spotlight-V100", ".Trashes", ".fseventsd"})
_MODEL_EXTS = {
    ".h5": "a Keras HDF5 model; convert it with tf.lite.TFLiteConverter.from_keras_model first",
    ".hdf5": "a Keras HDF5 model; convert it with tf.lite.TFLiteConverter.from_keras_model first",
    ".keras": "a Keras model; convert it with tf.lite.TFLiteConverter.from_keras_model first",
    ".pb": "a TensorFlow graph (a SavedModel or a frozen graph); convert it with tf.lite.TFLiteConverter first",
    ".pbtxt": "a TensorFlow graph in text form; convert it with tf.lite.TFLiteConverter first",
    ".onnx": "an ONNX model; convert it to TFLite (for example with onnx2tf) first",
    ".pt": "a PyTorch model; convert it to TFLite (for example with ai-edge-torch) first",
    ".pth": "a PyTorch model; convert it to TFLite (for example with ai-edge-torch) first",
    ".mlmodel": "a Core ML model; lite-debug reads TFLite models only",
}
_SAVED_MODEL_PARTS = frozenset({"fingerprint.pb", "keras_metadata.pb"})
_ARCHIVE_EXTS = {".zip": "a zip archive", ".tar": "a tar archive", ".tgz": "a tar.gz archive", ".gz": "a gzip file",
                 ".bz2": "a bzip2 file", ".xz": "an xz file", ".7z": "a 7-Zip archive", ".rar": "a RAR archive"}


def _ignored(path: str) -> bool:
    parts = path.split("/")
    base = parts[-1]
    return any(p in _IGNORED_FOLDERS for p in parts[:-1]) or base.lower() in _IGNORED_NAMES or base.startswith("._")


def _other_model(lower: str, ext: str, head: bytes) -> str | None:
    if head.startswith(_HDF5_MAGIC) and ext not in _DATA_EXTS:
        return _MODEL_EXTS[".h5"]
    if lower in _SAVED_MODEL_PARTS:
        return None  # a SavedModel's side files: its saved_model.pb is what gets noted
    return _MODEL_EXTS.get(ext)


def _nested_kind(ext: str, head: bytes) -> str | None:
    if head.startswith(_ZIP_MAGIC):
        return "a zip archive"
    if head.startswith(_GZIP_MAGIC):
        return "a gzip file"
    if head.startswith(_XZ_MAGIC):
        return "an xz file"
    if head.startswith(_7Z_MAGIC):
        return "a 7-Zip archive"
    if head.startswith(_RAR_MAGIC):
        return "a RAR archive"
    return _ARCHIVE_EXTS.get(ext)


def _not_tflite(path: str, head: bytes) -> str:
    if not head:
        what = "empty (0 bytes)"
    elif head.startswith(b"version https://git-lfs"):
        what = "a Git LFS pointer, not the model (run `git lfs pull` where it came from)"
    elif head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        what = "an HTML page (probably a download page saved instead of the model)"
    elif head.startswith(_HDF5_MAGIC):
        what = "a Keras HDF5 file renamed .tflite; convert it with tf.lite.TFLiteConverter first"
    elif len(head) < 8:
        what = f"only {len(head)} bytes long"
    else:
        what = "not a TFLite flatbuffer (bytes 4–8 are not 'TFL3')"
    return f"{path} is named like a TFLite model but is {what}"


def _what_model(path: str) -> str:
    ext = PurePosixPath(path.lower()).suffix
    return {".h5": "a Keras model", ".hdf5": "a Keras model", ".keras": "a Keras model", ".pb": "a TensorFlow graph",
            ".pbtxt": "a TensorFlow graph", ".onnx": "an ONNX model", ".pt": "a PyTorch model",
            ".pth": "a PyTorch model", ".mlmodel": "a Core ML model"}.get(ext, "a Keras model")


def _names_bundle(raw: bytes) -> bool:
    from .bundle import FORMAT  # here, not at the top: bundle imports numpy

    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


# -- error texts ------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# An exception line as Python prints it, maybe behind a log or quote prefix ("E   ", "> "). The
# quantifiers are bounded so that a long line of letters cannot make the search backtrack far.
_EXCEPTION_HEAD = (
    r"[^\S\n]{0,8}[>|E]{0,3}[^\S\n]{0,8}"  # indentation and a log or quote prefix
    r"(?:[A-Za-z_]\w{0,60}\.){0,8}[A-Za-z_]\w{0,60}(?:Error|Exception)"  # the (dotted) type
    r"(?:[^\S\n]*:[^\n]*)?[^\S\n]*$"  # the message
)
_EXCEPTION = re.compile("^" + _EXCEPTION_HEAD, re.M)
_BLOCK_END = r"[^\S\n]*(?:```|~~~|>>> |In \[\d+\]:|During handling of the above|The above exception was)"
# What ends an exception's message: a blank line, a fence or prompt, another traceback or exception.
_MESSAGE_STOP = re.compile(
    r"\n(?=[^\S\n]*(?:\n|$)|" + _BLOCK_END + r"|[^\w\n]{0,8}Traceback \(most recent|" + _EXCEPTION_HEAD + ")", re.M
)
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*|\n(?=" + _BLOCK_END + r")[^\n]*\n?", re.M)
_TRACEBACK = "Traceback (most recent call last):"
_MAX_CANDIDATES = 40  # of each kind per file, the last ones
_MAX_LINES_LOOKED = 2000  # lines holding "Error" or "Exception" checked per file, from the end
_LINES_PER_ARCHIVE = 20_000  # and in all the texts of one archive
_MAX_TRACEBACK = 64 << 10  # characters between a traceback's first line and its exception
_MAX_PASSAGE = 16 << 10  # characters of a passage kept to show
_PARAGRAPH_WINDOW = 256 << 10  # characters at the end of a text searched for paragraphs
# What explain() is given of a passage: its end, where the message is. explain() takes time
# superlinear in the length of some texts (long runs of letters: ~0.6 s for 4,000), so
# passages are cut, and one archive may spend at most _EXPLAIN_SECONDS (or _EXPLAIN_CALLS
# calls) on candidates; past that, no more candidates are looked at.
_MAX_EXPLAINED = 4 << 10
_MAX_PARAGRAPH = 2 << 10
_EXPLAIN_CALLS = 600
_EXPLAIN_SECONDS = 1.0


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16", "replace")
    else:
        text = raw.decode("utf-8-sig", "replace")
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def _numeric(text: str) -> bool:
    sample = text[:65536]
    return bool(re.search(r"\d", sample)) and re.fullmatch(r"[\s\d.,;:eE+\-]*", sample) is not None


def _notebook_errors(raw: bytes) -> str:
    """The error outputs of a Jupyter/Colab notebook as plain tracebacks, one after another."""
    try:
        nb = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _decode(raw)
    found: list[str] = []
    cells = nb.get("cells", []) if isinstance(nb, dict) else []
    for cell in cells if isinstance(cells, list) else []:
        outputs = cell.get("outputs", []) if isinstance(cell, dict) else []
        for out in outputs if isinstance(outputs, list) else []:
            if not isinstance(out, dict):
                continue
            if out.get("output_type") == "error":
                tb = out.get("traceback")
                lines = [str(t) for t in tb] if isinstance(tb, list) else []
                last = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
                text = "\n".join(lines) if lines else last
                if last not in _ANSI.sub("", text):
                    text += "\n" + last
                found.append("Traceback (most recent call last):\n" + _ANSI.sub("", text))
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                body = out.get("text", "")
                found.append(_ANSI.sub("", "".join(body) if isinstance(body, list) else str(body)))
    return "\n\n".join(found)


def _find_error(text: str, sorter: _Sorter) -> tuple[str, Explanation] | None:
    """The passage of ``text`` that reports an error, and its explanation; None when none does.

    Candidates are tracebacks, exception lines and paragraphs; the last recognised traceback
    wins, then the last recognised exception line, then the last recognised paragraph (a log
    line such as ``Node number 3 (RESHAPE) failed to prepare.``). When nothing is recognised,
    the last traceback (or exception line) is still the reported error, explained as unknown.

    Scans backwards from the end and stops after a few candidates of each kind, so a crafted
    text costs time in proportion to what is looked at, not to its size; paragraphs are looked
    for in the last ``_PARAGRAPH_WINDOW`` characters only.
    """
    tracebacks, exceptions, looked = _exception_spans(text, min(_MAX_LINES_LOOKED, sorter.lines_left))
    sorter.lines_left -= looked
    paragraphs: list[tuple[int, int]] = []
    window = max(0, len(text) - _PARAGRAPH_WINDOW)
    stop = len(text)
    for m in reversed(list(_PARAGRAPH_BREAK.finditer(text, window))):
        if len(paragraphs) >= _MAX_CANDIDATES:
            break
        paragraphs.append((m.end(), stop))
        stop = m.start()
    if len(paragraphs) < _MAX_CANDIDATES:
        paragraphs.append((window, stop))

    def passage(span: tuple[int, int], most: int = _MAX_PASSAGE) -> str:
        return text[span[0] : span[1]].strip()[-most:]

    explained: dict[str, Explanation] = {}
    for spans, most in ((tracebacks, _MAX_EXPLAINED), (exceptions, _MAX_EXPLAINED), (paragraphs, _MAX_PARAGRAPH)):
        for span in spans:  # each list runs from the last one back
            candidate = passage(span, most)
            if not candidate or candidate in explained or not sorter.may_explain():
                continue
            explained[candidate] = sorter.explain(candidate)
            if explained[candidate].recognised:
                return passage(span), explained[candidate]
    for spans in (tracebacks, exceptions):
        if spans:
            candidate = passage(spans[0], _MAX_EXPLAINED)
            if candidate not in explained:
                # Even past the budget, the file's error is reported: as not examined.
                explained[candidate] = sorter.explain(candidate) if sorter.may_explain() else _not_examined(candidate)
            return passage(spans[0]), explained[candidate]
    return None


def _not_examined(passage: str) -> Explanation:
    return Explanation(
        kind="unknown",
        title="Message not examined",
        cause=(
            "lite-debug did not compare this message with the errors it knows: the archive holds more "
            "error text than it examines in one go."
        ),
        fix="Paste this error on the Explain page (or give it to `lite-debug explain`) to have it explained.",
        message=passage[-300:],
    )


def _exception_spans(text: str, most: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """The last tracebacks and lone exception lines of ``text``, each a (start, end), last first,
    and how many lines were looked at (``most`` at most).

    Finds exception lines from the end with ``str.rfind`` on the words every one contains
    ("Error", "Exception"), checking only those lines with the pattern; a traceback is the
    "Traceback (most recent call last):" line before an exception line with no other
    exception line between them, within ``_MAX_TRACEBACK`` characters.
    """
    tracebacks: list[tuple[int, int]] = []
    exceptions: list[tuple[int, int]] = []
    pos, looked = len(text), 0
    # The last occurrence of each word before pos, searched again only once pos passes it: a
    # word that no longer occurs would otherwise be looked for over the whole text each time.
    last = {word: text.rfind(word) for word in ("Error", "Exception")}
    while pos > 0 and looked < most and (len(tracebacks) < _MAX_CANDIDATES or len(exceptions) < _MAX_CANDIDATES):
        for word, at in last.items():
            if at >= pos:
                last[word] = text.rfind(word, 0, pos)
        hit = max(last.values())
        if hit < 0:
            break
        line_start = text.rfind("\n", 0, hit) + 1
        line_end = text.find("\n", hit)
        line_end = len(text) if line_end < 0 else line_end
        pos = line_start
        looked += 1
        if not _EXCEPTION.match(text, line_start, line_end):
            continue
        end = _message_end(text, line_end)
        tb = text.rfind(_TRACEBACK, max(0, line_start - _MAX_TRACEBACK), line_start)
        if tb >= 0 and not _EXCEPTION.search(text, tb, line_start):
            tb = text.rfind("\n", 0, tb) + 1
            tracebacks.append((tb, end))
            pos = tb
        else:
            exceptions.append((line_start, end))
    return tracebacks, exceptions, looked


def _message_end(text: str, pos: int) -> int:
    """Where an exception message whose first line ends at ``pos`` ends: it may run over lines
    (the interpreter's do), up to a blank line, a fence or prompt, or the next traceback or
    exception. Looks at most ``_MAX_PASSAGE`` characters ahead."""
    m = _MESSAGE_STOP.search(text, pos, pos + _MAX_PASSAGE)
    return m.start() if m else min(len(text), pos + _MAX_PASSAGE)


# -- sentences --------------------------------------------------------------------------------

_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _is_control(c: str) -> bool:
    # Control characters (C0, DEL, C1) and the bidirectional overrides that make a name read
    # as another in a listing.
    return unicodedata.category(c) == "Cc" or c in _BIDI


def _shown(path: str) -> str:
    """A member name quoted for a sentence: escaped (repr), and cut when very long."""
    return repr(path if len(path) <= 200 else path[:100] + "…" + path[-60:])


def _detail(detail: object) -> str:
    text = str(detail).strip() or type(detail).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _names(paths: Any, most: int = 3) -> str:
    paths = list(paths)
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
