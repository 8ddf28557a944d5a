"""The ``lite-debug`` command: the engine from a terminal, a script or CI.

``lite-debug check MODEL [DATA ...]`` inspects the model, diagnoses the data, optionally fixes
it, runs it in a worker process and says what happened. ``lite-debug explain`` turns a pasted
error into a cause and a fix. Exit codes: 0 the run succeeded with no error left; 1 mismatches
or a failed run remain (or, for ``explain``, nothing was recognised); 2 a file or argument is
unusable. No traceback reaches the user: every failure is a sentence.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import LiteDebugError
from .records import Choice, Feed, Fix, Mismatch, ModelSpec, RunResult
from .report import printable

__all__ = ["main"]

EXIT_OK, EXIT_PROBLEMS, EXIT_UNUSABLE = 0, 1, 2


class UsageError(Exception):
    """An argument or file the command cannot use; its message is shown as is."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of printing and exiting, so that ``--json``
    can still answer with one JSON object."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message[:1].upper() + message[1:]} (see 'lite-debug {self.prog.split()[-1]} --help').")


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"The {what} file {path!r} does not exist; check the path.")
    if p.is_dir():
        raise UsageError(f"{path!r} is a directory, not a {what} file.")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise UsageError(f"The {what} file {path!r} cannot be read: {exc.strerror or exc}.") from None


@dataclass
class _Check:
    spec: ModelSpec
    model: bytes
    feed: Feed
    signature: str | None
    generated: str | None = None
    model_name: str = ""
    bundle_name: str | None = None
    opened: Any = None
    data_source: str | None = None
    reopened: Any = None  # the Workspace of a bundle: its recorded fixes, run and versions
    steps: tuple = ()
    choices: list[Choice] = field(default_factory=list)
    fits_elsewhere: list[str | None] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    applied: tuple[Fix, ...] = ()
    remaining: list[Mismatch] = field(default_factory=list)
    result: RunResult | None = None
    timing: dict[str, Any] | None = None
    feed_to_run: Feed | None = None


def _load_inputs(spec: ModelSpec, signature: str | None, files: Sequence[str], named: Sequence[str]) -> Feed:
    from .audio_diagnosis import with_facts
    from .loading import load_file

    inputs, _ = spec.io(signature)
    positional: list[np.ndarray] = []
    keyed: dict[str, np.ndarray] = {}
    recordings = []  # (array, AudioInfo): a recording's facts go with the input its array is bound to

    def load_data(name: str, data: bytes, **hints):
        read = load_file(name, data, **hints)
        if read.audio is not None:
            recordings.append((read.arrays[0], read.audio))
        return read.arrays

    for path in files:
        hint = inputs[len(positional)] if len(positional) < len(inputs) else None
        loaded = load_data(
            Path(path).name,
            _read(path, "data"),
            dtype=hint.dtype if hint is not None else None,
            shape=tuple(hint.shape) if hint is not None else None,
        )
        if isinstance(loaded, dict):
            keyed.update(loaded)
        else:
            positional.extend(loaded)
    for item in named:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--input takes NAME=FILE, not {item!r}.")
        from .binding import normalise_name

        target = next((t for t in inputs if t.name == name), None) or next(
            (t for t in inputs if normalise_name(t.name) == normalise_name(name)), None
        )
        if target is None:
            known = ", ".join(repr(t.name) for t in inputs)
            raise UsageError(f"--input names {name!r}, which is none of the model's inputs; its inputs are {known}.")
        name = target.name
        loaded = load_data(
            Path(path).name,
            _read(path, "data"),
            dtype=target.dtype if target is not None else None,
            shape=tuple(target.shape) if target is not None else None,
        )
        arrays = list(loaded.values()) if isinstance(loaded, dict) else list(loaded)
        if len(arrays) != 1:
            raise UsageError(f"--input {name}= needs a file with one array; {path!r} holds {len(arrays)}.")
        keyed[name] = arrays[0]
    from .binding import bind_mixed

    return with_facts(bind_mixed(spec, keyed, positional, signature), recordings)


def _prepare(args: argparse.Namespace) -> _Check:
    from .binding import bind
    from .generate import generate_feed
    from .inspection import inspect_model
    from .opening import data_files_for, open_model_file

    if not args.model:
        raise UsageError(
            "lite-debug check needs a model: lite-debug check MODEL.tflite [DATA ...]; data is optional "
            "(without it, the model runs on generated zeros)."
        )
    raw = _read(args.model, "model")
    opened = open_model_file(Path(args.model).name, raw, args.member)
    signature = args.signature or opened.signature
    spec = inspect_model(opened.model, name=f"the model file {opened.model_name!r}")
    if signature is not None and signature not in {s.key for s in spec.signatures}:
        known = ", ".join(repr(s.key) for s in spec.signatures) or "none"
        raise UsageError(f"The model has no signature {signature!r}; its signatures are: {known}.")
    generated, source = None, None
    feed, reopened = opened.feed, None
    if opened.bundle is not None:
        from .bundle import open_bundle

        # The data as given, the fixes recorded (replayed), the run and versions recorded.
        reopened = open_bundle(opened.bundle, name=Path(args.model).name)
        feed = reopened.original
    if args.data or args.input:
        feed = bind(spec, _load_inputs(spec, signature, args.data, args.input), signature)
    elif opened.archive is not None:
        inputs, _ = spec.io(signature)
        files, keyed = data_files_for(opened, [t.name for t in inputs])
        if files:
            feed = _load_archive_data(spec, signature, files, keyed)
            source = ", ".join(n for n, _ in files)
    if feed is None:
        generated = args.generate
        feed = generate_feed(spec, args.generate, signature)
    return _Check(spec=spec, model=bytes(opened.model), feed=feed, signature=signature, generated=generated,
                  model_name=opened.model_name, bundle_name=opened.container, opened=opened, data_source=source,
                  reopened=reopened if not (args.data or args.input) else None)


def _load_archive_data(spec: ModelSpec, signature: str | None, files, keyed: bool) -> Feed:
    from .audio_diagnosis import with_facts
    from .binding import bind_mixed
    from .loading import load_file

    inputs, _ = spec.io(signature)
    by_name = {t.name: t for t in inputs}
    named: dict[str, np.ndarray] = {}
    positional: list[np.ndarray] = []
    recordings = []
    for name, data in files:
        t = by_name.get(name) if keyed else (inputs[len(positional)] if len(positional) < len(inputs) else None)
        read = load_file(name, data, dtype=t.dtype if t else None, shape=tuple(t.shape) if t else None)
        loaded = read.arrays
        if read.audio is not None:
            recordings.append((loaded[0], read.audio))
        arrays = loaded if isinstance(loaded, dict) else list(loaded)
        if keyed and not isinstance(arrays, dict):
            named[name] = arrays[0]
        elif isinstance(arrays, dict):
            named.update(arrays)
        else:
            positional.extend(arrays)
    return with_facts(bind_mixed(spec, named, positional, signature), recordings)


def _limits(args: argparse.Namespace):
    """The worker's limits: the environment's (LITE_DEBUG_*), then the options actually given."""
    from .running import Limits

    try:
        limits = Limits.from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.timeout is not None:
        seconds = args.timeout if args.timeout > 0 else 10**9  # 0: no limit, as in the environment
        limits = replace(limits, run_seconds=seconds, load_seconds=max(seconds, Limits.load_seconds) if args.timeout > 0 else 10**9)
    if args.memory_limit is not None:
        limits = replace(limits, memory_bytes=int(args.memory_limit * (1 << 30)) if args.memory_limit > 0 else None)
    return limits


