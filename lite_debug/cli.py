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
from .records import Feed, Fix, Mismatch, ModelSpec, RunResult

__all__ = ["main"]

EXIT_OK, EXIT_PROBLEMS, EXIT_UNUSABLE = 0, 1, 2


class UsageError(Exception):
    """An argument or file the command cannot use; its message is shown as is."""


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
    mismatches: list[Mismatch] = field(default_factory=list)
    applied: tuple[Fix, ...] = ()
    remaining: list[Mismatch] = field(default_factory=list)
    result: RunResult | None = None
    timing: dict[str, Any] | None = None
    feed_to_run: Feed | None = None


def _load_inputs(spec: ModelSpec, signature: str | None, files: Sequence[str], named: Sequence[str]) -> Feed:
    from .loading import load_data

    inputs, _ = spec.io(signature)
    positional: list[np.ndarray] = []
    keyed: dict[str, np.ndarray] = {}
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
        target = next((t for t in inputs if t.name == name), None)
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

    return bind_mixed(spec, keyed, positional, signature)


def _prepare(args: argparse.Namespace) -> _Check:
    from .binding import bind
    from .bundle import is_bundle, read_bundle
    from .generate import generate_feed
    from .inspection import inspect_model

    raw = _read(args.model, "model")
    signature = args.signature
    feed: Feed | None = None
    if is_bundle(raw):
        bundle = read_bundle(raw)
        model = bundle.model
        signature = signature or bundle.signature
        feed = bundle.feed
    else:
        model = raw
    spec = inspect_model(model, name=f"the model file {Path(args.model).name!r}")
    if signature is not None and signature not in {s.key for s in spec.signatures}:
        known = ", ".join(s.key for s in spec.signatures) or "none"
        raise UsageError(f"The model has no signature {signature!r}; its signatures are: {known}.")
    generated = None
    if args.data or args.input:
        feed = bind(spec, _load_inputs(spec, signature, args.data, args.input), signature)
    elif feed is None:
        generated = args.generate
        feed = generate_feed(spec, args.generate, signature)
    return _Check(spec=spec, model=model, feed=feed, signature=signature, generated=generated)


