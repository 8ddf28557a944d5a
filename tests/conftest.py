from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Cases the dashboard keeps during the tests go to a directory of the test run, not the user's.
os.environ.setdefault("LITE_DEBUG_DATA_DIR", tempfile.mkdtemp(prefix="lite-debug-test-cases-"))
for p in (str(ROOT), str(Path(__file__).resolve().parent)):
    if p not in sys.path:
        sys.path.insert(0, p)


def pytest_configure(config):
    """Fetch the real models a registry package ships, once, before any worker starts."""
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller has done it
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import fetch_real_models

        if fetch_real_models.missing():
            fetch_real_models.main()
    except Exception as exc:  # tests that need them skip (or fail in CI) with a message
        print(f"could not fetch the real models: {exc}", file=sys.stderr)