def _check(args: argparse.Namespace) -> int:
    from .choices import choices as find_choices, pending_fixes
    from .diagnosis import diagnose, explain_result, fix_all, signatures_that_fit
    from .running import WorkerPool

    state = _prepare(args)
    limits = _limits(args)
    picks = {**(state.reopened.preferences if state.reopened is not None else {}), **_picks(args, state)}
    state.choices = find_choices(state.spec, state.feed, state.signature, picks, model_bytes=state.model)
    state.mismatches = diagnose(state.spec, state.feed, state.signature, choices=state.choices)
    state.remaining = list(state.mismatches)
    if any(m.severity == "error" for m in state.mismatches):
        state.fits_elsewhere = signatures_that_fit(state.spec, state.feed, state.signature)
    feed = state.feed
    if args.fix:
        if args.batch:
            from .batch import fix_batch

            try:
                outcome = fix_batch(state.spec, state.feed, state.signature, choices=state.choices)
            except ValueError as exc:
                if not state.feed.facts:
                    raise UsageError(f"{str(exc)[:-1]}; the data is {_shapes(state.feed)}.") from None
                # A recording is no stack of samples: its own fixes cut it into windows, a batch.
                outcome = fix_all(state.spec, state.feed, state.signature, choices=state.choices)
        else:
            outcome = fix_all(state.spec, state.feed, state.signature, choices=state.choices,
                              extra=pending_fixes(state.choices, ()))
        feed, state.applied, state.remaining = outcome.feed, outcome.applied, list(outcome.remaining)
        state.steps = outcome.steps
    elif state.reopened is not None and state.reopened.steps:
        # A bundle's fixes, replayed on its data as given: what the bundle's run ran.
        ws = state.reopened
        feed, state.steps, state.applied = ws.feed, tuple(ws.steps), tuple(ws.applied)
        state.remaining = diagnose(state.spec, feed, state.signature, choices=state.choices)
    state.feed_to_run = feed
    pool = WorkerPool(size=1, limits=limits)
    try:
        # Whether the model loads and allocates here at all (no invoke): an op the runtime lacks
        # is an error of the diagnosis, before any run says so.
        from .diagnosis import check_mismatches

        found = check_mismatches(pool.check_model(state.model, state.spec), state.spec)
        state.mismatches = found + state.mismatches
        state.remaining = found + list(state.remaining)
        if args.sweep:
            return _check_sweep(args, state, pool)
        if args.batch or _windows_to_run(state):
            return _check_batch(args, state, pool)
        state.result = explain_result(pool.run(state.model, state.spec, feed, state.signature), state.remaining)
        if args.repeat > 1 and state.result.ok:
            # Like benchmark_model: the first run warmed the worker; time the next N.
            # Runs back to back: both sides poll for the next message rather than sleep.
            runs = [pool.run(state.model, state.spec, feed, state.signature, expect_more=True) for _ in range(args.repeat)]
            state.timing = _timing(runs)
            state.result = explain_result(next((r for r in runs if not r.ok), runs[-1]), state.remaining)
    finally:
        pool.close()
    _write_exports(args, state, picks)
    errors_left = [m for m in state.remaining if m.severity == "error"]
    code = EXIT_OK if state.result.ok and not errors_left else EXIT_PROBLEMS
    if args.json:
        print(json.dumps(_check_json(state), indent=2, default=str))
    else:
        print(_check_text(state, args))
    return code


def _windows_to_run(state: _Check) -> bool:
    """The fixes cut a recording into windows, which run as a batch, one window per run."""
    from .batch import batch_plan

    return any(f.kind == "split_windows" for f in state.applied) and state.feed_to_run is not None and (
        batch_plan(state.spec, state.feed_to_run, state.signature) is not None
    )


def _workspace(state: _Check, picks: dict[str, str]):
    """The check as a workspace (data as given, fixes, run), for a bundle or a script."""
    from .session import Workspace

    ws = Workspace(model_name=state.model_name, model_bytes=state.model, spec=state.spec, signature=state.signature)
    ws.set_feed(state.feed, source=state.data_source or (f"generated ({state.generated})" if state.generated else "given"))
    ws.preferences = dict(picks)
    if state.steps:
        ws.steps = list(state.steps)
        ws.clicks = [("all", False)]
    ws.result = state.result
    ws.reported = state.opened.reported if state.opened is not None else None
    return ws


def _write_exports(args: argparse.Namespace, state: _Check, picks: dict[str, str]) -> None:
    """--bundle OUT.zip and --script OUT.py, written after the run (refused paths: a sentence)."""
    if not (args.bundle or args.script):
        return
    ws = _workspace(state, picks)
    try:
        if args.bundle:
            Path(args.bundle).write_bytes(ws.bundle())
        if args.script:
            out = Path(args.script)
            ws.script().write(out.parent if str(out.parent) else ".", out.name)
    except OSError as exc:
        raise UsageError(f"Cannot write {exc.filename or args.bundle or args.script!r}: {exc.strerror or exc}.") from None


def _picks(args: argparse.Namespace, state: _Check) -> dict[str, str]:
    """--range, --resize-method, --resize-mode and --channel-order, as picks for every input."""
    inputs, _ = state.spec.io(state.signature)
    picks: dict[str, str] = {}
    for topic, value in (("value range", args.range), ("resize method", args.resize_method),
                         ("resize mode", args.resize_mode), ("channel order", args.channel_order),
                         ("sample rate", str(args.sample_rate) if args.sample_rate else None), ("clip length", args.clip)):
        if value:
            if topic == "value range":
                from .choices import parse_range, range_key

                try:
                    value = range_key(*parse_range(f"[{value.strip('[]')}]"))
                except ValueError:
                    raise UsageError(f"--range takes LOW,HIGH such as 0,1 or -1,1, not {value!r}.") from None
            picks.update({f"{topic}:{t.name}": value for t in inputs})
    return picks


