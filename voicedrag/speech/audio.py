"""Audio in: files (WAV, FLAC, MP3) and the microphone, as 16 kHz mono float32.

Files are read with libsndfile (``soundfile``), which decodes WAV, FLAC and MP3
without ffmpeg; resampling uses a polyphase filter (``scipy.signal.resample_poly``)
so that no aliasing reaches the recogniser.  ``sounddevice`` (PortAudio) is
imported only when the microphone is used: a machine without PortAudio or
without an input device still imports this module, and typing keeps working.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from voicedrag.errors import VoicedragError

if TYPE_CHECKING:
    import sounddevice

SAMPLE_RATE = 16_000
# A tool for spoken commands: anything longer is almost certainly the wrong file
# (a meeting, a song), and Whisper only sees 30 s at once anyway.
DEFAULT_MAX_SECONDS = 30.0
# The level a UI shows maps [LEVEL_FLOOR_DBFS, 0] dBFS onto [0, 1].
LEVEL_FLOOR_DBFS = -60.0
# Block durations add up in floating point; 10 x 0.05 s must count as 0.5 s.
_EPS = 1e-6


class AudioError(VoicedragError):
    """An audio file or device that cannot be used; the message says what to do."""


class AudioTooLongError(AudioError):
    """A file longer than the command limit."""


class NoMicrophoneError(AudioError):
    """No PortAudio library or no input device: type the command instead."""


@dataclass(frozen=True)
class AudioClip:
    """Audio ready for the recogniser."""

    samples: np.ndarray  # [n] float32 in [-1, 1], 16 kHz mono
    seconds: float  # duration of the source, before any resampling
    source_rate: int
    channels: int
    source: str

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE


def to_mono_16k(data: np.ndarray, rate: int) -> np.ndarray:
    """[n] or [n, channels] at ``rate`` -> [m] float32 mono at 16 kHz."""
    audio = np.asarray(data, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE and audio.size:
        divisor = gcd(int(rate), SAMPLE_RATE)
        up, down = SAMPLE_RATE // divisor, int(rate) // divisor
        if audio.size < 2:
            # A polyphase filter needs more than one sample; keep the length right.
            audio = np.repeat(audio, max(1, round(audio.size * up / down)))
        else:
            from scipy.signal import resample_poly

            audio = resample_poly(audio, up, down).astype(np.float32)
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)


MIN_RATE, MAX_RATE = 1_000, 768_000  # Hz
MAX_CHANNELS = 64


def load_audio(path: str | Path, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> AudioClip:
    """Read a WAV/FLAC/MP3 file of any rate and channel count; errors are one clear sentence."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError(f"No such audio file: {p}; check the path.")
    if p.is_dir():
        raise AudioError(f"{p} is a folder, not an audio file; give a WAV, FLAC or MP3 file.")
    if p.stat().st_size == 0:
        raise AudioError(f"{p} is empty (0 bytes); record the command again.")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(
            f"{p} is not a readable WAV, FLAC or MP3 file ({_short(err)}); convert it to one of those."
        ) from err
    rate = int(info.samplerate)
    if rate <= 0:
        raise AudioError(f"{p} declares no sample rate; convert it to a standard WAV, FLAC or MP3 file.")
    # Checked from the header before any sample is read: a rate or channel count no recorder
    # makes is a damaged or crafted file, and resampling from it would take unbounded time.
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(
            f"{p} declares a sample rate of {rate} Hz, outside {MIN_RATE}-{MAX_RATE} Hz; "
            "convert it to a standard WAV, FLAC or MP3 file (e.g. `sox in.wav -r 16000 out.wav`)."
        )
    if not 1 <= int(info.channels) <= MAX_CHANNELS:
        raise AudioError(f"{p} declares {info.channels} channels; convert it to mono or stereo.")
    if max_seconds is not None and 0 < info.frames and info.frames / rate > max_seconds:
        raise AudioTooLongError(
            f"{p} is {info.frames / rate:.1f} s long, but spoken commands are limited to {max_seconds:g} s; "
            "cut out the command (e.g. `sox in.wav cmd.wav trim START 10`) or raise --max-seconds."
        )
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise AudioError(
            f"{p} could not be decoded ({_short(err)}); the file may be damaged, record it again."
        ) from err
    if data.shape[0] == 0:
        raise AudioError(f"{p} contains no audio samples; record the command again.")
    seconds = data.shape[0] / rate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioTooLongError(
            f"{p} is {seconds:.1f} s long, but spoken commands are limited to {max_seconds:g} s; "
            "cut out the command or raise --max-seconds."
        )
    return AudioClip(to_mono_16k(data, rate), seconds, int(rate), int(data.shape[1]), str(p))


