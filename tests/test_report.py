"""Records laid out as rows, dicts and text: what the command line prints and the dashboard shows."""

from __future__ import annotations

import numpy as np

from lite_debug.diagnosis import diagnose
from lite_debug.records import Explanation, OutputTensor, RunResult
from lite_debug.report import (
    comparison_rows,
    data_rows,
    format_table,
    output_to_dict,
    preview_image,
    printable,
    run_to_dict,
    tensor_rows,
)
from specs import model, tensor


def test_printable_escapes_what_a_terminal_would_act_on():
    hostile = "x\x1b]0;pwned\x07\x1b[2J\x1b[32mALL CHECKS PASSED\x1b[0m\r\u202etxt.exe\u2028"
    out = printable(hostile)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in out)
    assert "\u202e" not in out and "\u2028" not in out
    assert out.startswith("x\\x1b]0;pwned\\x07") and "\\u202e" in out
    assert printable("é 中 ok") == "é 中 ok"
    assert printable("a\nb", keep_newlines=True) == "a\nb" and printable("a\nb") == "a\\nb"


def test_tables_escape_their_cells():
    table = format_table([{"name": "in\x1b[2Jput", "shape": [1, 2]}])
    assert "\x1b" not in table and "in\\x1b[2Jput" in table
    assert format_table([]) == "  (none)"


def test_tensor_and_data_rows():
    q = tensor("q", (1, 8), dtype="int8", scale=0.5, zero_point=-3)
    (row,) = tensor_rows([q])
    assert row["name"] == "q" and row["scale"] == "0.5" and row["zero_point"] == "-3"
    (d,) = data_rows({"q": np.array([np.nan, 1.0, 3.0])})
    assert d["min"] == 1.0 and d["max"] == 3.0 and d["shape"] == [3]


def test_comparison_rows_mark_the_rows_a_mismatch_concerns():
    t = tensor("image", (1, 16, 16, 3))  # 4×4×3 would read as either layout
    spec = model(t)
    x = np.zeros((16, 16, 3), np.uint8)
    rows = {r[""]: r for r in comparison_rows(t, x, diagnose(spec, [x]))}
    assert rows["shape"]["severity"] == "error" and rows["dtype"]["severity"] == "error"
    assert rows["layout"]["model expects"].startswith("NHWC")


def test_run_to_dict_for_each_status():
    out = OutputTensor("y", 3, np.array([[1, 2]], np.int8), np.array([[0.5, 1.0]], np.float32))
    ok = run_to_dict(RunResult(status="ok", outputs=(out,), invoke_ms=1.0))
    assert ok["status"] == "ok" and ok["outputs"][0]["values"] == [[0.5, 1.0]]
    e = Explanation(kind="dimension_mismatch", title="t", cause="c", fix="f")
    err = run_to_dict(RunResult(status="error", error_type="ValueError", error_message="m", explanation=e))
    assert err["error"]["type"] == "ValueError" and err["error"]["explanation"]["kind"] == "dimension_mismatch"
    crash = run_to_dict(RunResult(status="crashed", signal="SIGSEGV", detail="d"))
    assert crash["error"] == {"type": "crash", "message": "d", "signal": "SIGSEGV", "log": None}
    assert run_to_dict(None, "no data")["status"] == "skipped"
    assert output_to_dict(out)["dtype"] == "int8"


def test_preview_image_of_images_only():
    assert preview_image(np.zeros((1, 16, 16, 3), np.float32)).shape == (16, 16, 3)
    assert preview_image(np.zeros((1, 3, 16, 16), np.float32)).shape == (16, 16, 3)  # NCHW
    assert preview_image(np.zeros((1, 10))) is None
    assert preview_image(None) is None
