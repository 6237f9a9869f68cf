"""`voicedrag transcribe`: JSON lines, per-file errors, exit codes, and the microphone without a device."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicedrag.speech.audio import microphone_status
from voicedrag.cli import main

ROOT = Path(__file__).resolve().parents[1]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _speak(text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    return path


@needs_espeak
def test_transcribe_many_files_with_bad_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _speak("close the eyes", tmp_path / "good.wav")
    speech, rate = sf.read(good, dtype="float32")
    stereo = tmp_path / "stereo44k.flac"
    from scipy.signal import resample_poly

    up = resample_poly(speech, 44_100 // 50, rate // 50).astype(np.float32)
    sf.write(stereo, np.stack([up, up], axis=1), 44_100)
    eight_bit = tmp_path / "eight.wav"
    sf.write(eight_bit, speech, rate, subtype="PCM_U8")
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(rate * 2, np.float32), rate)
    one = tmp_path / "one.wav"
    sf.write(one, np.array([0.1], np.float32), rate)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"ID3" + bytes(range(256)) * 20)
    long = tmp_path / "ten_minutes.wav"
    with sf.SoundFile(long, "w", samplerate=8000, channels=1, subtype="PCM_U8") as handle:
        for _ in range(10):
            handle.write(np.zeros(8000 * 60, np.float32))
    missing = tmp_path / "missing.wav"

    files = [good, stereo, eight_bit, silence, one, empty, corrupt, long, missing]
    code = main(["transcribe", *map(str, files), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 2  # some files failed, the others were still transcribed
    records = [json.loads(line) for line in out]
    assert [r["file"] for r in records] == [str(f) for f in files]
    by_name = {Path(r["file"]).name: r for r in records}
    for r in records:
        assert {"file", "text", "seconds", "model", "elapsed"} <= r.keys() and r["model"] == "tiny.en"
    for name in ("good.wav", "stereo44k.flac", "eight.wav"):
        assert "close the eyes" in by_name[name]["text"].lower() and "error" not in by_name[name]
    assert by_name["stereo44k.flac"]["seconds"] == pytest.approx(len(speech) / rate, abs=0.01)
    assert by_name["silence.wav"]["text"] == "" and by_name["silence.wav"]["seconds"] == pytest.approx(2.0)
    assert by_name["one.wav"]["text"] == "" and "error" not in by_name["one.wav"]
    assert "empty" in by_name["empty.wav"]["error"]
    assert "not a readable" in by_name["corrupt.mp3"]["error"]
    assert "600.0 s long" in by_name["ten_minutes.wav"]["error"]
    assert "No such audio file" in by_name["missing.wav"]["error"]
    for name in ("empty.wav", "corrupt.mp3", "ten_minutes.wav", "missing.wav"):
        assert by_name[name]["text"] == "" and "\n" not in by_name[name]["error"]


def test_transcribe_needs_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe"]) == 2
    assert "Give one or more audio files, or --mic" in capsys.readouterr().err


@pytest.mark.skipif(microphone_status()[0], reason="this machine has a microphone")
def test_mic_without_device_is_one_clear_sentence() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "voicedrag", "transcribe", "--mic", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("type the command instead.")
    assert proc.stderr.count("\n") == 1


@needs_espeak
def test_mic_json_with_a_stand_in_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The --mic path end to end, with the device replaced by a recording of espeak-ng speech."""
    from voicedrag.speech import audio

    samples = audio.load_audio(_speak("raise the left ear", tmp_path / "m.wav")).samples
    padded = np.concatenate([np.zeros(8000, np.float32), samples, np.zeros(16000, np.float32)])
    monkeypatch.setattr(audio, "microphone_status", lambda device=None: (True, "microphone ready"))
    monkeypatch.setattr(
        audio, "record_command",
        lambda config=None, on_level=None: audio.Recording(padded, padded.size / 16000, "silence", True),
    )
    assert main(["transcribe", "--mic", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["file"] == "<microphone>" and record["end"] == "silence"
    assert "left ear" in record["text"].lower()
    assert record["seconds"] == pytest.approx(padded.size / 16000, abs=1e-3)
