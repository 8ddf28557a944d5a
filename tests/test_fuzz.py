"""Fuzzing: broken and hostile models, data files and bundles never get past lite-debug's errors.

Mutants come from ``fuzzing.py``, one seed each. For a model mutant, ``inspect_model`` returns a
spec or raises ``ModelLoadError``; a spec is then diagnosed against generated data and run in a
shared worker pool, where whatever the interpreter does (crash, hang, refuse) must come back as a
``RunResult`` within its limits. That this process survives a few hundred such runs is the main
assertion. Data files and bundles must load or raise ``DataLoadError`` / ``BundleError``.

Environment:

- ``LITE_DEBUG_FUZZ_CASES`` — mutants in all (default 300: about 20 s on two cores); opt in to
  more with e.g. ``LITE_DEBUG_FUZZ_CASES=5000`` (about 40 s more);
- ``LITE_DEBUG_FUZZ_OFFSET`` — start the seeds elsewhere, to explore other mutants;
- ``LITE_DEBUG_FUZZ_SAVE=1`` — keep mutants that crashed or hung a worker (and do so again in a
  fresh worker) as ``tests/fixtures/fuzz/<sha256 prefix>.tflite`` with a JSON sidecar; at most
  ``MAX_SAVED`` of them, one per mutation and signal. Run without ``-n`` when saving.

Bugs the fuzzer finds in lite-debug go in ``KNOWN_BUGS`` with a strict xfail test that
reproduces each in a few lines; the fuzz loops let those exceptions through (and only those)
while the bug is open. The tests near the end of this file are the reproductions of the bugs of
the first campaign, all fixed: they now guard against their return.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import fuzzing
from fuzzing import Mutant, bundle_mutant, data_mutant, model_mutant, seeds
from lite_debug.bundle import Bundle, is_bundle, read_bundle, write_bundle
from lite_debug.diagnosis import diagnose, fix_all
from lite_debug.errors import BundleError, DataLoadError, FixError, ModelLoadError
from lite_debug.generate import MAX_GENERATED_BYTES, generate_feed
from lite_debug.inspection import inspect_model
from lite_debug.loading import load_data
from lite_debug.records import Feed, ModelSpec
from lite_debug.running import Limits, Worker, WorkerPool

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = Path(__file__).resolve().parent / "fixtures" / "fuzz"

CASES = int(os.environ.get("LITE_DEBUG_FUZZ_CASES", "300"))
OFFSET = int(os.environ.get("LITE_DEBUG_FUZZ_OFFSET", "0"))
SAVE = os.environ.get("LITE_DEBUG_FUZZ_SAVE") == "1"
SHARE = {"model-schema": 0.45, "model-bytes": 0.25, "data": 0.2, "bundle": 0.1}
CHUNK = {"model-schema": 25, "model-bytes": 40, "data": 250, "bundle": 250}

LIMITS = Limits(run_seconds=5, load_seconds=5, memory_bytes=1 << 30, cpu_seconds=10)
# Worker start-up, a restart after a crash, and a loaded machine: what a case may take beyond
# its load and run limits.
MARGIN = 15.0
DEADLINE = LIMITS.load_seconds + LIMITS.run_seconds + MARGIN
STATUSES = {"ok", "error", "crashed", "timeout", "skipped"}
# generate_feed makes up to MAX_GENERATED_BYTES per input, and diagnosing 1 GiB of zeros takes
# seconds and a gigabyte: inputs larger in all than this are not made up in the test process,
# unless one of them is past generate_feed's own limit, which it must then refuse at no cost.
IN_PROCESS_BYTES = 64 << 20
# What one mutant may cost this process (inspecting, loading, diagnosing) before it counts as a hang.
IN_PROCESS_SECONDS = 10.0
MAX_SAVED = 10
MAX_SAVED_BYTES = 50_000


def _chunks(family: str) -> list[tuple[int, int]]:
    n = max(1, round(CASES * SHARE[family]))
    first = seeds(family, 1, OFFSET)[0]
    size = CHUNK[family]
    return [(first + a, first + min(a + size, n)) for a in range(0, n, size)]


def _ids(chunks: list[tuple[int, int]]) -> list[str]:
    return [f"{a}-{b - 1}" for a, b in chunks]


# -- known bugs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownBug:
    """An exception lite-debug lets escape, found by fuzzing; ``test`` reproduces it."""

    stage: str
    error: str  # a regex the exception's type name matches
    match: str  # a regex its message matches
    test: str

    def hits(self, stage: str, exc: BaseException) -> bool:
        return (
            stage == self.stage
            and re.fullmatch(self.error, type(exc).__name__) is not None
            and re.search(self.match, str(exc)) is not None
        )


# Bugs found here and not fixed yet; empty since the fixes of the first campaign (read_bundle's
# zip, zlib, JSON and manifest errors; generate_feed's zero point and size; diagnose on types
# numpy lacks and non-numeric arrays; the memory refusal of astronomic models) all landed.
KNOWN_BUGS: tuple[KnownBug, ...] = ()


def _known(stage: str, exc: BaseException) -> KnownBug | None:
    return next((b for b in KNOWN_BUGS if b.hits(stage, exc)), None)


def _bug(m: Mutant, stage: str, exc: BaseException) -> str:
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4))
    return f"{m.label()}\n  {stage} raised {type(exc).__name__}: {str(exc)[:300]}\n{stack}"


# -- model mutants --------------------------------------------------------------------------------


@dataclass
class Outcome:
    mutant: Mutant
    status: str = "refused"  # "refused" by inspect_model, else the run's status
    signal: str | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    result: object = None
    signature: str | None = None
    feed: Feed | None = None  # what the run was given


def _sizes(spec: ModelSpec, signature: str | None = None) -> list[int]:
    """The bytes generate_feed would make for each input, in the order it makes them."""
    inputs, _ = spec.io(signature)
    return [
        math.prod(max(1, int(d)) for d in t.shape) * (t.numpy_dtype.itemsize if t.numpy_dtype is not None else 1)
        for t in inputs
    ]


def _affordable(spec: ModelSpec, signature: str | None) -> bool:
    """Whether generate_feed may be called here: small inputs, or one it must refuse before big ones are made."""
    sizes = _sizes(spec, signature)
    if sum(sizes) <= IN_PROCESS_BYTES:
        return True
    made = 0
    for size in sizes:
        if size > MAX_GENERATED_BYTES:
            return made <= IN_PROCESS_BYTES
        made += size
    return False


def _made_up_feed(m: Mutant, out: Outcome, spec: ModelSpec, signature: str | None) -> Feed:
    """generate_feed, then diagnose: no exception but FixError from the first, none from the second."""
    feed = Feed({})
    if not _affordable(spec, signature):
        out.known.append("inputs too large to make up here")
    else:
        try:
            feed = generate_feed(spec, "zeros", signature)
        except FixError:
            pass
        except Exception as exc:
            bug = _known("generate_feed", exc)
            if bug is None:
                out.problems.append(_bug(m, "generate_feed", exc))
                return feed
            out.known.append(bug.test)
        else:
            if any(a.nbytes > MAX_GENERATED_BYTES for a in feed.arrays.values()):
                out.problems.append(f"{m.label()}\n  generate_feed made an input over its {MAX_GENERATED_BYTES:,}-byte limit")
                return Feed({})
    try:
        diagnose(spec, feed, signature)
    except Exception as exc:
        bug = _known("diagnose", exc)
        if bug is None:
            out.problems.append(_bug(m, "diagnose", exc))
        else:
            out.known.append(bug.test)
    return feed


def _timed(check):
    """``check``, plus a problem when the part of it that runs in this process takes too long."""

    def timed(m: Mutant, *args) -> Outcome:
        t0 = time.monotonic()
        out = check(m, *args)
        spent = time.monotonic() - t0 - out.seconds  # out.seconds: the time spent in a worker
        if spent > IN_PROCESS_SECONDS:
            out.problems.append(f"{m.label()}\n  took {spent:.1f} s in the calling process (limit {IN_PROCESS_SECONDS:g} s)")
        return out

    return timed


@_timed
def check_model(m: Mutant, pool: WorkerPool) -> Outcome:
    """Inspect, diagnose and run one model mutant; what went wrong goes into ``problems``."""
    out = Outcome(m)
    try:
        spec = inspect_model(m.data, name=m.name)
        # What a spec reads only on first use (operators, packed files, the memory estimate,
        # the hash) belongs to inspection too, wherever it happens to be asked for first.
        spec.sha256, spec.ops, spec.packed_files, spec.activation_bytes, spec.problem
    except ModelLoadError as exc:
        if not str(exc).strip():
            out.problems.append(f"{m.label()}\n  ModelLoadError without a message")
        return out
    except Exception as exc:
        bug = _known("inspect_model", exc)
        if bug is None:
            out.problems.append(_bug(m, "inspect_model", exc))
        else:
            out.known.append(bug.test)
        return out
    # Every other model with signatures runs one, so the signature-runner path is fuzzed too.
    signature = spec.signatures[0].key if spec.signatures and m.seed % 2 else None
    out.signature = signature
    feed = out.feed = _made_up_feed(m, out, spec, signature)
    if out.problems:
        return out
    t0 = time.monotonic()
    try:
        r = pool.run(m.data, spec, feed, signature)
    except Exception as exc:
        bug = _known("WorkerPool.run", exc)
        if bug is None:
            out.problems.append(_bug(m, "WorkerPool.run", exc))
        else:
            out.known.append(bug.test)
        return out
    out.seconds = time.monotonic() - t0
    out.status, out.signal, out.result = r.status, r.signal, r
    if r.status not in STATUSES:
        out.problems.append(f"{m.label()}\n  run status {r.status!r} is none of {sorted(STATUSES)}")
    if r.status != "ok" and not (r.detail or "").strip() and not (r.error_message or "").strip():
        out.problems.append(f"{m.label()}\n  a {r.status} run says nothing about why (no detail, no error_message)")
    if out.seconds > DEADLINE:
        out.problems.append(f"{m.label()}\n  the run took {out.seconds:.1f} s, over the {DEADLINE:g} s its limits allow")
    return out


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=2, limits=LIMITS)
    yield p
    p.close()


def _run_all(check, mutants, *args) -> list:
    # Two at a time: one per worker of the pool.
    with ThreadPoolExecutor(max_workers=2) as ex:
        return list(ex.map(lambda m: check(m, *args), mutants))


def _report(outcomes: list[Outcome]) -> str:
    problems = [p for o in outcomes for p in o.problems]
    return f"{len(problems)} of {len(outcomes)} mutants went wrong:\n\n" + "\n\n".join(problems)


MODEL_CHUNKS = [("model-schema", c) for c in _chunks("model-schema")] + [("model-bytes", c) for c in _chunks("model-bytes")]


@pytest.mark.parametrize("family,chunk", MODEL_CHUNKS, ids=[f"{f}-{i}" for f, c in MODEL_CHUNKS for i in _ids([c])])
def test_model_mutants_are_refused_or_run_within_limits(family, chunk, pool):
    mutants = [model_mutant(s) for s in range(*chunk)]
    outcomes = _run_all(check_model, mutants, pool)
    if SAVE:
        for o in outcomes:
            if o.status in ("crashed", "timeout") and not o.problems:
                _save_crasher(o)
    assert not any(o.problems for o in outcomes), _report(outcomes)


# -- regression fixtures ------------------------------------------------------------------------

_save_lock = threading.Lock()


def _sidecars() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(FUZZ_DIR.glob("*.json"))]


def _save_crasher(o: Outcome) -> None:
    """Keep a mutant that crashed or hung a worker, if it does so again in a fresh one."""
    m = o.mutant
    # One mutation each, so that a fixture's name says what broke the interpreter.
    if len(m.data) >= MAX_SAVED_BYTES or "+" in m.kind:
        return
    with _save_lock:
        saved = _sidecars()
        if len(saved) >= MAX_SAVED or any((s["kind"], s["signal"]) == (m.kind, o.signal) for s in saved):
            return
        digest = hashlib.sha256(m.data).hexdigest()
        if (FUZZ_DIR / f"{digest[:16]}.tflite").exists():
            return
        # Only what happens every time makes a regression fixture: three more runs, each in a new worker.
        spec = inspect_model(m.data)
        again = []
        for _ in range(3):
            w = Worker(LIMITS)
            try:
                again.append(w.run(m.data, spec, o.feed, o.signature))
            finally:
                w.close()
        if any(r.status not in ("crashed", "timeout") for r in again):
            return
        r = o.result
        FUZZ_DIR.mkdir(parents=True, exist_ok=True)
        (FUZZ_DIR / f"{digest[:16]}.tflite").write_bytes(m.data)
        sidecar = {
            "seed": m.seed,
            "family": m.family,
            "kind": m.kind,
            "mutation": m.description,
            "source": m.source,
            "sha256": digest,
            "signature": o.signature,
            "feed": "zeros" if o.feed.arrays else "none",  # generate_feed's zeros, or no data at all
            "status": r.status,
            "signal": r.signal,
            "limit": r.limit,
            "again": [[a.status, a.signal] for a in again],
            "detail": r.detail,
            "worker_stderr": (r.error_message or "")[-600:],
            "note": "made by tests/test_fuzz.py with LITE_DEBUG_FUZZ_SAVE=1; the seed reproduces it with the "
            "fuzzing.py of the commit that added it, the .tflite with any",
        }
        (FUZZ_DIR / f"{digest[:16]}.json").write_text(json.dumps(sidecar, indent=2) + "\n")


SAVED = sorted(FUZZ_DIR.glob("*.tflite"))


@pytest.mark.parametrize("path", SAVED, ids=[p.stem for p in SAVED])
def test_saved_crashers_cost_one_worker_and_end_in_time(path):
    sidecar = json.loads(path.with_suffix(".json").read_text())
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sidecar["sha256"]
    try:
        spec = inspect_model(data)
    except ModelLoadError:
        return  # refused before it reaches a worker: better still
    signature = sidecar.get("signature")
    feed = generate_feed(spec, "zeros", signature) if sidecar.get("feed", "zeros") == "zeros" else Feed({})
    # A worker of its own, as when it was saved: some of these corrupt the heap, and whether
    # that aborts at once or only in a later run depends on what the process did before.
    worker = Worker(LIMITS)
    try:
        t0 = time.monotonic()
        r = worker.run(data, spec, feed, signature)
        seconds = time.monotonic() - t0
        assert r.status in ("crashed", "timeout", "error", "skipped"), (
            f"{path.name} ({sidecar['mutation']}) now runs: if the runtime was fixed, or the crash depends on "
            "what memory happens to hold (it passes sometimes), delete the fixture and its sidecar"
        )
        assert (r.detail or r.error_message or "").strip()
        assert seconds <= DEADLINE, f"{path.name} took {seconds:.1f} s"
        if r.status in ("crashed", "timeout"):
            # Only that process was lost: the same Worker starts a new one for the next run.
            add_float = (ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes()
            ok = inspect_model(add_float)
            again = worker.run(add_float, ok, generate_feed(ok))
            assert again.ok, again.error_message
    finally:
        worker.close()


# -- data files -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _seed_specs() -> tuple[ModelSpec, ...]:
    return tuple(inspect_model(data) for _, data in fuzzing.model_seeds())


@_timed
def check_data(m: Mutant) -> Outcome:
    out = Outcome(m)
    try:
        loaded = load_data(m.name, m.data, **m.options)
    except DataLoadError as exc:
        if not str(exc).strip():
            out.problems.append(f"{m.label()}\n  DataLoadError without a message")
        return out
    except Exception as exc:
        out.problems.append(_bug(m, "load_data", exc))
        return out
    out.status = "loaded"
    arrays = list(loaded.values()) if isinstance(loaded, dict) else loaded
    if not isinstance(loaded, (dict, list)) or not all(isinstance(a, np.ndarray) for a in arrays):
        out.problems.append(f"{m.label()}\n  load_data returned {type(loaded).__name__}, not arrays")
        return out
    # What a user does next with the data: diagnose it against a model, and fix what can be fixed.
    specs = _seed_specs()
    spec = specs[m.seed % len(specs)]
    against = fuzzing.model_seeds()[m.seed % len(specs)][0]
    for stage, call in (("diagnose", diagnose), ("fix_all", fix_all)):
        try:
            call(spec, loaded)
        except FixError:
            pass
        except Exception as exc:
            bug = _known(stage, exc)
            if bug is None:
                out.problems.append(_bug(m, f"{stage} (against {against})", exc))
            else:
                out.known.append(bug.test)
            break
    return out


# Complex, NaN and out-of-range data is reported (or fixed by clipping), and numpy warns on the way.
@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("chunk", _chunks("data"), ids=_ids(_chunks("data")))
def test_data_mutants_load_or_raise_data_load_error(chunk):
    outcomes = _run_all(check_data, [data_mutant(s) for s in range(*chunk)])
    assert not any(o.problems for o in outcomes), _report(outcomes)


# -- bundles --------------------------------------------------------------------------------------


@_timed
def check_bundle(m: Mutant) -> Outcome:
    out = Outcome(m)
    try:
        is_bundle(m.data)
    except Exception as exc:
        bug = _known("is_bundle", exc)
        if bug is None:
            out.problems.append(_bug(m, "is_bundle", exc))
        else:
            out.known.append(bug.test)
    try:
        b = read_bundle(m.data, **m.options)
    except BundleError as exc:
        if not str(exc).strip():
            out.problems.append(f"{m.label()}\n  BundleError without a message")
        return out
    except Exception as exc:
        bug = _known("read_bundle", exc)
        if bug is None:
            out.problems.append(_bug(m, "read_bundle", exc))
        else:
            out.known.append(bug.test)
        return out
    out.status = "read"
    if not isinstance(b, Bundle) or not isinstance(b.model, bytes):
        out.problems.append(f"{m.label()}\n  read_bundle returned {b!r}")
    elif not all(isinstance(a, np.ndarray) for a in b.feed.arrays.values()):
        out.problems.append(f"{m.label()}\n  the bundle's feed holds something other than arrays")
    return out


@pytest.mark.parametrize("chunk", _chunks("bundle"), ids=_ids(_chunks("bundle")))
def test_bundle_mutants_read_or_raise_bundle_error(chunk):
    outcomes = _run_all(check_bundle, [bundle_mutant(s) for s in range(*chunk)])
    assert not any(o.problems for o in outcomes), _report(outcomes)


# -- the fuzzer itself ------------------------------------------------------------------------------


def test_mutants_are_deterministic_and_differ_from_their_seed():
    originals = dict(fuzzing.model_seeds())
    for make, family in ((model_mutant, "model-bytes"), (model_mutant, "model-schema"), (data_mutant, "data"),
                         (bundle_mutant, "bundle")):
        for s in seeds(family, 5, OFFSET):
            a, b = make(s), make(s)
            assert a.data == b.data and a.label() == b.label()
            if family.startswith("model"):
                assert a.data != originals[a.source], a.label()


def test_an_unmutated_round_trip_through_the_object_api_still_runs(pool):
    # Mutants are re-packed with flatbuffers.Builder: the packing alone must not break a model,
    # or every schema mutant would fail for the packing's sake rather than its mutation's.
    for name, data in fuzzing.model_seeds():
        if name in ("slow_loop.tflite", "big_tile.tflite"):
            continue
        packed = fuzzing.pack_model(fuzzing.unpack_model(data))
        spec, again = inspect_model(data), inspect_model(packed)
        assert [(t.name, t.shape, t.dtype) for t in again.inputs] == [(t.name, t.shape, t.dtype) for t in spec.inputs]
        feed = generate_feed(spec)
        r1, r2 = pool.run(data, spec, feed), pool.run(packed, again, feed)
        assert r1.status == r2.status, name
        for o1, o2 in zip(r1.outputs, r2.outputs):
            assert np.array_equal(o1.raw, o2.raw), name


# -- the command line -------------------------------------------------------------------------------


def _cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lite_debug", "check", *args, "--json", "--timeout", "5"],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )


def _clean_model(seed: int) -> bool:
    """A mutant that hits no known bug on the command line's path, so a failure there is a new one."""
    m = model_mutant(seed)
    try:
        spec = inspect_model(m.data)
        if spec.activation_bytes.bit_length() > 1000:  # see test_a_model_declaring_astronomic_tensors_is_refused
            return False
    except ModelLoadError:
        return True
    except Exception:
        return False
    if not _affordable(spec, None):
        return False
    try:
        diagnose(spec, generate_feed(spec))
    except FixError:
        pass
    except Exception:
        return False
    return True


