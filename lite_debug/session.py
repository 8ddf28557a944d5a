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
from .bundle import is_bundle, write_bundle
from .choices import choices as find_choices, option_of, pending_fixes
from .diagnosis import check_mismatches, diagnose, explain_result, fix_all
from .errors import DataLoadError, FixError
from .fixes import apply_fix
from .generate import generate_feed
from .inspection import inspect_model, packed_file
from .loading import load_file
from .archive import ErrorText
from .casefile import Recorded
from .records import Choice, Feed, Fix, Mismatch, ModelCheck, ModelSpec, RunResult, Step, TensorSpec
from .running import WorkerPool, default_pool

__all__ = ["Workspace"]


@dataclass
class Workspace:
    """A model, the user's data for it, the fixes applied so far, and the last run.

    The data as given stays in ``original``; every fix applied since is a ``Step`` in ``steps``
    (the fix, the mismatch it answered, the data after it), numbered by the click that applied
    it, so undo takes back a click and an export replays the steps without diagnosing again.
    ``preferences`` holds the user's picks for the choices (value range, resize filter and
    mode, channel order); changing one after applying replays the fixes with the new pick.
    """

    model_name: str
    model_bytes: bytes | memoryview  # a view of an upload is kept as it is: no copy
    spec: ModelSpec
    signature: str | None = None
    original: Feed = field(default_factory=lambda: Feed({}))
    data_source: str = ""
    steps: list[Step] = field(default_factory=list)
    clicks: list[tuple[str, object]] = field(default_factory=list)  # ("all", None), ("fix", Fix), ("batch", None), ("sample", i)
    preferences: dict[str, str] = field(default_factory=dict)
    result: RunResult | None = None
    result_stale: bool = False
    example_id: str | None = None
    labels: list[str] | None = None
    batch_result: object | None = None
    sweep: list | None = None  # the last preprocessing sweep's candidates (lite_debug.sweep)
    container: str | None = None  # the bundle or bug-report archive the model came in
    reported: ErrorText | None = None  # the error the archive's text reports
    archive_summary: str = ""
    data_problem: str = ""  # why the archive's data could not be loaded, if it could not
    recorded: Recorded | None = None  # what a re-opened bundle or case recorded (its run, diagnosis, versions)
    case_id: str | None = None  # the case this workspace was last kept as (lite_debug.cases)
    check: ModelCheck | None = None  # whether the model loads and allocates in a worker (set when known)
    _kept: tuple | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def open(cls, name: str, data: bytes | memoryview, member: str | None = None) -> "Workspace":
        """A workspace for a ``.tflite`` file, a lite-debug bundle, or a bug-report archive
        (``.zip``, ``.tar``, ``.tar.gz``: its model, its data bound by name where names match,
        and the error its text reports). ``member``: which model of an archive that holds several.

        Raises ``ChooseModel`` when an archive holds several models and no ``member`` says which,
        ``ModelLoadError`` or ``BundleError`` with a sentence when the file is unusable. Data in
        an archive that cannot be loaded does not stop the model opening: ``data_problem`` says why.
        """
        from .opening import data_files_for, open_model_file

        opened = open_model_file(name, data, member)
        if opened.bundle is not None:
            from .bundle import open_bundle

            # The data as given, the diagnosis before any fix, the fixes (undoable), the run.
            ws = open_bundle(opened.bundle, name=name)
            ws.archive_summary = opened.summary
            return ws
        ws = cls._for_model(opened.model_name, opened.model)
        ws.container, ws.reported, ws.archive_summary = opened.container, opened.reported, opened.summary
        if opened.archive is not None:
            files, keyed = data_files_for(opened, [t.name for t in ws.inputs])
            try:
                if files:
                    ws.load_files(files, by_input=keyed, source=f"{name}: " + ", ".join(n for n, _ in files))
                elif opened.archive.data_files:
                    ws.data_problem = (
                        f"{name} holds {len(opened.archive.data_files)} data files and none is named like an input "
                        f"({', '.join(repr(t.name) for t in ws.inputs)}); upload the ones to use below."
                    )
            except DataLoadError as exc:
                ws.data_problem = str(exc)
        return ws

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

    def load_files(self, files: Sequence[tuple[str, bytes]], *, by_input: bool = False, source: str | None = None) -> None:
        """Replace the data with these files: one per input in order, or one ``.npz`` for all;
        with ``by_input``, each file's name is the name of the input it is for.

        Raw ``.bin`` files take the dtype and shape of the input in their position. Raises
        ``DataLoadError`` with a sentence naming the file that could not be read.
        """
        from .audio_diagnosis import with_facts

        positional: list[np.ndarray] = []
        keyed: dict[str, np.ndarray] = {}
        recordings = []  # (array, AudioInfo): a recording's facts go with the input its array is bound to
        by_name = {t.name: t for t in self.inputs}
        for name, data in files:
            if is_bundle(data):
                raise DataLoadError(f"{name!r} is a lite-debug bundle; open it where you open a model.")
            if by_input and name in by_name:
                t = by_name[name]
                read = load_file(name, data, dtype=t.dtype, shape=tuple(t.shape))
                loaded = read.arrays
                if read.audio is not None:
                    recordings.append((loaded[0], read.audio))
                arrays = list(loaded.values()) if isinstance(loaded, dict) else list(loaded)
                if len(arrays) != 1:
                    raise DataLoadError(f"The file for input {name!r} holds {len(arrays)} arrays; it needs one.")
                keyed[name] = arrays[0]
                continue
            hint = self.inputs[len(positional)] if len(positional) < len(self.inputs) else None
            read = load_file(
                name, data, dtype=hint.dtype if hint else None, shape=tuple(hint.shape) if hint else None
            )
            loaded = read.arrays
            if read.audio is not None:
                recordings.append((loaded[0], read.audio))
            if isinstance(loaded, dict):
                keyed.update(loaded)
            else:
                positional.extend(loaded)
        feed = with_facts(bind_mixed(self.spec, keyed, positional, self.signature), recordings)
        self.example_id = None
        self.set_feed(feed, source=source or ", ".join(n for n, _ in files))

    def generate(self, mode: str = "zeros", low: float = 0.0, high: float = 1.0) -> None:
        """Replace the data with generated inputs of the right shape and dtype."""
        self.set_feed(generate_feed(self.spec, mode, self.signature, low=low, high=high), source=f"generated ({mode})")

    def set_feed(self, feed: Feed, source: str) -> None:
        self.original = feed
        self.data_source = source
        self.steps = []
        self.clicks = []
        self.preferences = {}
        self.batch_result = None
        self.sweep = None
        self.result = None
        self.recorded = None  # new data: what a bundle recorded no longer describes it
        self._cache.clear()

    # -- diagnosis, choices and fixes ----------------------------------------------------
    @property
    def feed(self) -> Feed:
        return self.steps[-1].feed if self.steps else self.original

    @property
    def applied(self) -> list[Fix]:
        return [s.fix for s in self.steps]

    @property
    def has_data(self) -> bool:
        return bool(self.feed.arrays)

    def _cached(self, name: str, compute):
        # Keyed on the feed object itself (held here, so it cannot be freed and its id reused)
        # and the preferences: an id() key once served a stale diagnosis after apply-undo-apply.
        key = (self.feed, tuple(sorted(self.preferences.items())), self.signature, self.check)
        hit = self._cache.get(name)
        if hit is None or hit[0][0] is not key[0] or hit[0][1:] != key[1:]:
            hit = (key, compute())
            self._cache[name] = hit
        return hit[1]

    @property
    def input_preview(self) -> np.ndarray | None:
        """The first rank-4 input as a picture (``report.preview_image``: HxWx3 uint8, or None
        when it is not image-like), once per data state: the Run page draws outputs over it
        on every run, and working it out took 12 ms of each."""
        from .report import preview_image

        return self._cached(
            "input_preview", lambda: next((preview_image(self.feed.arrays.get(t.name)) for t in self.inputs if t.rank == 4), None)
        )

    @property
    def choices(self) -> list[Choice]:
        """The choices fixing this data involves (see ``lite_debug.choices``), made on the data as given."""
        return self._cached(
            "choices",
            lambda: find_choices(self.spec, self.original, self.signature, self.preferences, model_bytes=self.model_bytes)
            if self.has_data else [],
        )

    @property
    def mismatches(self) -> list[Mismatch]:
        """The diagnosis of the current data, computed once per data state and set of picks."""

        def compute() -> list[Mismatch]:
            # A model that does not load is an error whatever the data (first, before the inputs').
            found = check_mismatches(self.check, self.spec)
            if not self.has_data:
                return found
            found += diagnose(self.spec, self.feed, self.signature, choices=self.choices)
            for fix in pending_fixes(self.choices, self.applied):
                pos = next((i for i, t in enumerate(self.inputs) if t.name == fix.input), -1)
                found.append(
                    Mismatch(
                        input_index=pos, input_name=fix.input, kind="channels", severity="warning",
                        expected="BGR (your pick)", got="RGB (as loaded)",
                        message=f"You chose BGR channel order for input {pos} ({fix.input!r}); the data is in the order it "
                        "was loaded in (RGB for an image file): swap the channels.",
                        fixes=(fix,), choice=f"channel order:{fix.input}",
                    )
                )
            return found

        return self._cached("mismatches", compute)

    @property
    def errors(self) -> list[Mismatch]:
        return [m for m in self.mismatches if m.severity == "error"]

    def _answered(self, fix: Fix) -> Mismatch | None:
        mismatches = self.mismatches
        return next((m for m in mismatches if fix in m.fixes), None) or next(
            (m for m in mismatches if any(f.kind == fix.kind and f.input == fix.input for f in m.fixes)), None
        )

    def apply(self, fix: Fix) -> None:
        """Apply one fix on top of the current data. Raises ``FixError`` if it does not apply."""
        feed = apply_fix(self.feed, fix)
        self._push(("fix", fix), [Step(fix=fix, answered=self._answered(fix), feed=feed, click=len(self.clicks))])

    def apply_all(self, include_warnings: bool = False) -> list[Fix]:
        """Apply every suggested fix in order; returns the fixes applied (maybe none)."""
        outcome = fix_all(
            self.spec, self.feed, self.signature, choices=self.choices, include_warnings=include_warnings,
            extra=pending_fixes(self.choices, self.applied), click=len(self.clicks),
        )
        if outcome.steps:
            self._push(("all", include_warnings), list(outcome.steps))
        return list(outcome.applied)

    def _push(self, click: tuple[str, object], steps: list[Step]) -> None:
        self.clicks.append(click)
        self.steps.extend(steps)
        self.result_stale = self.result is not None

    @property
    def can_undo(self) -> bool:
        return bool(self.steps)

    def undo(self) -> None:
        """Take back the last click (one fix, or all that “apply all” applied)."""
        if not self.can_undo:
            raise FixError("There is nothing to undo.")
        last = self.steps[-1].click
        while self.steps and self.steps[-1].click == last:
            self.steps.pop()
        del self.clicks[last:]
        self.result_stale = self.result is not None

    def choose(self, key: str, option: str) -> None:
        """Pick an option of a choice. When fixes made under the old pick were applied, every
        click since the first of them is done again with the new pick (and a fix picked by hand
        from the same choice becomes its counterpart). Raises ``FixError`` when the new pick
        cannot be replayed; the workspace is then left as it was."""
        choice = next((c for c in self.choices if c.key == key), None)
        if choice is None:
            raise FixError(f"There is no choice {key!r} for this data.")
        if option not in {k for k, _ in choice.options}:
            raise FixError(f"{option!r} is not an option of the {choice.topic} choice; the options are "
                           f"{', '.join(k for k, _ in choice.options)}.")
        before = dict(self.preferences)
        self.preferences[key] = option
        self._cache.clear()
        first = next((s.click for s in self.steps if any(k == key for k, _ in option_of(s.fix))), None)
        if first is None:
            if self.steps:
                # Data already fixed, and the pick asks for a fix no mismatch does (a channel
                # swap): apply it now, as its own click, rather than leave the data as it was.
                for fix in pending_fixes([c for c in self.choices if c.key == key], self.applied):
                    self.apply(fix)
            return
        try:
            self._replay(first)
        except FixError:
            self.preferences = before
            self._cache.clear()
            raise

    def choose_all(self, picks: dict[str, str]) -> None:
        """Pick several options at once (a sweep candidate's picks); same rules as ``choose``."""
        for key, option in picks.items():
            self.choose(key, option)

    def run_sweep(self, pool: WorkerPool | None = None, progress=None, *, owner=None) -> list:
        """Run the preprocessing sweep on the data as given (see ``lite_debug.sweep``); kept as ``sweep``."""
        from .sweep import run_sweep

        self.sweep = run_sweep(
            self.model_bytes, self.spec, self.original, self.signature, pool=pool or default_pool(),
            choices=self.choices, progress=progress, owner=owner,
        )
        return self.sweep

    def _replay(self, first: int) -> None:
        """Redo every click from ``first`` on the data before it, with the current picks."""
        clicks, old_steps = self.clicks[first:], self.steps
        self.steps = [s for s in self.steps if s.click < first]
        self.clicks = self.clicks[:first]
        self._cache.clear()
        try:
            for action, arg in clicks:
                if action == "all":
                    self.apply_all(include_warnings=bool(arg))
                elif action == "batch":
                    self.fix_batch()
                elif action == "sample":
                    self.open_sample(int(arg))  # type: ignore[arg-type]
                else:
                    fix = self._counterpart(arg)  # type: ignore[arg-type]
                    if fix is not None:
                        self.apply(fix)
        except FixError:
            self.steps, self.clicks = old_steps, self.clicks[:first] + clicks
            self._cache.clear()
            raise

    def _counterpart(self, fix: Fix) -> Fix | None:
        """A hand-picked fix under the current picks: the same fix, unless it answered a choice
        that changed, in which case the fix the diagnosis now offers in its place (None when
        the new pick needs none: a channel swap taken back)."""
        picks = option_of(fix)
        if not picks or all(self.preferences.get(k, opt) == opt for k, opt in picks):
            return fix
        keys = {k for k, _ in picks}
        for m in self.mismatches:
            if m.input_name == fix.input and m.fixes and (m.choice in keys or any(f.kind == fix.kind for f in m.fixes)):
                return m.fixes[0]
        return None

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
        """``(samples, chunk)`` when the data stacks several samples on a first axis of their own
        (see ``batch.stacked_samples``: a photo is never a batch of its rows)."""
        from .batch import batch_plan, stacked_samples

        if not self.has_data:
            return None

        def compute():
            plan = batch_plan(self.spec, self.feed, self.signature)
            if plan is not None:
                return plan
            found = stacked_samples(self.spec, self.feed, self.signature, choices=self.choices)
            return None if found is None else found[:2]

        return self._cached("batch", compute)

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
        return bool(errors) and all(m.kind in ("batch", "dynamic") for m in errors) and self.batch_ready

    def fix_batch(self) -> list[Fix]:
        """Fix every sample the way the first one needs; one undo step."""
        from .batch import fix_batch

        outcome = fix_batch(self.spec, self.feed, self.signature, choices=self.choices, click=len(self.clicks))
        if outcome.steps:
            self._push(("batch", None), list(outcome.steps))
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
        feed, steps, click = self.feed, [], len(self.clicks)
        if any(np.asarray(feed.arrays[t.name]).ndim == t.rank + 1 for t in self.inputs if t.name in feed.arrays):
            self.fix_batch()  # fold the sample axis first, so a sample is a slice of the batch axis
            feed, click = self.feed, len(self.clicks)
        for t in self.inputs:
            if t.name in feed.arrays:
                fix = make_fix("take_sample", t.name, index=index)
                feed = apply_fix(feed, fix)
                steps.append(Step(fix=fix, answered=None, feed=feed, click=click))
        self._push(("sample", index), steps)

    def run_batch(self, pool: WorkerPool | None = None, progress=None, *, owner=None, on_wait=None):
        """Run every sample in a worker; the result is kept as ``batch_result``. ``owner`` keys
        the session (workers and their state never pass between owners unreset)."""
        from .batch import run_batch

        self.batch_result = run_batch(
            self.model_bytes, self.spec, self.feed, signature=self.signature, pool=pool or default_pool(),
            progress=progress, owner=owner, on_wait=on_wait,
        )
        return self.batch_result

    # -- running and exporting -----------------------------------------------------------
    def run(self, pool: WorkerPool | None = None, *, owner=None, on_wait=None, keep_state: bool = False) -> RunResult:
        """Run the current data in a worker process and keep the result, its failure explained
        knowing the diagnosis (so the two agree). ``owner`` keys the session; ``on_wait`` is
        told the queue's state while the run waits for a worker; ``keep_state`` keeps a
        stateful model's variables from the previous run (they are reset by default)."""
        result = (pool or default_pool()).run(
            self.model_bytes, self.spec, self.feed, self.signature, owner=owner, on_wait=on_wait, keep_state=keep_state
        )
        self.result = explain_result(result, self.mismatches)
        self.result_stale = False
        return self.result

    @property
    def reproduced(self) -> str | None:
        """Whether the last run failed the way the archive's error text reports: ``"the same"``,
        ``"a different error"``, ``"no error"``, or None when there is no report or no run."""
        if self.reported is None or self.result is None or self.result_stale:
            return None
        if self.result.ok:
            return "no error"
        from .archive import same_error

        e = self.result.explanation
        return "the same" if e is not None and same_error(self.reported.explanation, e) else "a different error"

    def script(self):
        """A standalone script reproducing the run with the applied fixes (``ExportedScript``)."""
        from .export import make_script

        return make_script(
            model_filename=Path(self.model_name).name,
            original=self.original,
            steps=self.steps,
            spec=self.spec,
            signature=self.signature,
            remaining=self.errors,
            data_source=self.data_source,
        )

    def bundle(self) -> bytes:
        """A bug-report bundle: the model, the data as given, the diagnosis before any fix, the
        fixes in order (each with its line of Python), the last run, the reported error, versions."""
        return write_bundle(self)


def _packed_labels(data: bytes, spec: ModelSpec) -> list[str] | None:
    from .figures import labels_from_text

    for f in spec.packed_files:
        if "label" in f.name.lower() and f.name.lower().endswith(".txt"):
            try:
                return labels_from_text(packed_file(data, f.name).decode("utf-8", "replace"))
            except (KeyError, ValueError, OSError):
                return None
    return None
