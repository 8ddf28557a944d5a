"""Audio inputs: what a recording must become before a model that takes sound can hear it.

A model that takes audio wants samples at one rate, with one number of channels, in windows of
one length; a WAV file says its own rate, channels and length (``AudioInfo``, which travels
with the samples in ``Feed.facts``). This module compares the two and says what differs, as
``Mismatch`` records whose fixes each have their line of Python:

- channels: a stereo recording for a mono model is mixed down, or one channel taken;
- sample rate: the model's rate comes from its metadata when it has some; otherwise the
  window's length in samples tells the candidates (144,000 samples last 3 s at 48 kHz, 9 s at
  16 kHz), and the rate taken is a ``Choice`` marked a guess. A recording at another rate is
  resampled (polyphase);
- length: a recording longer than the window is cut into windows (a batch, run one window per
  run) or trimmed; a shorter one is padded with zeros;
- value range: 16-bit PCM given as raw integers to a float model, and recordings that clipped.

An input is taken as audio when the model's metadata says so, or by its shape: rank 1 to 3,
one long axis (the samples) and at most two along every other (batch, channels).
``diagnosis.diagnose`` calls ``check_audio`` for each input and ``choices.choices`` calls
``audio_choices``; neither raises for odd data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .audio import COMMON_RATES
from .records import AudioInfo, Choice, Feed, Fix, ModelSpec, TensorSpec

if TYPE_CHECKING:
    from .diagnosis import _Checker

__all__ = [
    "AudioInput",
    "AudioView",
    "CLIP_OPTIONS",
    "audio_choices",
    "audio_input",
    "audio_view",
    "check_audio",
    "clip_choice",
    "facts_to_dict",
    "rate_choice",
    "window_starts",
    "with_facts",
]

# An axis this long (in samples) reads as time. A recording given to the model may be
# compared with a shorter window; without a recording, a shape alone must be longer to count.
_MIN_WINDOW_RECORDING = 1_000
_MIN_WINDOW_SHAPE = 4_000
# A share of samples at full scale above this is a recording that clipped, not a loud peak.
CLIPPED_WARNING = 0.001
_DEFAULT_RATE = 16_000  # what most speech and sound models are trained on
CLIP_OPTIONS = (
    ("windows", "split into windows, no overlap (a batch, one window per run)"),
    ("windows-50", "split into windows overlapping by half (a batch)"),
    ("windows-75", "split into windows overlapping by three quarters (a batch)"),
    ("trim", "keep the first window only"),
)
_OVERLAP = {"windows": 0.0, "windows-50": 0.5, "windows-75": 0.75}


@dataclass(frozen=True)
class AudioInput:
    """How an input of a model takes audio.

    ``time_axis`` holds the samples and ``channel_axis`` the channels (None when the input has
    no channel axis: mono); ``window`` is the number of samples one run takes (None when the
    input takes any number). ``rate`` and ``declared_channels`` are what the model's metadata
    says (None when it says nothing).
    """

    time_axis: int
    channel_axis: int | None
    channels: int
    window: int | None
    rate: int | None = None
    declared_channels: int | None = None

    @property
    def from_metadata(self) -> bool:
        return self.rate is not None


def _metadata_audio(spec: ModelSpec, t: TensorSpec):
    """The metadata's AudioProperties of input ``t``, or None."""
    from .choices import _tensor_metadata

    tm = _tensor_metadata(spec, t)
    content = tm.content if tm is not None else None
    if content is None or content.kind != "audio":
        return None
    return content.audio


