"""Open whatever a user brings as "the model": a ``.tflite``, a lite-debug bundle, or any
bug-report archive (``.zip``, ``.tar``, ``.tar.gz``) with a model, data and an error text in it.

The dashboard's Start page and ``lite-debug check`` both call ``open_model_file``, so a file
reads the same in both. An archive with several models raises ``ChooseModel``, naming them:
the caller asks which (a select box, ``--member``) and opens it again with ``member=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .archive import Archive, ErrorText, archive_format, read_archive
from .bundle import Bundle, read_bundle
from .errors import ModelLoadError
from .records import Feed

__all__ = ["ChooseModel", "Opened", "open_model_file"]


class ChooseModel(ModelLoadError):
    """An archive holds several models: which one to open is the user's choice."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.paths = tuple(m.path for m in archive.models)
        super().__init__(
            f"{archive.describe()} Pick the model to open"
            f" (on the command line: --member {self.paths[0]!r})."
        )


@dataclass(frozen=True, eq=False)
class Opened:
    """A model ready to inspect, with what came with it.

    ``container`` is the bundle's or archive's file name (None for a plain model); ``files``
    the data files the archive holds for it, as ``(name, bytes)``: ``keyed`` when each is named
    for the input it matches (the name is then the input's), else in the archive's order.
    ``reported`` is the error the archive's text reports; ``summary`` says what the archive held.
    """

    model_name: str
    model: bytes | memoryview
    container: str | None = None
    bundle: Bundle | None = None
    archive: Archive | None = None
    files: tuple[tuple[str, bytes], ...] = ()
    keyed: bool = False
    reported: ErrorText | None = None
    summary: str = ""

    @property
    def feed(self) -> Feed | None:
        return self.bundle.feed if self.bundle is not None else None

    @property
    def signature(self) -> str | None:
        return self.bundle.signature if self.bundle is not None else None


def open_model_file(name: str, data: bytes | memoryview, member: str | None = None) -> Opened:
    """Sort out a file given as the model.

    Raises ``ChooseModel`` for an archive with several models and no ``member``;
    ``ModelLoadError`` (with what the archive holds) for one with none or a ``member`` it
    lacks; ``BundleError`` for a damaged, unsafe or oversized archive. A plain file is returned
    as a model: inspecting it says whether it is one.
    """
    kind = archive_format(data)
    if kind is None:
        _refuse_impostor(name, data)
        return Opened(model_name=name, model=data)
    archive = read_archive(name, data)
    if archive.is_bundle:
        bundle = read_bundle(bytes(data))
        return Opened(model_name=bundle.model_name, model=bundle.model, container=name, bundle=bundle,
                      summary=f"{name} is a lite-debug bundle of {bundle.model_name}.")
    if not archive.models:
        raise ModelLoadError(f"{archive.describe()} There is nothing to open as the model; "
                             + _notes(archive) + "add the .tflite file to the archive, or upload it on its own.")
    if member is None and len(archive.models) > 1:
        raise ChooseModel(archive)
    try:
        model = archive.model(member) if member is not None else archive.models[0]
    except KeyError:
        known = ", ".join(repr(m.path) for m in archive.models)
        raise ModelLoadError(f"{name} holds no model {member!r}; its models are {known}.") from None
    return Opened(
        model_name=model.name, model=model.data, container=name, archive=archive,
        reported=archive.reported, summary=archive.describe(),
    )


def data_files_for(opened: Opened, input_names: Sequence[str]) -> tuple[tuple[tuple[str, bytes], ...], bool]:
    """The archive's data files for these inputs: by name where names match, else in order
    when there is one file per input (or one file for all, an ``.npz``); ``((), False)`` when
    neither says which file is which."""
    archive = opened.archive
    if archive is None or not archive.data_files:
        return (), False
    named = archive.data_for(input_names)
    if named:
        return tuple((input_name, f.data) for input_name, f in named.items()), True
    files = archive.data_files
    if len(files) == len(input_names) or len(files) == 1:
        return tuple((f.name, f.data) for f in files), False
    return (), False


def _notes(archive: Archive) -> str:
    notes = [m.note for m in archive.others if m.note and m.kind in ("not_tflite_model", "not_a_model")]
    return (" ".join(notes) + " ") if notes else ""


_ARCHIVE_NAMES = (".zip", ".tar", ".tgz", ".tar.gz", ".gz", ".tar.bz2", ".tar.xz")


def _refuse_impostor(name: str, data: Any) -> None:
    """A file named like an archive that is none: say that, not 'not a TFLite flatbuffer'."""
    lower = name.lower()
    if lower.endswith(_ARCHIVE_NAMES) and bytes(data[4:8]) != b"TFL3":
        ext = next(e for e in sorted(_ARCHIVE_NAMES, key=len, reverse=True) if lower.endswith(e))
        raise ModelLoadError(
            f"{name!r} is named like a {ext} archive but is not one (its first bytes are not an archive's), "
            "nor a TFLite model; the download or upload may have been cut short or replaced by something else."
        )