def _shapes(feed: Feed) -> str:
    return ", ".join(f"{k!r} {list(np.asarray(v).shape)}" for k, v in feed.arrays.items()) or "empty"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def _timing(runs: list[RunResult]) -> dict[str, Any]:
    out: dict[str, Any] = {"repeat": len(runs)}
    for key in ("invoke_ms", "total_ms"):
        values = [getattr(r, key) for r in runs if r.ok and getattr(r, key) is not None]
        if values:
            out[key] = {"min": min(values), "median": _percentile(values, 0.5), "p95": _percentile(values, 0.95)}
    return out


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} samples")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _check_batch(args: argparse.Namespace, state: _Check, pool) -> int:
    from .batch import batch_plan, run_batch
    from .report import format_table

    feed = state.feed_to_run or state.feed
    plan = batch_plan(state.spec, feed, state.signature)
    if plan is None:
        inputs, _ = state.spec.io(state.signature)
        after = f"; after the fixes it is {_shapes(feed)}" if state.applied else ""
        raise UsageError(
            f"--batch needs each input's samples stacked on the first axis with the rest shaped as the model "
            f"expects ({', '.join(t.shape_text() for t in inputs)}), but the data is {_shapes(state.feed)}{after}"
            + ("" if args.fix else "; add --fix to fix every sample first") + "."
        )
    progress = _progress_bar if (sys.stderr is not None and sys.stderr.isatty() and not args.json) else None
    batch = run_batch(state.model, state.spec, feed, signature=state.signature, pool=pool, progress=progress)
    failed = len(batch.errors)
    code = EXIT_OK if batch.status == "ok" else EXIT_PROBLEMS
    report = {
        "count": batch.count,
        "chunk": batch.chunk,
        "status": batch.status,
        "ok": batch.ok_count,
        "failed": {str(i): msg for i, msg in batch.errors.items()},
        "outputs": batch.summary(),
        "invoke_ms": (
            {"min": min(batch.invoke_ms), "median": _percentile(list(batch.invoke_ms), 0.5), "p95": _percentile(list(batch.invoke_ms), 0.95)}
            if batch.invoke_ms else None
        ),
        "total_ms": batch.total_ms,
        "detail": batch.detail,
        "explanation": batch.explanation.to_dict() if batch.explanation else None,
    }
    if args.json:
        print(json.dumps({**_check_json(state), "batch": report}, indent=2, default=str))
        return code
    lines = [_check_text(state, args).rsplit("\nRun:", 1)[0], "", f"Batch: {batch.count} samples, {batch.status}"]
    if batch.outputs:
        lines.append(f"  {report['ok']} ran, {failed * batch.chunk} failed; {batch.total_ms:.0f} ms in all"
                     + (f", invoke median {report['invoke_ms']['median']:.3f} ms" if report["invoke_ms"] else ""))
        lines += ["", "Outputs over the samples:", format_table(batch.summary())]
        lines += _window_lines(feed, batch)
    for i, msg in list(batch.errors.items())[:5]:
        lines.append(f"  sample {i}: {_first_line(msg, 200)}")
    if batch.explanation is not None:
        lines += [f"  Cause: {printable(batch.explanation.cause)}", f"  Fix:   {printable(batch.explanation.fix)}"]
    if batch.detail and not batch.outputs:
        lines.append(f"  {printable(batch.detail)}")
    print("\n".join(lines))
    return code


def _window_lines(feed: Feed, batch, most: int = 20) -> list[str]:
    """For a recording cut into windows: when each window starts and its top class."""
    from .audio_diagnosis import window_starts

    info = next(iter(feed.facts.values()), None)
    if info is None or info.window_hop is None:
        return []
    lines = []
    for name, values in batch.outputs.items():
        v = np.asarray(values)
        if v.ndim != 2 or v.shape[1] < 2 or v.dtype.kind != "f":
            continue
        starts = window_starts(info, v.shape[0])
        lines += ["", printable(f"{name} per window of {info.frames / info.sample_rate:.3g} s (top class, score):")]
        for i, (start, row) in enumerate(zip(starts[:most], v[:most])):
            top = int(np.argmax(row)) if np.isfinite(row).all() else None
            lines.append(f"  {start:7.3f} s: " + ("failed or not finite" if top is None else f"class {top} ({float(row[top]):.3g})"))
        if len(starts) > most:
            lines.append(f"  … {len(starts) - most} more windows")
    return lines


def _check_sweep(args: argparse.Namespace, state: _Check, pool) -> int:
    from .report import format_table
    from .sweep import run_sweep

    candidates = run_sweep(state.model, state.spec, state.feed, state.signature, pool=pool, choices=state.choices)
    best = next((c for c in candidates if c.best), None)
    if args.json:
        print(json.dumps({**_check_json(state), "sweep": [c.to_dict() for c in candidates]}, indent=2, default=str))
    else:
        lines = [_check_text(state, args).rsplit("\nRun:", 1)[0], ""]
        if not candidates:
            lines.append("Sweep: nothing to try; no choice of value range or resize filter is open for this data.")
        else:
            lines.append(f"Sweep: {len(candidates)} candidate preprocessings, each run once; score: {candidates[0].score.basis}")
            lines.append(format_table([c.row() for c in candidates]))
            if best is not None:
                lines.append(f"Best by this score: {printable(best.label)} (a plain score of how confident the outputs "
                             "look; a confident model is not always a right one).")
        print("\n".join(lines))
    return EXIT_OK if best is not None and best.result is not None and best.result.ok else EXIT_PROBLEMS


def _check_json(s: _Check) -> dict[str, Any]:
    from .report import fixes_to_list, mismatches_to_list, model_to_dict

    reported = s.opened.reported if s.opened is not None else None
    recorded = s.reopened.recorded if s.reopened is not None else None
    return {
        "recorded": _recorded_json(recorded, s.result),
        "model": {**model_to_dict(s.spec), "file": s.model_name, **({"container": s.bundle_name} if s.bundle_name else {})},
        "reported": None if reported is None else {**reported.to_dict(), "reproduced": _reproduced(s)},
        "signature": s.signature,
        "generated": s.generated,
        "audio": {
            "given": {k: v.to_dict() for k, v in s.feed.facts.items()},
            "fed": {k: v.to_dict() for k, v in (s.feed_to_run or s.feed).facts.items()},
        },
        "choices": [c.to_dict() for c in s.choices],
        "mismatches": mismatches_to_list(s.mismatches),
        "fits_other_signatures": s.fits_elsewhere,
        "fixes_applied": fixes_to_list(s.applied),
        "remaining": mismatches_to_list(s.remaining) if s.applied else None,
        "run": _run_json(s),
    }


def _run_json(s: _Check) -> dict[str, Any]:
    from .report import run_to_dict

    run = {**run_to_dict(s.result), **({"timing": s.timing} if s.timing else {})}
    for entry, view in zip(run.get("outputs", []), _views(s)):
        entry["view"] = view.to_dict()
    return run


def _recorded_json(recorded, result: RunResult | None) -> dict[str, Any] | None:
    """A bundle's recorded run beside this one: per output the largest difference, the
    versions that differ, and the bundle's notes."""
    if recorded is None:
        return None
    from .casefile import compare_outputs, compare_versions

    return {
        "status": recorded.run.status if recorded.run is not None else None,
        "outputs": compare_outputs(recorded, result) if result is not None else {},
        "versions": [d.to_dict() for d in compare_versions(recorded.versions)],
        "errors_before_fixes": [m.to_dict() for m in recorded.errors],
        "notes": list(recorded.notes),
    }


def _reproduced(s: _Check) -> str | None:
    """"the same", "a different error", "no error": the run against the archive's report."""
    reported = s.opened.reported if s.opened is not None else None
    if reported is None or s.result is None:
        return None
    if s.result.ok:
        return "no error"
    from .archive import same_error

    e = s.result.explanation
    return "the same" if e is not None and same_error(reported.explanation, e) else "a different error"