def _audio_shape(t: TensorSpec, expected: Sequence[int] | None) -> tuple[tuple[int, ...], tuple[int, ...], list[int], int] | None:
    """What ``audio_input`` reads from the shape alone: (shape, signature, resizable axes, the
    longest axis); None when the shape rules audio out, whatever the metadata says."""
    shape = tuple(int(d) for d in (expected if expected is not None else t.shape))
    sig = t.shape_signature if len(t.shape_signature) == len(shape) else shape
    if not 1 <= len(shape) <= 3 or t.numpy_dtype is None:
        return None
    dynamic = [a for a in range(len(shape)) if sig[a] == -1 and (a > 0 or len(shape) == 1)]
    longest = max(range(len(shape)), key=lambda a: shape[a])
    if shape[longest] < min(_MIN_WINDOW_RECORDING, _MIN_WINDOW_SHAPE) and not dynamic:
        return None  # no axis long enough for audio
    return shape, tuple(sig), dynamic, longest


def audio_input(spec: ModelSpec, t: TensorSpec, expected: Sequence[int] | None = None, *, recording: bool = False) -> AudioInput | None:
    """How input ``t`` takes audio, or None when it does not look like an audio input.

    ``expected`` is the shape the interpreter is allocated for (``t.shape`` by default);
    ``recording`` says the data is a recording, which lets a shorter or resizable axis count
    as time. Never raises.
    """
    shaped = _audio_shape(t, expected)
    if shaped is None:
        return None
    shape, sig, dynamic, longest = shaped
    props = _metadata_audio(spec, t)
    least = _MIN_WINDOW_RECORDING if (recording or props is not None) else _MIN_WINDOW_SHAPE
    if shape[longest] >= least and sig[longest] != -1:
        time, window = longest, shape[longest]
    elif dynamic and (recording or props is not None):
        time, window = dynamic[-1], None
    else:
        return None
    others = [a for a in range(len(shape)) if a != time]
    if any(shape[a] > 2 and sig[a] != -1 for a in others):
        return None  # a long axis beside short ones that are not a batch or channels: features
    channel_axis = None
    if len(shape) == 3:
        channel_axis = next(a for a in others if a != 0)
    elif len(shape) == 2 and time == 0:
        channel_axis = 1
    channels = shape[channel_axis] if channel_axis is not None else 1
    if channel_axis is not None and sig[channel_axis] == -1:
        channels = max(1, props.channels if props is not None and props.channels else 1)
    return AudioInput(
        time_axis=time, channel_axis=channel_axis, channels=max(1, channels), window=window,
        rate=(props.sample_rate or None) if props is not None else None,
        declared_channels=(props.channels or None) if props is not None else None,
    )


# -- choices -----------------------------------------------------------------------------------


def _khz(rate: int) -> str:
    return f"{rate / 1000:g} kHz"


def _round_window(seconds: float) -> bool:
    """A whole number of 25 ms steps: how long windows are written down (1 s, 0.975 s, 3 s)."""
    steps = seconds * 40
    return abs(steps - round(steps)) < 1e-6


def _lasts(window: int, rates: Sequence[int]) -> str:
    return ", ".join(f"{window / r:.3g} s at {_khz(r)}" for r in rates)


def _guess_rate(window: int | None, recorded: int) -> tuple[int, str]:
    """The rate a model that does not say is assumed to take, and why (a sentence)."""
    if window is None:
        return _DEFAULT_RATE, (
            "A guess: the input takes any number of samples, so its size says nothing about the rate, and the "
            f"model's metadata does not say; {_khz(_DEFAULT_RATE)} is the rate most speech and sound models take."
        )
    rates = sorted(set(COMMON_RATES) | {recorded})
    lasts = _lasts(window, [r for r in sorted(rates, reverse=True)])
    head = f"A guess: the model does not say its sample rate, and its window of {window:,} samples lasts {lasts}. "
    seconds = window / recorded
    if _round_window(seconds) and 0.5 <= seconds <= 10:
        return recorded, head + f"At the recording's own {_khz(recorded)} it is a round {seconds:.3g} s, so that rate is taken."
    fits = [r for r in rates if _round_window(window / r) and 0.9 <= window / r <= 10]
    if fits:
        rate = max(fits)  # the highest such rate is the shortest window of at least 0.9 s
        return rate, head + f"{_khz(rate)} is taken: it makes the window a round {window / rate:.3g} s, the shortest of those."
    rate = min(rates, key=lambda r: abs(math.log(window / r)))
    return rate, head + f"{_khz(rate)} is taken: it makes the window closest to 1 s."


