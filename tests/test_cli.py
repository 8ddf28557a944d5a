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
from lite_debug.records import Feed

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
    elif "batch" in report:  # a recording cut into windows runs as a batch, one window per run
        assert done.returncode == 0 and report["batch"]["status"] == "ok" and report["fixes_applied"]
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


# -- the contract: exit codes, --json errors, limits, names -------------------------------------


def test_no_arguments_says_the_model_is_needed_and_data_optional():
    done = cli("check")
    assert done.returncode == 2
    assert "needs a model" in done.stderr and "data is optional" in done.stderr
    assert "required: model, data" not in done.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["check", "--json"], "needs a model"),
        (["check", "nosuch.tflite", "--json"], "does not exist"),
        (["check", FIXTURES / "add_float.tflite", "--input", "nosuch=x.npy", "--json"], "none of the model's inputs"),
        (["check", FIXTURES / "add_float.tflite", "--bogus", "--json"], "Unrecognized arguments"),
        (["check", FIXTURES / "add_float.tflite", "--timeout", "-1", "--json"], "--timeout"),
    ],
    ids=["no-model", "missing-file", "unknown-input", "unknown-option", "negative-timeout"],
)
def test_json_errors_are_one_object_on_stdout(args, says):
    done = cli(*args)
    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert set(report) == {"error"} and says in report["error"]["message"]


def test_an_input_name_the_model_lacks_is_refused_with_the_names(tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((1, 4), np.float32))
    done = cli("check", FIXTURES / "add_float.tflite", "--input", f"nosuch={data}")
    assert done.returncode == 2 and "nosuch" in done.stderr
    from lite_debug.inspection import inspect_model

    (name,) = [t.name for t in inspect_model((FIXTURES / "add_float.tflite").read_bytes()).inputs]
    assert repr(name) in done.stderr


def test_timeout_zero_means_no_limit():
    done = cli("check", FIXTURES / "add_float.tflite", "--timeout", "0", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["run"]["status"] == "ok"


def test_the_environment_sets_the_limits_when_no_option_does(tmp_path):
    iterations, x = tmp_path / "n.npy", tmp_path / "x.npy"
    np.save(iterations, np.array(10**9, np.int32))
    np.save(x, np.zeros(1, np.float32))
    env_cli = lambda *a, **env: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "lite_debug", *map(str, a)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT,
    )
    done = env_cli("check", FIXTURES / "slow_loop.tflite", iterations, x, "--json", LITE_DEBUG_RUN_SECONDS="1")
    run = json.loads(done.stdout)["run"]
    assert done.returncode == 1 and run["status"] == "timeout" and run["limit"] == "time"
    done = env_cli("check", FIXTURES / "big_tile.tflite", "--json", LITE_DEBUG_MEMORY_GB="0.25")
    run = json.loads(done.stdout)["run"]
    assert run["status"] == "skipped" and run["limit"] == "memory"


def test_batch_errors_quote_the_shape_as_given(tmp_path):
    data = tmp_path / "stack.npy"
    np.save(data, np.zeros((5, 3), np.float32))
    done = cli("check", FIXTURES / "add_float.tflite", data, "--batch")
    assert done.returncode == 2 and "[5, 3]" in done.stderr


def test_a_bundle_is_named_by_its_model(tmp_path):
    from lite_debug.bundle import write_bundle

    ex = next(e for e in examples() if e.id == "image-size")
    path = tmp_path / "report.zip"
    path.write_bytes(write_bundle(ex.model_bytes, Feed({}), model_name="my_classifier.tflite"))
    done = cli("check", path)
    assert "Model 'my_classifier.tflite' (from 'report.zip')" in done.stdout


def test_top_class_only_for_a_classifier():
    ae = cli("check", EXAMPLES_DIR / "autoencoder_two_signatures.tflite", "--generate", "random")
    assert "StatefulPartitionedCall:0: float32 [1, 16]" in ae.stdout and "top class" not in ae.stdout
    ex = next(e for e in examples() if e.id == "image-size")
    clf = cli("check", EXAMPLES_DIR / ex.model_file, *files(ex, "good"))
    assert "top class" in clf.stdout


def test_says_when_another_signature_fits(tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((1, 16), np.float32))
    done = cli("check", EXAMPLES_DIR / "autoencoder_two_signatures.tflite", data, "--signature", "decode")
    assert done.returncode == 1
    assert "The data fits the signature 'encode' (--signature encode) as it is." in done.stdout


def test_model_strings_reach_the_terminal_escaped(tmp_path):
    from fuzzing import pack_model, unpack_model

    m = unpack_model((FIXTURES / "add_float.tflite").read_bytes())
    t = m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]]
    t.name = b"x\x1b]0;pwned\x07\x1b[2J\x1b[32mALL CHECKS PASSED\x1b[0m"
    path = tmp_path / "hostile.tflite"
    path.write_bytes(pack_model(m))
    done = cli("check", path)
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "\\x1b[32mALL CHECKS PASSED" in done.stdout


