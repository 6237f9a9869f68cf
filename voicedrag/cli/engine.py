"""`voicedrag render` and `voicedrag drag`: the engine on the command line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.types import DEFAULT_PSI
from voicedrag.cli import argtypes
from voicedrag.cli.output import json_line
from voicedrag.dragio import (
    DragProgress,
    SpecError,
    check_writable,
    pair_report,
    parse_mask,
    parse_points,
    save_gif,
    save_npy,
    save_png,
)
from voicedrag.events import DragOptions, EditRequest, Finished, Heard, ImageState, Parsed, Planned, Refused, Step

if TYPE_CHECKING:
    from voicedrag.editor import Editor


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="embedded",
        help="a .pkl or .safetensors generator, a name from `voicedrag models`, or 'embedded' (default)",
    )
    p.add_argument("--download", action="store_true", help="download a registry model first if it is not cached")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="latent seed (default 0)")
    p.add_argument("--psi", type=argtypes.psi, default=DEFAULT_PSI, help=f"truncation psi (default {DEFAULT_PSI})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")


def add_template_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--template",
        default=None,
        metavar="T.json",
        help="keypoints taught with `voicedrag keypoints teach`, for a model without a detector",
    )


def add_drag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=argtypes.steps, default=300, help="maximum optimisation steps (default 300)")
    p.add_argument(
        "--lr",
        type=argtypes.lr,
        default=None,
        help="Adam learning rate (default: the model's own, else the paper's 0.002)",
    )
    p.add_argument(
        "--space",
        choices=["w+", "w"],
        default=None,
        help="optimise w+ rows or one w (default: the model's own, else w+)",
    )
    p.add_argument("--out", required=True, help="PNG path of the result")
    p.add_argument("--gif", default=None, help="also write a GIF of the drag")
    p.add_argument("--save-latent", default=None, metavar="WS.npy", help="also save the final ws as .npy")
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render the image of a seed")
    add_model_args(p)
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_render)

    p = sub.add_parser("drag", help="drag handle points to targets (DragGAN)")
    add_model_args(p)
    p.add_argument("--points", required=True, help='"x1,y1>x2,y2;x3,y3>x4,y4" (handle>target pairs, pixels)')
    p.add_argument("--mask", default=None, help="x0,y0,x1,y1: only this rectangle may move")
    add_drag_args(p)
    from voicedrag.cli.photo import add_image_args

    add_image_args(p)
    p.set_defaults(run=run_drag)


def run_render(args: argparse.Namespace) -> int:
    from voicedrag.editor import Editor, load_kit

    t0 = time.perf_counter()
    check_outputs(args)
    editor = Editor(load_kit(args.model, device=args.device, download=args.download))
    _, image = editor.seed(args.seed, args.psi)
    out = save_png(image, args.out)
    if args.json:
        w, h = editor.kit.size
        report = {
            "model": str(args.model),
            "seed": args.seed,
            "psi": args.psi,
            "size": [w, h],
            "out": str(out),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        print(json_line(report))
    else:
        print(f"wrote {out}", file=sys.stderr)
    return 0


# What each output flag may be named: the image formats written, by the name's ending.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
OUTPUT_SUFFIXES = {"--out": IMAGE_SUFFIXES, "--gif": (".gif",), "--preview": IMAGE_SUFFIXES}


def input_files(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """The files a command reads (its model, the model's config, a template, audio, an image),
    as the user named them, for checks that no output overwrites one."""
    from voicedrag.models import resolve_model_path
    from voicedrag.registry import default_registry

    named: list[tuple[str, Path]] = []
    model = getattr(args, "model", None)
    if model is not None:
        entry = default_registry().get(str(model))
        path = default_registry().path(entry) if entry is not None else resolve_model_path(model)
        named += [("--model", path), ("the model's config", path.with_suffix(".json"))]
    for flag, attr in (("--template", "template"), ("--audio", "audio"), ("--image", "image"), ("--rules", "rules")):
        value = getattr(args, attr, None)
        if isinstance(value, str | Path) and str(value):
            named.append((flag, Path(value).expanduser()))
    return named


def _same_file(a: Path, b: Path) -> bool:
    """Whether two names reach one file: through links, '..', or a file system that ignores case
    (samefile compares the files themselves, not their names)."""
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or cannot be read): it cannot be overwritten by the other
        return False


def check_outputs(args: argparse.Namespace, out_suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> None:
    """Refuse, before any work, outputs that would overwrite one another or an input, that cannot
    be files, or whose names say a format the command does not write (`out_suffixes`: --out's)."""
    named = [
        (flag, getattr(args, attr, None))
        for flag, attr in (
            ("--out", "out"),
            ("--gif", "gif"),
            ("--save-latent", "save_latent"),
            ("--preview", "preview"),
        )
    ]
    allowed = {**OUTPUT_SUFFIXES, "--out": out_suffixes}
    seen: dict[Path, str] = {}
    inputs = input_files(args)
    for flag, value in named:
        if value is None:
            continue
        check_writable(flag, value)  # first: a name too long must not reach the file system below
        path = Path(value).expanduser()
        if path.is_dir():
            raise SpecError(f"{flag} {value} is a folder; give a file name in it.")
        suffixes = allowed.get(flag)
        if suffixes is not None and path.suffix.lower() not in suffixes:
            raise SpecError(
                f"{flag} {value}: the name must end in {', '.join(suffixes)} (the format written); choose such a name."
            )
        for what, source in inputs:
            if path.resolve() == source.resolve() or _same_file(path, source):
                raise SpecError(
                    f"{flag} {value} is {what} ({source}), which the command reads; give the output another name."
                )
        resolved = path.resolve()
        if resolved in seen:
            raise SpecError(f"{seen[resolved]} and {flag} both name {value}; give each output its own file.")
        seen[resolved] = flag


@dataclass
class StreamOutcome:
    """What the CLI kept of an edit's events."""

    heard: Heard | None = None
    parsed: Parsed | None = None
    planned: Planned | None = None
    finished: Finished | None = None
    interrupted: bool = False


def consume(editor: Editor, request: EditRequest, label: str = "drag", show_plan: bool = False) -> StreamOutcome:
    """Run one edit's event stream on the command line: notes and warnings on stderr, a progress
    bar, and the refusal as the one sentence the command exits with (UserError -> exit 2).

    Ctrl-C during the drag stops it at the end of its step, and the caller writes what was asked
    for from that state (a second Ctrl-C stops at once); the caller then exits 130."""
    outcome = StreamOutcome()
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        editor.cancel()

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main else None
    progress = DragProgress(request.drag.max_steps, label)
    try:
        for event in editor.run(request):
            if isinstance(event, Heard):
                outcome.heard = event
                if event.note:
                    print(f"voicedrag: {event.note}", file=sys.stderr)
            elif isinstance(event, Parsed):
                outcome.parsed = event
            elif isinstance(event, Planned):
                outcome.planned = event
                if show_plan:
                    moves = "; ".join(
                        f"{n} {p.handle.x:g},{p.handle.y:g} -> {p.target.x:g},{p.target.y:g}"
                        for n, p in zip(event.names, event.pairs, strict=True)
                    )
                    print(f"{label}: {moves}", file=sys.stderr)
                for warning in event.warnings:
                    print(f"voicedrag: {warning}", file=sys.stderr)
            elif isinstance(event, Step):
                progress.update(event)
            elif isinstance(event, Finished):
                outcome.finished = event
            elif isinstance(event, Refused):
                raise SpecError(event.sentence)
            # Control cannot come: the CLI's requests refuse control words.
    finally:
        progress.close(outcome.finished)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    outcome.interrupted = interrupted.is_set()
    if outcome.finished is not None and outcome.finished.entry.verdict:
        print(
            f"voicedrag: {outcome.finished.entry.verdict}; undo it, or try a smaller move or more --steps.",
            file=sys.stderr,
        )
    return outcome


def save_outputs(outcome: StreamOutcome, args: argparse.Namespace, size: tuple[int, int]) -> dict[str, Any]:
    """Write the finished drag's outputs (--out, --gif, --save-latent) and return the JSON report's
    drag fields."""
    assert outcome.finished is not None
    entry = outcome.finished.entry
    # A photo's edit is written photo-sized, pasted back into the photo; the model's crop otherwise.
    out = save_png(entry.photo_image if entry.photo_image is not None else entry.image, args.out)
    report: dict[str, Any] = {
        "model": str(args.model),
        "seed": args.seed,
        "size": list(size),
        "pairs": pair_report(entry.pairs, entry.final_points),
        "steps": entry.steps,
        "converged": entry.converged,
        "verdict": entry.verdict,
        "mean_distance": round(entry.mean_distance or 0.0, 3),
        "seconds": round(entry.seconds, 3),
        "out": str(out),
        "interrupted": outcome.interrupted,
    }
    if args.gif:
        report["gif"] = str(save_gif(entry.frames + [entry.image], args.gif))
    if args.save_latent:
        report["latent"] = str(save_npy(entry.ws, args.save_latent))
    if outcome.interrupted:
        written = ", ".join(str(report[k]) for k in ("out", "gif", "latent") if k in report)
        print(f"voicedrag: interrupted after {entry.steps} steps; wrote {written} from that state.", file=sys.stderr)
    return report


def rect_of(mask: Any) -> tuple[int, int, int, int]:
    """The rectangle (inclusive-exclusive) a typed --mask rasterised to."""
    import numpy as np

    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def drag_options(args: argparse.Namespace) -> DragOptions:
    return DragOptions(max_steps=args.steps, lr=args.lr, space=args.space, preview_every=5 if args.gif else 0)


def run_drag(args: argparse.Namespace) -> int:
    from voicedrag.editor import Editor, load_kit

    check_outputs(args)
    editor = Editor(load_kit(args.model, device=args.device, download=args.download))
    size = editor.kit.size
    pairs = tuple(parse_points(args.points, size))
    mask = (rect_of(parse_mask(args.mask, size)),) if args.mask else None
    from voicedrag.cli.photo import photo_start

    state = photo_start(editor, args)
    if state is None:
        ws, image = editor.seed(args.seed, args.psi)
        state = ImageState(ws, image)
    outcome = consume(editor, EditRequest(state, pairs=pairs, mask=mask, drag=drag_options(args)))
    report = save_outputs(outcome, args, size)
    if state.photo is not None:
        report["photo"] = state.photo.to_json()
    if args.json:
        print(json_line(report))
    elif not report["interrupted"]:
        print(f"wrote {report['out']}" + (f" and {report['gif']}" if "gif" in report else ""), file=sys.stderr)
    return 130 if report["interrupted"] else 0
