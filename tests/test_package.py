"""The package's shape: public names, and what it must never import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lite_debug

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_complete():
    assert lite_debug.__all__ == sorted(lite_debug.__all__)
    for name in lite_debug.__all__:
        assert hasattr(lite_debug, name), name


def test_library_never_imports_streamlit_or_tensorflow_at_module_level():
    for path in (ROOT / "lite_debug").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not n.startswith("streamlit"), f"{path.name} imports streamlit"
    # And at run time: importing the package pulls in neither.
    code = (
        "import sys, lite_debug; [getattr(lite_debug, n) for n in lite_debug.__all__]; "
        "bad = [m for m in ('streamlit', 'tensorflow') if m in sys.modules]; assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_error_messages_are_sentences_in_the_tree():
    from lite_debug import errors

    for cls in (errors.ModelLoadError, errors.DataLoadError, errors.FixError, errors.BundleError, errors.WorkerError):
        assert issubclass(cls, errors.LiteDebugError) and cls.__doc__


def test_the_dashboards_first_page_needs_no_numpy_and_the_public_names_stay_right():
    # `streamlit run app.py` draws the gallery before the engine loads (numpy and the engine
    # were a fifth of a cold start); the engine's names are imported on first use.
    code = (
        "import sys; sys.path.insert(0, '.');"
        "import pages._ui, lite_debug.gallery, lite_debug.errors;"
        "assert [e.title for e in lite_debug.gallery.examples()];"
        "assert 'numpy' not in sys.modules, 'numpy was imported';"
        "import lite_debug.explain, lite_debug.running;"
        "from lite_debug import explain, run, inspect_model;"
        "assert callable(explain) and explain.__module__ == 'lite_debug.explain', explain;"
        "assert run.__module__ == 'lite_debug.running'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
