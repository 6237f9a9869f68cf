"""`voicedrag keypoints`: named points on a face image, as JSON or drawn on a PNG."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, UnidentifiedImageError

from engine.errors import VoicedragError
from engine.types import Point
from keypoints.detector import Detector

DETECTORS = ("embedded",)
PSI = 0.7


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keypoints",
        help="find named keypoints (eyes, lips, nose, ears, ...) on a face",
        description="Find named keypoints on a face from the model (--seed) or on an image file (--image).",
    )
    p.add_argument("--model", default="embedded", help="generator to sample with --seed (default: embedded)")
    p.add_argument("--seed", type=int, default=None, help="sample this seed from --model (truncation psi 0.7)")
    p.add_argument("--image", type=Path, default=None, help="an image of the model's domain instead of a sample")
    # The renderer's own face for a seed (the true world), for checks without a trained generator.
    p.add_argument("--render-seed", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--detector", default="embedded", choices=DETECTORS, help="keypoint detector (default: embedded)")
    p.add_argument("--json", action="store_true", help='print {"size": [W, H], "points": {name: [x, y]}}')
    p.add_argument("--out", type=Path, default=None, help="write the image with the labelled points to this PNG")
    p.set_defaults(run=run_keypoints)


def _render_model_image(model: str, seed: int) -> Image.Image:
    """One sample of a generator at truncation psi 0.7."""
    try:
        from engine import load_generator
        from engine.drag import to_uint8
    except ImportError as err:
        raise VoicedragError(
            "the generator engine is not available in this installation; use --image FILE instead of --seed."
        ) from err
    import torch

    try:
        G = load_generator(model, device="cpu")
    except VoicedragError as err:
        if model == "embedded":
            raise VoicedragError(
                "the embedded face model is not shipped in this installation yet; use --image FILE instead of --seed."
            ) from err
        raise
    with torch.no_grad():
        ws = G.ws_from_seed(seed, truncation_psi=PSI)
        img = G.synthesis(ws, noise_mode="const").image
    return Image.fromarray(to_uint8(img))


def _load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as err:
        raise VoicedragError(f"no image at {path}; check the path.") from err
    except (UnidentifiedImageError, OSError) as err:
        raise VoicedragError(f"{path} is not an image Pillow can read; pass a PNG or JPEG.") from err


def _source_image(args: argparse.Namespace) -> Image.Image:
    given = [x is not None for x in (args.image, args.seed, args.render_seed)]
    if sum(given) != 1:
        raise VoicedragError("give exactly one of --image FILE or --seed N.")
    if args.image is not None:
        return _load_image(args.image)
    if args.render_seed is not None:
        from keypoints.faceworld import render_seed

        return render_seed(args.render_seed).image
    return _render_model_image(args.model, args.seed)


def get_detector(name: str) -> Detector:
    if name == "embedded":
        from keypoints.detector import EmbeddedDetector

        return EmbeddedDetector.load()
    raise VoicedragError(f"unknown detector {name!r}; use one of: {', '.join(DETECTORS)}.")


def draw_points(image: Image.Image, points: dict[str, Point], scale: int = 0) -> Image.Image:
    """The image, enlarged so the labels are legible, with each point marked and named."""
    w, h = image.size
    scale = scale or max(1, 512 // max(w, h))
    big = image.convert("RGB").resize((w * scale, h * scale), Image.Resampling.NEAREST)
    d = ImageDraw.Draw(big)
    for name, pt in points.items():
        # Pixel centres at integers: the centre of pixel i is at (i + 0.5) * scale in the enlarged image.
        x, y = (pt.x + 0.5) * scale, (pt.y + 0.5) * scale
        d.ellipse([x - 3, y - 3, x + 3, y + 3], outline=(255, 255, 255), fill=(230, 30, 160))
        d.text((x + 5, y - 6), name, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return big


def run_keypoints(args: argparse.Namespace) -> int:
    image = _source_image(args)
    detector = get_detector(args.detector)
    points = detector.detect(image)
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            draw_points(image, points).save(args.out)
        except OSError as err:
            raise VoicedragError(f"cannot write {args.out} ({err.strerror}); choose another --out path.") from err
    if args.json:
        report = {
            "size": [image.size[0], image.size[1]],
            "points": {name: [round(p.x, 3), round(p.y, 3)] for name, p in points.items()},
        }
        if args.out is not None:
            report["out"] = str(args.out)
        print(json.dumps(report))
    else:
        for name, p in points.items():
            print(f"{name:>16}  {p.x:7.2f} {p.y:7.2f}")
        if args.out is not None:
            print(f"wrote {args.out}", file=sys.stderr)
    return 0