def test_sweep_scores_each_candidate_on_a_real_photo():
    real = Path(__file__).parent / "real_models"
    if not (real / "grace_hopper.jpg").exists():
        pytest.skip("the real files are not fetched")
    done = cli("check", real / "face_detection_short_range.tflite", real / "grace_hopper.jpg", "--sweep", "--json")
    report = json.loads(done.stdout)
    sweep = report["sweep"]
    assert len(sweep) == 6 and sum(c["best"] for c in sweep) == 1
    assert {c["picks"]["value range:input"] for c in sweep} == {"[0, 1]", "[-1, 1]", "[0, 255]"}
    assert all(c["score_basis"] == "highest detection score" for c in sweep)
    best = next(c for c in sweep if c["best"])
    # Pixels fed as 0-255 to a float detector find no face; a real range does.
    assert best["picks"]["value range:input"] != "[0, 255]" and best["score"] > 0.8
    assert max(c["score"] for c in sweep if c["picks"]["value range:input"] == "[0, 255]") < 0.1
    assert all(f["kind"] for c in sweep for f in c["fixes"])


# -- bug-report archives -------------------------------------------------------------------------


def _zip_file(path, members: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_an_archive_reports_its_error_and_what_was_reproduced(tmp_path):
    ex = next(e for e in examples() if e.id == "image-size")
    good = files(ex, "good")[0]
    report = _zip_file(tmp_path / "issue.zip", {
        "issue/model.tflite": ex.model_bytes,
        "issue/input.npy": good.read_bytes(),
        "issue/log.txt": ("ValueError: " + ex.observed_error).encode(),
    })
    done = cli("check", report, "--json")
    out = json.loads(done.stdout)
    assert out["model"]["file"] == "model.tflite" and out["model"]["container"] == "issue.zip"
    assert out["reported"]["path"] == "issue/log.txt" and out["reported"]["explanation"]["kind"] == "dimension_mismatch"
    assert out["reported"]["text"].endswith(ex.observed_error)
    # The archive's own good input runs: the reported error is not what happens with it.
    assert out["run"]["status"] == "ok" and out["reported"]["reproduced"] == "no error"
    text = cli("check", report).stdout
    assert "Reported in issue/log.txt" in text and "Reproduced here: no error." in text


def test_an_archive_with_two_models_needs_member(tmp_path):
    ex = {e.id: e for e in examples()}
    two = _zip_file(tmp_path / "two.zip", {"a/one.tflite": ex["image-size"].model_bytes, "b/two.tflite": ex["uint8-float-data"].model_bytes})
    done = cli("check", two, "--json")
    assert done.returncode == 2 and "--member" in json.loads(done.stdout)["error"]["message"]
    done = cli("check", two, "--member", "b/two.tflite", "--json")
    assert json.loads(done.stdout)["model"]["file"] == "two.tflite"


def test_an_unsafe_archive_is_refused_naming_the_path(tmp_path):
    bad = _zip_file(tmp_path / "bad.zip", {"../evil.tflite": b"x"})
    done = cli("check", bad)
    assert done.returncode == 2 and "../evil.tflite" in done.stderr


def test_bundle_and_script_from_the_command_line(tmp_path):
    ex = next(e for e in examples() if e.id == "image-size")
    bundle, script = tmp_path / "b.zip", tmp_path / "out" / "reproduce.py"
    script.parent.mkdir()
    done = cli("check", EXAMPLES_DIR / ex.model_file, *files(ex), "--fix", "--bundle", bundle, "--script", script)
    assert done.returncode == 0 and bundle.exists() and script.exists()
    again = json.loads(cli("check", bundle, "--json").stdout)
    assert [f["kind"] for f in again["fixes_applied"]] == ["add_batch", "resize_image", "normalize"]
    assert again["run"]["status"] == "ok"
    recorded = again["recorded"]
    assert recorded["status"] == "ok" and len(recorded["errors_before_fixes"]) == 3
    assert all(o["max_abs"] == 0 for o in recorded["outputs"].values())
    # The data in the bundle is the data as given: the PNG's pixels, not the fixed tensor.
    assert again["mismatches"] and {m["kind"] for m in again["mismatches"]} >= {"batch", "shape", "dtype"}
    (ROOT / "tests").exists()
    import shutil

    shutil.copy(EXAMPLES_DIR / ex.model_file, script.parent / ex.model_file)
    run = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "o.npz")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert np.load(tmp_path / "o.npz")["StatefulPartitionedCall:0"].shape == (1, 10)


def test_an_op_the_runtime_lacks_is_a_mismatch_before_any_run():
    done = cli("check", EXAMPLES_DIR / "matrix_inverse_flex.tflite", "--json")
    report = json.loads(done.stdout)
    first = report["mismatches"][0]
    assert done.returncode == 1 and first["kind"] == "unsupported_op" and first["severity"] == "error"
    assert "FlexMatrixInverse" in first["message"]
    text = cli("check", EXAMPLES_DIR / "matrix_inverse_flex.tflite").stdout
    assert "[error] unsupported_op: The model does not load in this runtime" in text
