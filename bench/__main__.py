"""``python -m bench``: measure every figure against its baseline and print the table.

    python -m bench                       # all figures, 5 repetitions each (about 1½ minutes)
    python -m bench --quick               # 3 repetitions, fewer calls (under a minute)
    python -m bench --only inspect,batch  # some figures
    python -m bench --json                # also save bench/results/<date>.json (or --json PATH)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .figures import FIGURES  # noqa: E402
from .models import ensure_models  # noqa: E402
from .report import Row, machine, markdown, save_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {
    "per-run-1ms": "≤ 1.25×",
    "per-run-512": "≤ 1.10×",
    "inspect": "≤ 1.20×, no copy",
    "details": "≤ 1 s and ≤ 0.50×",
    "dashboard": "≤ 1.50× and < 150 ms",
    "batch": "≥ 0.90× throughput",
    "memory": "≤ 2.50× model size",
    "cold-start": "≤ 1.30×",
    "text-parse": "≤ 2.0×, peak < 5× the file",
    "first-plot": "≤ 1.50× first (metrics ≤ 1.20×), ≤ 1.30× repeated; busy ≤ 2.00× / ≤ 1.50×",
    "trace": "≤ 3.00×",
    "trace-memory": "within the worker's memory limit",
    "compare": "≤ 3.00×",
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 5, and fewer calls in each")
    parser.add_argument("--only", default="", help=f"comma-separated figures to run, of: {', '.join(FIGURES)}")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 5, or 3 with --quick)")
    parser.add_argument(
        "--json", nargs="?", const="", default=None, metavar="PATH",
        help="save the results as JSON (default path: bench/results/<date>.json)",
    )
    parser.add_argument("--details", action="store_true", help="print each figure's raw numbers as well")
    ns = parser.parse_args(argv)
    ns.names = [n.strip() for n in ns.only.split(",") if n.strip()] or list(FIGURES)
    unknown = [n for n in ns.names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    ns.reps = ns.reps or (3 if ns.quick else 5)
    return ns


def _compile_bytecode(root: Path) -> str:
    """Write the project's bytecode, as installing a package does (and as a first import does
    where PYTHONDONTWRITEBYTECODE is unset): without it each worker compiles every module it
    imports, from source, each time it starts or first uses one (a lazy import in a worker's
    first trace took 4 ms). Returns what was done, for the report."""
    import compileall

    ok = all(compileall.compile_dir(root / d, quiet=1) for d in ("lite_debug", "pages"))
    done = "compiled before measuring" if ok else "compiling failed: modules compile at import"
    return done + (" (PYTHONDONTWRITEBYTECODE is set here)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "")


def main(argv: list[str] | None = None) -> int:
    ns = _parse(sys.argv[1:] if argv is None else argv)
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))  # the lite_debug beside bench/
    ensure_models(log=lambda m: print(m, file=sys.stderr))
    bytecode = _compile_bytecode(root)
    load_start = [round(x, 2) for x in os.getloadavg()]
    rows: list[Row] = []
    started = time.perf_counter()
    for name in ns.names:
        t0 = time.perf_counter()
        print(f"[{name}] measuring…", file=sys.stderr, flush=True)
        try:
            got = FIGURES[name](ns.reps, ns.quick)
        except Exception as exc:  # one broken figure must not cost the others' numbers
            traceback.print_exc()
            got = [Row(name, None, None, "", None, TARGETS[name], None, note=f"failed: {type(exc).__name__}: {exc}")]
        for r in got:
            ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
            print(f"[{name}] {r.figure}: ratio {ratio} → {r.verdict}", file=sys.stderr)
        print(f"[{name}] {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        rows.extend(got)
    info = machine(ns.reps)
    info["wall_seconds"] = round(time.perf_counter() - started, 1)
    info["quick"] = ns.quick
    info["load_average_start"] = load_start
    info["bytecode"] = bytecode
    print()
    print(markdown(rows, info))
    if ns.details:
        import json

        for r in rows:
            print(f"\n{r.figure}:\n{json.dumps(r.details, indent=1, default=str)}")
    if ns.json is not None:
        path = Path(ns.json) if ns.json else RESULTS / f"{_dt.date.today().isoformat()}.json"
        print(f"\nsaved {save_json(path, rows, info)}", file=sys.stderr)
    # Missing a target is a result, not an error: only a figure that could not be measured fails the command.
    return 1 if any(r.note.startswith("failed:") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