def rate_choice(spec: ModelSpec, t: TensorSpec, layout: AudioInput, facts: AudioInfo, prefs: Mapping[str, str]) -> Choice:
    """The sample rate input ``t`` is taken to expect: the model's metadata, the user's pick,
    or a guess from the window's length (marked a guess, with the candidates it weighed)."""
    key = f"sample rate:{t.name}"
    picked = prefs.get(key)
    asked = {int(picked)} if picked is not None and picked.isdigit() and 0 < int(picked) <= 768_000 else set()
    rates = sorted(set(COMMON_RATES) | {facts.sample_rate} | ({layout.rate} if layout.rate else set()) | asked)
    w = layout.window
    options = tuple(
        (str(r), f"{_khz(r)}" + (f"  (the window is {w / r:.3g} s)" if w else "") + ("  (the recording's)" if r == facts.sample_rate else ""))
        for r in rates
    )
    if picked in {k for k, _ in options}:
        note = f"; the model's metadata says {layout.rate:,} Hz" if layout.rate and str(layout.rate) != picked else ""
        return Choice(key, t.name, "sample rate", options, picked, "your pick" + note, "preference")
    if layout.rate:
        return Choice(
            key, t.name, "sample rate", options, str(layout.rate),
            f"The model's metadata says the input is audio at {layout.rate:,} Hz"
            + (f", {layout.declared_channels} channel(s)." if layout.declared_channels else "."),
            "metadata",
        )
    rate, reason = _guess_rate(w, facts.sample_rate)
    return Choice(key, t.name, "sample rate", options, str(rate), reason, "guess")


def clip_choice(t: TensorSpec, window: int, rate: int, frames: int, prefs: Mapping[str, str]) -> Choice:
    """What to do with a recording longer than the window: windows (with an overlap) or trim."""
    key = f"clip length:{t.name}"
    picked = prefs.get(key)
    if picked in _OVERLAP or picked == "trim":
        return Choice(key, t.name, "clip length", CLIP_OPTIONS, picked, "your pick", "preference")
    return Choice(
        key, t.name, "clip length", CLIP_OPTIONS, "windows",
        f"A guess at what you want: the recording ({frames / rate:.3g} s at {_khz(rate)}) is longer than the model's "
        f"window ({window:,} samples, {window / rate:.3g} s). Windows let the model hear all of it, one window per run; "
        "overlapping windows also catch a sound cut in two at a border; trimming keeps only the start.",
        "guess",
    )


def _recording(feed: Feed, name: str) -> AudioInfo | None:
    facts = getattr(feed, "facts", None) or {}
    info = facts.get(name)
    return info if isinstance(info, AudioInfo) else None


def audio_choices(spec: ModelSpec, original: Feed, inputs: Sequence[TensorSpec], prefs: Mapping[str, str]) -> list[Choice]:
    """The choices fixing a recording for an audio input involves: the sample rate the model
    takes, and (for a recording longer than the window) windows or trim. Only inputs given a
    recording have them."""
    found: list[Choice] = []
    for t in inputs:
        info = _recording(original, t.name)
        if info is None:
            continue
        expected = original.resize.get(t.name, t.shape)
        layout = audio_input(spec, t, expected, recording=True)
        if layout is None:
            continue
        rate = rate_choice(spec, t, layout, info, prefs)
        found.append(rate)
        if layout.window is not None and layout.time_axis > 0 and info.window_hop is None:
            frames = _frames_at(info.frames, info.sample_rate, int(rate.chosen))
            if frames > layout.window:
                found.append(clip_choice(t, layout.window, int(rate.chosen), frames, prefs))
    return found


# -- the checks ----------------------------------------------------------------------------------


