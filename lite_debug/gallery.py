"""The example gallery: small real models, each with an input that reproduces a real failure.

The models and inputs are built by ``scripts/build_examples.py`` with TensorFlow's converter
and committed under ``lite_debug/examples/``, so nothing here needs TensorFlow. Each example
says which mismatches the diagnosis should find (``expected_kinds``), which makes the gallery
a test fixture as well as the dashboard's front page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the gallery's list is on the dashboard's first page, which needs no numpy
    import numpy as np

__all__ = ["EXAMPLES_DIR", "Example", "example", "examples"]

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


@dataclass(frozen=True)
class Example:
    """One gallery entry: a model, the input a user really gave it, and the story."""

    id: str
    title: str
    model_file: str
    input_files: tuple[str, ...]
    input_names: tuple[str, ...] | None
    good_files: tuple[str, ...]
    good_names: tuple[str, ...] | None
    signature: str | None
    expected_kinds: tuple[str, ...]
    story: str
    fix: str
    observed_error: str

    @property
    def model_bytes(self) -> bytes:
        return _read(self.model_file)

    def _data(self, files: tuple[str, ...], names: tuple[str, ...] | None):
        from .loading import load_file

        read = [load_file(f, _read(f)) for f in files]
        loaded = [r.arrays for r in read]
        if names is not None and any(r.audio is not None for r in read):
            # A recording keeps its facts (rate, channels), bound to its input: a Feed.
            from .records import Feed

            arrays = {name: (list(r.arrays.values()) if isinstance(r.arrays, dict) else list(r.arrays))[0] for name, r in zip(names, read)}
            facts = {name: r.audio for name, r in zip(names, read) if r.audio is not None}
            return Feed(arrays=arrays, facts=facts)
        if names is None:
            # As a user would pass them: an .npz keeps its keys, other files go by position.
            if len(loaded) == 1 and isinstance(loaded[0], dict):
                return dict(loaded[0])
            arrays: list[np.ndarray] = []
            for item in loaded:
                arrays.extend(item.values() if isinstance(item, dict) else item)
            return arrays
        out: dict[str, np.ndarray] = {}
        for name, item in zip(names, loaded):
            values = list(item.values()) if isinstance(item, dict) else list(item)
            out[name] = values[0]
        return out

    def broken_inputs(self):
        """The input as the user gave it: keyed by input name, or a list bound by position; a
        ``Feed`` with the recording's facts (``Feed.facts``) when it is a recording."""
        return self._data(self.input_files, self.input_names)

    def good_inputs(self):
        """An input the model accepts as it is."""
        return self._data(self.good_files, self.good_names)


@lru_cache(maxsize=None)
def _read(name: str) -> bytes:
    return (EXAMPLES_DIR / name).read_bytes()


def _files(value) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    if isinstance(value, dict):
        return tuple(value.values()), tuple(value.keys())
    return tuple(value), None


@lru_cache(maxsize=1)
def examples() -> tuple[Example, ...]:
    """Every example in the order of the gallery."""
    manifest = json.loads((EXAMPLES_DIR / "gallery.json").read_text(encoding="utf-8"))
    out = []
    for entry in manifest:
        files, names = _files(entry["inputs"])
        good_files, good_names = _files(entry.get("good_inputs", {}))
        out.append(
            Example(
                id=entry["id"],
                title=entry["title"],
                model_file=entry["model"],
                input_files=files,
                input_names=names,
                good_files=good_files,
                good_names=good_names,
                signature=entry.get("signature"),
                expected_kinds=tuple(entry.get("expected_kinds", [])),
                story=entry.get("story", ""),
                fix=entry.get("fix", ""),
                observed_error=entry.get("observed_error", ""),
            )
        )
    return tuple(out)


def example(example_id: str) -> Example:
    for ex in examples():
        if ex.id == example_id:
            return ex
    raise KeyError(f"There is no example {example_id!r}; the gallery has: {', '.join(e.id for e in examples())}.")