def _check_text(s: _Check, args: argparse.Namespace) -> str:
    from .report import data_rows, format_table, tensor_rows

    inputs, outputs = s.spec.io(s.signature)
    head = f"Model {s.model_name!r}" + (f" (from {s.bundle_name!r})" if s.bundle_name else "")
    out = [printable(f"{head}: {s.spec.size:,} bytes, {len(inputs)} input(s), {len(outputs)} output(s)"
           + (f", signature {s.signature!r}" if s.signature else ""))]
    if s.opened is not None and s.opened.summary:
        out.append(printable(s.opened.summary))
    if s.spec.signatures:
        out.append(printable("Signatures: " + ", ".join(sig.key for sig in s.spec.signatures)))
    table = [format_table(tensor_rows(inputs)), format_table(tensor_rows(outputs))]
    out += ["", "Inputs:", table[0], "", "Outputs:", table[1]]
    for op in (*s.spec.flex_ops, *s.spec.custom_ops):
        out += ["", printable(f"! {op.note}")]
    where = f" (generated: {s.generated})" if s.generated else f" (from {s.data_source})" if s.data_source else ""
    out += ["", printable("Data" + where + ":"), format_table(data_rows(dict(s.feed.arrays)))]
    for name, info in s.feed.facts.items():
        out.append(printable(f"Audio for {name!r}: {info.describe()}."))
    fed = s.feed_to_run.facts if s.feed_to_run is not None and s.applied else {}
    for name, info in fed.items():
        out.append(printable(f"Audio for {name!r} as the model receives it: {info.describe()}."))
    for c in s.choices:
        out.append(printable(f"Choice, {c.topic} of {c.input!r}: {c.label_of(c.chosen)}. {c.reason}"))
    out += ["", "Mismatches:" if s.mismatches else "Mismatches: none — the data fits the model's inputs."]
    for m in s.mismatches:
        out.append(printable(f"  [{m.severity}] {m.kind}: {m.message}"))
        for f in m.fixes[:3]:
            out.append(printable(f"      fix: {f.label}    # {f.code}"))
    for key in s.fits_elsewhere:
        where = "the main graph (no --signature)" if key is None else f"the signature {key!r} (--signature {key})"
        out.append(printable(f"  The data fits {where} as it is."))
    if s.applied:
        out += ["", "Fixes applied:"] + [printable(f"  {f.label}    # {f.code}") for f in s.applied]
        left = [m for m in s.remaining]
        out.append("  Remaining: " + ("none" if not left else "; ".join(f"{m.kind} ({m.severity})" for m in left)))
    r = s.result
    out.append("")
    if r is None:
        out.append("Run: skipped")
    elif r.ok:
        out.append(printable(f"Run: ok (invoke {r.invoke_ms:.3g} ms)" + (f" — {r.detail}" if r.detail else "")))
        if s.timing and "invoke_ms" in s.timing:
            t, rt = s.timing["invoke_ms"], s.timing.get("total_ms", {})
            out.append(
                f"  {s.timing['repeat']} runs: invoke min {t['min']:.3f} ms, median {t['median']:.3f} ms, p95 {t['p95']:.3f} ms"
                + (f"; round trip median {rt['median']:.3f} ms" if rt else "")
            )
        for view in _views(s):
            from .views import summary_line

            out.append(printable(f"  {summary_line(view)}"))
            out.append(printable(f"      {view.assumption}"))
    elif r.status == "error":
        e = r.explanation
        out.append(printable(f"Run: failed — {r.error_type}: {_first_line(r.error_message or '')}"))
        if e is not None:
            out += [printable(f"  Cause: {e.cause}"), printable(f"  Fix:   {e.fix}")]
        if r.kernel_message:
            out.append(printable(f"  Without the default XNNPACK delegate the kernel says: {_first_line(r.kernel_message)}"))
        elif r.detail and "XNNPACK" in r.detail:
            out.append(printable(f"  {r.detail}"))
    else:
        out.append(printable(f"Run: {r.status} — {r.detail}"))
    recorded = s.reopened.recorded if s.reopened is not None else None
    if recorded is not None:
        info = _recorded_json(recorded, r)
        out += ["", printable(f"Recorded in the bundle: run {info['status']}; "
                              f"{len(info['errors_before_fixes'])} error(s) before any fix.")]
        out += [printable(f"  {note}") for note in info["notes"]]
        for name, cmp in info["outputs"].items():
            diff = "missing here" if cmp.get("max_abs") is None else f"largest difference {cmp['max_abs']:.6g}"
            out.append(printable(f"  {name}: recorded vs this run: {diff}"))
        from .casefile import compare_versions

        out += [printable(f"  {d.sentence}") for d in compare_versions(recorded.versions)]
    reported = s.opened.reported if s.opened is not None else None
    if reported is not None:
        out += ["", printable(f"Reported in {reported.path}: {_first_line(reported.text, 200)}"),
                printable(f"  {reported.explanation.title}"),
                printable(f"  Reproduced here: {_reproduced(s)}"
                          + (f" ({s.result.explanation.title})." if _reproduced(s) == "a different error" and s.result.explanation else "."))]
    return "\n".join(out)


def _views(s: _Check) -> list:
    """How each output of the run is read (lite_debug.views), as the dashboard reads it."""
    if s.result is None or not s.result.ok:
        return []
    from .report import preview_image
    from .session import _packed_labels
    from .views import hints_from_metadata, interpret

    feed = s.feed_to_run or s.feed
    inputs, _ = s.spec.io(s.signature)
    image = next((preview_image(feed.arrays.get(t.name)) for t in inputs if t.rank == 4), None)
    first = next(iter(feed.arrays.values()), None)
    batch = int(first.shape[0]) if first is not None and inputs and first.ndim == inputs[0].rank and first.ndim and first.shape[0] > 1 else None
    return interpret(s.result.outputs, s.spec, signature=s.signature, labels=_packed_labels(s.model, s.spec),
                     metadata=hints_from_metadata(s.spec, s.model), input_image=image, batch=batch)


def _first_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


TRACE_ROWS = 200  # tensors printed as text; --json gives them all


def _trace(args: argparse.Namespace) -> int:
    """``lite-debug trace``: the data loaded and (with --fix) fixed as ``check`` does, then one
    run with every op's output captured; 0 when it ran with no finding, 1 otherwise."""
    from .choices import choices as find_choices, pending_fixes
    from .diagnosis import check_mismatches, diagnose, explain_result, fix_all
    from .running import WorkerPool
    from .trace import trace

    if not 0.0 <= args.saturation <= 1.0:
        raise UsageError("--saturation takes a share between 0 and 1, such as 0.01 for 1%.")
    state = _prepare(args)
    limits = _limits(args)
    picks = {**(state.reopened.preferences if state.reopened is not None else {}), **_picks(args, state)}
    state.choices = find_choices(state.spec, state.feed, state.signature, picks, model_bytes=state.model)
    state.mismatches = diagnose(state.spec, state.feed, state.signature, choices=state.choices)
    state.remaining = list(state.mismatches)
    feed = state.feed
    if args.fix:
        outcome = fix_all(state.spec, state.feed, state.signature, choices=state.choices,
                          extra=pending_fixes(state.choices, ()))
        feed, state.applied, state.remaining = outcome.feed, outcome.applied, list(outcome.remaining)
    elif state.reopened is not None and state.reopened.steps:
        ws = state.reopened
        feed, state.applied = ws.feed, tuple(ws.applied)
        state.remaining = diagnose(state.spec, feed, state.signature, choices=state.choices)
    pool = WorkerPool(size=1, limits=limits)
    try:
        # The check leaves the worker holding the model; with the default kernels, also the
        # marked copy the trace runs (built there rather than in the trace: the same work).
        checked = pool.check_model(state.model, state.spec, prepare_trace=not args.no_default_delegates)
        found = check_mismatches(checked, state.spec)
        state.remaining = found + list(state.remaining)
        try:
            traced = trace(state.model, state.spec, feed, state.signature, pool=pool,
                           no_default_delegates=args.no_default_delegates, saturation=args.saturation)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    finally:
        pool.close()
    from dataclasses import replace as _replace

    traced = _replace(traced, run=explain_result(traced.run, state.remaining))
    state.result = traced.run
    written = None
    if args.model_explorer and traced.tensors:
        from .model_explorer import dumps, node_data

        try:
            Path(args.model_explorer).write_text(dumps(node_data(traced, state.spec, args.model_explorer_statistic)), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"Cannot write {args.model_explorer!r}: {exc.strerror or exc}.") from None
        written = args.model_explorer
    errors_left = [m for m in state.remaining if m.severity == "error"]
    code = EXIT_OK if traced.ok and not traced.findings and not errors_left else EXIT_PROBLEMS
    if args.json:
        print(json.dumps(_trace_json(state, traced, written), indent=2, allow_nan=False, default=str))
    else:
        print(_trace_text(state, traced, written, args))
    return code


