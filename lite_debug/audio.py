"""Pure functions on audio samples, for the fixes and figures that audio models need.

Samples are what ``loading.load_file`` returns for a recording: float32, shaped
``[samples]`` (mono) or ``[samples, channels]``. Every function returns a new array and
leaves its input alone; none imports anything beyond numpy until it is called (scipy is
imported by the two that need it, so that loading a WAV file does not pay for it).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "COMMON_RATES",
    "candidate_rates",
    "clipped_fraction",
    "pad_or_trim",
    "resample",
    "spectrogram",
    "take_channel",
    "to_mono",
    "windows",
]

# The sample rates recordings and audio models use, lowest first.
COMMON_RATES = (8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)


def resample(x: np.ndarray, from_rate: int, to_rate: int, axis: int = 0) -> np.ndarray:
    """Resample ``x`` from ``from_rate`` to ``to_rate`` Hz along ``axis`` (time; the first by default).

    Polyphase filtering (``scipy.signal.resample_poly``) with the ratio reduced by its
    greatest common divisor, so 48 kHz -> 16 kHz filters by 1/3 rather than 16000/48000.
    The result has exactly ``ceil(x.shape[axis] * to_rate / from_rate)`` samples, as float32,
    and the same channels. Raises ``ValueError`` for a rate that is not a positive integer.
    """
    for rate in (from_rate, to_rate):
        if int(rate) != rate or rate <= 0:
            raise ValueError(f"sample rates must be positive whole numbers of Hz, not {rate!r}")
    x = np.asarray(x, dtype=np.float32)
    from_rate, to_rate = int(from_rate), int(to_rate)
    if from_rate == to_rate:
        return x.copy()
    from scipy.signal import resample_poly

    g = math.gcd(from_rate, to_rate)
    return resample_poly(x, to_rate // g, from_rate // g, axis=axis).astype(np.float32, copy=False)


def to_mono(x: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``[samples, channels]`` audio, as ``[samples]`` float32.

    Mono audio (1-D) comes back as a copy. Raises ``ValueError`` for more than two axes.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        return x.astype(np.float32, copy=True)
    if x.ndim != 2:
        raise ValueError(f"audio is [samples] or [samples, channels], not an array of shape {x.shape}")
    return x.mean(axis=1, dtype=np.float64).astype(np.float32)


def take_channel(x: np.ndarray, i: int) -> np.ndarray:
    """Channel ``i`` (from 0; negative counts from the last) of ``[samples, channels]`` audio, as ``[samples]``.

    Raises ``IndexError`` when there is no such channel and ``ValueError`` for mono audio.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"take_channel needs [samples, channels] audio, not an array of shape {x.shape}")
    channels = x.shape[1]
    if not -channels <= i < channels:
        raise IndexError(f"the audio has {channels} channel(s), so there is no channel {i}")
    return np.ascontiguousarray(x[:, i])


def windows(x: np.ndarray, size: int, hop: int, *, pad_last: bool = True) -> np.ndarray:
    """Cut ``x`` into windows of ``size`` samples every ``hop`` samples: ``[n, size, ...]``.

    Window ``k`` starts at sample ``k * hop``. A last window that would run past the end is
    zero-padded when ``pad_last`` (so every sample is in some window) and dropped otherwise;
    audio shorter than one window gives one padded window, or none. Channels, if any, stay
    the last axis. Raises ``ValueError`` unless ``size`` and ``hop`` are positive.
    """
    if size <= 0 or hop <= 0:
        raise ValueError(f"window size and hop must be positive, not {size} and {hop}")
    x = np.asarray(x)
    n = len(x)
    if pad_last:
        count = 1 if n <= size else 1 + math.ceil((n - size) / hop)
    else:
        count = 0 if n < size else 1 + (n - size) // hop
    needed = (count - 1) * hop + size if count else 0
    if needed > n:
        x = np.concatenate([x, np.zeros((needed - n, *x.shape[1:]), dtype=x.dtype)])
    starts = np.arange(count) * hop
    return x[starts[:, None] + np.arange(size)[None, :]]


