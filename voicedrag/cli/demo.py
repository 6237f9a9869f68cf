"""`voicedrag demo`: one drag from start to finish, with before/after pictures and a GIF."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from engine.types import DragPair, Point
from voicedrag.cli import argtypes
from voicedrag.cli.output import json_line
from voicedrag.dragio import check_writable, save_gif, save_png
from voicedrag.errors import VoicedragError

# Reference generators recorded from the official code sit beside the repository in development
# checkouts; the demo falls back to one of them while no embedded model is installed.
_FIXTURE_MODEL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "sg2_128_ada.pkl"


DEMO_COMMAND = "open the mouth"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help='say "open the mouth" to a sampled face; write before/after PNGs and a GIF')
    p.add_argument("--out-dir", default="voicedrag-demo", help="folder for the results (default ./voicedrag-demo)")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.add_argument(
        "--image",
        default=None,
        metavar="PHOTO",
        help="say it to this photo instead of a sampled face: framed, inverted (cached) and pasted back",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_demo, no_tune=False, no_cache=False)


def _demo_model() -> Path:
    from voicedrag.models import embedded_model_path

    if embedded_model_path().is_file():
        return embedded_model_path()
    fixture = Path(os.environ.get("VOICEDRAG_FIXTURES", _FIXTURE_MODEL.parent)) / _FIXTURE_MODEL.name
    if fixture.is_file():
        return fixture
    raise VoicedragError(
        "no generator is installed for the demo; run `voicedrag drag --model PATH ...` with a StyleGAN2 .pkl."
    )


def run_demo(args: argparse.Namespace) -> int:
    from voicedrag.cli.engine import consume
    from voicedrag.cli.photo import photo_start
    from voicedrag.editor import Editor, load_kit
    from voicedrag.events import DragOptions, EditRequest, ImageState

    t0 = time.perf_counter()
    check_writable("--out-dir", args.out_dir, folder=True)
    model = _demo_model()
    kit = load_kit(model, device=args.device)
    editor = Editor(kit)
    res = kit.generator.img_resolution
    if args.image is not None and not kit.has_detector:
        raise VoicedragError(
            "a photo is framed from its face's keypoints, and this model has no keypoint detector; "
            "run the demo without --image."
        )
    start = photo_start(editor, args) or ImageState(*editor.seed(args.seed))
    options = DragOptions(max_steps=200, preview_every=4)
    if kit.has_detector:
        command: str | None = DEMO_COMMAND
        request = EditRequest(start, text=command, drag=options)
    else:
        # No keypoints to name on this model, so a drag of a tenth of the image to the right.
        command = None
        pair = DragPair(Point(res // 2, res // 2), Point(res // 2 + res // 10, res // 2))
        request = EditRequest(start, pairs=(pair,), drag=options)
    what = f'"{command}"' if command else "a drag"
    print(f"demo: {what} on {model.name} ({res} px)", file=sys.stderr)
    outcome = consume(editor, request, label="demo", show_plan=True)
    assert outcome.finished is not None
    result = outcome.finished.entry
    out = Path(args.out_dir)
    if start.photo is not None and result.photo_image is not None:
        # A photo: before and after at the photo's size; the GIF shows the model's crop moving.
        before = save_png(start.photo.photo.rgb, out / "before.png")
        after = save_png(result.photo_image, out / "after.png")
    else:
        before = save_png(result.frames[0], out / "before.png")
        after = save_png(result.image, out / "after.png")
    gif = save_gif(result.frames + [result.image], out / "drag.gif")
    report = {
        "model": str(model),
        "image": args.image,
        "command": command,
        "steps": result.steps,
        "converged": result.converged,
        "mean_distance": round(result.mean_distance or 0.0, 3),
        "before": str(before),
        "after": str(after),
        "gif": str(gif),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if args.json:
        print(json_line(report))
    else:
        state = "converged" if result.converged else "stopped"
        print(
            f"demo: {state} after {result.steps} steps ({report['mean_distance']:.2f} px from the target) "
            f"in {report['seconds']} s",
            file=sys.stderr,
        )
        print(f"before: {before}\nafter:  {after}\ngif:    {gif}")
    return 0
