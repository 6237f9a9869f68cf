"""Noise suppression before recognition (voicedrag.speech.denoise)."""
from __future__ import annotations

import numpy as np
import pytest

from voicedrag.speech.denoise import NoiseSuppression, noise_power, suppress_noise, wiener_gains
from voicedrag.speech.transcribe import detect_voice

RATE = 16000


def _voice_like(seconds: float = 2.0) -> np.ndarray:
    """Harmonic bursts with pauses between them: speech's shape in time and frequency."""
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for f0 in (140.0,) for k in range(1, 12))
    envelope = (np.sin(2 * np.pi * 2.5 * t) > 0.2).astype(np.float64)  # on about 40% of the time
    return (0.1 * voiced * envelope).astype(np.float32)


def _snr_db(clean: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean**2) / np.sum((other - clean) ** 2)))


def test_steady_noise_is_turned_down_and_the_voice_kept() -> None:
    clean = _voice_like()
    voiced = clean[np.abs(clean) > 0.01]
    noise = np.random.default_rng(0).standard_normal(clean.size).astype(np.float32)
    noisy = clean + noise * np.sqrt(np.mean(voiced**2) / 10)  # 10 dB SNR over the voiced part
    out = suppress_noise(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert _snr_db(clean, out) > _snr_db(clean, noisy) + 5.0


def test_clean_audio_passes_almost_unchanged() -> None:
    clean = _voice_like()
    out = suppress_noise(clean)
    assert _snr_db(clean, out) > 25.0


def test_the_noise_estimate_is_the_mean_power_of_gaussian_noise() -> None:
    rng = np.random.default_rng(1)
    power = rng.exponential(scale=3.0, size=(64, 4000))  # a bin's power of Gaussian noise
    estimate = noise_power(power, 20.0)
    assert estimate.shape == (64, 1)
    assert np.allclose(estimate, 3.0, rtol=0.1)


def test_gains_stay_between_the_floor_and_one() -> None:
    rng = np.random.default_rng(2)
    power = rng.exponential(size=(32, 200)) * np.where(rng.random((32, 200)) < 0.3, 50.0, 1.0)
    gains = wiener_gains(power, np.ones((32, 1)), smoothing=0.98, floor_gain=0.1)
    assert gains.min() >= 0.1 and gains.max() < 1.0
    assert gains[power > 40].mean() > gains[power < 2].mean() + 0.3  # loud bins are kept


@pytest.mark.parametrize("samples", [np.zeros(0, np.float32), np.zeros(100, np.float32), np.zeros(32000, np.float32)])
def test_empty_short_or_silent_audio_comes_back_as_it_was(samples: np.ndarray) -> None:
    out = suppress_noise(samples)
    assert out.shape == samples.shape and not np.any(out)


def test_steady_noise_alone_is_still_no_speech() -> None:
    rng = np.random.default_rng(3)
    for scale in (0.003, 0.05):
        hiss = (rng.standard_normal(3 * RATE) * scale).astype(np.float32)
        assert not detect_voice(suppress_noise(hiss)).speech


def test_settings_change_the_result() -> None:
    noisy = _voice_like() + np.random.default_rng(4).standard_normal(2 * RATE).astype(np.float32) * 0.02
    soft = suppress_noise(noisy, NoiseSuppression(floor_gain=0.5))
    hard = suppress_noise(noisy, NoiseSuppression(floor_gain=0.05))
    assert np.sum(hard**2) < np.sum(soft**2)