def _frames_at(frames: int, rate: int, target: int) -> int:
    """How many samples ``frames`` samples at ``rate`` become at ``target`` (as resample gives)."""
    return frames if rate == target else -(-frames * target // rate)


def _shape(dims: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in dims) + "]"


def _channels_word(n: int) -> str:
    return {1: "mono", 2: "stereo (2 channels)"}.get(n, f"{n} channels")


def _data_axes(x: np.ndarray, info: AudioInfo) -> tuple[int, tuple[int, ...]] | None:
    """(time axis, leading axes) of a recording's array, or None when its shape does not match
    the facts (then the usual checks speak)."""
    trailing = (info.channels,) if info.channels > 1 else ()
    for axis in range(x.ndim):
        if x.shape[axis] == info.frames and tuple(x.shape[axis + 1 :]) == trailing:
            return axis, tuple(int(d) for d in x.shape[:axis])
    return None


def check_audio(checker: _Checker, spec: ModelSpec, info: AudioInfo | None) -> frozenset[str]:
    """Add the audio mismatches of one input to ``checker`` (see the module docstring).

    Returns what it took over from the usual checks: ``"structure"`` when the recording's
    channels, rate or length settle the shape, ``"values"`` when int16 samples meet a float
    input; empty for an input that is not audio. Never raises for odd data.
    """
    t, x = checker.t, checker.x
    if info is None:
        # Data that is not a recording: only int16 samples, or floats of whole numbers past 2,
        # for a float input are worth a word. The shape is looked at first, then the data, and
        # only then the model's metadata (is it audio?), each far cheaper than the next.
        if _audio_shape(t, checker.expected) is None:
            return frozenset()
        kind = _raw_kind(t, x)
        if kind is None or audio_input(spec, t, checker.expected) is None:
            return frozenset()
        return _raw_values(checker, kind)
    layout = audio_input(spec, t, checker.expected, recording=True)
    if layout is None:
        return frozenset()
    axes = _data_axes(x, info)
    if axes is None:
        return frozenset()
    time_axis, leading = axes
    name = f"input {checker.pos} ({t.name!r})"
    Name = name[:1].upper() + name[1:]
    handled: set[str] = set()
    found_before = len(checker.found)

    # Channels.
    channels = info.channels
    if channels != layout.channels:
        if layout.channels == 1:
            fixes = [checker.fix("to_mono", channels=channels)] + [
                checker.fix("take_channel", index=i, channels=channels) for i in range(min(channels, 2))
            ]
            checker.add(
                "audio_channels", "error", "mono", _channels_word(channels),
                f"{Name} takes mono audio, but the recording is {_channels_word(channels)}: mix the channels down to "
                "one, or keep one of them.",
                fixes,
            )
            channels = 1
        else:
            checker.add(
                "audio_channels", "error", _channels_word(layout.channels), _channels_word(channels),
                f"{Name} takes {_channels_word(layout.channels)} audio, but the recording is {_channels_word(channels)}; "
                f"record or export it with {layout.channels} channels.",
            )

    # Sample rate.
    choice = checker.choices.get("sample rate")
    if choice is None:
        choice = rate_choice(spec, t, layout, info, {})
    try:
        rate = int(choice.chosen)
    except ValueError:
        rate = info.sample_rate
    if info.sample_rate != rate:
        if choice.source == "metadata":
            why = "the model's metadata says so"
        elif choice.source == "preference":
            why = "as you chose"
        else:
            why = "a guess: the model does not say; see the sample-rate choice"
        ratio = info.sample_rate / rate
        heard = "slower and lower-pitched" if ratio > 1 else "faster and higher-pitched"
        checker.add(
            "sample_rate", "error" if choice.source in ("metadata", "preference") else "warning",
            f"{rate:,} Hz", f"{info.sample_rate:,} Hz",
            f"{Name} takes audio at {rate:,} Hz ({why}), but the recording is {info.sample_rate:,} Hz: fed as it is, the "
            f"model would hear it {max(ratio, 1 / ratio):.3g} times {heard}; resample it.",
            [checker.fix("resample", from_rate=info.sample_rate, to_rate=rate, **({"axis": time_axis} if time_axis else {}))],
            choice=choice,
        )

    # Length.
    frames = _frames_at(info.frames, info.sample_rate, rate)
    window = layout.window
    projected_leading = leading
    windows_chosen = False
    if window is not None and frames != window and info.window_hop is None:
        at = f"{window:,} samples ({window / rate:.3g} s at {_khz(rate)})"
        now = f"{frames:,} samples ({frames / rate:.3g} s)"
        pending = info.sample_rate != rate
        if pending:
            clip = checker.choices.get("clip length")
            windows_chosen = frames > window and layout.time_axis > 0 and (clip is None or clip.chosen != "trim")
            checker.add(
                "audio_length", "error", at, now,
                f"{Name} takes {at}; resampled to {_khz(rate)}, the recording will be {now}. Resample it first, then "
                + ("split it into windows or trim it." if frames > window else "pad it with zeros."),
            )
        elif frames > window:
            batched = layout.time_axis > 0  # windows run as a batch along the model's first axis
            clip = (checker.choices.get("clip length") or clip_choice(t, window, rate, frames, {})) if batched else None
            fixes = _length_fixes(checker, clip.chosen if clip else "trim", window, frames, rate, time_axis, batched)
            windows_chosen = fixes[0].kind == "split_windows"
            count = fixes[0].params.get("count") if windows_chosen else None
            checker.add(
                "audio_length", "error", at, now,
                f"{Name} takes {at} per run, but the recording is {now}: "
                + (f"split it into {count} windows and run them as a batch, or keep the first {window / rate:.3g} s."
                   if windows_chosen else f"keep the first {window / rate:.3g} s, or split it into windows and run them as a batch."
                   if batched else f"keep the first {window / rate:.3g} s (the input has no batch axis, so hearing the rest "
                   "takes a run per window)."),
                fixes, choice=clip,
            )
        else:
            checker.add(
                "audio_length", "error", at, now,
                f"{Name} takes {at} per run, but the recording is only {now}: pad it with zeros at the end.",
                [checker.fix("fit_length", size=window, mode="pad", rate=rate, **({"axis": time_axis} if time_axis else {}))],
            )
        frames = window

    # A recording already cut into windows: a batch the model runs one window at a time.
    if info.window_hop is not None and len(leading) == 1 and len(checker.found) == found_before:
        batch = checker.expected[0] if layout.time_axis > 0 else 1
        if leading[0] != batch:
            checker.add(
                "batch", "error", str(batch), str(leading[0]),
                f"{Name} takes {batch} window at a time, and the recording is now {leading[0]} windows of "
                f"{info.frames / info.sample_rate:.3g} s: run them as a batch, one window per run (the Run page's "
                "“Run all”, or lite-debug check --batch).",
            )
            handled.add("structure")

    elif not windows_chosen and channels == layout.channels:
        # The shape the model still needs once the audio is right (a batch axis, a resize),
        # said here so that one pass lists everything and no image rule reads the samples.
        if _projected_shape(checker, layout, projected_leading, frames, channels, Name, len(checker.found) > found_before):
            handled.add("structure")
    if len(checker.found) > found_before:
        handled.add("structure")

    # Values: a recording that clipped.
    if info.clipped_fraction >= CLIPPED_WARNING:
        checker.add(
            "audio_range", "warning", "below full scale", f"{info.clipped_fraction:.2%} of samples at full scale",
            f"{Name}: {info.clipped_fraction:.2%} of the recording's samples sit at full scale, so it clipped (it was "
            "recorded too loud); the model will hear distortion it was not trained on. Record it again at a lower gain.",
        )
    return frozenset(handled)


def _length_fixes(checker: _Checker, chosen: str, window: int, frames: int, rate: int, axis: int, batched: bool) -> list[Fix]:
    """Windows (the chosen overlap, then none) and trim, the chosen one first; only trim for a
    model without a batch axis, which cannot take windows as a batch."""
    extra = {"axis": axis} if axis else {}
    fixes = []
    for option, overlap in _OVERLAP.items() if batched else ():
        hop = max(1, int(round(window * (1 - overlap))))
        count = 1 + math.ceil((frames - window) / hop)
        fixes.append((option, checker.fix("split_windows", size=window, hop=hop, count=count, rate=rate, **extra)))
    fixes.append(("trim", checker.fix("fit_length", size=window, mode="trim", rate=rate, **extra)))
    ordered = [f for o, f in fixes if o == chosen] + [f for o, f in fixes if o != chosen and o in ("windows", "trim")]
    return ordered


def _projected_shape(
    checker: _Checker, layout: AudioInput, leading: tuple[int, ...], frames: int, channels: int, Name: str, after: bool
) -> bool:
    """Say what the model's shape still needs once the audio is right: the array is then
    ``[leading…, samples(, channels)]``; a batch axis, a reshape, or a resize of a dynamic input
    may remain. ``after``: other fixes come first. False when the shape is beyond these rules
    (the usual structure check then speaks)."""
    projected = (*leading, frames, *((channels,) if channels > 1 else ()))
    allocated = tuple(int(d) for d in checker.expected)
    t = checker.t
    sig = t.shape_signature if len(t.shape_signature) == len(allocated) else allocated
    wanted = list(allocated)
    if layout.window is None:
        wanted[layout.time_axis] = frames
    wanted = tuple(wanted)
    words = f"[samples{', channels' if channels > 1 else ''}]"
    now = f"after the fixes above the recording will be {_shape(projected)} ({words})" if after else (
        f"the recording is {_shape(projected)} ({words})"
    )
    takes = t.shape_text(signature=True) if layout.window is None else _shape(wanted)
    if projected != wanted:
        if len(wanted) == len(projected) + 1 and wanted[1:] == projected and (wanted[0] == 1 or sig[0] == -1):
            checker.add(
                "batch", "error", _shape(wanted), _shape(projected),
                f"{Name} takes {takes}, with a batch axis first; {now}, without one: add it.",
                [checker.fix("add_batch")],
            )
            projected = (1, *projected)
        elif len(wanted) == len(projected) and math.prod(wanted) == math.prod(projected):
            checker.add(
                "rank", "error", _shape(wanted), _shape(projected),
                f"{Name} takes {takes}; {now}: reshape it to {_shape(wanted)}.",
                [checker.fix("reshape", shape=list(wanted))],
            )
            projected = wanted
        elif math.prod(wanted) == math.prod(projected):
            checker.add(
                "rank", "error", _shape(wanted), _shape(projected),
                f"{Name} takes {takes}; {now}: reshape it to {_shape(wanted)}.",
                [checker.fix("reshape", shape=list(wanted))],
            )
            projected = wanted
        else:
            return False
    if projected != allocated and checker.signature is None:
        checker.add(
            "dynamic", "error", _shape(allocated), _shape(projected),
            f"{Name} takes any number of samples (shape signature {t.shape_text(signature=True)}), but the interpreter "
            f"is allocated for {_shape(allocated)}; call resize_tensor_input with {_shape(projected)} and "
            "allocate_tensors() before set_tensor.",
            [checker.fix("resize_input", index=t.index, shape=list(projected))],
            dimension=layout.time_axis,
        )
    return True


def _raw_kind(t: TensorSpec, x: np.ndarray) -> tuple[str, float] | None:
    """For a float input given data that is not a recording: ("int16", 0) for int16 samples,
    ("whole", peak) for floats that are whole numbers of magnitude 2 to 32768 (16-bit PCM cast
    without scaling); None for anything else."""
    want = t.numpy_dtype
    if want is None or want.kind != "f" or not x.size:
        return None
    if x.dtype == np.int16:
        return "int16", 0.0
    if x.dtype.kind != "f":
        return None
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN or Inf among them: the finite ones decide
        finite = x[np.isfinite(x)]
        if not finite.size:
            return None
        lo, hi = float(finite.min()), float(finite.max())
    else:
        finite = x
    peak = max(-lo, hi)
    if 2.0 < peak <= 32768.0 and np.all(finite == np.round(finite)):
        return "whole", peak
    return None


def _raw_values(checker: _Checker, kind: tuple[str, float]) -> frozenset[str]:
    """Data that is not a recording, for an audio input: int16 samples as raw integers, or
    floats that look like them (see ``_raw_kind``)."""
    t = checker.t
    want = t.numpy_dtype
    assert want is not None
    name = f"Input {checker.pos} ({t.name!r})"
    what, peak = kind
    if what == "int16":
        checker.add(
            "audio_range", "error", f"{want.name} audio in [-1, 1]", "int16 samples (-32768…32767)",
            f"{name} takes {want.name} audio, but the data is int16: 16-bit PCM samples as raw integers. Audio models "
            "take floats in [-1, 1]: divide by 32768 (a model trained on unscaled samples takes them cast as they are).",
            [checker.fix("pcm_to_float"), checker.fix("cast", dtype=want.name)],
        )
        return frozenset({"values"})
    checker.add(
        "audio_range", "warning", "[-1, 1]", f"whole numbers up to {peak:g}",
        f"{name}: the samples are whole numbers up to {peak:g}, like 16-bit PCM cast to float without "
        "scaling; audio models usually take [-1, 1] (divide by 32768), unless the model was trained on "
        "unscaled samples.",
        [checker.fix("pcm_to_float")],
    )
    return frozenset()


# -- for the pages and the command line ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AudioView:
    """An input's recording as the model will receive it: mono samples per window.

    ``windows`` is ``[n, samples]`` float32 (one row for a recording in one piece), mixed down
    to mono for drawing and playing; ``starts`` the start of each window in seconds of the
    recording; ``info`` the facts as they stand after the fixes.
    """

    info: AudioInfo
    windows: np.ndarray
    starts: tuple[float, ...]

    @property
    def rate(self) -> int:
        return self.info.sample_rate

    def joined(self) -> np.ndarray:
        """The windows end to end (for one player): the recording as the model hears it."""
        return self.windows.reshape(-1)


def audio_view(feed: Feed, name: str) -> AudioView | None:
    """The recording bound to input ``name`` in ``feed``, as the model will receive it, or None
    when that input was not given a recording (or its array no longer matches its facts)."""
    info = _recording(feed, name)
    x = feed.arrays.get(name)
    if info is None or x is None:
        return None
    x = np.asarray(x)
    axes = _data_axes(x, info)
    if axes is None:
        return None
    time_axis, leading = axes
    rows = x.reshape((-1, info.frames, info.channels) if info.channels > 1 else (-1, info.frames))
    if info.channels > 1:
        rows = rows.mean(axis=-1)
    rows = np.asarray(rows, dtype=np.float32)
    if rows.dtype.kind != "f":
        rows = rows.astype(np.float32)
    starts = window_starts(info, len(rows))
    return AudioView(info=info, windows=rows, starts=starts)


def window_starts(info: AudioInfo, count: int) -> tuple[float, ...]:
    """When each of ``count`` windows starts, in seconds of the recording (0.0 for one piece)."""
    hop = info.window_hop if info.window_hop is not None else info.frames
    return tuple(i * hop / info.sample_rate for i in range(count))


def facts_to_dict(feed: Feed) -> dict[str, Any]:
    """The facts of every recording in ``feed``, keyed by input, as JSON-ready dicts."""
    return {name: info.to_dict() for name, info in (getattr(feed, "facts", None) or {}).items() if isinstance(info, AudioInfo)}


def with_facts(feed: Feed, recordings: Sequence[tuple[np.ndarray, AudioInfo]]) -> Feed:
    """``feed`` with each recording's facts bound to the input its array went to (the array
    itself, not a copy, identifies it). Arrays that are no recording have no facts."""
    if not recordings:
        return feed
    facts = dict(feed.facts)
    for name, array in feed.arrays.items():
        info = next((i for a, i in recordings if a is array), None)
        if info is not None:
            facts[name] = info
    return feed.replace(facts=facts)
