"""`voicedrag edit`: the whole pipeline without a screen (words or audio -> drag -> PNG)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from voicedrag.errors import VoicedragError
from voicedrag.cli.engine import add_drag_args, add_model_args, add_template_arg
from voicedrag.cli.output import json_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edit", help="parse a command, find keypoints, plan and drag, headless")
    add_model_args(p)
    add_template_arg(p)
    say = p.add_mutually_exclusive_group(required=True)
    say.add_argument("--say", metavar="TEXT", help='the command, e.g. "open the mouth"')
    say.add_argument("--audio", metavar="FILE", help="a spoken command (WAV, FLAC or MP3)")
    add_drag_args(p)
    p.set_defaults(run=run_edit)


def run_edit(args: argparse.Namespace) -> int:
    from voicedrag.cli.engine import check_outputs, drag_and_save
    from voicedrag.editor import Editor, load_kit

    check_outputs(args)
    kit = load_kit(args.model, device=args.device, template=args.template, download=args.download)
    editor = Editor(kit)
    report: dict[str, Any] = {}
    text = args.say
    if args.audio:
        from voicedrag.speech.audio import load_audio

        clip = load_audio(args.audio)  # a bad file is reported before Whisper loads
        heard, choice = editor.hear(kit.transcriber(), clip.samples)
        text = choice.text
        report["transcript"] = text
        if choice.source == "grammar":  # the free transcript could not be read; the grammar's command was likelier
            report["heard"] = heard.text
            print(f"voicedrag: heard {choice.free_text or '(unsure)'!r}; read as {text!r}.", file=sys.stderr)
        if not text.strip():
            raise VoicedragError(f"no speech was heard in {args.audio}; record the command again, closer to the microphone.")
    parse = editor.parse(text)
    ws, image = editor.seed(args.seed, args.psi)
    planned = editor.plan(parse, image, ws=ws)
    for warning in planned.warnings:
        print(f"voicedrag: {warning}", file=sys.stderr)
    drag = drag_and_save(editor, ws, planned.pairs, planned.mask, args)
    report.update({
        "text": text,
        "edits": [e.to_json() for e in parse.edits],
        "plan": planned.plan.to_json(),
        **drag,
    })
    if args.json:
        print(json_line(report))
    elif not drag["interrupted"]:
        print(f"wrote {drag['out']}", file=sys.stderr)
    return 130 if drag["interrupted"] else 0
