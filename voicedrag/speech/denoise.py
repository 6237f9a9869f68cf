"""Noise suppression before recognition: a Wiener filter for steady background noise.

Whisper tiny.en hears a command spoken over a fan or a hiss (white noise at 10 dB SNR) as other
words: the noise fills every mel band that the speech leaves quiet, and the decoder then explains
it as sounds. A short command is mostly speech, but in any one frequency bin speech comes and
goes, so a low percentile of each bin's power over the clip is a fair estimate of a steady
noise's power there. Each short-time spectrum is then scaled by a Wiener gain whose a-priori SNR
follows the decision-directed rule (Ephraim and Malah, 1984): the estimate leans on the last
frame's cleaned power, so the gain changes smoothly and leaves little "musical" noise, and it
never falls below `floor_gain`, so quiet speech is turned down, not cut.

Audio without steady noise (a clean recording, digital silence between words) has a noise estimate
near zero and passes almost unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voicedrag.speech.audio import SAMPLE_RATE


@dataclass(frozen=True)
class NoiseSuppression:
    # Each bin's noise power is this percentile of its power over the clip, divided by what that
    # percentile is for exponentially distributed power (the power of Gaussian noise in a bin), so
    # that it estimates the mean (the 10th percentile understood 5 fewer of 120 commands at 10 dB).
    percentile: float = 20.0
    # Weight of the last frame's cleaned power in the a-priori SNR. The classic 0.98 smooths more;
    # on the spoken commands at 10 dB SNR 0.95 understood 3 more of 120 (0.9: 6 fewer).
    smoothing: float = 0.95
    # The least gain of a bin (0.05: -26 dB; 0.1 understood 2 fewer of 120 at 10 dB SNR).
    floor_gain: float = 0.05
    # 32 ms frames, 8 ms apart, at SAMPLE_RATE (16 kHz).
    n_fft: int = 512
    hop: int = 128


def noise_power(power: np.ndarray, percentile: float) -> np.ndarray:
    """Per bin, the steady noise's mean power from a low percentile of its power over time: [F, 1]."""
    q = percentile / 100.0
    return np.percentile(power, percentile, axis=1, keepdims=True) / -np.log1p(-q)


def wiener_gains(power: np.ndarray, noise: np.ndarray, smoothing: float, floor_gain: float) -> np.ndarray:
    """Decision-directed Wiener gains [F, T] for the power spectrogram [F, T] over noise [F, 1]."""
    noise = np.maximum(noise[:, 0], 1e-12)
    gains = np.empty_like(power)
    cleaned = np.zeros(power.shape[0])  # the last frame's cleaned power
    for t in range(power.shape[1]):  # each frame's estimate needs the one before: a recursion
        posterior = power[:, t] / noise
        prior = smoothing * cleaned / noise + (1.0 - smoothing) * np.maximum(posterior - 1.0, 0.0)
        g = np.maximum(prior / (1.0 + prior), floor_gain)
        gains[:, t] = g
        cleaned = g * g * power[:, t]
    return gains


def suppress_noise(
    samples: np.ndarray, settings: NoiseSuppression = NoiseSuppression(), sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The audio with its steady noise turned down: float32, the same length."""
    from scipy.signal import istft, stft

    audio = np.asarray(samples, dtype=np.float32).reshape(-1)
    if audio.size < settings.n_fft or not np.any(audio):
        return audio
    overlap = settings.n_fft - settings.hop
    _, _, spec = stft(audio, fs=sample_rate, nperseg=settings.n_fft, noverlap=overlap, window="hann")
    power = spec.real**2 + spec.imag**2
    gains = wiener_gains(power, noise_power(power, settings.percentile), settings.smoothing, settings.floor_gain)
    _, out = istft(spec * gains, fs=sample_rate, nperseg=settings.n_fft, noverlap=overlap, window="hann")
    out = out[: audio.size]
    if out.size < audio.size:  # istft can end a few samples short of an odd length
        out = np.pad(out, (0, audio.size - out.size))
    return out.astype(np.float32)
