"""`voicedrag parse`: show what a command means, as JSON or plain text.

TEXT is one command, or '-' for one command per line on standard input.
`--audio FILE` transcribes a spoken command offline (Whisper, prompted with the
rules' vocabulary) and parses the transcript; its JSON adds "transcript" and
"audio" to the parse result's fields.
"""

from __future__ import annotations

import argparse
import io
import sys

from voicedrag.cli.output import json_line
from voicedrag.errors import VoicedragError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parse",
        help="show how a typed, transcribed or spoken command is understood",
        description="Parse a command into a control word or edit intents. TEXT '-' reads one command "
        "per line from standard input (the models load once); --audio FILE transcribes a "
        "spoken command first.",
    )
    p.add_argument("text", nargs="?", default=None, help="the command, or '-' for one command per line on stdin")
    p.add_argument(
        "--audio",
        metavar="FILE",
        default=None,
        help="a spoken command (WAV, FLAC or MP3) to transcribe offline and then parse",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per command")
    p.add_argument("--rules", default=None, help="rules file (.toml) or shipped rules name; default: face")
    p.add_argument(
        "--no-embeddings",
        action="store_true",
        help="grammar and mishearing correction only, without the sentence model",
    )
    p.set_defaults(run=run)


def _plain(result: object) -> str:
    from voicedrag.language.commands import ParseResult

    assert isinstance(result, ParseResult)
    lines = []
    if result.corrected and result.corrected != result.text.strip().lower():
        lines.append(f"heard as: {result.corrected}")
    if result.error:
        lines.append(f"error: {result.error}")
    elif result.control:
        lines.append(f"control: {result.control}")
    for e in result.edits:
        extra = []
        if e.amount != 1.0:
            extra.append(f"amount {e.amount:g}")
        if e.pixels is not None:
            extra.append(f"{e.pixels:g} px")
        lines.append(f"edit: {e.phrase()}" + (f" ({', '.join(extra)})" if extra else ""))
    lines.extend(f"note: {w}" for w in result.warnings)
    return "\n".join(lines)


def _run_audio(args: argparse.Namespace, parser: object) -> int:
    from voicedrag.language.commands import CommandParser, vocabulary
    from voicedrag.speech.audio import load_audio

    assert isinstance(parser, CommandParser)
    # Read the file before loading Whisper, so a bad file is reported at once.
    clip = load_audio(args.audio)
    from voicedrag.speech.listen import Listener
    from voicedrag.speech.transcribe import Transcriber

    # The words heard as `edit --audio` and the TUI hear them (one Listener), from the rules alone.
    heard, choice = Listener(parser, Transcriber(prompt_words=vocabulary(parser.rules))).hear(clip.samples)
    result = parser.parse(choice.text)
    if args.json:
        record = result.to_json()
        record["transcript"] = choice.text
        record["heard"] = heard.text
        record["audio"] = args.audio
        print(json_line(record))
    else:
        if choice.source == "grammar":
            print(f"heard: {heard.text or '(unsure)'}")
        print(f"transcript: {choice.text or '(no speech)'}")
        print(_plain(result))
    return 0


def run(args: argparse.Namespace) -> int:
    from voicedrag.language.commands import CommandParser
    from voicedrag.planning.rules import default_rules, load_rules

    if args.audio is not None and args.text is not None:
        raise VoicedragError("give either a typed command or --audio FILE, not both.")
    if args.audio is None and args.text is None:
        raise VoicedragError(
            "give a command to parse, '-' to read commands from standard input, or --audio FILE for a spoken one."
        )
    rules = load_rules(args.rules) if args.rules else default_rules()
    parser = CommandParser(rules, use_embeddings=not args.no_embeddings)
    if args.audio is not None:
        return _run_audio(args, parser)
    if args.text != "-":
        result = parser.parse(args.text)
        print(json_line(result.to_json()) if args.json else _plain(result))
        # Not understanding a command is a result (in "error"), not a failure of the tool.
        return 0
    if not args.no_embeddings:
        parser.load()
    # A byte that is not UTF-8 becomes U+FFFD, whatever the locale: one bad line must not end the
    # stream (the parser then reads it as a word it does not know).
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip() and not args.json:
            continue
        result = parser.parse(line)
        print(json_line(result.to_json()) if args.json else _plain(result), flush=True)
    return 0
