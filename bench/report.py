"""What a benchmark run reports: one ``Row`` per figure, the machine it ran on, the table."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["Row", "machine", "markdown", "save_json"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the table: our figure, its baseline from the same run, and the verdict.

    ``ratio`` is oriented as the target reads (time ratios: ours / baseline; throughput:
    baseline time / our time; memory: peak / model size). ``passed`` is ``None`` when the figure
    could not be measured, and ``note`` then says why.
    """

    figure: str
    ours: float | None
    baseline: float | None
    unit: str
    ratio: float | None
    target: str
    passed: bool | None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else "pass" if self.passed else "**FAIL**"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "MB":
        return f"{value:,.1f} MB"
    if unit == "samples/s":
        return f"{value:,.0f} samples/s"
    if unit == "ms":
        return f"{value:,.3f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    return f"{value:g} {unit}"


def markdown(rows: list[Row], info: dict[str, Any]) -> str:
    """The table as Markdown, ready to paste into the README, with the machine under it."""
    lines = [
        "| figure | ours | baseline | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        lines.append(
            f"| {r.figure} | {_fmt(r.ours, r.unit)} | {_fmt(r.baseline, r.unit)} | {ratio} | {r.target} | {r.verdict} |"
        )
    notes = [f"- {r.figure}: {r.note}" for r in rows if r.note]
    versions = ", ".join(f"{k} {val}" for k, val in info["versions"].items())
    load = ", ".join(str(x) for x in info.get("load_average_start", info["load_average"]))
    lines += [
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']:.1f} GiB RAM, {info['os']}. "
        f"Date: {info['date']}. Repetitions: {info['repetitions']} (median). Commit: {info['commit']}. "
        f"Load average (1, 5, 15 min) at the start: {load}.",
        f"Versions: {versions}." + (f" Bytecode: {info['bytecode']}." if info.get("bytecode") else ""),
    ]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return float("nan")


def _commit() -> str:
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return (head + ("+changes" if dirty else "")) or "unknown"
    except OSError:
        return "unknown"


def machine(repetitions: int) -> dict[str, Any]:
    """Where and when this run happened, and with which versions."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 0
    return {
        "cpu": _cpu(),
        "cores": cores,
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "repetitions": repetitions,
        "commit": _commit(),
        # Others' work on a shared machine shows here: the medians are only as quiet as the machine.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": {
            "python": platform.python_version(),
            "numpy": _version("numpy"),
            "ai-edge-litert": _version("ai-edge-litert"),
            "streamlit": _version("streamlit"),
            "playwright": _version("playwright"),
        },
    }


def save_json(path: Path, rows: list[Row], info: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "figures": [asdict(r) | {"verdict": r.verdict} for r in rows]}
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path
