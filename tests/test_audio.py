"""Audio loading (any rate/channels/format -> 16 kHz mono) and microphone logic without a device."""
from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicedrag.speech import audio
from voicedrag.speech.audio import (
    SAMPLE_RATE,
    AudioError,
    AudioTooLongError,
    Endpointer,
    MicrophoneConfig,
    MicrophoneRecorder,
    NoMicrophoneError,
    level_from_dbfs,
    load_audio,
    rms_dbfs,
    to_mono_16k,
)


def _tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[spectrum.argmax()])


def test_resample_keeps_frequency_and_level() -> None:
    x = _tone(1000.0, 44_100, 1.0)
    y = to_mono_16k(x, 44_100)
    assert y.dtype == np.float32 and abs(y.size - SAMPLE_RATE) <= 1
    assert abs(_dominant_hz(y, SAMPLE_RATE) - 1000.0) < 2.0
    assert abs(rms_dbfs(y[1000:-1000]) - rms_dbfs(x)) < 0.2


def test_resample_removes_content_above_nyquist() -> None:
    # 7.5 kHz is representable at 16 kHz; 11 kHz is not and must not alias down to 5 kHz.
    x = _tone(11_000.0, 44_100, 1.0)
    y = to_mono_16k(x, 44_100)
    assert rms_dbfs(y[1000:-1000]) < rms_dbfs(x) - 40


@pytest.mark.parametrize(
    ("rate", "channels", "subtype", "fmt", "suffix"),
    [
        (16_000, 1, "PCM_16", "WAV", ".wav"),
        (44_100, 2, "PCM_16", "WAV", ".wav"),
        (8_000, 1, "PCM_U8", "WAV", ".wav"),
        (48_000, 2, "FLOAT", "WAV", ".wav"),
        (22_050, 1, "PCM_24", "FLAC", ".flac"),
        (44_100, 2, "MPEG_LAYER_III", "MP3", ".mp3"),
    ],
)
def test_load_formats(tmp_path: Path, rate: int, channels: int, subtype: str, fmt: str, suffix: str) -> None:
    tone = _tone(440.0, rate, 1.5, 0.4)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path = tmp_path / f"a{suffix}"
    sf.write(path, data, rate, subtype=subtype, format=fmt)
    clip = load_audio(path)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.source_rate == rate and clip.channels == channels
    # MP3 encoders add a little padding; everything else keeps the duration exactly.
    assert abs(clip.seconds - 1.5) < (0.1 if fmt == "MP3" else 1e-3)
    assert abs(clip.samples.size / SAMPLE_RATE - clip.seconds) < 0.01
    assert abs(_dominant_hz(clip.samples, SAMPLE_RATE) - 440.0) < 3.0
    # Stereo is averaged, not summed: the level stays that of one channel.
    tolerance = 1.5 if subtype in ("PCM_U8", "MPEG_LAYER_III") else 0.3
    assert abs(rms_dbfs(clip.samples[4000:-4000]) - rms_dbfs(tone)) < tolerance


def test_one_sample_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "one.wav"
    sf.write(path, np.array([0.25], np.float32), 44_100)
    clip = load_audio(path)
    assert clip.samples.size >= 1 and clip.seconds == pytest.approx(1 / 44_100)


def _wav_header(rate: int, channels: int, frames: int = 50) -> bytes:
    """A PCM-16 WAV whose header declares this rate and channel count, with `frames` silent frames."""
    import struct

    data = b"\x00\x00" * channels * frames
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, rate, (rate * 2 * channels) & 0xFFFFFFFF, 2 * channels, 16)
    return b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: None, "No such audio file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio" * 3), "not a readable"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not a readable"),
        (lambda p: sf.write(p, np.zeros(0, np.float32), 16_000, format="WAV"), "no audio samples"),
        (lambda p: p.mkdir(), "folder"),
        (lambda p: p.write_bytes(_wav_header(2_147_483_647, 1)), "sample rate of 2147483647 Hz"),
        (lambda p: p.write_bytes(_wav_header(16_000, 1000)), "1000 channels"),
    ],
    ids=["missing", "empty", "bad-header", "random-bytes", "zero-frames", "directory", "huge-rate", "channels"],
)
def test_bad_files_give_one_clear_sentence(tmp_path: Path, make: object, needle: str) -> None:
    path = tmp_path / "bad.wav"
    make(path)  # type: ignore[operator]
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert needle in message and str(path) in message
    assert "\n" not in message and "Traceback" not in message


def test_ten_minute_file_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", samplerate=8_000, channels=1, subtype="PCM_U8") as handle:
        block = np.zeros(8_000 * 60, np.float32)
        for _ in range(10):
            handle.write(block)
    started = time.perf_counter()
    with pytest.raises(AudioTooLongError, match=r"600\.0 s long.*limited to 30 s"):
        load_audio(path)
    assert time.perf_counter() - started < 1.0  # refused from the header, not after reading 10 minutes
    assert load_audio(path, max_seconds=None).seconds == pytest.approx(600.0)


