"""The command line end to end, in a subprocess, as a user or a CI job runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lite_debug.gallery import EXAMPLES_DIR, examples

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def cli(*args, stdin=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "lite_debug", *map(str, args)],
        capture_output=True, text=True, input=stdin, timeout=timeout, env=env, cwd=ROOT,
    )
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    return done


def files(ex, which="inputs"):
    names = ex.input_files if which == "inputs" else ex.good_files
    return [EXAMPLES_DIR / f for f in names]


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e.id)
def test_check_reports_the_expected_mismatch_then_fix_runs(ex):
    sig = ["--signature", ex.signature] if ex.signature else []
    done = cli("check", EXAMPLES_DIR / ex.model_file, *files(ex), *sig, "--json")
    report = json.loads(done.stdout)
    kinds = {m["kind"] for m in report["mismatches"]}
    assert set(ex.expected_kinds) <= kinds
    assert done.returncode == 1
    done = cli("check", EXAMPLES_DIR / ex.model_file, *files(ex), *sig, "--fix", "--json")
    report = json.loads(done.stdout)
    run = report["run"]
    if ex.id in ("select-tf-op", "custom-op"):
        assert done.returncode == 1 and run["status"] == "error"
        op = report["model"]["flex_ops"] or report["model"]["custom_ops"]
        assert op and op[0] in run["error"]["message"]
        assert run["error"]["explanation"]["facts"]["op"] == op[0]
    elif ex.id == "reshape-breaks-on-resize":
        assert done.returncode == 1 and run["error"]["explanation"]["facts"]["op"] == "RESHAPE"
    else:
        assert done.returncode == 0, run
        assert run["status"] == "ok" and report["fixes_applied"]
        assert all(o["values"] is not None and o["shape"] for o in run["outputs"])


def test_text_output_names_the_op_that_cannot_run_here():
    done = cli("check", EXAMPLES_DIR / "matrix_inverse_flex.tflite", "--fix")
    assert done.returncode == 1
    assert "FlexMatrixInverse is a Select TensorFlow op" in done.stdout
    assert "Run: failed" in done.stdout and "Cause:" in done.stdout


def test_json_shape():
    ex = examples()[0]
    report = json.loads(cli("check", EXAMPLES_DIR / ex.model_file, *files(ex, "good"), "--json").stdout)
    assert set(report) >= {"model", "mismatches", "fixes_applied", "run"}
    assert set(report["model"]) >= {"inputs", "outputs", "ops", "custom_ops", "flex_ops", "signatures"}
    assert report["mismatches"] == [] and report["run"]["status"] == "ok"
    (out,) = report["run"]["outputs"]
    assert set(out) >= {"name", "shape", "dtype", "values"} and np.array(out["values"]).shape == tuple(out["shape"])


def test_no_data_runs_on_generated_zeros():
    done = cli("check", FIXTURES / "add_float.tflite", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["generated"] == "zeros"
    assert report["run"]["outputs"][0]["values"] == [[1.0, 1.0, 1.0, 1.0]]


def test_a_microsecond_invoke_is_not_printed_as_zero(monkeypatch, capsys):
    # Small models invoke in a few µs: two decimals of a millisecond printed "0.00 ms".
    import dataclasses

    from lite_debug import cli as cli_module
    from lite_debug.running import Worker

    real_run = Worker.run
    monkeypatch.setattr(Worker, "run", lambda *a, **k: dataclasses.replace(real_run(*a, **k), invoke_ms=0.00412))
    assert cli_module.main(["check", str(FIXTURES / "add_float.tflite")]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Run: ok")]
    assert "invoke 0.00412 ms" in line


def test_named_input_and_positional_mix(tmp_path):
    ex = next(e for e in examples() if e.id == "two-inputs-swapped")
    np.save(tmp_path / "t.npy", np.ones((1, 20), np.int32))
    np.save(tmp_path / "f.npy", np.ones((1, 10), np.float32))
    done = cli("check", EXAMPLES_DIR / ex.model_file, "--input", f"tokens={tmp_path / 't.npy'}", tmp_path / "f.npy", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["mismatches"] == []


def test_timeout_flag():
    # slow_loop's first input is its iteration count; a JSON file gives it 10**9.
    done = cli("check", FIXTURES / "slow_loop.tflite", "--timeout", "1", "--json", "--input", "iterations=-", timeout=60)
    assert done.returncode == 2  # "-" is not a file


def test_timeout_is_reported(tmp_path):
    (tmp_path / "n.json").write_text("1000000000")
    (tmp_path / "x.json").write_text("[0.0]")
    done = cli("check", FIXTURES / "slow_loop.tflite", tmp_path / "n.json", tmp_path / "x.json", "--timeout", "1.5", "--json", timeout=60)
    report = json.loads(done.stdout)
    assert report["run"]["status"] == "timeout", report["mismatches"]
    assert done.returncode == 1


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "empty"),
        (b"<html><body>404</body></html>", "HTML page"),
        (bytes(range(256)) * 8, "not a TFLite flatbuffer"),
        (None, "does not exist"),
    ],
)
def test_unusable_model_files_exit_2_with_a_sentence(tmp_path, content, words):
    path = tmp_path / "model.tflite"
    if content is not None:
        path.write_bytes(content)
    done = cli("check", path)
    assert done.returncode == 2 and words in done.stderr and done.stdout == ""


def test_truncated_model_exits_2(tmp_path):
    data = (EXAMPLES_DIR / "image_classifier.tflite").read_bytes()
    for cut in (9, 100, 2000, len(data) // 2):
        (tmp_path / "m.tflite").write_bytes(data[:cut])
        done = cli("check", tmp_path / "m.tflite")
        assert done.returncode in (1, 2), done.stdout
        if done.returncode == 2:
            assert done.stderr.startswith("lite-debug: ")


@pytest.mark.parametrize("name, content", [("x.npy", b"\x93NUMPY garbage"), ("x.png", b"\x89PNG\r\n\x1a\nbroken"), ("x.csv", b"1,2\n3\n"), ("x.json", b"{not json")])
def test_unusable_data_files_exit_2(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    done = cli("check", FIXTURES / "add_float.tflite", tmp_path / name)
    assert done.returncode == 2 and name in done.stderr


def test_bad_arguments_exit_2():
    assert cli("check").returncode == 2
    assert cli("check", FIXTURES / "add_float.tflite", "--signature", "nope").returncode == 2
    assert cli("check", FIXTURES / "add_float.tflite", "--input", "oops").returncode == 2
    assert cli("frobnicate").returncode == 2


def test_explain_argument_and_stdin():
    msg = "ValueError: Cannot set tensor: Dimension mismatch. Got 256 but expected 224 for dimension 1 of input 0."
    done = cli("explain", msg, "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["recognised"] and report["facts"]["dimension"] == 1
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 3, in <module>\n    interpreter.invoke()\n' + "RuntimeError: Invoke called on model that is not ready."
    done = cli("explain", "-", stdin=traceback)
    assert done.returncode == 0 and "allocate_tensors" in done.stdout


def test_explain_unknown_text_exits_1_and_says_what_it_needs():
    done = cli("explain", "my model is sad")
    assert done.returncode == 1 and "Fix:" in done.stdout


def test_bundle_in_place_of_a_model(tmp_path):
    from lite_debug.bundle import write_bundle
    from lite_debug.records import Feed

    data = (FIXTURES / "add_float.tflite").read_bytes()
    (tmp_path / "b.zip").write_bytes(write_bundle(data, Feed({"x": np.full((1, 4), 2.0, np.float32)})))
    report = json.loads(cli("check", tmp_path / "b.zip", "--json").stdout)
    assert report["run"]["outputs"][0]["values"] == [[3.0, 3.0, 3.0, 3.0]]
