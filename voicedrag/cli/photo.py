"""`voicedrag invert`, and `--image` for the commands that edit: a user's photo in the model.

The photo is framed from its own keypoints, inverted (cached by the photo's and the model's
hashes, so the second edit of a photo starts at once), edited, and the edit pasted back into the
photo: `--out` is then photo-sized, and identical to the photo outside the edited region.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from voicedrag.cli.output import json_line

if TYPE_CHECKING:
    from engine.invert import InvertConfig
    from voicedrag.editor import Editor
    from voicedrag.events import ImageState
    from voicedrag.photoedit import PhotoState


def add_image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image",
        default=None,
        metavar="PHOTO",
        help="edit this photo instead of a seed: it is framed, inverted (cached) and pasted back",
    )
    p.add_argument("--no-tune", action="store_true", help="invert the photo without tuning the model's weights")
    p.add_argument("--no-cache", action="store_true", help="invert the photo again even if it was inverted before")


def register(sub: argparse._SubParsersAction) -> None:
    from voicedrag.cli.engine import add_model_args

    p = sub.add_parser("invert", help="put a photo into the model (framing, inversion, tuning); save the result")
    add_model_args(p)
    p.add_argument("--image", required=True, metavar="PHOTO", help="the photo (any size; a face in it is framed)")
    p.add_argument(
        "--out",
        required=True,
        metavar="INV.npz",
        help="the inversion: latent, tuned weights, alignment, image hash and figures",
    )
    p.add_argument("--no-tune", action="store_true", help="optimise the latent only, not the model's weights")
    p.add_argument("--preview", default=None, metavar="PNG", help="also write the reconstruction as a PNG")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_invert, no_cache=True)


def invert_config(args: argparse.Namespace) -> InvertConfig:
    from engine.invert import InvertConfig

    return InvertConfig(tune=not getattr(args, "no_tune", False))


def open_photo(editor: Editor, args: argparse.Namespace) -> PhotoState:
    """The photo of --image in the model, with a progress bar while it is inverted; a photo that
    cannot be opened ends the command in one sentence."""
    from voicedrag.dragio import DragProgress, SpecError
    from voicedrag.events import Inverting, PhotoOpened, Refused

    config = invert_config(args)
    progress = DragProgress(config.w_steps + config.wplus_steps + (config.tune_steps if config.tune else 0), "invert")
    opened: PhotoState | None = None
    try:
        for event in editor.open_photo(args.image, config, use_cache=not getattr(args, "no_cache", False)):
            if isinstance(event, Inverting):
                progress.advance(event.step, event.psnr, "dB")
            elif isinstance(event, PhotoOpened):
                opened = event.state
            elif isinstance(event, Refused):
                raise SpecError(event.sentence)
    finally:
        progress.stop()
    assert opened is not None
    for note in opened.photo.notes:
        print(f"voicedrag: {note}", file=sys.stderr)
    how = "from the cache" if opened.cached else f"in {opened.seconds:.1f} s"
    print(f"invert: {Path(args.image).name} framed and inverted {how}, {opened.psnr:.1f} dB", file=sys.stderr)
    return opened


def photo_start(editor: Editor, args: argparse.Namespace) -> ImageState | None:
    """Where an edit starts: the photo of --image, or None (a seed)."""
    if getattr(args, "image", None) is None:
        return None
    return editor.photo_state(open_photo(editor, args))


def run_invert(args: argparse.Namespace) -> int:
    from voicedrag.cli.engine import check_outputs
    from voicedrag.dragio import save_png
    from voicedrag.editor import Editor, load_kit
    from voicedrag.photoedit import save_inversion

    check_outputs(args, out_suffixes=(".npz",))
    editor = Editor(load_kit(args.model, device=args.device, download=args.download))
    state = open_photo(editor, args)
    G = editor.kit.generator
    changed = {
        name: t
        for name, t in state.generator.state_dict().items()
        if state.generator is not G and not t.equal(G.state_dict()[name])
    }
    out = save_inversion(Path(args.out), state, changed)
    report = {"model": str(args.model), "out": str(out), "tuned": bool(changed), **state.to_json()}
    if args.preview:
        report["preview"] = str(save_png(state.image, args.preview))
    if args.json:
        print(json_line(report))
    else:
        print(f"wrote {out}", file=sys.stderr)
    return 0