def _clean_data(m: Mutant, spec: ModelSpec) -> bool:
    """A data mutant that reads (or is refused) and diagnoses against ``spec`` without a known bug."""
    try:
        diagnose(spec, load_data(m.name, m.data, **m.options))
    except DataLoadError:
        pass
    except Exception:
        return False
    return True


def _cli_cases(tmp_path: Path) -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = []

    def write(m: Mutant) -> str:
        path = tmp_path / m.name
        path.write_bytes(m.data)
        return str(path)

    inspected = refused = 0
    for s in seeds("model-schema", 200, OFFSET):
        if inspected == 3:
            break
        try:
            inspect_model(model_mutant(s).data)
        except ModelLoadError:
            continue
        if _clean_model(s):
            cases.append((model_mutant(s).label(), [write(model_mutant(s))]))
            inspected += 1
    for s in seeds("model-bytes", 200, OFFSET):
        if refused == 1:
            break
        try:
            inspect_model(model_mutant(s).data)
        except ModelLoadError:
            cases.append((model_mutant(s).label(), [write(model_mutant(s))]))
            refused += 1
    add_float = str(ROOT / "tests" / "fixtures" / "add_float.tflite")
    add_float_spec = inspect_model(Path(add_float).read_bytes())
    wanted = {"npy", "csv", "json"}
    for s in seeds("data", 400, OFFSET):
        m = data_mutant(s)
        fmt = m.kind.split(".")[0]
        if fmt in wanted and not m.options and _clean_data(m, add_float_spec):
            wanted.discard(fmt)
            cases.append((m.label(), [add_float, write(m)]))
    for s in seeds("bundle", 100, OFFSET):
        m = bundle_mutant(s)
        try:
            read_bundle(m.data)
        except BundleError:
            cases.append((m.label(), [write(m)]))
            break
    return cases


