"""Your own photos, measured: faces the generator never drew, placed in larger photos, framed,
inverted, edited by words and pasted back.

    python benchmarks/photo_edits.py [--faces 50] [--first-seed 70000] [--commands ...] [--no-tune]
                                     [--world model|renderer] [--set edit_weight=0 ...]

Each face is a render of the face world (seeds no test or trainer uses), placed in a larger
canvas (shifted up to 15% of the face, scaled 0.8-1.25, turned up to 10 degrees) and saved as
JPEG at quality 70. Then, as `voicedrag edit --image` does it:
- framing and inversion with the defaults (`Editor.open_photo`, no cache): PSNR of the
  reconstruction against the aligned crop after W, W+ and tuning, and the time;
- keypoints: the detector on the inversion against the renderer's truth mapped into the crop;
- edits: each command planned from the photo's own keypoints, dragged (with the editor's
  defaults: a word edit's result is checked by the detector and goes on for up to two more
  rounds where a named part stopped short) and pasted back;
  converged (the engine's verdict), achieved (the commanded displacement the detector sees on
  the pasted-back photo, re-framed by the same alignment: 1.0 = all of it), and whether every
  pixel outside the blend region is the photo's own (bit for bit).

Two worlds of faces (`--world`):
- model (the default): the renderer's faces drawn from the world the embedded model was trained
  on (its latent map over the attributes it varies; head height, chin, eye size, hair style and
  the plain background fixed, as in training), the way a photo-real model's photos are faces of
  the kind it was trained on. The renderer draws them, not the generator;
- renderer: the renderer's whole world (`render_seed`), whose chins, head heights, hair styles
  and background gradients the model never saw: tuning reproduces them, but the generator's own
  edits carry them less far.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import os

# As the voicedrag command runs (voicedrag/__init__.py): set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.types import Point  # noqa: E402
from faceworld.render import RenderResult, render, render_seed  # noqa: E402
from keypoints.align import paste_back, warp_to_crop  # noqa: E402
from voicedrag.editor import Editor, load_kit  # noqa: E402
from voicedrag.events import DragOptions, EditRequest, Finished, PhotoOpened, Planned, Refused  # noqa: E402

COMMANDS = ("open the mouth", "close the eyes", "raise the left ear", "turn the head left")


def world_face(seed: int, world: str) -> RenderResult:
    """One face of `world` (see the module's text)."""
    if world == "renderer":
        return render_seed(seed, 128)
    from training.train_generator import Z_DIM, params_from_z, trained_latent_map

    z = np.random.default_rng(seed).standard_normal(Z_DIM)
    return render(params_from_z(z, trained_latent_map("embedded")), 128)


def place(seed: int, rng: np.random.Generator, world: str = "model") -> tuple[Image.Image, dict[str, Point]]:
    """A face-world face in a larger photo, and its true keypoints in the photo's pixels."""
    face = world_face(seed, world)
    scale = float(rng.uniform(0.8, 1.25))
    angle = float(rng.uniform(-10.0, 10.0))
    side = round(128 * scale)
    img = face.image.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    # Turned about its centre on a canvas of the background's colour (the corners it leaves).
    background = tuple(int(v) for v in np.asarray(img)[0, 0])
    turned = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=background)
    canvas_side = int(side * 2.0)
    canvas = Image.new("RGB", (canvas_side, int(canvas_side * 0.9)), background)
    shift = rng.uniform(-0.15, 0.15, size=2) * side
    ox = (canvas.width - turned.width) / 2 + shift[0]
    oy = (canvas.height - turned.height) / 2 + shift[1]
    canvas.paste(turned, (round(ox), round(oy)))
    # The same transform for the keypoints: scale, turn about the centre (counter-clockwise on
    # screen, as Pillow turns), shift.
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    cx, cy = (side - 1) / 2, (side - 1) / 2
    truth = {}
    for name, p in face.keypoints.items():
        x, y = (p.x + 0.5) * scale - 0.5 - cx, (p.y + 0.5) * scale - 0.5 - cy
        xr, yr = c * x + s * y, -s * x + c * y
        truth[name] = Point(xr + (turned.width - 1) / 2 + round(ox), yr + (turned.height - 1) / 2 + round(oy))
    return canvas, truth


