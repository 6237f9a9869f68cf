"""`voicedrag render` and `voicedrag drag`: the engine on the command line."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine.types import DEFAULT_PSI
from voicedrag.cli import argtypes
from voicedrag.cli.output import json_line
from voicedrag.dragio import (
    Progress,
    SpecError,
    check_handles_in_mask,
    check_writable,
    pair_report,
    parse_mask,
    parse_points,
    save_gif,
    save_npy,
    save_png,
)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="embedded",
                   help="a .pkl or .safetensors generator, a name from `voicedrag models`, or 'embedded' (default)")
    p.add_argument("--download", action="store_true", help="download a registry model first if it is not cached")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="latent seed (default 0)")
    p.add_argument("--psi", type=argtypes.psi, default=DEFAULT_PSI, help=f"truncation psi (default {DEFAULT_PSI})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")


def add_template_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", default=None, metavar="T.json",
                   help="keypoints taught with `voicedrag keypoints teach`, for a model without a detector")


def add_drag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=argtypes.steps, default=300, help="maximum optimisation steps (default 300)")
    p.add_argument("--lr", type=argtypes.lr, default=None,
                   help="Adam learning rate (default: the model's own, else the paper's 0.002)")
    p.add_argument("--space", choices=["w+", "w"], default=None,
                   help="optimise w+ rows or one w (default: the model's own, else w+)")
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
        report = {"model": str(args.model), "seed": args.seed, "psi": args.psi, "size": [w, h], "out": str(out),
                  "seconds": round(time.perf_counter() - t0, 3)}
        print(json_line(report))
    else:
        print(f"wrote {out}", file=sys.stderr)
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that would overwrite one another or cannot be files."""
    named = [(flag, getattr(args, attr, None)) for flag, attr in
             (("--out", "out"), ("--gif", "gif"), ("--save-latent", "save_latent"))]
    seen: dict[Path, str] = {}
    for flag, value in named:
        if value is None:
            continue
        check_writable(flag, value)  # first: a name too long must not reach the file system below
        if Path(value).expanduser().is_dir():
            raise SpecError(f"{flag} {value} is a folder; give a file name in it.")
        path = Path(value).expanduser().resolve()
        if path in seen:
            raise SpecError(f"{seen[path]} and {flag} both name {value}; give each output its own file.")
        seen[path] = flag


def drag_and_save(editor: Any, ws: Any, pairs: list, mask: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run one drag with the CLI's options, write its outputs, and return the JSON report fields."""
    progress = Progress(total=args.steps)
    # Ctrl-C during the drag stops it at the end of the step, and what was asked for is written
    # from that state (a second Ctrl-C stops at once); the caller then exits 130.
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        editor.cancel()

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main else None
    try:
        for r in editor.drag(ws, pairs, mask, args.steps, preview_every=5 if args.gif else 0, lr=args.lr,
                             space=args.space):
            progress.update(r.step, r.mean_distance)
    except ValueError as err:
        raise SpecError(f"{err}; place the points inside the image.") from err
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    result = editor.result()
    progress.close(result.steps, result.mean_distance, result.converged)
    if result.verdict:
        print(f"voicedrag: {result.verdict}; undo it, or try a smaller move or more --steps.", file=sys.stderr)
    out = save_png(result.image, args.out)
    w, h = editor.kit.size
    report: dict[str, Any] = {
        "model": str(args.model),
        "seed": args.seed,
        "size": [w, h],
        "pairs": pair_report(pairs, result.points),
        "steps": result.steps,
        "converged": result.converged,
        "verdict": result.verdict,
        "mean_distance": round(result.mean_distance, 3),
        "seconds": round(result.seconds, 3),
        "out": str(out),
        "interrupted": interrupted.is_set(),
    }
    if args.gif:
        report["gif"] = str(save_gif(result.frames + [result.image], args.gif))
    if args.save_latent:
        report["latent"] = str(save_npy(result.ws.cpu().numpy(), args.save_latent))
    if interrupted.is_set():
        written = ", ".join(str(report[k]) for k in ("out", "gif", "latent") if k in report)
        print(f"voicedrag: interrupted after {result.steps} steps; wrote {written} from that state.",
              file=sys.stderr)
    return report


def run_drag(args: argparse.Namespace) -> int:
    from voicedrag.editor import Editor, load_kit

    check_outputs(args)
    editor = Editor(load_kit(args.model, device=args.device, download=args.download))
    size = editor.kit.size
    pairs = parse_points(args.points, size)
    mask = parse_mask(args.mask, size) if args.mask else None
    if mask is not None:
        check_handles_in_mask(pairs, mask, args.mask)
    ws, _ = editor.seed(args.seed, args.psi)
    report = drag_and_save(editor, ws, pairs, mask, args)
    if args.json:
        print(json_line(report))
    elif not report["interrupted"]:
        print(f"wrote {report['out']}" + (f" and {report['gif']}" if "gif" in report else ""), file=sys.stderr)
    return 130 if report["interrupted"] else 0