def pad_or_trim(x: np.ndarray, size: int, axis: int = 0) -> np.ndarray:
    """``x`` cut to its first ``size`` samples, or zero-padded at the end up to ``size``.

    Works along ``axis`` (the first by default), so ``[samples, channels]`` keeps its
    channels. Raises ``ValueError`` for a negative size.
    """
    if size < 0:
        raise ValueError(f"size must not be negative, not {size}")
    x = np.moveaxis(np.asarray(x), axis, 0)
    if len(x) >= size:
        out = x[:size].copy()
    else:
        out = np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), dtype=x.dtype)])
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))


def spectrogram(
    x: np.ndarray,
    rate: int,
    *,
    window_seconds: float = 0.025,
    max_times: int = 600,
    max_freqs: int = 256,
    floor_db: float = -100.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A power spectrogram of ``x`` for a figure: ``(freqs in Hz, times in s, dB [freqs, times])``.

    Multi-channel audio is mixed down first. Windows of ``window_seconds`` (Hann, half
    overlapping) go through ``scipy.signal.spectrogram``; the result is then reduced to at
    most ``max_freqs`` × ``max_times`` cells by averaging power over neighbouring bins, so a
    ten-minute recording still makes a screen-sized array. Power is in dB relative to full
    scale (a full-scale sine is about -3 dB), never below ``floor_db``. Raises ``ValueError``
    for an empty signal or a rate that is not positive.
    """
    if rate <= 0:
        raise ValueError(f"the sample rate must be positive, not {rate}")
    mono = to_mono(x)
    if mono.size == 0:
        raise ValueError("there are no samples to draw")
    from scipy.signal import spectrogram as _spectrogram

    nperseg = max(8, min(len(mono), int(round(window_seconds * rate))))
    freqs, times, power = _spectrogram(
        mono, fs=rate, window="hann", nperseg=nperseg, noverlap=nperseg // 2, scaling="spectrum", mode="psd"
    )
    freqs, power = _pool(freqs, power, max_freqs, axis=0)
    times, power = _pool(times, power, max_times, axis=1)
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(np.maximum(power, 10 ** (floor_db / 10)))
    return freqs.astype(np.float32), times.astype(np.float32), db.astype(np.float32)


def _pool(axis_values: np.ndarray, power: np.ndarray, most: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Average ``power`` over groups of neighbouring bins along ``axis`` so at most ``most`` remain."""
    n = power.shape[axis]
    if n <= most:
        return axis_values, power
    step = math.ceil(n / most)
    groups = np.arange(0, n, step)
    counts = np.diff(np.append(groups, n))
    shape = [1, 1]
    shape[axis] = -1
    pooled = np.add.reduceat(power, groups, axis=axis) / counts.reshape(shape)
    centres = np.add.reduceat(axis_values, groups) / counts
    return centres, pooled


def clipped_fraction(x: np.ndarray, threshold: float = 32767 / 32768) -> float:
    """The share of samples whose magnitude reaches ``threshold`` (0.0 for no samples).

    The default is the top of the 16-bit scale: an int16 recording that clipped has its
    samples pinned at -32768 or 32767, which read -1.0 and 32767/32768 as floats. The loader
    passes the top of each file's own scale (127/128 for 8-bit, 1.0 for float).
    """
    x = np.asarray(x)
    if x.size == 0:
        return 0.0
    return float(np.count_nonzero(np.abs(x) >= np.float32(threshold)) / x.size)


def candidate_rates(window_samples: int) -> list[tuple[int, float]]:
    """How long ``window_samples`` samples last at each common rate: ``[(rate, seconds), …]``.

    For a model input of 144,000 samples: 3.0 s at 48 kHz, 3.27 s at 44.1 kHz, 9.0 s at
    16 kHz, … in ``COMMON_RATES`` order (8 kHz first), so the diagnosis can say which
    recording length each rate implies. Raises ``ValueError`` for a negative count.
    """
    if window_samples < 0:
        raise ValueError(f"a number of samples cannot be negative, not {window_samples}")
    return [(rate, window_samples / rate) for rate in COMMON_RATES]