def _short(err: BaseException) -> str:
    text = str(err).strip().rstrip(".")
    return text.splitlines()[0][:160] if text else type(err).__name__


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale; -inf-safe (floors at -120)."""
    if samples.size == 0:
        return -120.0
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    return max(-120.0, 10.0 * math.log10(power + 1e-12))


def level_from_dbfs(dbfs: float) -> float:
    """Map dBFS onto 0..1 for a level bar."""
    return float(min(1.0, max(0.0, (dbfs - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS)))


# ----------------------------------------------------------------------------- microphone


@dataclass(frozen=True)
class MicrophoneConfig:
    sample_rate: int = SAMPLE_RATE
    block_seconds: float = 0.05
    # A block is voiced when it is this loud and clearly above the noise heard before speech.
    speech_dbfs: float = -45.0
    above_noise_db: float = 10.0
    trailing_silence_seconds: float = 0.9
    min_speech_seconds: float = 0.15
    max_seconds: float = 15.0
    # Stop if nobody speaks at all within this time.
    start_timeout_seconds: float = 8.0
    device: int | str | None = None


@dataclass
class Endpointer:
    """Decides, block by block, when a spoken command has ended (no device needed, so testable)."""

    config: MicrophoneConfig
    noise_dbfs: float | None = None
    speech_seconds: float = 0.0
    silence_seconds: float = 0.0
    total_seconds: float = 0.0
    started: bool = False
    reason: str = ""

    def feed(self, dbfs: float, seconds: float) -> bool:
        """Account for one block; True when recording should stop (``reason`` says why)."""
        cfg = self.config
        self.total_seconds += seconds
        # The quietest block so far is the room's noise: a fan above the absolute threshold
        # then does not count as speech, and its return counts as silence.
        self.noise_dbfs = dbfs if self.noise_dbfs is None else min(self.noise_dbfs, dbfs)
        threshold = max(cfg.speech_dbfs, self.noise_dbfs + cfg.above_noise_db)
        voiced = dbfs >= threshold
        if not self.started:
            self.speech_seconds = self.speech_seconds + seconds if voiced else 0.0
            if self.speech_seconds >= cfg.min_speech_seconds - _EPS:
                self.started = True
        else:
            self.silence_seconds = 0.0 if voiced else self.silence_seconds + seconds
            if self.silence_seconds >= cfg.trailing_silence_seconds - _EPS:
                self.reason = "silence"
                return True
        if self.total_seconds >= cfg.max_seconds - _EPS:
            self.reason = "max_seconds"
            return True
        if not self.started and self.total_seconds >= cfg.start_timeout_seconds - _EPS:
            self.reason = "no_speech"
            return True
        return False


def import_sounddevice() -> ModuleType:
    """Import PortAudio's binding lazily; a missing library becomes a clear NoMicrophoneError."""
    try:
        import sounddevice
    except OSError as err:  # "PortAudio library not found"
        raise NoMicrophoneError(
            "The microphone needs the PortAudio library (apt-get install libportaudio2); type the command instead."
        ) from err
    except ImportError as err:
        raise NoMicrophoneError(
            "The microphone needs the sounddevice package (pip install sounddevice); type the command instead."
        ) from err
    return sounddevice