def test_a_handful_of_mutants_through_the_command_line(tmp_path):
    cases = _cli_cases(tmp_path)
    assert len(cases) >= 6
    with ThreadPoolExecutor(max_workers=3) as ex:
        done = list(ex.map(lambda c: _cli(*c[1]), cases))
    problems = []
    for (label, args), d in zip(cases, done):
        if d.returncode not in (0, 1, 2) or "Traceback" in d.stdout + d.stderr:
            problems.append(f"{label}\n  exit {d.returncode}\n{d.stderr[-2000:]}")
        elif d.returncode in (0, 1):
            report = json.loads(d.stdout)
            assert report["run"]["status"] in STATUSES, label
        else:
            # An unusable file with --json: one {"error": …} object on stdout, with its sentence.
            error = json.loads(d.stdout)["error"]
            assert error["message"].endswith("."), label
    assert not problems, "\n\n".join(problems)


# -- bugs found by fuzzing: each fails today, and passes once lite-debug is fixed ---------------------


def _bundle_with(**manifest_changes) -> bytes:
    good = write_bundle((ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes(),
                        Feed({"x": np.zeros((1, 4), np.float32)}))
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            if name == "manifest.json" and manifest_changes:
                manifest = {**json.loads(data), **manifest_changes.get("fields", {})}
                data = manifest_changes.get("raw", json.dumps(manifest).encode())
            elif name in manifest_changes.get("members", {}):
                data = manifest_changes["members"][name]
            zf.writestr(name, data)
    return buf.getvalue()


def test_read_bundle_refuses_an_encrypted_member():
    data = bytearray(_bundle_with())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig)
        while i >= 0:
            data[i + flag_at] |= 1  # "encrypted", as a password-protected zip says
            i = data.find(sig, i + 4)
    with pytest.raises(BundleError):
        read_bundle(bytes(data))