def _trace_json(s: _Check, t, written: str | None) -> dict[str, Any]:
    from .report import fixes_to_list, mismatches_to_list, model_to_dict, run_to_dict

    run = _json_safe(run_to_dict(t.run))  # a NaN or Inf output: JSON has neither
    return {
        "model": {**model_to_dict(s.spec), "file": s.model_name, **({"container": s.bundle_name} if s.bundle_name else {})},
        "signature": s.signature,
        "generated": s.generated,
        "mismatches": mismatches_to_list(s.remaining),
        "fixes_applied": fixes_to_list(s.applied),
        "run": {**run, "trace_ms": t.trace_ms, "stats_ms": t.stats_ms, "build_ms": t.build_ms},
        "model_explorer": written,
        **t.to_dict(),
    }


def _json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) as None: strict JSON has neither."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _data_where(s: _Check, given: list[str]) -> str:
    """Where the data of a trace or a comparison came from, for its first lines."""
    if s.generated:
        return f"generated ({s.generated})"
    if s.data_source:
        return f"from {s.data_source}"
    return "from " + ", ".join(given) if given else "as the bundle recorded it"


def _fix_lines(s: _Check, args: argparse.Namespace, command: str) -> list[str]:
    """The fixes applied and the errors left, as trace and compare print them."""
    out = []
    if s.applied:
        out.append(printable("Fixes applied: " + "; ".join(f.label for f in s.applied)))
    errors = [m for m in s.remaining if m.severity == "error"]
    out += [printable(f"  [error] {m.kind}: {m.message}") for m in errors]
    if errors and not args.fix:
        out.append(f"  (lite-debug {command} --fix applies the suggested fixes first, as check --fix does.)")
    return out


def _trace_text(s: _Check, t, written: str | None, args: argparse.Namespace) -> str:
    from .report import format_table

    head = f"Model {s.model_name!r}" + (f" (from {s.bundle_name!r})" if s.bundle_name else "")
    given = [Path(p).name for p in args.data] + [item.partition("=")[2] and Path(item.partition("=")[2]).name for item in args.input]
    out = [printable(head + (f", signature {s.signature!r}" if s.signature else "") + f"; data {_data_where(s, given)}.")]
    out += _fix_lines(s, args, "trace")
    r = t.run
    if not t.ok:
        if r.status == "error":
            e = r.explanation
            out.append(printable(f"Run: failed — {r.error_type}: {_first_line(r.error_message or '')}"))
            if e is not None:
                out += [printable(f"  Cause: {e.cause}"), printable(f"  Fix:   {e.fix}")]
            if r.detail:
                out.append(printable(f"  {r.detail}"))
        else:
            out.append(printable(f"Run: {r.status} — {r.detail}"))
        out.append("Nothing was traced" + (", so no Model Explorer file was written." if args.model_explorer else "."))
        return "\n".join(out)
    build = f", building the traced copy {t.build_ms:.3g} ms" if t.build_ms else ""
    out.append(printable(
        f"Run: ok (invoke {r.invoke_ms:.3g} ms); traced {len(t.tensors)} tensors of subgraph {t.subgraph} "
        f"(traced invoke {t.trace_ms:.3g} ms, statistics {t.stats_ms:.3g} ms{build})."
    ))
    if t.outputs_equal:
        out.append("The traced run's outputs equal the plain run's.")
    out += [printable(n) for n in t.notes]
    out += ["", "Findings:" if t.findings else "Findings: none — no NaN, no Inf, no saturated or dead tensor."]
    out += [printable(f"  [{f.kind}] {f.message}") for f in t.findings]
    marks = {}
    for f in t.findings:
        if f.tensor_index is not None:
            marks.setdefault(f.tensor_index, []).append(f.kind)

    def num(v: float | None) -> str:
        return "—" if v is None else f"{v:.4g}"

    rows = []
    for tt in t.tensors[:TRACE_ROWS]:
        st = tt.stats
        rows.append({
            "#": tt.position, "tensor": _cut(tt.name), "op": tt.op if tt.op_index is None else f"#{tt.op_index} {tt.op}",
            "shape": "[" + ", ".join(map(str, tt.shape)) + "]", "dtype": tt.dtype,
            "min": num(st.min) if st else "", "max": num(st.max) if st else "", "mean": num(st.mean) if st else "",
            "std": num(st.std) if st else "", "nan": st.nan if st else "", "inf": st.inf if st else "",
            "zeros": f"{st.zeros:.0%}" if st else "", "saturated": f"{st.saturated:.1%}" if st and st.saturated is not None else "",
            "finding": ", ".join(marks.get(tt.index, ())) or (tt.note and "no values"),
        })
    out += ["", "Tensors, in execution order:", format_table(rows)]
    if len(t.tensors) > TRACE_ROWS:
        out.append(f"  … and {len(t.tensors) - TRACE_ROWS:,} more (--json lists them all).")
    if written:
        out += ["", printable(f"Model Explorer node data written to {written!r}: open the model in Model Explorer and add it as node data.")]
    return "\n".join(out)


COMPARE_ROWS = 200  # layers printed as text; --json gives them all