def test_level_mapping() -> None:
    assert level_from_dbfs(0.0) == 1.0 and level_from_dbfs(-60.0) == 0.0 and level_from_dbfs(-120.0) == 0.0
    assert 0.45 < level_from_dbfs(-30.0) < 0.55
    assert rms_dbfs(np.zeros(100, np.float32)) == -120.0
    assert rms_dbfs(np.ones(100, np.float32)) == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------- microphone


def _feed(endpointer: Endpointer, levels: list[float], block: float = 0.05) -> list[bool]:
    return [endpointer.feed(level, block) for level in levels]


def test_endpointer_ends_after_trailing_silence() -> None:
    cfg = MicrophoneConfig(trailing_silence_seconds=0.5)
    ep = Endpointer(cfg)
    quiet, loud = -70.0, -20.0
    stops = _feed(ep, [quiet] * 10 + [loud] * 10 + [quiet] * 9)
    assert not any(stops) and ep.started
    assert ep.feed(quiet, 0.05) and ep.reason == "silence"


def test_endpointer_ignores_a_click_and_times_out_without_speech() -> None:
    cfg = MicrophoneConfig(start_timeout_seconds=1.0, min_speech_seconds=0.15)
    ep = Endpointer(cfg)
    stops = _feed(ep, [-70.0] * 5 + [-10.0] + [-70.0] * 13)  # one 50 ms click is not speech
    assert not any(stops) and not ep.started
    assert ep.feed(-70.0, 0.05) and ep.reason == "no_speech"


def test_endpointer_adapts_to_a_noisy_room() -> None:
    cfg = MicrophoneConfig(trailing_silence_seconds=0.3, speech_dbfs=-45.0, above_noise_db=10.0)
    ep = Endpointer(cfg)
    _feed(ep, [-35.0] * 20)  # fan noise above the absolute threshold
    assert not ep.started
    _feed(ep, [-15.0] * 6)
    assert ep.started
    assert _feed(ep, [-35.0] * 6)[-1] and ep.reason == "silence"


def test_endpointer_max_seconds() -> None:
    ep = Endpointer(MicrophoneConfig(max_seconds=1.0))
    assert _feed(ep, [-10.0] * 20)[-1] and ep.reason == "max_seconds"


class _FakeStream:
    """Plays prepared blocks into the recorder's callback from a thread, as PortAudio does."""

    def __init__(self, blocks: list[np.ndarray], callback: object) -> None:
        self.blocks = blocks
        self.callback = callback
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._play, daemon=True)

    def _play(self) -> None:
        for block in self.blocks:
            if self.closed.is_set():
                return
            self.callback(block[:, None], block.size, None, None)  # type: ignore[operator]
            time.sleep(0.001)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.closed.set()

    def close(self) -> None:
        self.closed.set()


def _fake_sounddevice(blocks: list[np.ndarray]) -> types.ModuleType:
    module = types.ModuleType("sounddevice")

    def input_stream(samplerate: int, channels: int, dtype: str, blocksize: int, device: object, callback: object) -> _FakeStream:
        return _FakeStream(blocks, callback)

    module.InputStream = input_stream  # type: ignore[attr-defined]
    return module


def test_recorder_stops_by_itself_and_reports_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    block = 800  # 50 ms at 16 kHz
    rng = np.random.default_rng(1)
    quiet = [(rng.standard_normal(block) * 1e-4).astype(np.float32) for _ in range(6)]
    speech = [(0.3 * np.sin(np.arange(block) * 0.2)).astype(np.float32) for _ in range(12)]
    tail = [(rng.standard_normal(block) * 1e-4).astype(np.float32) for _ in range(60)]
    monkeypatch.setattr(audio, "import_sounddevice", lambda: _fake_sounddevice(quiet + speech + tail))
    levels: list[float] = []
    recorder = MicrophoneRecorder(MicrophoneConfig(trailing_silence_seconds=0.5), on_level=lambda lvl, db: levels.append(lvl))
    recorder.start()
    result = recorder.wait(timeout=5.0)
    assert result.reason == "silence" and result.speech
    # Ends 0.5 s after the speech, well before the 3 s of fake audio run out.
    assert 0.9 <= result.seconds <= 1.6
    assert max(levels) > 0.7 and min(levels) < 0.1  # a 0.3-amplitude sine is -13.5 dBFS
    assert not recorder.recording


def test_recorder_without_portaudio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class _NoPortAudio:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name == "sounddevice":
                raise OSError("PortAudio library not found")
            return None

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(NoMicrophoneError, match="PortAudio.*type the command instead"):
        MicrophoneRecorder().start()
    ok, message = audio.microphone_status()
    assert not ok and "type the command" in message


def test_microphone_status_on_this_machine_never_raises() -> None:
    ok, message = audio.microphone_status()
    assert isinstance(ok, bool) and message
    if not ok:
        assert message.endswith("type the command instead.")
