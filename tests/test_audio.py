"""Tests for lite_debug.audio: each function against a signal whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from lite_debug.audio import (
    COMMON_RATES,
    candidate_rates,
    clipped_fraction,
    pad_or_trim,
    resample,
    spectrogram,
    take_channel,
    to_mono,
    windows,
)


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(("src", "dst"), [(48_000, 16_000), (44_100, 16_000), (16_000, 44_100), (22_050, 48_000), (8_000, 8_000)])
def test_resample_keeps_the_frequency_and_gives_the_exact_length(src: int, dst: int) -> None:
    x = sine(440.0, src, 1.5)
    y = resample(x, src, dst)
    assert y.dtype == np.float32
    assert len(y) == -(-len(x) * dst // src)  # ceil(len * dst / src)
    assert peak_frequency(y, dst) == pytest.approx(440.0, abs=dst / len(y) * 1.5)
    middle = y[len(y) // 4 : -len(y) // 4]  # away from the filter's edges
    assert float(np.max(np.abs(middle))) == pytest.approx(0.5, abs=0.02)


def test_resample_filters_what_the_new_rate_cannot_hold() -> None:
    x = sine(7_000.0, 48_000, 1.0)  # under 16 kHz's limit of 8 kHz: kept
    y = resample(sine(12_000.0, 48_000, 1.0), 48_000, 16_000)  # over it: cannot exist at 16 kHz
    assert float(np.sqrt(np.mean(y**2))) < 0.01  # removed, not aliased down to 4 kHz
    assert float(np.sqrt(np.mean(resample(x, 48_000, 16_000) ** 2))) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_resample_keeps_channels_and_rejects_bad_rates() -> None:
    stereo = np.stack([sine(300, 48_000, 0.5), sine(600, 48_000, 0.5)], axis=1)
    y = resample(stereo, 48_000, 16_000)
    assert y.shape == (8_000, 2)
    assert peak_frequency(y[:, 0], 16_000) == pytest.approx(300, abs=3)
    assert peak_frequency(y[:, 1], 16_000) == pytest.approx(600, abs=3)
    for bad in (0, -16_000, 16_000.5):
        with pytest.raises(ValueError, match="positive whole numbers"):
            resample(stereo, 48_000, bad)  # type: ignore[arg-type]


def test_to_mono_and_take_channel() -> None:
    stereo = np.array([[1.0, 0.0], [0.5, -0.5], [0.25, 0.75]], dtype=np.float32)
    np.testing.assert_array_equal(to_mono(stereo), [0.5, 0.0, 0.5])
    mono = np.array([0.1, 0.2], dtype=np.float32)
    out = to_mono(mono)
    np.testing.assert_array_equal(out, mono)
    assert out is not mono
    np.testing.assert_array_equal(take_channel(stereo, 1), [0.0, -0.5, 0.75])
    np.testing.assert_array_equal(take_channel(stereo, -2), [1.0, 0.5, 0.25])
    assert take_channel(stereo, 0).flags.c_contiguous
    with pytest.raises(IndexError, match="2 channel"):
        take_channel(stereo, 2)
    with pytest.raises(ValueError):
        take_channel(mono, 0)
    with pytest.raises(ValueError):
        to_mono(np.zeros((2, 2, 2)))


def test_windows_pad_or_drop_the_last_partial_window() -> None:
    x = np.arange(10, dtype=np.float32)
    padded = windows(x, 4, 3)
    np.testing.assert_array_equal(padded, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    padded = windows(x, 4, 4)
    np.testing.assert_array_equal(padded, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]])
    dropped = windows(x, 4, 4, pad_last=False)
    np.testing.assert_array_equal(dropped, [[0, 1, 2, 3], [4, 5, 6, 7]])
    assert windows(x[:2], 4, 1).tolist() == [[0, 1, 0, 0]]
    assert windows(x[:2], 4, 1, pad_last=False).shape == (0, 4)
    stereo = np.stack([x, -x], axis=1)
    assert windows(stereo, 4, 4).shape == (3, 4, 2)
    with pytest.raises(ValueError):
        windows(x, 0, 1)


def test_pad_or_trim() -> None:
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(pad_or_trim(x, 3), [0, 1, 2])
    np.testing.assert_array_equal(pad_or_trim(x, 7), [0, 1, 2, 3, 4, 0, 0])
    assert pad_or_trim(np.ones((2, 3)), 4).shape == (4, 3)
    trimmed = pad_or_trim(x, 5)
    trimmed[0] = 9
    assert x[0] == 0  # a copy
    with pytest.raises(ValueError):
        pad_or_trim(x, -1)


def test_spectrogram_finds_the_tone_and_fits_a_screen() -> None:
    rate = 16_000
    x = sine(1_000.0, rate, 60.0)  # a minute: far more frames than a screen
    freqs, times, db = spectrogram(x, rate, max_times=300, max_freqs=128)
    assert db.shape == (len(freqs), len(times)) and len(times) <= 300 and len(freqs) <= 128
    assert times[-1] == pytest.approx(60.0, abs=0.5) and freqs[-1] <= rate / 2
    loudest = float(freqs[int(np.argmax(db.mean(axis=1)))])
    assert loudest == pytest.approx(1_000.0, abs=rate / 2 / len(freqs) * 1.5)
    assert db.max() < 0 and db.min() >= -100.0
    with pytest.raises(ValueError):
        spectrogram(np.zeros(0, np.float32), rate)


def test_clipped_fraction() -> None:
    x = np.array([1.0, -1.0, 32767 / 32768, 0.5, 0.0, -0.99], dtype=np.float32)
    assert clipped_fraction(x) == pytest.approx(3 / 6)
    assert clipped_fraction(x, threshold=1.0) == pytest.approx(2 / 6)
    assert clipped_fraction(np.zeros(0)) == 0.0


def test_candidate_rates_say_how_long_a_window_lasts() -> None:
    rates = dict(candidate_rates(144_000))
    assert list(rates) == list(COMMON_RATES)
    assert rates[48_000] == pytest.approx(3.0)
    assert rates[44_100] == pytest.approx(3.265, abs=0.001)
    assert rates[16_000] == pytest.approx(9.0)
    assert rates[8_000] == pytest.approx(18.0)
    with pytest.raises(ValueError):
        candidate_rates(-1)
