"""One user's debugging session: a model, its data, the fixes applied, the last run.

The dashboard keeps one ``Workspace`` per browser session and its pages only lay out what the
workspace returns; the same object works in a notebook. Loading inspects the model once, so a
rerun after a click costs no re-reading. Fixes push onto a history, so any step can be undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .binding import bind, bind_mixed
from .bundle import is_bundle, read_bundle, write_bundle
from .diagnosis import diagnose, fix_all
from .errors import DataLoadError, FixError
from .fixes import apply_fix
from .generate import generate_feed
from .inspection import inspect_model, packed_file
from .loading import load_data
from .records import Feed, Fix, Mismatch, ModelSpec, RunResult, TensorSpec
from .running import WorkerPool, default_pool

__all__ = ["Workspace"]


@dataclass
class Workspace:
    """A model, the user's data for it, the fixes applied so far, and the last run."""

    model_name: str
    model_bytes: bytes | memoryview  # a view of an upload is kept as it is: no copy
    spec: ModelSpec
    signature: str | None = None
    original: Feed = field(default_factory=lambda: Feed({}))
    data_source: str = ""
    history: list[Feed] = field(default_factory=list)
    applied: list[Fix] = field(default_factory=list)
    result: RunResult | None = None
    result_stale: bool = False
    example_id: str | None = None
    labels: list[str] | None = None
    steps: list[int] = field(default_factory=list)  # fixes per click, for undo
    batch_result: object | None = None
    _diagnosis: tuple[int, list[Mismatch]] | None = field(default=None, repr=False)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def open(cls, name: str, data: bytes | memoryview) -> "Workspace":
        """A workspace for a ``.tflite`` file or a bug-report bundle.

        Raises ``ModelLoadError`` or ``BundleError`` with a sentence when the file is unusable.
        """
        if is_bundle(data):
            bundle = read_bundle(data)
            ws = cls._for_model(bundle.model_name, bundle.model)
            ws.signature = bundle.signature if bundle.signature in {s.key for s in ws.spec.signatures} else None
            ws.set_feed(bundle.feed, source=f"bundle {name}")
            return ws
        return cls._for_model(name, data)

    @classmethod
    def _for_model(cls, name: str, data: bytes) -> "Workspace":
        spec = inspect_model(data, name=f"the model {name!r}")
        ws = cls(model_name=name, model_bytes=data, spec=spec)
        ws.labels = _packed_labels(data, spec)
        ws.set_feed(Feed({}), source="")
        return ws

    @classmethod
    def from_example(cls, example_id: str) -> "Workspace":
        from .gallery import example

        ex = example(example_id)
        ws = cls._for_model(ex.model_file, ex.model_bytes)
        ws.signature = ex.signature
        ws.example_id = ex.id
        ws.set_feed(bind(ws.spec, ex.broken_inputs(), ex.signature), source=", ".join(ex.input_files))
        return ws

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.spec.io(self.signature)[0]

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.spec.io(self.signature)[1]

    def set_signature(self, signature: str | None) -> None:
        """Switch to another signature (or to the main graph); the data is re-bound by position."""
        if signature == self.signature:
            return
        arrays = list(self.original.arrays.values())
        self.signature = signature
        self.set_feed(bind(self.spec, arrays, signature) if arrays else Feed({}), source=self.data_source)

    def load_files(self, files: Sequence[tuple[str, bytes]]) -> None:
        """Replace the data with these files: one per input in order, or one ``.npz`` for all.

        Raw ``.bin`` files take the dtype and shape of the input in their position. Raises
        ``DataLoadError`` with a sentence naming the file that could not be read.
        """
        positional: list[np.ndarray] = []
        keyed: dict[str, np.ndarray] = {}
        for name, data in files:
            if is_bundle(data):
                raise DataLoadError(f"{name!r} is a lite-debug bundle; open it where you open a model.")
            hint = self.inputs[len(positional)] if len(positional) < len(self.inputs) else None
            loaded = load_data(
                name, data, dtype=hint.dtype if hint else None, shape=tuple(hint.shape) if hint else None
            )
            if isinstance(loaded, dict):
                keyed.update(loaded)
            else:
                positional.extend(loaded)
        feed = bind_mixed(self.spec, keyed, positional, self.signature)
        self.example_id = None
        self.set_feed(feed, source=", ".join(n for n, _ in files))

    def generate(self, mode: str = "zeros", low: float = 0.0, high: float = 1.0) -> None:
        """Replace the data with generated inputs of the right shape and dtype."""
        self.set_feed(generate_feed(self.spec, mode, self.signature, low=low, high=high), source=f"generated ({mode})")

    def set_feed(self, feed: Feed, source: str) -> None:
        self.original = feed
        self.data_source = source
        self.history = [feed]
        self.applied = []
        self.steps = []
        self.batch_result = None
        self.result = None
        self._diagnosis = None

    # -- diagnosis and fixes -------------------------------------------------------------
    @property
    def feed(self) -> Feed:
        return self.history[-1] if self.history else self.original

    @property
    def has_data(self) -> bool:
        return bool(self.feed.arrays)

    @property
    def mismatches(self) -> list[Mismatch]:
        """The diagnosis of the current data, computed once per data state."""
        key = id(self.feed)
        if self._diagnosis is None or self._diagnosis[0] != key:
            found = diagnose(self.spec, self.feed, self.signature) if self.has_data else []
            self._diagnosis = (key, found)
        return self._diagnosis[1]

    @property
    def errors(self) -> list[Mismatch]:
        return [m for m in self.mismatches if m.severity == "error"]

    def apply(self, fix: Fix) -> None:
        """Apply one fix on top of the current data. Raises ``FixError`` if it does not apply."""
        self._push(apply_fix(self.feed, fix), [fix])

    def apply_all(self, include_warnings: bool = False) -> list[Fix]:
        """Apply every suggested fix in order; returns the fixes applied (maybe none)."""
        outcome = fix_all(self.spec, self.feed, self.signature, include_warnings=include_warnings)
        if outcome.applied:
            self._push(outcome.feed, list(outcome.applied))
        return list(outcome.applied)

    def _push(self, feed: Feed, fixes: list[Fix]) -> None:
        self.history.append(feed)
        self.applied.extend(fixes)
        self.steps.append(len(fixes))
        self.result_stale = self.result is not None

    @property
    def can_undo(self) -> bool:
        return len(self.history) > 1

    def undo(self) -> None:
        """Take back the last click (one fix, or all that “apply all” applied)."""
        if not self.can_undo:
            raise FixError("There is nothing to undo.")
        self.history.pop()
        n = self.steps.pop() if self.steps else 1
        del self.applied[len(self.applied) - n :]
        self.result_stale = self.result is not None

    def code(self) -> str:
        """The lines of Python that the applied fixes amount to, grouped by input."""
        lines = []
        for fix in self.applied:
            if fix.kind in ("reassign", "resize_input"):
                lines.append(fix.code)
            else:
                lines.append(f"x = inputs[{fix.input!r}]; {fix.code}; inputs[{fix.input!r}] = x")
        return "\n".join(lines)

    # -- batches ---------------------------------------------------------------------------
    @property
    def batch(self) -> tuple[int, int] | None:
        """``(samples, chunk)`` when the data stacks several samples on its first axis."""
        from .batch import _loose_plan, batch_plan

        if not self.has_data:
            return None
        return batch_plan(self.spec, self.feed, self.signature) or _loose_plan(self.spec, self.feed, self.signature)

    @property
    def batch_ready(self) -> bool:
        """True when every sample can run as it is (the batch needs no more fixing)."""
        from .batch import batch_plan

        return self.has_data and batch_plan(self.spec, self.feed, self.signature) is not None

    @property
    def only_the_batch_left(self) -> bool:
        """The data is a batch ready to run sample by sample, and the only errors left say that
        it holds several samples: nothing to fix before running them one by one."""
        errors = self.errors
        return bool(errors) and all(m.kind == "batch" for m in errors) and self.batch_ready

    def fix_batch(self) -> list[Fix]:
        """Fix every sample the way the first one needs; one undo step."""
        from .batch import fix_batch

        outcome = fix_batch(self.spec, self.feed, self.signature)
        if outcome.applied:
            self._push(outcome.feed, list(outcome.applied))
        return list(outcome.applied)

    def open_sample(self, index: int) -> None:
        """Keep one sample of the batch (every input), as a fix that can be undone."""
        from .fixes import make_fix

        plan = self.batch
        if plan is None:
            raise FixError("The data is not a batch, so there is no sample to open.")
        n, chunk = plan
        if not 0 <= index < n:
            raise FixError(f"There is no sample {index}: the batch holds samples 0 to {n - 1}.")
        feed = self.feed
        fixes = [make_fix("take_sample", t.name, index=index) for t in self.inputs if t.name in feed.arrays]
        for fix in fixes:
            feed = apply_fix(feed, fix)
        self._push(feed, fixes)

    def run_batch(self, pool: WorkerPool | None = None, progress=None):
        """Run every sample in a worker; the result is kept as ``batch_result``."""
        from .batch import run_batch

        self.batch_result = run_batch(
            self.model_bytes, self.spec, self.feed, signature=self.signature, pool=pool or default_pool(), progress=progress
        )
        return self.batch_result

    # -- running and exporting -----------------------------------------------------------
    def run(self, pool: WorkerPool | None = None) -> RunResult:
        """Run the current data in a worker process and keep the result."""
        self.result = (pool or default_pool()).run(self.model_bytes, self.spec, self.feed, self.signature)
        self.result_stale = False
        return self.result

    def script(self):
        """A standalone script reproducing the run with the applied fixes (``ExportedScript``)."""
        from .export import make_script

        return make_script(
            model_filename=Path(self.model_name).name,
            original=self.original,
            applied=self.applied,
            spec=self.spec,
            signature=self.signature,
        )

    def bundle(self) -> bytes:
        """A bug-report bundle of the model, the current data, its diagnosis and the last run."""
        return write_bundle(
            self.model_bytes,
            self.feed,
            signature=self.signature,
            mismatches=self.mismatches,
            result=None if self.result_stale else self.result,
            fixes_applied=self.applied,
            model_name=Path(self.model_name).name,
        )


def _packed_labels(data: bytes, spec: ModelSpec) -> list[str] | None:
    from .figures import labels_from_text

    for f in spec.packed_files:
        if "label" in f.name.lower() and f.name.lower().endswith(".txt"):
            try:
                return labels_from_text(packed_file(data, f.name).decode("utf-8", "replace"))
            except (KeyError, ValueError, OSError):
                return None
    return None