def microphone_status(device: int | str | None = None) -> tuple[bool, str]:
    """(usable, message) without raising: for a UI that greys out its microphone button."""
    try:
        sd = import_sounddevice()
        sd.query_devices(device, kind="input")
    except NoMicrophoneError as err:
        return False, str(err)
    except Exception:  # PortAudioError, ValueError: no such device
        return False, "No microphone was found on this machine; type the command instead."
    return True, "microphone ready"


@dataclass
class Recording:
    samples: np.ndarray  # [n] float32, 16 kHz mono
    seconds: float
    reason: str  # "silence", "max_seconds", "no_speech" or "stopped"
    speech: bool


@dataclass
class MicrophoneRecorder:
    """Record from the default input until trailing silence, ``stop()`` or the time limit.

    ``level`` (0..1) and ``level_dbfs`` can be polled; ``on_level`` is called from
    PortAudio's thread with (level, dbfs) for every block, so a UI must hand it
    over to its own thread (e.g. Textual's ``call_from_thread``).
    """

    config: MicrophoneConfig = field(default_factory=MicrophoneConfig)
    on_level: Callable[[float, float], object] | None = None  # its result is ignored
    level: float = 0.0
    level_dbfs: float = -120.0

    def __post_init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stream: sounddevice.InputStream | None = None
        self._endpointer = Endpointer(self.config)
        self._reason = ""

    @property
    def recording(self) -> bool:
        return self._stream is not None and not self._done.is_set()

    def start(self) -> None:
        sd = import_sounddevice()
        self._blocks = []
        self._done.clear()
        self._endpointer = Endpointer(self.config)
        self._reason = ""
        cfg = self.config
        try:
            stream = sd.InputStream(
                samplerate=cfg.sample_rate,
                channels=1,
                dtype="float32",
                blocksize=max(1, int(cfg.block_seconds * cfg.sample_rate)),
                device=cfg.device,
                callback=self._callback,
            )
            stream.start()
        except Exception as err:  # PortAudioError has no stable import path before sounddevice loads
            raise NoMicrophoneError(
                f"No microphone could be opened ({_short(err)}); connect one or type the command instead."
            ) from err
        self._stream = stream

    def _callback(self, indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        block = np.array(indata[:, 0] if indata.ndim == 2 else indata, dtype=np.float32)
        dbfs = rms_dbfs(block)
        self.level_dbfs = dbfs
        self.level = level_from_dbfs(dbfs)
        with self._lock:
            self._blocks.append(block)
        if self.on_level is not None:
            self.on_level(self.level, dbfs)
        if not self._done.is_set() and self._endpointer.feed(dbfs, frames / self.config.sample_rate):
            self._reason = self._endpointer.reason
            self._done.set()

    def wait(self, timeout: float | None = None) -> Recording:
        """Block until the command ends by itself (or ``timeout``), then close the device."""
        limit = self.config.max_seconds + 2.0 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self._done.wait(0.05):
            if time.monotonic() > deadline:
                break
        return self.stop()

    def stop(self) -> Recording:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                pass  # the device may already be gone (unplugged); the audio so far is kept
        if not self._done.is_set():
            self._reason = self._reason or "stopped"
            self._done.set()
        with self._lock:
            samples = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)
        samples = to_mono_16k(samples, self.config.sample_rate)
        return Recording(samples, samples.size / SAMPLE_RATE, self._reason, self._endpointer.started)


def record_command(
    config: MicrophoneConfig | None = None, on_level: Callable[[float, float], None] | None = None
) -> Recording:
    """Record one spoken command from the microphone, ending after trailing silence."""
    recorder = MicrophoneRecorder(config or MicrophoneConfig(), on_level)
    recorder.start()
    try:
        return recorder.wait()
    except KeyboardInterrupt:
        recorder.stop()
        raise
