"""Bug-report bundles: one ``.zip`` that keeps the failure, the fixes and the run.

A bundle is what a user attaches to a bug report, and what a maintainer opens to see the same
failure. Format version 2 (``write_bundle(workspace)``) holds a saved case (``casefile``): the
model, the data as given (``inputs/*.npy``), the diagnosis before any fix (``diagnosis.json``),
every fix applied in order with its line of Python, the last run's status and outputs
(``run.json``, ``outputs/*.npy``), the error a bug report reported, the versions of the machine
(``versions.json``), and ``reproduce.py``, which runs in the unzipped folder as it is.
``open_bundle`` rebuilds the workspace with its history. Version 1 bundles (the data after its
fixes, no history) still open, as data without a history.

Reading one never extracts to disk: members are read in memory, with the member count, each
name, and the total size *actually decompressed* (not the size the archive declares) checked
as they stream.
"""

from __future__ import annotations

import io
import json
import re

import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from ._zipdir import DamagedDirectory, TooManyEntries, check_directory
from .casefile import ParsedCase, Recorded, build_workspace, dump_workspace, parse_case, versions
from .errors import BundleError, LiteDebugError
from .records import Feed, Fix, Mismatch, RunResult

if TYPE_CHECKING:
    from .session import Workspace

__all__ = ["Bundle", "BundleLimits", "OLD_BUNDLE_NOTE", "is_bundle", "open_bundle", "read_bundle", "versions", "write_bundle"]

FORMAT = "lite-debug-bundle"
VERSION = 2
SCRIPT_NAME = "reproduce.py"
OLD_BUNDLE_NOTE = (
    "This is an old lite-debug bundle (format version 1): it holds the data after its fixes, not the data as "
    "given, and no history of the fixes, so the original failure cannot be shown and nothing can be undone. "
    "Bundles exported by this version keep both."
)

# Everything zipfile and zlib raise on a damaged or hostile archive: bad structure, an unknown
# zip version or compression (NotImplementedError), an encrypted member (RuntimeError), a
# corrupt deflate stream (zlib.error).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class BundleLimits:
    max_members: int = 256
    max_total_bytes: int = 1 << 30
    max_member_bytes: int = 512 << 20
    max_json_bytes: int = 32 << 20  # manifest.json and the other JSON members, each