def achieved(before: dict[str, Point], after: dict[str, Point], planned: Planned) -> float:
    moved = np.array([[after[n].x - before[n].x, after[n].y - before[n].y] for n in planned.names])
    wanted = np.array([[p.target.x - p.handle.x, p.target.y - p.handle.y] for p in planned.pairs])
    return float((moved * wanted).sum() / max(float((wanted**2).sum()), 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=70000)
    parser.add_argument("--commands", nargs="*", default=list(COMMANDS))
    parser.add_argument("--steps", type=int, default=300, help="a drag's step limit")
    parser.add_argument("--no-tune", action="store_true")
    parser.add_argument("--world", choices=("model", "renderer"), default="model")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an inversion setting other than the default (JSON value)",
    )
    args = parser.parse_args()

    from engine.invert import InvertConfig

    editor = Editor(load_kit("embedded", device="cpu"))
    detector = editor.kit.detector()
    assert detector is not None
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = InvertConfig(tune=not args.no_tune, **overrides)
    rng = np.random.default_rng(args.first_seed)
    rows: list[dict[str, object]] = []
    edits: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.faces):
            seed = args.first_seed + i
            canvas, truth = place(seed, rng, args.world)
            path = Path(tmp) / f"face{seed}.jpg"
            canvas.save(path, quality=70)
            t0 = time.perf_counter()
            state = None
            for event in editor.open_photo(path, config, use_cache=False):
                if isinstance(event, PhotoOpened):
                    state = event.state
                elif isinstance(event, Refused):
                    print(f"seed {seed}: {event.sentence}", file=sys.stderr)
            seconds = time.perf_counter() - t0
            if state is None:
                rows.append({"seed": seed, "opened": False})
                continue
            crop_truth = state.alignment.to_crop(truth)
            found = detector.detect(state.image)
            kp_error = float(np.mean([found[n].distance(crop_truth[n]) for n in found]))
            row: dict[str, object] = {
                "seed": seed,
                "opened": True,
                "seconds": round(seconds, 2),
                "psnr": round(state.psnr, 2),
                "keypoint_error_px": round(kp_error, 3),
                **{f"psnr_{k}": round(v, 2) for k, v in state.psnr_by_phase.items()},
            }
            rows.append(row)
            photo = state.photo.rgb
            before = detector.detect(warp_to_crop(photo, state.alignment))
            for command in args.commands:
                t1 = time.perf_counter()
                planned = finished = None
                refused = None
                for event in editor.run(
                    EditRequest(editor.photo_state(state), text=command, drag=DragOptions(max_steps=args.steps))
                ):
                    if isinstance(event, Planned):
                        planned = event
                    elif isinstance(event, Finished):
                        finished = event.entry
                    elif isinstance(event, Refused):
                        refused = event.sentence
                if planned is None or finished is None or finished.photo_image is None:
                    edits.append({"seed": seed, "command": command, "refused": refused})
                    print(f"seed {seed}: {command!r} refused: {refused}", file=sys.stderr)
                    continue
                out = finished.photo_image
                mask = None
                if planned.mask is not None:
                    from voicedrag.planning.rules import mask_array

                    mask = mask_array(list(planned.mask), (state.image.shape[1], state.image.shape[0]))
                _, alpha = paste_back(photo, finished.image, state.image, state.alignment, mask)
                outside_same = bool(np.array_equal(out[alpha == 0], photo[alpha == 0]))
                after = detector.detect(warp_to_crop(out, state.alignment))
                edits.append(
                    {
                        "seed": seed,
                        "command": command,
                        "converged": finished.converged,
                        "achieved": round(achieved(before, after, planned), 3),
                        "steps": finished.steps,
                        "outside_identical": outside_same,
                        "seconds": round(time.perf_counter() - t1, 2),
                    }
                )
                print(f"seed {seed}: {command!r} " + json.dumps(edits[-1]), file=sys.stderr)
            print(f"seed {seed}: {seconds:5.1f} s, {state.psnr:5.1f} dB, keypoints {kp_error:.2f} px", file=sys.stderr)

    opened = [r for r in rows if r.get("opened")]

    def med(key: str, items: list[dict[str, object]]) -> float | None:
        values = [float(r[key]) for r in items if isinstance(r.get(key), int | float)]  # type: ignore[arg-type]
        return round(float(np.median(values)), 3) if values else None

    summary: dict[str, object] = {
        "faces": len(rows),
        "opened": len(opened),
        "world": args.world,
        "first_seed": args.first_seed,
        "tune": config.tune,
        "settings": overrides,
        "psnr_median": med("psnr", opened),
        "psnr_w_median": med("psnr_w", opened),
        "psnr_wplus_median": med("psnr_w+", opened),
        "psnr_tune_median": med("psnr_tune", opened),
        "keypoint_error_mean_px": round(float(np.mean([float(r["keypoint_error_px"]) for r in opened])), 3)  # type: ignore[arg-type]
        if opened
        else None,
        "invert_seconds_median": med("seconds", opened),
        "commands": {},
    }
    print(f"{'faces':<24}{len(opened)}/{len(rows)} opened; inversion {summary['invert_seconds_median']} s (median)")
    print(
        f"{'PSNR (median, dB)':<24}W {summary['psnr_w_median']}  W+ {summary['psnr_wplus_median']}  "
        f"tuned {summary['psnr_tune_median']}  final {summary['psnr_median']}"
    )
    print(f"{'keypoints on inversion':<24}{summary['keypoint_error_mean_px']} px from the truth (mean)")
    print(f"{'command':<22}{'conv':>6}{'achieved':>10}{'outside ==':>12}{'refused':>9}{'s':>7}")
    commands: dict[str, object] = {}
    for command in args.commands:
        cs = [e for e in edits if e["command"] == command]
        ran = [e for e in cs if "converged" in e]
        row = {
            "edits": len(cs),
            "converged": round(sum(bool(e["converged"]) for e in ran) / max(len(ran), 1), 3),
            "achieved_median": med("achieved", ran),
            "outside_identical": all(e["outside_identical"] for e in ran),
            "refused": len(cs) - len(ran),
            "seconds_median": med("seconds", ran),
        }
        commands[command] = row
        print(
            f"{command:<22}{row['converged']:>6.0%}{row['achieved_median'] or 0:>10.2f}"
            f"{str(row['outside_identical']):>12}{row['refused']:>9}{row['seconds_median'] or 0:>7.1f}"
        )
    summary["commands"] = commands
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