def _is_tflite(path: str) -> bool:
    """Whether the file holds a TFLite flatbuffer (bytes 4-8 'TFL3'), whatever its name."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head[4:8] == b"TFL3"


def _fixed_feed(args: argparse.Namespace, spec: ModelSpec, feed: Feed, signature: str | None, picks: dict[str, str],
                model: bytes, batch: bool) -> tuple[Feed, tuple[Fix, ...], list[Mismatch]]:
    """``feed`` diagnosed for ``spec`` and, with --fix, fixed as check --fix fixes it (a batch:
    every sample as its first); (the feed, the fixes applied, the mismatches left)."""
    from .choices import choices as find_choices, pending_fixes
    from .diagnosis import diagnose, fix_all

    found = find_choices(spec, feed, signature, picks, model_bytes=model)
    remaining = diagnose(spec, feed, signature, choices=found)
    if not args.fix:
        return feed, (), list(remaining)
    if batch:
        from .batch import fix_batch

        try:
            outcome = fix_batch(spec, feed, signature, choices=found)
        except ValueError as exc:
            raise UsageError(f"{str(exc)[:-1]}; the data is {_shapes(feed)}.") from None
    else:
        outcome = fix_all(spec, feed, signature, choices=found, extra=pending_fixes(found, ()))
    return outcome.feed, tuple(outcome.applied), list(outcome.remaining)


def _samples(spec: ModelSpec, feed: Feed, signature: str | None) -> list[Feed]:
    from .batch import batch_plan, sample

    plan = batch_plan(spec, feed, signature)
    if plan is None:
        raise UsageError(
            f"--batch needs data whose first axis holds samples the model takes one (or its batch size) at a time; "
            f"the data is {_shapes(feed)}."
        )
    n, chunk = plan
    return [sample(feed, i, chunk) for i in range(0, n, chunk)]


def _compare(args: argparse.Namespace) -> int:
    """``lite-debug compare``: a candidate .tflite against a reference (another .tflite, its own
    reference kernels, expected outputs, or its Keras/SavedModel source), on the same data;
    0 when every output is within the tolerance, 1 otherwise."""
    from .compare import Expected, Model, Tolerance, compare, compare_samples
    from .inspection import inspect_model
    from .reference import open_reference, reference_kind
    from .running import WorkerPool

    try:
        tolerance = Tolerance(atol=args.atol, rtol=args.rtol, min_snr=args.min_snr, min_cosine=args.min_cosine)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    files = list(args.files)
    candidate_path = files.pop(0) if files and _is_tflite(files[0]) else None
    raw = _read(args.reference, "reference")
    keras = None
    if raw[4:8] != b"TFL3":
        if reference_kind(raw) is None:
            raise UsageError(
                f"The reference {args.reference!r} is neither a TFLite model, a Keras model (.keras, .h5) nor a zipped "
                "SavedModel folder; its content matches none of them."
            )
        if candidate_path is None:
            raise UsageError(
                "A Keras or SavedModel reference needs the .tflite model to compare with it: "
                "lite-debug compare MODEL.keras MODEL.tflite [DATA ...]."
            )
        keras = open_reference(Path(args.reference).name, raw, args.reference_signature)
    if args.expected and candidate_path is not None:
        raise UsageError("--expected compares one model with the outputs in the file: give one .tflite model, not two.")
    if args.expected and keras is not None:
        raise UsageError("--expected takes a .tflite model, not a Keras or SavedModel one.")
    two_models = keras is None and candidate_path is not None
    # The data is loaded and bound for the model that is run on it as the candidate.
    model_path = candidate_path or args.reference
    ns = argparse.Namespace(**{**vars(args), "model": model_path, "data": files})
    state = _prepare(ns)
    picks = {**(state.reopened.preferences if state.reopened is not None else {}), **_picks(args, state)}
    cand_feed, state.applied, state.remaining = _fixed_feed(args, state.spec, state.feed, state.signature, picks,
                                                             state.model, args.batch)
    candidate = Model(name=state.model_name, model_bytes=state.model, spec=state.spec, feed=cand_feed,
                      signature=state.signature)
    reference: Any
    ref_feeds: list[Feed] | None = None
    ref_fixes: tuple[Fix, ...] = ()
    if keras is not None:
        reference = keras
    elif args.expected:
        from .loading import load_data

        loaded = load_data(Path(args.expected).name, _read(args.expected, "expected outputs"))
        reference = Expected(name=Path(args.expected).name, arrays=loaded)
    elif two_models:
        ref_spec = inspect_model(raw, name=f"the model file {Path(args.reference).name!r}")
        ref_signature = state.signature if state.signature in {s.key for s in ref_spec.signatures} else None
        from .binding import bind

        inputs, _ = state.spec.io(state.signature)
        arrays = [state.feed.arrays[t.name] for t in inputs if t.name in state.feed.arrays]
        try:
            ref_data = bind(ref_spec, arrays, ref_signature)
        except (ValueError, KeyError) as exc:
            raise UsageError(f"The data cannot be bound to the reference's inputs: {exc}") from None
        ref_data, ref_fixes, ref_left = _fixed_feed(args, ref_spec, ref_data, ref_signature, picks, raw, args.batch)
        state.remaining += [m for m in ref_left if m.severity == "error"]
        reference = Model(name=Path(args.reference).name, model_bytes=raw, spec=ref_spec, feed=ref_data,
                          signature=ref_signature)
        if args.batch:
            ref_feeds = _samples(ref_spec, ref_data, ref_signature)
    else:
        from dataclasses import replace as _replace

        reference = _replace(candidate, kernels="reference")
    pool = WorkerPool(size=2, limits=_limits(args))
    try:
        if args.batch:
            feeds = _samples(state.spec, cand_feed, state.signature)
            pairs = [(f, ref_feeds[i] if ref_feeds is not None and i < len(ref_feeds) else None) for i, f in enumerate(feeds)]
            result = compare_samples(reference, candidate, pairs, tolerance=tolerance, pool=pool, layers=not args.outputs_only,
                                     progress=_progress_bar if not args.json and sys.stderr.isatty() else None)
        else:
            result = compare(reference, candidate, tolerance=tolerance, pool=pool, layers=not args.outputs_only)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    finally:
        pool.close()
    written = _write_model_explorer(args, result, reference, candidate)
    errors_left = [m for m in state.remaining if m.severity == "error"]
    code = EXIT_OK if result.ok and not errors_left else EXIT_PROBLEMS
    if args.json:
        from .report import fixes_to_list, mismatches_to_list

        out = {
            **result.to_dict(),
            "signature": state.signature,
            "generated": state.generated,
            "mismatches": mismatches_to_list(state.remaining),
            "fixes_applied": fixes_to_list(state.applied + ref_fixes),
            "model_explorer": written,
        }
        print(json.dumps(_json_safe(out), indent=2, allow_nan=False, default=str))
    else:
        print(_compare_text(state, result, written, args))
    return code


def _write_model_explorer(args: argparse.Namespace, result, reference, candidate) -> list[str]:
    """--model-explorer OUT.json: the reference's file, and OUT.candidate.json keyed by the
    candidate's names when the reference is a .tflite too; nothing when no layer was compared."""
    if not args.model_explorer or not result.tensors:
        return []
    from .compare import Model
    from .model_explorer import comparison_node_data, dumps

    out = Path(args.model_explorer)
    targets = [(out, reference.spec, "reference")]
    if isinstance(reference, Model):
        second = out.with_name(out.stem + ".candidate" + (out.suffix or ".json"))
        targets.append((second, candidate.spec, "candidate"))
    written = []
    for path, spec, side in targets:
        try:
            path.write_text(dumps(comparison_node_data(result, spec, side, args.model_explorer_metric)), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"Cannot write {str(path)!r}: {exc.strerror or exc}.") from None
        written.append(str(path))
    return written


