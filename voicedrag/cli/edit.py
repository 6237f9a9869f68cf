"""`voicedrag edit`: the whole pipeline without a screen (words or audio -> drag -> PNG)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from voicedrag.cli.engine import add_drag_args, add_model_args, add_template_arg
from voicedrag.cli.output import json_line
from voicedrag.cli.photo import add_image_args, photo_start


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edit", help="parse a command, find keypoints, plan and drag, headless")
    add_model_args(p)
    add_template_arg(p)
    say = p.add_mutually_exclusive_group(required=True)
    say.add_argument("--say", metavar="TEXT", help='the command, e.g. "open the mouth"')
    say.add_argument("--audio", metavar="FILE", help="a spoken command (WAV, FLAC or MP3)")
    add_drag_args(p)
    add_image_args(p)
    p.set_defaults(run=run_edit)


def run_edit(args: argparse.Namespace) -> int:
    from voicedrag.cli.engine import check_outputs, consume, drag_options, save_outputs
    from voicedrag.editor import Editor, load_kit
    from voicedrag.events import EditRequest, ImageState

    check_outputs(args)
    kit = load_kit(args.model, device=args.device, template=args.template, download=args.download)
    editor = Editor(kit)
    samples = None
    if args.audio:
        from voicedrag.speech.audio import load_audio

        samples = load_audio(args.audio).samples  # a bad file is reported before Whisper loads
    state = photo_start(editor, args)
    if state is None:
        ws, image = editor.seed(args.seed, args.psi)
        state = ImageState(ws, image)
    request = EditRequest(state, text=args.say, audio=samples, drag=drag_options(args))
    outcome = consume(editor, request)
    assert outcome.parsed is not None and outcome.planned is not None and outcome.planned.plan is not None
    report: dict[str, Any] = {}
    if outcome.heard is not None:
        report["transcript"] = outcome.heard.text
        if outcome.heard.source == "grammar":  # the free transcript could not be read as heard
            report["heard"] = outcome.heard.free_text
    drag = save_outputs(outcome, args, kit.size)
    if state.photo is not None:
        drag["photo"] = state.photo.to_json()
    report.update(
        {
            "text": outcome.parsed.result.text,
            "edits": list(outcome.planned.edits),
            "plan": outcome.planned.plan.to_json(),
            **drag,
        }
    )
    if args.json:
        print(json_line(report))
    elif not drag["interrupted"]:
        print(f"wrote {drag['out']}", file=sys.stderr)
    return 130 if drag["interrupted"] else 0