@dataclass(frozen=True, eq=False)
class Bundle:
    """The contents of a bundle, read back.

    ``feed`` is the data as given for a version 2 bundle, and the data after its fixes for a
    version 1 bundle (which kept no other). ``diagnosis`` is the diagnosis before any fix
    (version 2; version 1 kept the one after its fixes), ``fixes_applied`` the fixes in the
    order applied, ``outputs`` the recorded run's raw outputs by name. ``case`` is the checked
    case of a version 2 bundle, which ``open_bundle`` rebuilds the workspace from; ``note`` a
    sentence to show (an old bundle).
    """

    model: bytes
    feed: Feed
    signature: str | None = None
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    diagnosis: tuple[dict[str, Any], ...] = ()
    run: Mapping[str, Any] = field(default_factory=dict)
    fixes_applied: tuple[dict[str, Any], ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    model_name: str = "model.tflite"
    version: int = 1
    case: ParsedCase | None = field(default=None, repr=False)
    note: str = ""


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def write_bundle(
    source: "Workspace | bytes | memoryview",
    feed: Feed | None = None,
    *,
    signature: str | None = None,
    mismatches: Iterable[Mismatch] = (),
    result: RunResult | None = None,
    fixes_applied: Iterable[Fix] = (),
    model_name: str = "model.tflite",
) -> bytes:
    """Pack a bundle and return the ``.zip`` bytes.

    ``write_bundle(workspace)`` writes format version 2 (see the module docstring): the data
    as given, the history, the last run, the reported error. The older form,
    ``write_bundle(model_bytes, feed, ...)``, still writes format version 1 (``feed`` and the
    rest as given, no history), which tests and old callers use. Raises ``BundleError`` for
    data that cannot be saved without pickling.
    """
    if feed is None and not isinstance(source, (bytes, bytearray, memoryview)):
        return _write_workspace(source)
    if feed is None:
        raise TypeError("write_bundle(model_bytes, feed, ...) needs the feed; pass a Workspace to write a version 2 bundle.")
    return _write_v1(source, feed, signature=signature, mismatches=mismatches, result=result,
                     fixes_applied=fixes_applied, model_name=model_name)


def _write_workspace(ws: "Workspace") -> bytes:
    case, members = dump_workspace(ws)
    paths: dict[str, str] = {case["model"]["member"]: "model.tflite"}
    data_files: dict[str, str] = {}
    for i, a in enumerate(case["original"]["arrays"]):
        data_files[a["name"]] = paths.setdefault(a["member"], f"inputs/{i}.npy")
    if case["run"] is not None:
        for i, o in enumerate(case["run"]["outputs"]):
            paths.setdefault(o["member"], f"outputs/{i}.npy")
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": case["created"],
        "model_name": PurePosixPath(ws.model_name.replace("\\", "/")).name or "model.tflite",
        "files": paths,
        "case": case,
    }
    script = _script(ws, data_files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
        for digest, path in paths.items():
            zf.writestr(path, members[digest])
        # For people who unzip it: the same facts as the manifest, one concern a file.
        zf.writestr("diagnosis.json", json.dumps(case["diagnosis"], indent=2))
        zf.writestr("fixes.json", json.dumps([s["fix"] for s in case["steps"]], indent=2))
        zf.writestr("run.json", json.dumps(case["run"] or {"status": "not run"}, indent=2))
        zf.writestr("versions.json", json.dumps(case["versions"], indent=2))
        if case["reported"] is not None:
            zf.writestr("reported.json", json.dumps(case["reported"], indent=2))
        if script is not None:
            zf.writestr(SCRIPT_NAME, script)
    return buf.getvalue()


def _script(ws: "Workspace", data_files: Mapping[str, str]) -> str | None:
    """reproduce.py for the unzipped bundle: the model and the data as given, from their files."""
    from .export import make_script

    try:
        return make_script(
            model_filename="model.tflite", original=ws.original, steps=ws.steps, spec=ws.spec,
            signature=ws.signature, remaining=ws.errors, data_files=data_files, data_source=ws.data_source,
        ).text
    except (LiteDebugError, ValueError, KeyError):
        return None  # the bundle is still worth having without its script


def _write_v1(
    model: bytes,
    feed: Feed,
    *,
    signature: str | None = None,
    mismatches: Iterable[Mismatch] = (),
    result: RunResult | None = None,
    fixes_applied: Iterable[Fix] = (),
    model_name: str = "model.tflite",
) -> bytes:
    """A format version 1 bundle: the data as passed (after its fixes), no history."""
    inputs = {name: f"inputs/{i}.npy" for i, name in enumerate(feed.arrays)}
    outputs = {}
    run: dict[str, Any] = {"status": "skipped"}
    if result is not None:
        outputs = {o.name: f"outputs/{i}.npy" for i, o in enumerate(result.outputs)}
        run = {
            "status": result.status,
            "error_type": result.error_type,
            "error_message": result.error_message,
            "kernel_message": result.kernel_message,
            "signal": result.signal,
            "invoke_ms": result.invoke_ms,
            "detail": result.detail,
            "explanation": result.explanation.to_dict() if result.explanation else None,
        }
    manifest = {
        "format": FORMAT,
        "version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": "model.tflite",
        "model_name": model_name,
        "signature": signature,
        "inputs": inputs,
        "resize": {k: list(v) for k, v in feed.resize.items()},
        "outputs": outputs,
        "fixes_applied": [f.to_dict() for f in fixes_applied],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
        zf.writestr("model.tflite", bytes(model))
        for name, path in inputs.items():
            zf.writestr(path, _npy(feed.arrays[name]))
        if result is not None:
            for o, path in zip(result.outputs, outputs.values()):
                zf.writestr(path, _npy(o.raw))
        zf.writestr("diagnosis.json", json.dumps([m.to_dict() for m in mismatches], indent=2))
        zf.writestr("run.json", json.dumps(run, indent=2, default=str))
        zf.writestr("versions.json", json.dumps(versions(), indent=2))
    return buf.getvalue()


def is_bundle(data: bytes, *, limits: BundleLimits = BundleLimits()) -> bool:
    """True when ``data`` is a zip that names itself a lite-debug bundle.

    False, without parsing the zip's directory, for a zip with more members than
    ``limits.max_members`` allows (``read_bundle`` would refuse it).
    """
    if data[:4] != b"PK\x03\x04":
        return False
    try:
        if check_directory(data, limits.max_members) is None:
            return False
    except (TooManyEntries, DamagedDirectory):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return "manifest.json" in zf.namelist()
    except _ZIP_ERRORS:
        return False


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


def _check_name(name: str) -> None:
    if "\\" in name or name.startswith("/") or ".." in name.split("/") or not _SAFE_NAME.match(name):
        raise BundleError(f"The bundle holds a file named {name!r}, which is not a safe relative path; refusing to read it.")
    if name.lower().endswith((".zip", ".npz", ".tar", ".gz", ".7z")):
        raise BundleError(f"The bundle holds a nested archive {name!r}; bundles hold plain files only.")


class _Reader:
    def __init__(self, zf: zipfile.ZipFile, limits: BundleLimits) -> None:
        self.zf, self.limits, self.total = zf, limits, 0

    def read(self, name: str, most: int | None = None) -> bytes:
        most = self.limits.max_member_bytes if most is None else min(most, self.limits.max_member_bytes)
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise BundleError(f"The bundle's manifest names {name!r}, but the bundle holds no such file.") from None
        chunks, size = [], 0
        try:
            with self.zf.open(info) as fh:
                while True:
                    chunk = fh.read(1 << 20)
                    if not chunk:
                        break
                    size += len(chunk)
                    self.total += len(chunk)
                    if size > most:
                        raise BundleError(
                            f"The bundle member {name!r} decompresses to more than {most:,} bytes; "
                            "refusing it as a possible zip bomb."
                        )
                    if self.total > self.limits.max_total_bytes:
                        raise BundleError(
                            f"The bundle decompresses to more than {self.limits.max_total_bytes:,} bytes in all; refusing it."
                        )
                    chunks.append(chunk)
        except _ZIP_ERRORS as exc:
            raise BundleError(f"The bundle member {name!r} cannot be read ({exc}); attach the bundle again.") from None
        return b"".join(chunks)

    def json(self, name: str, default: Any) -> Any:
        if name not in self.zf.namelist():
            return default
        try:
            return json.loads(self.read(name, self.limits.max_json_bytes).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
            raise BundleError(f"The bundle's {name} is not valid JSON; the bundle is damaged.") from None


def read_bundle(data: bytes, *, limits: BundleLimits = BundleLimits()) -> Bundle:
    """Read a bundle from its ``.zip`` bytes, in memory.

    Raises ``BundleError`` with a sentence when the archive is corrupt, unsafe (odd names,
    nested archives), over a limit, or not a lite-debug bundle.
    """
    from .loading import load_data  # the same guarded .npy reader as uploads
    from .errors import DataLoadError

    # zipfile parses the whole central directory before its entries can be counted (a zip
    # listing 4 million entries took 123 s and 2.2 GB): count from the end records first.
    try:
        raw_names = check_directory(data, limits.max_members)
    except TooManyEntries as exc:
        counted = f"declares {exc.count:,} files" if exc.declared else "holds more files"
        raise BundleError(
            f"The bundle {counted}, more than the {limits.max_members} allowed; it was refused before its "
            "list of files was read."
        ) from None
    except DamagedDirectory as exc:
        raise BundleError(f"The file is a damaged zip archive ({exc}), so it cannot be read as a lite-debug bundle.") from None
    if raw_names is None:
        raise BundleError("The file is not a readable zip archive, so it cannot be a lite-debug bundle.")
    for raw in raw_names:
        if b"\0" in raw:  # zipfile would cut the name at the NUL and show a harmless one
            raise BundleError(
                f"The bundle holds a file named {raw.decode('utf-8', 'replace')!r} with a NUL character, which is "
                "not a safe relative path; refusing to read it."
            )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS:
        raise BundleError("The file is not a readable zip archive, so it cannot be a lite-debug bundle.") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise BundleError(f"The bundle holds {len(infos)} files, more than the {limits.max_members} allowed.")
        for info in infos:
            _check_name(info.filename)
        reader = _Reader(zf, limits)
        manifest = reader.json("manifest.json", None)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BundleError("The zip has no lite-debug manifest.json, so it is not a lite-debug bundle.")
        version = manifest.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise BundleError("The bundle's manifest gives no usable format version; the bundle is damaged.")
        if version > VERSION:
            raise BundleError(
                f"The bundle was written in format version {version}, newer than the {VERSION} this lite-debug reads; "
                "update lite-debug to open it."
            )
        if version >= 2:
            return _read_v2(manifest, reader)
        try:
            model = reader.read(str(manifest["model"]))
            inputs: dict[str, np.ndarray] = {}
            for name, path in dict(manifest.get("inputs", {})).items():
                inputs[str(name)] = _array(load_data, DataLoadError, str(path), reader.read(str(path)))
            outputs = {
                str(name): _array(load_data, DataLoadError, str(path), reader.read(str(path)))
                for name, path in dict(manifest.get("outputs", {})).items()
            }
            resize = {str(k): tuple(int(d) for d in v) for k, v in dict(manifest.get("resize", {})).items()}
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"The bundle's manifest is malformed ({exc}); the bundle is damaged.") from None
        diagnosis = reader.json("diagnosis.json", [])
        run = reader.json("run.json", {})
        vers = reader.json("versions.json", {})
    signature = manifest.get("signature")
    return Bundle(
        model=model,
        feed=Feed(arrays=inputs, resize=resize),
        signature=str(signature) if signature is not None else None,
        outputs=outputs,
        diagnosis=tuple(d for d in diagnosis if isinstance(d, dict)) if isinstance(diagnosis, list) else (),
        run=run if isinstance(run, dict) else {},
        fixes_applied=tuple(f for f in _list(manifest.get("fixes_applied")) if isinstance(f, dict)),
        versions=vers if isinstance(vers, dict) else {},
        model_name=str(manifest.get("model_name", "model.tflite")),
        version=1,
        note=OLD_BUNDLE_NOTE,
    )


def _read_v2(manifest: dict[str, Any], reader: _Reader) -> Bundle:
    files = manifest.get("files")
    if not isinstance(files, dict) or len(files) > reader.limits.max_members:
        raise BundleError("The bundle's manifest lists its files as something other than a map of a few; the bundle is damaged.")
    for digest, path in files.items():
        if not isinstance(path, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", str(digest)):
            raise BundleError("The bundle's manifest maps its files by something other than content addresses; the bundle is damaged.")
        _check_name(path)

    def read_member(digest: str) -> bytes:
        if digest not in files:
            raise BundleError(f"The bundle's case names the file {digest[:19]}…, which its manifest does not list; the bundle is damaged.")
        return reader.read(files[digest])

    case = parse_case(manifest.get("case"), read_member)
    name = manifest.get("model_name", case.model_name)
    return Bundle(
        model=case.model,
        feed=case.original,
        signature=case.signature,
        outputs={o.name: o.raw for o in case.run.outputs} if case.run is not None else {},
        diagnosis=case.raw_diagnosis,
        run=case.raw_run,
        fixes_applied=tuple(f.to_dict() for _, f, _, _ in case.steps),
        versions=case.versions,
        model_name=name if isinstance(name, str) and name else "model.tflite",
        version=2,
        case=case,
    )


def open_bundle(data: "bytes | memoryview | Bundle", *, name: str = "bundle.zip") -> "Workspace":
    """The workspace a bundle was saved from: for version 2, the data as given, the picks,
    every fix replayed into a history that can be undone, and the recorded run, diagnosis,
    reported error and versions as ``workspace.recorded`` (a ``casefile.Recorded``); the
    workspace has not run. A version 1 bundle opens as its data (after its fixes) with no
    history, its run recorded, and ``OLD_BUNDLE_NOTE`` among ``recorded.notes``.

    ``name`` is the bundle's file name (``workspace.container``). Raises ``BundleError`` with a
    sentence for a damaged, unsafe or altered bundle, or a model that is not a TFLite model.
    """
    bundle = data if isinstance(data, Bundle) else read_bundle(bytes(data))
    if bundle.case is not None:
        saved = bundle.case.data_source
        return build_workspace(bundle.case, container=name, format_version=bundle.version,
                               source=f"bundle {name}" + (f": {saved}" if saved else ""))
    return _open_v1(bundle, name)


def _open_v1(bundle: Bundle, name: str) -> "Workspace":
    from .casefile import _lower_first, _run
    from .records import OutputTensor, Quantization
    from .session import Workspace
    from .quantization import dequantize

    try:
        ws = Workspace._for_model(bundle.model_name, bundle.model)
    except LiteDebugError as exc:
        raise BundleError(f"The bundle's model {bundle.model_name!r} cannot be opened: {_lower_first(str(exc))}") from None
    ws.container = name
    ws.signature = bundle.signature if bundle.signature in {s.key for s in ws.spec.signatures} else None
    ws.set_feed(bundle.feed, source=f"bundle {name}")
    notes = [OLD_BUNDLE_NOTE]
    run = None
    specs = {t.name: t for t in ws.outputs}
    outputs = []
    for position, (out_name, raw) in enumerate(bundle.outputs.items()):
        t = specs.get(out_name)
        q = t.quantization if t is not None else Quantization()
        try:
            values = dequantize(raw, q)
        except ValueError:
            q, values = Quantization(), raw
        outputs.append(OutputTensor(name=out_name, index=t.index if t is not None else position, raw=raw, values=values, quantization=q))
    if bundle.run and not (bundle.run.get("status") == "skipped" and not outputs):
        try:
            run = _run(dict(bundle.run), "run.json", outputs=outputs)
        except BundleError:
            notes.append("Its recorded run (run.json) could not be read, so it is left out.")
    ws.recorded = Recorded(  # type: ignore[attr-defined]
        run=run, versions={str(k)[:200]: str(v)[:1000] for k, v in list(bundle.versions.items())[:64]}, format_version=1, notes=tuple(notes),
    )
    return ws


def _list(value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BundleError("The bundle's manifest lists its fixes as something other than a list; the bundle is damaged.")
    return value


def _array(load_data, data_error, path: str, raw: bytes) -> np.ndarray:
    try:
        loaded = load_data(path, raw)
    except data_error as exc:
        raise BundleError(f"The bundle's {path} cannot be read: {exc}") from None
    arrays = list(loaded.values()) if isinstance(loaded, dict) else list(loaded)
    if len(arrays) != 1:
        raise BundleError(f"The bundle's {path} should hold one array.")
    return arrays[0]