def _compare_text(s: _Check, c, written: list[str], args: argparse.Namespace) -> str:
    from .report import format_table

    def num(v: float | None, fmt: str = ".4g") -> str:
        if v is None:
            return "—"
        if isinstance(v, float) and not np.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
        return format(v, fmt)

    given = [Path(p).name for p in args.files if not _is_tflite(p)]
    out = [printable(f"Reference: {c.reference.description}."), printable(f"Candidate: {c.candidate.description}."),
           printable(f"Data {_data_where(s, given)}" + (f", signature {s.signature!r}" if s.signature else "") + "."),
           printable(f"Tolerance: {c.tolerance.describe()}.")]
    out += _fix_lines(s, args, "compare")
    for label, side in (("Reference", c.reference), ("Candidate", c.candidate)):
        r = side.run
        if r is not None and not r.ok:
            out.append(printable(f"{label} run: {r.status} — {r.error_type + ': ' if r.error_type else ''}"
                                 f"{_first_line(r.error_message or r.detail or '')}"))
            if r.explanation is not None:
                out += [printable(f"  Cause: {r.explanation.cause}"), printable(f"  Fix:   {r.explanation.fix}")]
    if not c.ran:
        out += [printable(n) for n in c.notes]
        out.append("Nothing was compared" + (", so no Model Explorer file was written." if args.model_explorer else "."))
        return "\n".join(out)

    def rows_of(items, depth: bool) -> list[dict[str, Any]]:
        rows = []
        for t in items:
            m = t.metrics
            row = {"#": t.position} if depth else {}
            row.update({
                "reference": _cut(t.reference), **({"candidate": _cut(t.candidate)} if t.candidate != t.reference else {"candidate": "(same name)"}),
                **({"op": t.op} if depth else {}), "by": t.matched_by,
                "snr_db": num(m.snr_db, ".1f") if m else "", "cosine": num(m.cosine, ".5f") if m else "",
                "max_abs": num(m.max_abs) if m else "", "mean_abs": num(m.mean_abs) if m else "",
                "max_rel": num(m.max_rel) if m else "",
                "atol_needed": num(m.atol_needed) if m else "", "rtol_needed": num(m.rtol_needed) if m else "",
                "within": "yes" if t.within else ("no" if t.within is False else _cut(t.note, 30)),
            })
            rows.append(row)
        return rows

    out += ["", "Outputs:", format_table(rows_of(c.outputs, False))]
    if c.first_divergent is not None:
        out += ["", printable("First divergent layer: " + c.first_divergent.message)]
    elif c.layers:
        out += ["", "No layer leaves the tolerance."]
    if c.layers:
        out += ["", f"Layers, in the reference's execution order ({len(c.tensors)} matched):",
                format_table(rows_of(c.tensors[:COMPARE_ROWS], True))]
        if len(c.tensors) > COMPARE_ROWS:
            out.append(f"  … and {len(c.tensors) - COMPARE_ROWS:,} more (--json lists them all).")
        if c.unmatched:
            out.append(f"Not matched ({len(c.unmatched)}):")
            out += [printable(f"  {u.model} {u.name!r} ({u.op}): {u.why}") for u in c.unmatched[:20]]
            if len(c.unmatched) > 20:
                out.append(f"  … and {len(c.unmatched) - 20} more (--json lists them all).")
    if c.samples is not None:
        out += ["", f"Samples: {sum(c.samples.within)} of {len(c.samples.within)} within the tolerance."]
        for o in c.samples.outputs:
            d = c.samples.distribution(o, "snr_db")
            out.append(printable(f"  {o!r} SNR dB: min {num(d['min'], '.1f')}, p5 {num(d['p05'], '.1f')}, median "
                                 f"{num(d['median'], '.1f')}, max {num(d['max'], '.1f')}"))
    out += [printable(n) for n in c.notes]
    for path in written:
        out.append(printable(f"Model Explorer node data written to {path!r}: open the matching model in Model Explorer and add it "
                             "as node data."))
    out += ["", "Result: every output is within the tolerance." if c.ok else "Result: the candidate's outputs leave the tolerance."]
    return "\n".join(out)