def test_read_bundle_refuses_a_corrupt_deflate_stream():
    data = bytearray(_bundle_with())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("manifest.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start : start + info.compress_size] = b"\xff" * info.compress_size  # an invalid block type
    with pytest.raises(BundleError):
        read_bundle(bytes(data))


def test_read_bundle_refuses_deeply_nested_json():
    with pytest.raises(BundleError):
        read_bundle(_bundle_with(members={"diagnosis.json": b"[" * 100_000 + b"]" * 100_000}))


def test_read_bundle_refuses_fixes_applied_that_are_not_a_list():
    with pytest.raises(BundleError):
        read_bundle(_bundle_with(fields={"fixes_applied": 5}))


def test_read_bundle_refuses_an_infinite_resize():
    with pytest.raises(BundleError):
        read_bundle(_bundle_with(raw=json.dumps({**_manifest(), "resize": {"x": "@"}}).replace('"@"', "[1e400]").encode()))


def _manifest() -> dict:
    with zipfile.ZipFile(io.BytesIO(_bundle_with())) as zf:
        return json.loads(zf.read("manifest.json"))


def test_the_command_line_refuses_a_malformed_bundle_without_a_traceback(tmp_path):
    path = tmp_path / "bad.zip"
    path.write_bytes(_bundle_with(fields={"fixes_applied": 5}))
    done = _cli(str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


def _add_float_with_input(**changes) -> ModelSpec:
    spec = inspect_model((ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes())
    return replace(spec, inputs=(replace(spec.inputs[0], **changes),))


def test_generate_feed_refuses_a_zero_point_outside_the_dtype():
    # A quantized int8 input whose zero point is 256 (a corrupt or hostile model; inspect_model accepts it).
    from lite_debug.records import Quantization

    spec = _add_float_with_input(dtype="int8", quantization=Quantization(scale=(0.5,), zero_point=(256,)))
    with pytest.raises(FixError):
        generate_feed(spec)


@pytest.mark.parametrize("shape", [(2**30, 2**30), (2**31 - 1,) * 3], ids=["exbibytes", "past-numpy-limit"])
def test_generate_feed_refuses_an_input_too_large_to_make(shape):
    spec = _add_float_with_input(shape=shape, shape_signature=shape)
    with pytest.raises(FixError):
        generate_feed(spec)


def test_the_command_line_refuses_a_model_with_a_huge_input_without_a_traceback(tmp_path):
    model = fuzzing.unpack_model((ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes())
    g = model.subgraphs[0]
    g.tensors[g.inputs[0]].shape = [2**31 - 1] * 3
    path = tmp_path / "huge.tflite"
    path.write_bytes(fuzzing.pack_model(model))
    done = _cli(str(path))
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("dtype", ["string", "resource", "bfloat16"])
def test_diagnose_a_missing_input_of_a_type_numpy_lacks(dtype):
    # The "missing" mismatch suggests np.zeros(..., dtype=np.<dtype>) as its fix, and builds that
    # code with np.dtype(dtype), which fails for types numpy does not have.
    spec = _add_float_with_input(dtype=dtype)
    found = diagnose(spec, {})
    assert [m.kind for m in found] == ["missing"]


def test_a_model_declaring_astronomic_tensors_is_refused():
    # A 700-byte model whose output declares 40 dimensions of 2**31 - 1: the memory estimate is a
    # 373-digit integer, and turning it into GiB for the message overflows a float.
    model = fuzzing.unpack_model((ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes())
    g = model.subgraphs[0]
    g.tensors[g.outputs[0]].shape = [2**31 - 1] * 40
    data = fuzzing.pack_model(model)
    spec = inspect_model(data)
    pool = WorkerPool(size=1, limits=Limits(memory_bytes=1 << 30))
    try:
        r = pool.run(data, spec, generate_feed(spec))
    finally:
        pool.close()
    assert r.status == "skipped" and r.limit == "memory"


@pytest.mark.parametrize("dtype", ["U2", "S3", "m8[D]", "M8[s]"])
def test_diagnose_reports_arrays_that_are_not_numbers(dtype):
    # load_data reads such .npy files (and bundles hold .npy inputs); the range check then calls
    # float() or np.minimum on them.
    spec = inspect_model((ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes())
    found = diagnose(spec, [np.zeros((1, 4), dtype)])
    assert "dtype" in [m.kind for m in found]


def _zip_of_version_148() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("labels.txt", "cat\ndog\n")
    data = bytearray(buf.getvalue())
    i = data.find(b"PK\x01\x02")
    data[i + 6] = 148  # "version needed to extract": 14.8, one flipped bit from 2.0 (20) and more
    return bytes(data)


@pytest.mark.parametrize("where", ["inspect_model", "is_bundle", "read_bundle"])
def test_a_packed_zip_of_an_unknown_version(where):
    # Models carry their labels as a zip appended to the flatbuffer, and every upload is first
    # asked whether it is a bundle: a damaged version field in such a zip escapes all three.
    if where == "inspect_model":
        model = (ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes() + _zip_of_version_148()
        try:
            assert inspect_model(model).packed_files == ()
        except ModelLoadError:
            pass
    elif where == "is_bundle":
        assert is_bundle(_zip_of_version_148()) is False
    else:
        with pytest.raises(BundleError):
            read_bundle(_zip_of_version_148())


# -- the hardening's file kinds, through the front door ---------------------------------------------
# Each reader has its own campaign (test_archive, test_zipdir, test_graph, test_inspection,
# test_wire, test_running); here each kind goes through `lite-debug check`, as a user's file
# would, and must end in a sentence or a result within its limit.


def test_the_hardening_file_kinds_end_in_a_sentence_on_the_command_line(tmp_path):
    import crafted
    from zipbombs import central_directory_bomb

    base = (ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes()
    aliased = crafted.alias_vector(
        base, crafted.field_position(base, [("vector", 8, 0), ("field", 4, 0)]), 200_000, crafted.tensor_table("x", (1, 4))
    )
    m = fuzzing.unpack_model(base)
    m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].name = b"in\x1b]0;owned\x07 ![p](http://127.0.0.1:9/x.png) `x"
    cases = {
        "central-directory-bomb.zip": (central_directory_bomb(16, declared=4_000_000, zip64=True), 2, "4,000,000"),
        "aliased-vector.tflite": (aliased, 2, "one and the same table"),
        "hostile-names.tflite": (fuzzing.pack_model(m), 0, None),
    }
    for name, (data, code, says) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        t0 = time.monotonic()
        done = _cli(str(path))
        assert "Traceback" not in done.stdout + done.stderr, name
        assert done.returncode == code, (name, done.stdout[-500:])
        report = json.loads(done.stdout)
        if says:
            assert says in report["error"]["message"], (name, report)
        else:
            # The name travels as data: escaped in JSON, never as a control sequence.
            assert "\x1b" not in done.stdout and report["model"]["inputs"][0]["name"].startswith("in\x1b]0;")
        assert time.monotonic() - t0 < 60, name


def test_an_output_larger_than_declared_is_capped_on_the_command_line(tmp_path, converted_models):
    data = converted_models["tile_int8"]
    spec = inspect_model(data)
    x, multiples = spec.inputs if spec.inputs[0].dtype == "int8" else spec.inputs[::-1]
    model, xs, ms = tmp_path / "lies.tflite", tmp_path / "x.npy", tmp_path / "m.npy"
    model.write_bytes(data)
    np.save(xs, np.ones((1, 4), np.int8))
    np.save(ms, np.array([1 << 18, 1], np.int32))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITE_DEBUG_OUTPUT_MB": "4"}
    done = subprocess.run(
        [sys.executable, "-m", "lite_debug", "check", str(model), "--input", f"{x.name}={xs}",
         "--input", f"{multiples.name}={ms}", "--json"],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )
    run = json.loads(done.stdout)["run"]
    assert done.returncode == 1 and run["status"] == "skipped" and run["limit"] == "output"
    assert "LITE_DEBUG_OUTPUT_MB" in run["detail"]


@pytest.fixture(scope="module")
def converted_models(tmp_path_factory):
    from converted import build

    return build(tmp_path_factory.getbasetemp() / "converted-fuzz")
