"""Recordings for audio models: every ordinary kind of WAV (and FLAC, Ogg, MP3) gives true
statements and fixes that run, through the engine, the command line, the exported script, a
saved case and the Diagnose page.

The model is the gallery's sound classifier ([1, 16000] float32: 1 s at 16 kHz, built with the
TF converter by scripts/build_examples.py); hand-made specs cover other windows and layouts.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import crafted
from lite_debug.audio_diagnosis import audio_input, audio_view, window_starts
from lite_debug.choices import choices as find_choices
from lite_debug.diagnosis import diagnose, fix_all
from lite_debug.figures import spectrogram, waveform, window_figures, window_scores
from lite_debug.fixes import apply_fix
from lite_debug.gallery import EXAMPLES_DIR, example
from lite_debug.inspection import inspect_model
from lite_debug.loading import load_file
from lite_debug.records import AudioInfo, Feed
from lite_debug.running import Limits, WorkerPool
from lite_debug.session import Workspace
from specs import model, tensor
from test_metadata import model_metadata, subgraph
from test_metadata import tensor as tensor_metadata

MODEL = example("audio-rate").model_bytes
NAME = "serving_default_audio:0"


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=1, limits=Limits(run_seconds=30, load_seconds=30))
    yield p
    p.close()


def recording(rate: int, seconds: float, channels: int = 1, *, fmt: str = "WAV", subtype: str = "PCM_16",
              amplitude: float = 0.5) -> bytes:
    """A tone per channel (440 Hz, 660 Hz, …) as the bytes of an audio file."""
    t = np.arange(int(round(rate * seconds))) / rate
    x = np.stack([amplitude * np.sin(2 * np.pi * (440 + 220 * c) * t) for c in range(channels)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def workspace(name: str, data: bytes, model_bytes: bytes = MODEL) -> Workspace:
    ws = Workspace._for_model("model.tflite", model_bytes)
    ws.load_files([(name, data)])
    return ws


def kinds(found) -> list[str]:
    return [m.kind for m in found]


def dominant(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


# -- every format, through the workspace, to a run ------------------------------------------------

FORMATS = [
    ("clip.wav", "WAV", "PCM_U8"), ("clip.wav", "WAV", "PCM_16"), ("clip.wav", "WAV", "PCM_24"),
    ("clip.wav", "WAV", "PCM_32"), ("clip.wav", "WAV", "FLOAT"), ("clip.flac", "FLAC", "PCM_16"),
    ("clip.ogg", "OGG", "VORBIS"), ("clip.mp3", "MP3", "MPEG_LAYER_III"),
]


@pytest.mark.parametrize(("name", "fmt", "subtype"), FORMATS, ids=[f"{f}-{s}" for _, f, s in FORMATS])
def test_every_format_is_diagnosed_as_audio_and_fixed_into_one_second_at_16_khz(name, fmt, subtype, pool):
    ws = workspace(name, recording(22_050, 1.0, 2, fmt=fmt, subtype=subtype))
    info = ws.original.facts[NAME]
    assert (info.sample_rate, info.channels, info.sample_format) == (22_050, 2, subtype)
    found = ws.mismatches
    assert kinds(found)[:2] == ["audio_channels", "sample_rate"]
    assert not any(m.kind in ("shape", "rank", "dtype") for m in found)  # no image or raw-bytes rule spoke
    ws.apply_all()
    x = ws.feed.arrays[NAME]
    assert x.shape == (1, 16000) and x.dtype == np.float32 and not ws.errors
    assert ws.feed.facts[NAME].sample_rate == 16_000 and ws.feed.facts[NAME].channels == 1
    # The 440 Hz tone of channel 0 and 660 Hz of channel 1, mixed down and resampled: both still there.
    assert dominant(x[0], 16_000) in (pytest.approx(440, abs=3), pytest.approx(660, abs=3))
    assert ws.run(pool).ok


def test_a_wav_is_no_longer_raw_bytes_with_the_models_shape():
    # The example: 3 s of mono 48 kHz for a [1, 144000] model (BirdNET's shape).
    spec = model(tensor("audio", (1, 144000)))
    read = load_file("clip.wav", recording(48_000, 3.0))
    feed = Feed({"audio": read.arrays[0]}, facts={"audio": read.audio})
    cs = find_choices(spec, feed)
    (rate,) = [c for c in cs if c.topic == "sample rate"]
    assert rate.chosen == "48000" and rate.guess
    assert "3 s at 48 kHz" in rate.reason and "9 s at 16 kHz" in rate.reason and "3.27 s at 44.1 kHz" in rate.reason
    (m,) = diagnose(spec, feed, choices=cs)
    assert m.kind == "batch" and "bytes" not in m.message and m.fixes[0].kind == "add_batch"


# -- channels ---------------------------------------------------------------------------------------


def test_mono_has_no_channel_mismatch_and_stereo_offers_mixing_or_one_channel():
    mono = workspace("mono.wav", recording(16_000, 1.0, 1))
    assert "audio_channels" not in kinds(mono.mismatches)
    stereo = workspace("stereo.wav", recording(16_000, 1.0, 2))
    (m,) = [m for m in stereo.mismatches if m.kind == "audio_channels"]
    assert m.severity == "error" and "stereo (2 channels)" in m.message
    assert [f.kind for f in m.fixes] == ["to_mono", "take_channel", "take_channel"]
    right = apply_fix(stereo.feed, m.fixes[2])
    x = right.arrays[NAME]
    assert x.shape == (16000,) and right.facts[NAME].channels == 1
    assert dominant(x, 16_000) == pytest.approx(660, abs=3)  # channel 1 holds the 660 Hz tone
    assert stereo.feed.facts[NAME].channels == 2  # the fix made a new feed


def test_a_mono_recording_for_a_stereo_model_is_said_without_a_made_up_fix():
    spec = model(tensor("audio", (1, 16000, 2)))
    read = load_file("mono.wav", recording(16_000, 1.0, 1))
    found = diagnose(spec, Feed({"audio": read.arrays[0]}, facts={"audio": read.audio}))
    (m,) = [m for m in found if m.kind == "audio_channels"]
    assert "takes stereo (2 channels) audio, but the recording is mono" in m.message and not m.fixes


# -- sample rate ------------------------------------------------------------------------------------


def with_audio_metadata(model_bytes: bytes, rate: int, channels: int = 1) -> bytes:
    content = [(0, "u8", 4), (1, "table", [(0, "u32", rate), (1, "u32", channels)])]
    metadata = model_metadata([subgraph([tensor_metadata("audio", content=content)], [tensor_metadata("scores")])])
    return crafted.add_metadata(model_bytes, metadata)


def test_the_models_metadata_rate_is_taken_and_said_so(pool):
    data = with_audio_metadata(MODEL, 22_050)
    spec = inspect_model(data)
    assert audio_input(spec, spec.inputs[0]).rate == 22_050
    ws = workspace("clip.wav", recording(16_000, 0.5), data)
    (rate,) = [c for c in ws.choices if c.topic == "sample rate"]
    assert rate.chosen == "22050" and rate.source == "metadata" and not rate.guess
    assert "metadata says the input is audio at 22,050 Hz" in rate.reason
    (m,) = [m for m in ws.mismatches if m.kind == "sample_rate"]
    assert m.severity == "error" and "metadata says so" in m.message
    assert m.fixes[0].params == {"from_rate": 16_000, "to_rate": 22_050}
    ws.apply_all()
    assert ws.feed.facts[NAME].sample_rate == 22_050 and ws.feed.arrays[NAME].shape == (1, 16000)


def test_without_metadata_the_rate_is_a_guess_the_user_can_change():
    ws = workspace("clip.wav", recording(44_100, 1.0))
    (rate,) = [c for c in ws.choices if c.topic == "sample rate"]
    assert rate.chosen == "16000" and rate.guess and rate.reason.startswith("A guess")
    (m,) = [m for m in ws.mismatches if m.kind == "sample_rate"]
    assert m.severity == "warning" and "a guess" in m.message and m.choice == rate.key
    ws.apply_all()  # a guessed rate is applied, as a guessed value range is, and shown as a choice
    assert [f.kind for f in ws.applied][:1] == ["resample"]
    ws.choose(rate.key, "8000")
    assert ws.feed.facts[NAME].sample_rate == 8_000
    (back,) = [c for c in ws.choices if c.topic == "sample rate"]
    assert back.source == "preference" and back.chosen == "8000"
    # 1 s at 8 kHz is 8,000 samples: padded to the window of 16,000.
    assert [f.kind for f in ws.applied] == ["resample", "fit_length", "add_batch"]


def test_resampling_keeps_the_tone_and_gives_the_exact_length():
    ws = workspace("clip.wav", recording(44_100, 1.0))
    (m,) = [m for m in ws.mismatches if m.kind == "sample_rate"]
    out = apply_fix(ws.feed, m.fixes[0])
    x = out.arrays[NAME]
    assert x.shape == (16000,) and dominant(x, 16_000) == pytest.approx(440, abs=2)
    assert out.facts[NAME] == AudioInfo(16_000, 1, 16000, "WAV", "PCM_16", 0.0)


def test_a_resizable_input_takes_the_whole_recording_at_the_guessed_rate():
    spec = model(tensor("input", (1, 1), sig=(-1, -1)))  # openWakeWord's melspectrogram takes [?, ?]
    read = load_file("clip.wav", recording(44_100, 0.5, 2))
    out = fix_all(spec, Feed({"input": read.arrays[0]}, facts={"input": read.audio}))
    assert [f.kind for f in out.applied] == ["to_mono", "resample", "add_batch", "resize_input"]
    assert out.feed.resize == {"input": (1, 8000)} and out.feed.arrays["input"].shape == (1, 8000)
    assert not out.remaining


# -- length -----------------------------------------------------------------------------------------


def test_a_short_clip_is_padded_with_zeros():
    ws = workspace("short.wav", recording(16_000, 0.4))
    (m,) = [m for m in ws.mismatches if m.kind == "audio_length"]
    assert "only 6,400 samples (0.4 s)" in m.message and m.fixes[0].params["mode"] == "pad"
    ws.apply_all()
    x = ws.feed.arrays[NAME]
    assert x.shape == (1, 16000) and not x[0, 6400:].any() and x[0, :6400].any()


def test_a_long_clip_is_cut_into_windows_that_run_as_a_batch(pool):
    ws = workspace("long.wav", recording(16_000, 2.5))
    (m,) = [m for m in ws.mismatches if m.kind == "audio_length"]
    assert [f.kind for f in m.fixes] == ["split_windows", "fit_length"] and "split it into 3 windows" in m.message
    ws.apply_all()
    assert ws.feed.arrays[NAME].shape == (3, 16000)
    (left,) = ws.errors
    assert left.kind == "batch" and not left.fixes and "run them as a batch" in left.message
    assert ws.batch == (3, 1) and ws.batch_ready and ws.only_the_batch_left
    result = ws.run_batch(pool)
    assert result.status == "ok" and result.outputs[next(iter(result.outputs))].shape == (3, 5)
    view = audio_view(ws.feed, NAME)
    assert view.windows.shape == (3, 16000) and view.starts == (0.0, 1.0, 2.0)
    ((name, fig),) = window_figures(ws.feed, result.outputs, labels=ws.labels)
    assert fig.data[0].type == "heatmap" and list(fig.data[0].x) == ["0 s", "1 s", "2 s"]
    assert "2: whistle" in list(fig.data[0].y)


def test_overlap_and_trim_are_the_users_to_pick():
    ws = workspace("long.wav", recording(16_000, 2.5))
    (clip,) = [c for c in ws.choices if c.topic == "clip length"]
    assert clip.chosen == "windows" and clip.guess
    ws.choose(clip.key, "windows-50")
    ws.apply_all()
    x = ws.feed.arrays[NAME]
    assert x.shape == (4, 16000) and ws.feed.facts[NAME].window_hop == 8000
    assert np.array_equal(x[1, :8000], x[0, 8000:])  # half of each window is the next one's start
    assert window_starts(ws.feed.facts[NAME], 4) == (0.0, 0.5, 1.0, 1.5)
    ws.choose(clip.key, "trim")  # replays the fixes with the new pick
    assert ws.feed.arrays[NAME].shape == (1, 16000) and not ws.errors
    assert np.array_equal(ws.feed.arrays[NAME][0], ws.original.arrays[NAME][:16000])


def test_a_model_without_a_batch_axis_is_offered_the_first_window_only():
    spec = model(tensor("waveform", (15600,)))  # YAMNet's input: 0.975 s at 16 kHz
    read = load_file("clip.wav", recording(16_000, 2.0))
    feed = Feed({"waveform": read.arrays[0]}, facts={"waveform": read.audio})
    assert not [c for c in find_choices(spec, feed) if c.topic == "clip length"]
    (m,) = diagnose(spec, feed)
    assert m.kind == "audio_length" and [f.kind for f in m.fixes] == ["fit_length"]
    assert "0.975 s at 16 kHz" in m.message and "no batch axis" in m.message
    assert not fix_all(spec, feed).remaining


# -- value range --------------------------------------------------------------------------------------


def test_int16_samples_given_as_raw_integers_to_a_float_model():
    pcm = (np.sin(np.arange(16000) / 3) * 20000).astype(np.int16)[None]
    spec = inspect_model(MODEL)
    (m,) = diagnose(spec, [pcm])
    assert m.kind == "audio_range" and m.severity == "error" and "16-bit PCM samples as raw integers" in m.message
    assert [f.kind for f in m.fixes] == ["pcm_to_float", "cast"]
    out = fix_all(spec, [pcm])
    x = out.feed.arrays[NAME]
    assert x.dtype == np.float32 and np.allclose(x, pcm / 32768.0) and not out.remaining
    # The same numbers cast to float without scaling: a warning, since some models want them so.
    (w,) = diagnose(spec, [pcm.astype(np.float32)])
    assert w.kind == "audio_range" and w.severity == "warning" and "whole numbers up to 19999" in w.message


def test_ordinary_data_for_a_long_input_is_diagnosed_without_reading_the_metadata(monkeypatch):
    # Every diagnosis of a [1, 16000] input used to read the model's metadata (a pass over its
    # flatbuffer, 30 µs) to ask whether the input takes audio, though only raw PCM values need
    # the answer.
    import lite_debug.audio_diagnosis as audio_diagnosis

    asked = []
    real = audio_diagnosis._metadata_audio
    monkeypatch.setattr(audio_diagnosis, "_metadata_audio", lambda spec, t: asked.append(t.name) or real(spec, t))
    spec = inspect_model(MODEL)
    wave = (np.sin(np.arange(16000, dtype=np.float32) / 3) * 0.5)[None]
    assert diagnose(spec, [wave]) == [] and asked == []
    (m,) = diagnose(spec, [(wave * 40000).astype(np.int16)])
    assert m.kind == "audio_range" and asked == [NAME]


def test_clipped_audio_is_a_warning_without_a_pretend_fix():
    ws = workspace("loud.wav", recording(16_000, 1.0, amplitude=1.6))
    (m,) = [m for m in ws.mismatches if m.kind == "audio_range"]
    assert m.severity == "warning" and not m.fixes and "clipped" in m.message
    assert f"{ws.original.facts[NAME].clipped_fraction:.2%}" in m.message
    quiet = workspace("quiet.wav", recording(16_000, 1.0, amplitude=0.5))
    assert "audio_range" not in kinds(quiet.mismatches)


# -- the gallery example, the command line, the script, a saved case, the page ---------------------


def test_the_gallery_recording_is_fixed_and_each_fix_says_what_it_does():
    ex = example("audio-rate")
    ws = Workspace.from_example("audio-rate")
    assert set(ex.expected_kinds) <= set(kinds(ws.mismatches))
    ws.apply_all()
    assert [f.code for f in ws.applied] == [
        "x = x.mean(axis=-1).astype(np.float32)", "x = resample(x, 44100, 16000)", "x = windows(x, 16000, 16000)",
    ]
    good = np.load(EXAMPLES_DIR / ex.good_files[0])
    assert np.allclose(ws.feed.arrays[NAME][:1], good, atol=1e-6)


def cli(*args):
    done = subprocess.run([sys.executable, "-m", "lite_debug", *map(str, args)], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_check_clip_wav_fix_runs_the_windows_and_says_the_facts():
    model_path, wav = EXAMPLES_DIR / "sound_classifier.tflite", EXAMPLES_DIR / "audio-rate.broken.wav"
    done = cli("check", model_path, wav)
    assert done.returncode == 1
    assert "Audio for 'serving_default_audio:0': WAV (PCM_16), 44,100 Hz, stereo, 1.5 s." in done.stdout
    assert "Choice, sample rate of 'serving_default_audio:0': 16 kHz" in done.stdout and "A guess" in done.stdout
    done = cli("check", model_path, wav, "--fix", "--json")
    assert done.returncode == 0, done.stdout[-2000:]
    report = json.loads(done.stdout)
    assert report["audio"]["given"][NAME]["sample_rate"] == 44_100
    assert report["audio"]["fed"][NAME] == {**report["audio"]["fed"][NAME], "sample_rate": 16_000, "channels": 1, "window_hop": 16_000}
    assert report["batch"]["status"] == "ok" and report["batch"]["count"] == 2
    assert {c["topic"]: c["guess"] for c in report["choices"]} == {"sample rate": True, "clip length": True}
    done = cli("check", model_path, wav, "--fix", "--clip", "trim", "--sample-rate", "16000")
    assert done.returncode == 0 and "Run: ok" in done.stdout
    assert "as the model receives it: WAV (PCM_16), 16,000 Hz, mono, 1 s." in done.stdout
    done = cli("check", model_path, wav, "--fix")
    assert done.returncode == 0 and "Batch: 2 samples, ok" in done.stdout and "0.000 s: class" in done.stdout


def test_the_exported_script_runs_every_window_like_the_batch(tmp_path, pool):
    ws = Workspace.from_example("audio-rate")
    ws.apply_all()
    batch = ws.run_batch(pool)
    folder = tmp_path / "repro"
    path = ws.script().write(folder)
    (folder / "sound_classifier.tflite").write_bytes(MODEL)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd=folder)
    assert done.returncode == 0, done.stderr
    with np.load(folder / "outputs.npz") as outputs:
        (values,) = [outputs[k] for k in outputs.files]
    assert np.allclose(values, next(iter(batch.outputs.values())), atol=1e-6)


def test_a_saved_case_keeps_the_recordings_facts():
    from lite_debug.casefile import dump_workspace, load_workspace

    ws = Workspace.from_example("audio-rate")
    ws.apply_all()
    manifest, members = dump_workspace(ws)
    back = load_workspace(json.loads(json.dumps(manifest)), lambda digest: bytes(members[digest]))
    assert back.original.facts == ws.original.facts and back.feed.facts == ws.feed.facts
    assert kinds(back.mismatches) == kinds(ws.mismatches) == ["batch"]
    manifest["original"]["facts"][NAME]["sample_rate"] = 10**9
    from lite_debug.errors import BundleError

    with pytest.raises(BundleError, match="sample_rate"):
        load_workspace(json.loads(json.dumps(manifest)), lambda digest: bytes(members[digest]))


def test_audio_figures_are_compact_and_never_raise():
    x = np.sin(np.arange(16000 * 600) / 5).astype(np.float32)  # ten minutes at 16 kHz
    wave = waveform(x, 16000)
    assert sum(len(t.x) for t in wave.data) <= 2100
    spec = spectrogram(x, 16000)
    assert spec.data[0].z.shape[1] <= 320 and spec.data[0].z.shape[0] <= 96
    assert "too short" in spectrogram(np.zeros(3), 16000).layout.title.text
    many = window_scores(np.random.default_rng(0).random((4, 521)), labels=["<b>x</b>"] * 521)
    assert len(many.data[0].y) == 30 and "30 of 521 classes" in many.layout.title.text
    assert window_scores(np.zeros((0, 0))).layout.title.text.endswith("(empty)")


def test_the_diagnose_page_shows_the_recording(monkeypatch):
    from ui_helpers import app, keep_the_frame, shown

    keep_the_frame(monkeypatch)
    ws = Workspace.from_example("audio-rate")
    at = app(ws, page="diagnose")
    assert not at.exception
    captions = shown(" ".join(c.value for c in at.main.caption))
    assert "As given, unchanged so far: WAV (PCM_16), 44,100 Hz, stereo, 1.5 s" in captions
    assert [s.label for s in at.main.selectbox if "ample rate" in s.label]
    assert len(at.get("audio")) == 1
    at.button(key="fix-all").click().run()
    assert not at.exception
    captions = shown(" ".join(c.value for c in at.main.caption))
    assert "As the model will receive it: WAV (PCM_16), 16,000 Hz, mono, 1 s per window" in captions
    assert at.slider(key="audio-window-0").max == 1
    at.slider(key="audio-window-0").set_value(1).run()
    assert not at.exception and "Window 1 starts at 1 s" in shown(" ".join(c.value for c in at.main.caption))


# -- a real audio model --------------------------------------------------------------------------------


def melspectrogram() -> bytes:
    """openWakeWord's melspectrogram.tflite from the real-model set; skips when it is not fetched."""
    from test_inspection import REAL, need_real_models

    need_real_models()
    path = REAL / "melspectrogram.tflite"
    if not path.exists():
        pytest.skip("melspectrogram.tflite is not fetched (scripts/fetch_real_models.py)")
    return path.read_bytes()