def _check(args: argparse.Namespace) -> int:
    from .diagnosis import diagnose, fix_all
    from .running import Limits, WorkerPool

    state = _prepare(args)
    state.mismatches = diagnose(state.spec, state.feed, state.signature)
    state.remaining = list(state.mismatches)
    feed = state.feed
    if args.fix:
        if args.batch:
            from .batch import fix_batch

            try:
                outcome = fix_batch(state.spec, state.feed, state.signature)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        else:
            outcome = fix_all(state.spec, state.feed, state.signature)
        feed, state.applied, state.remaining = outcome.feed, outcome.applied, list(outcome.remaining)
    state.feed_to_run = feed
    try:
        env_limits = Limits.from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    limits = replace(
        env_limits,
        run_seconds=args.timeout,
        load_seconds=args.timeout,
        memory_bytes=int(args.memory_limit * (1 << 30)) if args.memory_limit else None,
    )
    pool = WorkerPool(size=1, limits=limits)
    try:
        if args.batch:
            return _check_batch(args, state, pool)
        state.result = pool.run(state.model, state.spec, feed, state.signature)
        if args.repeat > 1 and state.result.ok:
            # Like benchmark_model: the first run warmed the worker; time the next N.
            # Runs back to back: both sides poll for the next message rather than sleep.
            runs = [pool.run(state.model, state.spec, feed, state.signature, expect_more=True) for _ in range(args.repeat)]
            state.timing = _timing(runs)
            state.result = next((r for r in runs if not r.ok), runs[-1])
    finally:
        pool.close()
    errors_left = [m for m in state.remaining if m.severity == "error"]
    code = EXIT_OK if state.result.ok and not errors_left else EXIT_PROBLEMS
    if args.json:
        print(json.dumps(_check_json(state), indent=2, default=str))
    else:
        print(_check_text(state, args))
    return code


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
        shapes = ", ".join(f"{k} {list(np.asarray(v).shape)}" for k, v in feed.arrays.items())
        raise UsageError(
            f"--batch needs each input's samples stacked on the first axis with the rest shaped as the model "
            f"expects ({', '.join(t.shape_text() for t in inputs)}), but the data is {shapes}"
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
    for i, msg in list(batch.errors.items())[:5]:
        lines.append(f"  sample {i}: {_first_line(msg, 200)}")
    if batch.explanation is not None:
        lines += [f"  Cause: {batch.explanation.cause}", f"  Fix:   {batch.explanation.fix}"]
    if batch.detail and not batch.outputs:
        lines.append(f"  {batch.detail}")
    print("\n".join(lines))
    return code


def _check_json(s: _Check) -> dict[str, Any]:
    from .report import fixes_to_list, mismatches_to_list, model_to_dict, run_to_dict

    return {
        "model": model_to_dict(s.spec),
        "signature": s.signature,
        "generated": s.generated,
        "mismatches": mismatches_to_list(s.mismatches),
        "fixes_applied": fixes_to_list(s.applied),
        "remaining": mismatches_to_list(s.remaining) if s.applied else None,
        "run": {**run_to_dict(s.result), **({"timing": s.timing} if s.timing else {})},
    }


def _check_text(s: _Check, args: argparse.Namespace) -> str:
    from .report import data_rows, format_table, tensor_rows

    inputs, outputs = s.spec.io(s.signature)
    out = [f"Model {args.model}: {s.spec.size:,} bytes, {len(inputs)} input(s), {len(outputs)} output(s)"
           + (f", signature {s.signature!r}" if s.signature else "")]
    if s.spec.signatures:
        out.append("Signatures: " + ", ".join(sig.key for sig in s.spec.signatures))
    out += ["", "Inputs:", format_table(tensor_rows(inputs)), "", "Outputs:", format_table(tensor_rows(outputs))]
    for op in (*s.spec.flex_ops, *s.spec.custom_ops):
        out += ["", f"! {op.note}"]
    out += ["", "Data" + (f" (generated: {s.generated})" if s.generated else "") + ":", format_table(data_rows(dict(s.feed.arrays)))]
    out += ["", "Mismatches:" if s.mismatches else "Mismatches: none — the data fits the model."]
    for m in s.mismatches:
        out.append(f"  [{m.severity}] {m.kind}: {m.message}")
        for f in m.fixes[:3]:
            out.append(f"      fix: {f.label}    # {f.code}")
    if s.applied:
        out += ["", "Fixes applied:"] + [f"  {f.label}    # {f.code}" for f in s.applied]
        left = [m for m in s.remaining]
        out.append("  Remaining: " + ("none" if not left else "; ".join(f"{m.kind} ({m.severity})" for m in left)))
    r = s.result
    out.append("")
    if r is None:
        out.append("Run: skipped")
    elif r.ok:
        out.append(f"Run: ok (invoke {r.invoke_ms:.3g} ms)" + (f" — {r.detail}" if r.detail else ""))
        if s.timing and "invoke_ms" in s.timing:
            t, rt = s.timing["invoke_ms"], s.timing.get("total_ms", {})
            out.append(
                f"  {s.timing['repeat']} runs: invoke min {t['min']:.3f} ms, median {t['median']:.3f} ms, p95 {t['p95']:.3f} ms"
                + (f"; round trip median {rt['median']:.3f} ms" if rt else "")
            )
        for o in r.outputs:
            v = o.values
            stats = f"min {float(v.min()):.4g}, max {float(v.max()):.4g}" if v.size and v.dtype.kind in "biuf" else ""
            top = ""
            if v.size and v.ndim <= 2 and v.dtype.kind == "f" and v.shape[-1] > 1 and v.size == v.shape[-1]:
                top = f", top class {int(np.argmax(v))}"
            out.append(f"  {o.name}: {o.dtype} {list(o.shape)}{' (dequantized)' if o.quantization.is_quantized else ''} {stats}{top}")
    elif r.status == "error":
        e = r.explanation
        out.append(f"Run: failed — {r.error_type}: {_first_line(r.error_message or '')}")
        if e is not None:
            out += [f"  Cause: {e.cause}", f"  Fix:   {e.fix}"]
        if r.kernel_message:
            out.append(f"  Without the default XNNPACK delegate the kernel says: {_first_line(r.kernel_message)}")
        elif r.detail and "XNNPACK" in r.detail:
            out.append(f"  {r.detail}")
    else:
        out.append(f"Run: {r.status} — {r.detail}")
    return "\n".join(out)


def _first_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        print(f"{e.title}\n\nCause: {e.cause}\nFix:   {e.fix}")
        if e.facts:
            print("\nRecognised: " + ", ".join(f"{k}={v}" for k, v in e.facts.items()))
    return EXIT_OK if e.recognised else EXIT_PROBLEMS


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="lite-debug",
        description="Find out why a TFLite / LiteRT model refuses your data, and fix it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="inspect a model, diagnose data, optionally fix it, and run it safely")
    check.add_argument("model", help="a .tflite model or a lite-debug bundle .zip")
    check.add_argument("data", nargs="*", help="data files (.npy .npz .png .jpg .bmp .csv .json .bin), one per input in order")
    check.add_argument("--input", action="append", default=[], metavar="NAME=FILE", help="data for one input by name")
    check.add_argument("--signature", help="run this signature of the model")
    check.add_argument("--fix", action="store_true", help="apply the suggested fixes, then run")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--generate", choices=("zeros", "random"), default="zeros", help="data to make up when none is given")
    check.add_argument("--batch", action="store_true", help="the data's first axis holds samples: run every one (with --fix, fix them all)")
    check.add_argument("--repeat", type=int, default=1, metavar="N", help="after a warm-up run, time N runs (min/median/p95)")
    check.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="limit on loading and on the run")
    check.add_argument(
        "--memory-limit", type=float, default=4.0, metavar="GB",
        help="address space the worker may use (default 4; 0 for none); larger models are refused before they run",
    )
    check.set_defaults(func=_check)
    exp = sub.add_parser("explain", help="explain an interpreter error message or a pasted traceback")
    exp.add_argument("text", nargs="?", help="the message, or '-' to read it from standard input")
    exp.add_argument("--json", action="store_true", help="print one JSON object")
    exp.set_defaults(func=_explain)
    return parser, {"check": check, "explain": exp}


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in commands:
            # Each command parses intermixed, so that `check MODEL --input a=x.npy y.npy` takes
            # y.npy as data (argparse cannot intermix through subparsers).
            args = commands[argv[0]].parse_intermixed_args(argv[1:])
        else:
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage line
        return EXIT_UNUSABLE if exc.code not in (0, None) else EXIT_OK
    if getattr(args, "timeout", 1.0) <= 0:
        print("lite-debug: --timeout must be a positive number of seconds.", file=sys.stderr)
        return EXIT_UNUSABLE
    if getattr(args, "repeat", 1) < 1:
        print("lite-debug: --repeat must be at least 1.", file=sys.stderr)
        return EXIT_UNUSABLE
    if getattr(args, "memory_limit", 1.0) < 0:
        print("lite-debug: --memory-limit must be a number of GB, or 0 for none.", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        return args.func(args)
    except (UsageError, LiteDebugError) as exc:
        print(f"lite-debug: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        print("lite-debug: interrupted.", file=sys.stderr)
        return 130
    except MemoryError:
        print("lite-debug: the data does not fit in memory; try a smaller file.", file=sys.stderr)
        return EXIT_UNUSABLE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