def _cut(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _explain(args: argparse.Namespace) -> int:
    from .explain import explain

    if args.text in (None, "-"):
        if sys.stdin is None or sys.stdin.isatty() and args.text is None:
            raise UsageError("Give the error text as an argument, or pipe it in with '-'.")
        text = sys.stdin.read()
    else:
        text = args.text
    if not text.strip():
        raise UsageError("The error text is empty; paste the whole message, with its exception type.")
    e = explain(text)
    if args.json:
        print(json.dumps({**e.to_dict(), "message": e.message}, indent=2, default=str))
    else:
        print(printable(f"{e.title}\n\nCause: {e.cause}\nFix:   {e.fix}", keep_newlines=True))
        if e.facts:
            print(printable("\nRecognised: " + ", ".join(f"{k}={v}" for k, v in e.facts.items()), keep_newlines=True))
    return EXIT_OK if e.recognised else EXIT_PROBLEMS


def _pick_options(command: argparse.ArgumentParser) -> None:
    """The picks for the choices the fixes make (see lite_debug.choices), for every command
    that loads and fixes data the way check does."""
    command.add_argument("--range", metavar="LOW,HIGH", help="the value range to scale image pixels to (e.g. 0,1 or -1,1)")
    command.add_argument("--resize-method", choices=("tf", "pillow", "opencv"), help="the resize filter (default: tf.image.resize's)")
    command.add_argument("--resize-mode", choices=("stretch", "crop", "pad"), help="how a resize fits the aspect ratio (default: stretch)")
    command.add_argument("--channel-order", choices=("rgb", "bgr"), help="the channel order the model takes (default: rgb)")
    command.add_argument("--sample-rate", type=int, metavar="HZ",
                         help="the sample rate an audio model takes (default: its metadata's, or a guess from its window)")
    command.add_argument("--clip", choices=("windows", "windows-50", "windows-75", "trim"),
                         help="a recording longer than the model's window: split it into windows (no, 50%% or 75%% "
                              "overlap; run as a batch) or trim it (default: windows)")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = _Parser(
        prog="lite-debug",
        description="Find out why a TFLite / LiteRT model refuses your data, and fix it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="inspect a model, diagnose data, optionally fix it, and run it safely")
    check.add_argument("model", nargs="?", help="a .tflite model, a lite-debug bundle, or a bug-report archive (.zip, .tar, .tar.gz)")
    check.add_argument("data", nargs="*", help="data files (.npy .npz .png .jpg .bmp .csv .json .wav .flac .ogg .mp3 .bin), one per input in order; optional")
    check.add_argument("--input", action="append", default=[], metavar="NAME=FILE", help="data for one input by name")
    check.add_argument("--signature", help="run this signature of the model")
    check.add_argument("--member", metavar="PATH", help="which model to open, when the archive given holds several")
    check.add_argument("--fix", action="store_true", help="apply the suggested fixes, then run")
    check.add_argument("--json", action="store_true", help="print one JSON object (errors too: {\"error\": …})")
    check.add_argument("--generate", choices=("zeros", "random"), default="zeros", help="data to make up when none is given")
    check.add_argument("--batch", action="store_true", help="the data's first axis holds samples: run every one (with --fix, fix them all)")
    check.add_argument("--repeat", type=int, default=1, metavar="N", help="after a warm-up run, time N runs (min/median/p95)")
    check.add_argument("--bundle", metavar="OUT.zip", help="write a bug-report bundle: the data as given, the fixes, the run, versions")
    check.add_argument("--script", metavar="OUT.py", help="write reproduce.py: the fixes and the run as a standalone script")
    check.add_argument("--sweep", action="store_true", help="run once per candidate preprocessing (value range × resize filter) and score each")
    _pick_options(check)
    check.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS",
        help="limit on loading and on the run (default: LITE_DEBUG_RUN_SECONDS or 30; 0 for none)",
    )
    check.add_argument(
        "--memory-limit", type=float, default=None, metavar="GB",
        help="address space the worker may use (default: LITE_DEBUG_MEMORY_GB or 4; 0 for none); larger models are refused before they run",
    )
    check.set_defaults(func=_check)
    tr = sub.add_parser("trace", help="run once with every op's output captured: statistics of every layer, NaN/Inf, saturation")
    tr.add_argument("model", help="a .tflite model, a lite-debug bundle, or a bug-report archive (.zip, .tar, .tar.gz)")
    tr.add_argument("data", nargs="*", help="data files, one per input in order, as for check; optional")
    tr.add_argument("--input", action="append", default=[], metavar="NAME=FILE", help="data for one input by name")
    tr.add_argument("--signature", help="trace this signature of the model")
    tr.add_argument("--member", metavar="PATH", help="which model to open, when the archive given holds several")
    tr.add_argument("--fix", action="store_true", help="apply the suggested fixes first, as check --fix does")
    tr.add_argument("--json", action="store_true", help="print one JSON object: every tensor's statistics and the findings")
    tr.add_argument("--model-explorer", metavar="OUT.json", help="write the statistics as node data for Google's Model Explorer")
    tr.add_argument("--model-explorer-statistic", default="max_abs",
                    choices=("max_abs", "min", "max", "mean", "std", "zeros", "nan", "inf", "saturated"),
                    help="what colours each node in the Model Explorer file (default: the largest magnitude)")
    tr.add_argument("--saturation", type=float, default=0.01, metavar="SHARE",
                    help="a quantized tensor with more than this share of values at an end of its range is saturated (default 0.01)")
    tr.add_argument("--no-default-delegates", action="store_true",
                    help="run without the default XNNPACK delegate (the builtin kernels alone)")
    tr.add_argument("--generate", choices=("zeros", "random"), default="zeros", help="data to make up when none is given")
    _pick_options(tr)
    tr.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help="limit on loading and on each run (default: LITE_DEBUG_RUN_SECONDS or 30; 0 for none)")
    tr.add_argument("--memory-limit", type=float, default=None, metavar="GB",
                    help="address space the worker may use (default: LITE_DEBUG_MEMORY_GB or 4; 0 for none)")
    tr.set_defaults(func=_trace)
    cmp = sub.add_parser("compare", help="compare a model against a reference (another model, the reference kernels, "
                                         "expected outputs, a Keras/SavedModel model), output by output and layer by layer")
    cmp.add_argument("reference", help="the reference: a .tflite model, a Keras model (.keras, .h5) or a zipped SavedModel "
                                       "folder; a .tflite given alone is compared with its own reference kernels")
    cmp.add_argument("files", nargs="*", metavar="[CANDIDATE] DATA",
                     help="a second .tflite (told apart by its content) is the candidate; the rest are data files, as for check")
    cmp.add_argument("--expected", metavar="FILE", help="expected outputs (.npy, .npz) to compare the one model given with")
    cmp.add_argument("--atol", type=float, default=None, help="also require |candidate - reference| <= atol + rtol*|reference| everywhere")
    cmp.add_argument("--rtol", type=float, default=None, help="see --atol")
    cmp.add_argument("--min-snr", type=float, default=20.0, metavar="DB", help="the smallest SNR within tolerance (default 20 dB)")
    cmp.add_argument("--min-cosine", type=float, default=0.99, help="the smallest cosine similarity within tolerance (default 0.99)")
    cmp.add_argument("--outputs-only", action="store_true", help="compare the outputs only, not every layer")
    cmp.add_argument("--batch", action="store_true",
                     help="the data's first axis holds samples: compare every one (layers on the first), with each sample's figures")
    cmp.add_argument("--json", action="store_true", help="print one JSON object: outputs, tensors, the first divergent layer")
    cmp.add_argument("--model-explorer", metavar="OUT.json",
                     help="write each layer's error as Model Explorer node data (and OUT.candidate.json for a second .tflite)")
    cmp.add_argument("--model-explorer-metric", default="snr_db", choices=("snr_db", "cosine", "max_abs", "mean_abs", "max_rel"),
                     help="what colours each node in the Model Explorer file (default: SNR)")
    cmp.add_argument("--input", action="append", default=[], metavar="NAME=FILE", help="data for one input by name")
    cmp.add_argument("--signature", help="run this signature of the candidate (and of the reference, when it has it)")
    cmp.add_argument("--reference-signature", metavar="KEY", help="the SavedModel signature to run (default serving_default)")
    cmp.add_argument("--member", metavar="PATH", help="which model to open, when the candidate is an archive that holds several")
    cmp.add_argument("--fix", action="store_true", help="apply the suggested fixes first, for each model, as check --fix does")
    cmp.add_argument("--generate", choices=("zeros", "random"), default="random", help="data to make up when none is given (default random)")
    _pick_options(cmp)
    cmp.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="limit on loading and on each run (default: LITE_DEBUG_RUN_SECONDS or 30; 0 for none)")
    cmp.add_argument("--memory-limit", type=float, default=None, metavar="GB",
                     help="address space each worker may use (default: LITE_DEBUG_MEMORY_GB or 4; 0 for none)")
    cmp.set_defaults(func=_compare)
    exp = sub.add_parser("explain", help="explain an interpreter error message or a pasted traceback")
    exp.add_argument("text", nargs="?", help="the message, or '-' to read it from standard input")
    exp.add_argument("--json", action="store_true", help="print one JSON object")
    exp.set_defaults(func=_explain)
    return parser, {"check": check, "trace": tr, "compare": cmp, "explain": exp}


def _fail(message: str, kind: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": {"type": kind, "message": message}}, indent=2))
    else:
        print(printable(f"lite-debug: {message}"), file=sys.stderr)
    return EXIT_UNUSABLE


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # argparse reads "--range -1,1" as two options: join a negative range to its option.
    for i in range(len(argv) - 1):
        if argv[i] == "--range" and argv[i + 1].startswith("-"):
            argv[i : i + 2] = [f"--range={argv[i + 1]}", ""]
    argv = [a for a in argv if a != ""]
    as_json = "--json" in argv
    try:
        if argv and argv[0] in commands:
            # Each command parses intermixed, so that `check MODEL --input a=x.npy y.npy` takes
            # y.npy as data (argparse cannot intermix through subparsers).
            args = commands[argv[0]].parse_intermixed_args(argv[1:])
        else:
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help printed its text
        return EXIT_UNUSABLE if exc.code not in (0, None) else EXIT_OK
    except UsageError as exc:
        if not as_json:
            commands.get(argv[0] if argv else "", parser).print_usage(sys.stderr)
        return _fail(str(exc), "usage", as_json)
    if getattr(args, "timeout", None) is not None and args.timeout < 0:
        return _fail("--timeout must be a number of seconds, or 0 for none.", "usage", as_json)
    if getattr(args, "repeat", 1) < 1:
        return _fail("--repeat must be at least 1.", "usage", as_json)
    if getattr(args, "memory_limit", None) is not None and args.memory_limit < 0:
        return _fail("--memory-limit must be a number of GB, or 0 for none.", "usage", as_json)
    if getattr(args, "sweep", False) and (args.batch or args.repeat > 1):
        return _fail("--sweep runs one sample per candidate; leave out --batch and --repeat.", "usage", as_json)
    try:
        return args.func(args)
    except UsageError as exc:
        return _fail(str(exc), "usage", as_json)
    except LiteDebugError as exc:
        return _fail(str(exc), type(exc).__name__, as_json)
    except KeyboardInterrupt:
        print("lite-debug: interrupted.", file=sys.stderr)
        return 130
    except MemoryError:
        return _fail("The data does not fit in memory; try a smaller file.", "MemoryError", as_json)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