def test_a_real_audio_model_takes_a_44_1_khz_stereo_recording_after_its_fixes(pool):
    """openWakeWord's melspectrogram (from its 0.5.1 wheel): raw samples of any length, [?, ?]."""
    data = melspectrogram()
    ws = workspace("clip.wav", recording(44_100, 1.0, 2), data)
    name = ws.inputs[0].name
    (rate,) = [c for c in ws.choices if c.topic == "sample rate"]
    # The input's size says nothing about the rate and the model has no metadata: a guess, and said so.
    assert rate.guess and rate.chosen == "16000" and "takes any number of samples" in rate.reason
    assert kinds(ws.mismatches) == ["audio_channels", "sample_rate", "batch", "dynamic"]
    ws.apply_all()
    assert [f.kind for f in ws.applied] == ["to_mono", "resample", "add_batch", "resize_input"]
    assert ws.feed.arrays[name].shape == (1, 16000) and ws.feed.resize == {name: (1, 16000)} and not ws.errors
    result = ws.run(pool)
    assert result.ok, result.error_message
    (out,) = result.outputs
    assert out.shape[0] == 1 and out.shape[-1] == 32 and out.shape[2] > 90  # ~97 frames of 32 mel bands
    assert np.isfinite(out.values).all()


def test_a_model_that_fails_only_at_its_placeholder_shape_is_not_said_to_fail_every_run(pool):
    """openWakeWord's melspectrogram declares [1, 1] for "any number of samples", and its first
    convolution cannot prepare at one sample: allocate_tensors() fails there. That is a warning
    about the placeholder, not "the model does not load, so every run will fail": at the
    recording's shape it loads and runs."""
    from lite_debug.diagnosis import check_mismatches, explain_result

    data = melspectrogram()
    spec = inspect_model(data)
    check = pool.check_model(data, spec)
    assert not check.ok  # the runtime does refuse the declared shape
    (m,) = check_mismatches(check, spec)
    assert m.severity == "warning" and m.kind in ("prepare", "delegate")
    assert "[1, 1] for 'serving_default_input:0' (shape signature [?, ?]): a placeholder" in m.message
    assert "every run will fail" not in m.message and "CONV_2D" in m.message
    ws = workspace("clip.wav", recording(16_000, 1.0), data)
    ws.check = check
    assert [x.kind for x in ws.mismatches if x.input_index < 0] == [m.kind] and ws.errors
    # Run as it is (at the placeholder): the failure is explained by the resize it lacks.
    failed = explain_result(ws.run(pool), ws.mismatches)
    assert not failed.ok and "placeholder" in failed.explanation.cause
    assert "resize_tensor_input(0, [1, 16000])" in failed.explanation.fix
    ws.apply_all()
    assert not ws.errors and [x.severity for x in ws.mismatches] == ["warning"]
    assert ws.run(pool).ok


def test_the_diagnose_page_does_not_promise_a_model_that_fails_at_its_placeholder_will_prepare(pool):
    from streamlit.testing.v1 import AppTest

    data = melspectrogram()
    ws = workspace("clip.wav", recording(16_000, 1.0), data)
    ws.check = pool.check_model(data, ws.spec)
    ws.apply_all()
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.session_state["ws"] = ws
    at.switch_page("pages/diagnose.py")
    at.run()
    assert not at.exception
    said = " ".join(i.value for i in at.info)
    assert "whether the model prepares at the data's shape shows when it runs" in said
    assert "will accept" not in said and "a placeholder" in " ".join(w.value for w in at.warning)
