"""`voicedrag transcribe`: speech to text, from files or the microphone.

With --json, one JSON object per line and per file:
``{"file", "text", "seconds", "model", "elapsed", "speech"}``; ``"error"`` (with an
empty text and null seconds) for a file that could not be used, while the other
files still run and the exit code is 2; ``"warning"`` when only part was heard.
Silence or noise gives ``"text": ""`` and ``"speech": false``.  Files longer than
--max-seconds (30 s by default) are refused: this is a tool for short spoken
commands, and a longer file is almost always the wrong one.  ``--mic`` adds
``"end"``: "silence", "max_seconds" or "no_speech".
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from engine.errors import UserError
from voicedrag.cli import argtypes
from voicedrag.cli.output import json_line
from voicedrag.errors import VoicedragError

if TYPE_CHECKING:
    from voicedrag.speech.transcribe import Transcriber


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "transcribe",
        help="turn spoken commands (audio files or the microphone) into text, offline",
        description="Transcribe short spoken commands with Whisper, offline.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="WAV, FLAC or MP3 files, any rate or channel count")
    parser.add_argument(
        "--mic", action="store_true", help="record one command from the microphone, ending after silence"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per file, one per line")
    parser.add_argument("--model", default=None, help="Whisper model name or .pt path (default: tiny.en, offline)")
    parser.add_argument("--no-prompt", action="store_true", help="decode without the command-vocabulary prompt")
    parser.add_argument("--max-seconds", type=argtypes.seconds, default=30.0, help="refuse longer files (default 30)")
    parser.add_argument(
        "--threads",
        type=argtypes.threads,
        default=1,
        help="CPU threads while transcribing (default 1: fastest for short commands)",
    )
    parser.set_defaults(run=run)


def _make_transcriber(args: argparse.Namespace) -> Transcriber:
    import torch

    from voicedrag.speech.transcribe import DEFAULT_PROMPT_WORDS, DecodeSettings, Transcriber, command_vocabulary

    # The front end sets torch's threads once: one is fastest for a short command's decoder, whose
    # dozens of tiny matrix products leave a second thread waiting (benchmarks/asr_latency.py).
    torch.set_num_threads(max(1, args.threads))
    settings = DecodeSettings(use_prompt=not args.no_prompt)
    return Transcriber(model=args.model, prompt_words=command_vocabulary() or DEFAULT_PROMPT_WORDS, settings=settings)


def run(args: argparse.Namespace) -> int:
    if not args.files and not args.mic:
        raise VoicedragError("Give one or more audio files, or --mic to record from the microphone.")
    if args.mic:
        # Check the device before the model load, so a missing microphone fails at once.
        from voicedrag.speech.audio import microphone_status

        ok, message = microphone_status()
        if not ok:
            raise VoicedragError(message)
    transcriber = _make_transcriber(args)
    failed = 0
    if args.mic:
        failed += _run_mic(transcriber, args)
    for path in args.files:
        failed += _run_file(transcriber, path, args)
    return 2 if failed else 0


def _emit(record: dict[str, object], args: argparse.Namespace) -> None:
    if args.json:
        print(json_line(record), flush=True)
    elif "error" in record:
        print(f"{record['file']}: error: {record['error']}", file=sys.stderr, flush=True)
    else:
        text = record["text"] or "(no speech)"
        print(f"{record['file']}: {text}", flush=True)


def _run_file(transcriber: Transcriber, path: str, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    record: dict[str, object] = {"file": path, "text": "", "seconds": None, "model": transcriber.model_name}
    try:
        clip, transcript = transcriber.transcribe_file(path, max_seconds=args.max_seconds)
    except UserError as err:
        record["elapsed"] = round(time.perf_counter() - started, 3)
        record["error"] = str(err)
        _emit(record, args)
        return 1
    record.update(
        text=transcript.text,
        seconds=round(clip.seconds, 3),
        elapsed=round(time.perf_counter() - started, 3),
        speech=transcript.speech,
    )
    if clip.seconds > 30.0:
        # Whisper hears one 30 s window; longer files are only allowed by raising --max-seconds.
        record["warning"] = "only the first 30 s of speech were transcribed."
    _emit(record, args)
    return 0


def _run_mic(transcriber: Transcriber, args: argparse.Namespace) -> int:
    from voicedrag.speech.audio import MicrophoneConfig, record_command

    if not args.json:
        print("Listening... (speak a command; recording ends after a short silence)", file=sys.stderr, flush=True)
    recording = record_command(MicrophoneConfig())
    record: dict[str, object] = {"file": "<microphone>", "model": transcriber.model_name}
    transcript = transcriber.transcribe(recording.samples)
    record.update(
        text=transcript.text,
        seconds=round(recording.seconds, 3),
        elapsed=round(transcript.elapsed, 3),
        speech=transcript.speech,
        end=recording.reason,
    )
    _emit(record, args)
    return 0
