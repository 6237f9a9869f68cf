"""Record what Whisper tiny.en really hears for face-edit commands spoken by espeak-ng.

Writes tests/data/whisper_mishearings.tsv: one row per (voice, speed, command) with
the transcript without and with the vocabulary prompt, using the same decoding
settings as voicedrag.speech.transcribe.Transcriber.  The command parser uses the rows as
test cases for what speech recognition actually produces.

    .venv/bin/python benchmarks/collect_mishearings.py [--out PATH] [--limit N]

Deterministic: espeak-ng is deterministic and decoding is greedy at temperature 0.
Prints a summary table and, as its last line, one JSON object.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMMANDS: tuple[str, ...] = (
    "open the mouth",
    "open the mouth a little",
    "open the mouth wide",
    "close the mouth",
    "close the left eye",
    "close the right eye",
    "close the eyes",
    "open the eyes",
    "open the right eye a bit",
    "raise both ears",
    "raise the left ear",
    "lower the right ear",
    "lower both ears",
    "turn the head left",
    "turn the head right",
    "turn the head a little to the left",
    "tilt the head",
    "tilt the head to the right",
    "nod",
    "move the nose up by 4 pixels",
    "move the nose down",
    "move the left eye up by 10 pixels",
    "make the nose longer",
    "make the nose shorter",
    "make the mouth wider",
    "make the eyes bigger",
    "make the ears smaller",
    "smile",
    "smile more",
    "frown",
    "widen the mouth",
    "narrow the eyes",
    "raise the eyebrows",
    "raise the chin",
    "lower the jaw",
    "open the mouth and close the eyes",
    "raise the left ear and lower the right ear",
    "drag 30,40 to 50,60",
    "drag from 100 100 to 120 90",
    "undo",
    "redo",
    "reset",
    "save the picture",
    "save",
    "stop",
    "cancel",
    "drop the jaw",
    "perk up the ears",
    "look to the right",
    "look left",
    "make him grin",
    "make her smile",
    "wink",
    "shut both eyes",
    "pull the mouth corners up",
    "push the nose left",
    "move the mouth down a bit",
    "a lot more",
    "less",
    "again",
)

# (espeak-ng voice, words per minute): male and female, US and British, slow to fast.
VOICES: tuple[tuple[str, int], ...] = (
    ("en-us", 150),
    ("en-gb", 175),
    ("en-us+f3", 130),
    ("en-gb-x-rp+m3", 200),
)


@dataclass
class Row:
    voice: str
    speed: int
    spoken: str
    no_prompt: str
    with_prompt: str


def speak(text: str, voice: str, speed: int, out: Path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True, capture_output=True)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "whisper_mishearings.tsv")
    parser.add_argument("--limit", type=int, default=0, help="only the first N commands (0 = all)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # the machine is shared; one thread keeps the others responsive
    from voicedrag.speech.audio import load_audio
    from voicedrag.speech.transcribe import DEFAULT_PROMPT_WORDS, Transcriber, command_vocabulary

    transcriber = Transcriber(prompt_words=command_vocabulary() or DEFAULT_PROMPT_WORDS)
    commands = COMMANDS[: args.limit] if args.limit else COMMANDS
    rows: list[Row] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for voice, speed in VOICES:
            for i, command in enumerate(commands):
                wav = Path(tmp) / f"{i}.wav"
                speak(command, voice, speed, wav)
                samples = load_audio(wav).samples
                plain = transcriber.transcribe(samples, use_prompt=False).text
                prompted = transcriber.transcribe(samples, use_prompt=True).text
                rows.append(Row(voice, speed, command, plain, prompted))
    elapsed = time.perf_counter() - started

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["voice", "speed", "spoken", "whisper_no_prompt", "whisper_with_prompt"])
        for r in rows:
            writer.writerow([r.voice, r.speed, r.spoken, r.no_prompt, r.with_prompt])

    exact_plain = sum(words(r.no_prompt) == words(r.spoken) for r in rows)
    exact_prompt = sum(words(r.with_prompt) == words(r.spoken) for r in rows)
    print(f"{'voice':<16}{'speed':>6}{'exact no prompt':>18}{'exact with prompt':>20}")
    for voice, speed in VOICES:
        mine = [r for r in rows if r.voice == voice]
        a = sum(words(r.no_prompt) == words(r.spoken) for r in mine)
        b = sum(words(r.with_prompt) == words(r.spoken) for r in mine)
        print(f"{voice:<16}{speed:>6}{a:>12}/{len(mine):<5}{b:>14}/{len(mine):<5}")
    print(f"wrote {len(rows)} rows to {args.out} in {elapsed:.0f} s (model {transcriber.model_name}, "
          f"encoder_seconds={transcriber.settings.encoder_seconds}, greedy, prompt {transcriber.prompt!r})")
    print(json.dumps({
        "rows": len(rows),
        "exact_no_prompt": exact_plain,
        "exact_with_prompt": exact_prompt,
        "model": transcriber.model_name,
        "encoder_seconds": transcriber.settings.encoder_seconds,
        "seconds": round(elapsed, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
