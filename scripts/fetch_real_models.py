"""Fetch real .tflite models that a registry package ships, for the tests.

The mediapipe 0.10.14 wheel on PyPI carries the models of its solutions. We download that wheel
with pip (no dependencies, nothing installed), take four models out of it, check their SHA-256
and put them in ``tests/real_models/``. Nothing here loads anything from a model hub.

    python scripts/fetch_real_models.py          # once; tests skip these models without it
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEST = Path(__file__).resolve().parent.parent / "tests" / "real_models"
WHEEL = "mediapipe==0.10.14"
MODELS = {
    # A float detector that runs as is: 1×128×128×3 → boxes and scores.
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    # Segmentation with a MediaPipe custom op (Convolution2DTransposeBias): cannot run here.
    "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite": "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    # Landmarks with three custom ops, among them Landmarks2TransformMatrix.
    "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite": "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4",
    # A 224×224 float regressor with three outputs.
    "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite": "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
}


def missing() -> list[str]:
    return [m for m in MODELS if not (DEST / Path(m).name).exists()]


def main() -> int:
    if not missing():
        print(f"real models already in {DEST}")
        return 0
    DEST.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--only-binary=:all:",
            "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp",
            "-d", tmp, "-q",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"could not download {WHEEL} from the package index:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            for member, digest in MODELS.items():
                data = zf.read(member)
                if hashlib.sha256(data).hexdigest() != digest:
                    print(f"{member} in {wheel.name} does not have the expected SHA-256", file=sys.stderr)
                    return 1
                (DEST / Path(member).name).write_bytes(data)
    print(f"wrote {len(MODELS)} models to {DEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
