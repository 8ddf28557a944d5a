"""Bug-report bundles: one ``.zip`` with the model, the inputs, the outputs and the diagnosis.

A bundle is what a user attaches to a bug report, and what a maintainer opens to see the same
failure. Reading one never extracts to disk: members are read in memory, with the member count,
each name, and the total size *actually decompressed* (not the size the archive declares)
checked as they stream.
"""

from __future__ import annotations

import io
import json
import platform
import re

import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Iterable, Mapping

import numpy as np

from ._zipdir import DamagedDirectory, TooManyEntries, check_directory
from .errors import BundleError
from .records import Feed, Fix, Mismatch, RunResult

__all__ = ["Bundle", "BundleLimits", "is_bundle", "read_bundle", "versions", "write_bundle"]

FORMAT = "lite-debug-bundle"

# Everything zipfile and zlib raise on a damaged or hostile archive: bad structure, an unknown
# zip version or compression (NotImplementedError), an encrypted member (RuntimeError), a
# corrupt deflate stream (zlib.error).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class BundleLimits:
    max_members: int = 256
    max_total_bytes: int = 1 << 30
    max_member_bytes: int = 512 << 20


@dataclass(frozen=True, eq=False)
class Bundle:
    """The contents of a bundle, read back."""

    model: bytes
    feed: Feed
    signature: str | None = None
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    diagnosis: tuple[dict[str, Any], ...] = ()
    run: Mapping[str, Any] = field(default_factory=dict)
    fixes_applied: tuple[dict[str, Any], ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    model_name: str = "model.tflite"


def versions() -> dict[str, str]:
    """Versions of what a run depends on, without importing the runtime."""
    found = {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__}
    for dist in ("ai-edge-litert", "tensorflow", "tensorflow-cpu", "tflite-runtime", "lite-debug"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def write_bundle(
    model: bytes,
    feed: Feed,
    *,
    signature: str | None = None,
    mismatches: Iterable[Mismatch] = (),
    result: RunResult | None = None,
    fixes_applied: Iterable[Fix] = (),
    model_name: str = "model.tflite",
) -> bytes:
    """Pack a bundle and return the ``.zip`` bytes."""
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

    def read(self, name: str) -> bytes:
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
                    if size > self.limits.max_member_bytes:
                        raise BundleError(
                            f"The bundle member {name!r} decompresses to more than {self.limits.max_member_bytes:,} bytes; "
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
            return json.loads(self.read(name).decode("utf-8"))
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
    )


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


