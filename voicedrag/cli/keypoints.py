"""`voicedrag keypoints`: named points on an image, as JSON or drawn on a PNG.

voicedrag keypoints --seed 3 --json                       # the model's detector
voicedrag keypoints teach --model M --seed 0 --points "nose=120,200;left_ear_tip=80,60" --out T.json
voicedrag keypoints --model M --seed 5 --template T.json --json   # found by the model's features
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

from engine.errors import UserError
from engine.types import DEFAULT_PSI, Point
from keypoints.detector import Detector
from voicedrag.cli import argtypes
from voicedrag.cli.output import json_line
from voicedrag.errors import VoicedragError

if TYPE_CHECKING:
    import torch

    from engine.stylegan2 import Generator

DETECTORS = ("embedded", "face")
PSI = DEFAULT_PSI


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keypoints",
        help="find named keypoints (eyes, lips, nose, ears, ...) on a face",
        description="Find named keypoints on a face from the model (--seed) or on an image file (--image).",
    )
    p.add_argument("--model", default="embedded", help="generator to sample with --seed (default: embedded)")
    p.add_argument(
        "--seed", type=argtypes.seed, default=None, help=f"sample this seed from --model (truncation psi {PSI})"
    )
    p.add_argument("--image", type=Path, default=None, help="an image of the model's domain instead of a sample")
    # The renderer's own face for a seed (the true world), for checks without a trained generator.
    p.add_argument("--render-seed", type=argtypes.seed, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--detector",
        default="embedded",
        choices=DETECTORS,
        help="keypoint detector: embedded (the embedded model's faces) or face (photographs of real faces)",
    )
    p.add_argument("--json", action="store_true", help='print {"size": [W, H], "points": {name: [x, y]}}')
    p.add_argument("--out", default=None, help="write the image with the labelled points to this PNG")
    p.add_argument(
        "--template",
        type=Path,
        default=None,
        metavar="T.json",
        help="find the points taught with `keypoints teach` (needs --seed; the model's features, no detector)",
    )
    p.add_argument(
        "--min-confidence",
        type=argtypes.confidence,
        default=None,
        help="leave out template points less sure than this, 0-1 (default: the template's, 0.25)",
    )
    p.set_defaults(run=run_keypoints)
    actions = p.add_subparsers(dest="keypoints_action", metavar="teach")
    t = actions.add_parser(
        "teach",
        help="store named points of one sample as a template that finds them on other samples",
        description="Name points on one sample of a model; the template finds them on any other sample of it.",
    )
    t.add_argument("--model", default="embedded", help="generator file (.pkl or .safetensors), or 'embedded'")
    t.add_argument(
        "--seed", type=argtypes.seed, required=True, help=f"the sample the points are on (truncation psi {PSI})"
    )
    t.add_argument(
        "--points",
        required=True,
        metavar='"NAME=X,Y;NAME=X,Y"',
        help='named points in image pixels, e.g. "nose=120,200;left_ear_tip=80,60"',
    )
    t.add_argument("--out", type=Path, required=True, help="the template JSON to write")
    t.add_argument(
        "--add-to",
        type=Path,
        default=None,
        metavar="T.json",
        help="add this sample to an existing template (several taught samples find points better)",
    )
    t.add_argument(
        "--blocks",
        default=None,
        metavar="I,J",
        help="the generator blocks whose features are stored (default: two mid-resolution blocks)",
    )
    t.add_argument(
        "--rules",
        default=None,
        metavar="NAME",
        help='the rules the names are for, e.g. "animal" (used by edit/tui on a model that names none)',
    )
    t.set_defaults(run=run_teach)


def _render_model_image(model: str, seed: int) -> Image.Image:
    """One sample of a generator at the usual truncation psi (PSI)."""
    try:
        return _seed_latent(model, seed)[1]
    except ImportError as err:
        raise VoicedragError(
            "the generator engine is not available in this installation; use --image FILE instead of --seed."
        ) from err
    except UserError as err:
        if model == "embedded":
            raise VoicedragError(
                "the embedded face model is not shipped in this installation yet; use --image FILE instead of --seed."
            ) from err
        raise


def _load_image(path: Path) -> Image.Image:
    """A user's image, read as every photo is (size limits before decoding, EXIF rotation, any
    mode converted to RGB, one sentence for what cannot be read)."""
    from voicedrag.photo import load_photo

    photo = load_photo(path)
    for note in photo.notes:
        print(f"voicedrag: {note}", file=sys.stderr)
    return Image.fromarray(photo.rgb)


def _source_image(args: argparse.Namespace) -> Image.Image:
    given = [x is not None for x in (args.image, args.seed, args.render_seed)]
    if sum(given) != 1:
        raise VoicedragError("give exactly one of --image FILE or --seed N.")
    if args.image is not None:
        return _load_image(args.image)
    if args.render_seed is not None:
        from faceworld.render import render_seed

        return render_seed(args.render_seed).image
    return _render_model_image(args.model, args.seed)


def get_detector(name: str) -> Detector:
    if name == "embedded":
        from keypoints.detector import EmbeddedDetector

        return EmbeddedDetector.load()
    if name == "face":
        from keypoints.facemesh import FaceMeshDetector

        return FaceMeshDetector.load()
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


def parse_named_points(spec: str) -> dict[str, Point]:
    """ "nose=120,200;left_ear_tip=80,60" -> {name: Point}."""
    import math
    import re

    points: dict[str, Point] = {}
    for part in [q.strip() for q in spec.split(";") if q.strip()]:
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)", part)
        if not m:
            raise VoicedragError(
                f"cannot read {part!r}; name each point as NAME=X,Y, separated by ';', "
                'e.g. "nose=120,200;left_ear_tip=80,60".'
            )
        try:
            x, y = float(m.group(2)), float(m.group(3))
        except ValueError:
            raise VoicedragError(f"cannot read the numbers in {part!r}; give X,Y in pixels such as 120,200.") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise VoicedragError(f"{part!r} is not a finite position; give X,Y in pixels such as 120,200.")
        if m.group(1) in points:
            raise VoicedragError(f"{m.group(1)} is named twice; give each point once.")
        points[m.group(1)] = Point(x, y)
    if not points:
        raise VoicedragError('name at least one point, as in --points "nose=30,40".')
    return points


def _seed_latent(model: str, seed: int) -> tuple[Generator, Image.Image, torch.Tensor]:
    from voicedrag.models import load_model_file
    from voicedrag.registry import model_path

    G = load_model_file(model_path(model), device="cpu")
    ws = G.ws_from_seed(seed, truncation_psi=PSI)
    return G, Image.fromarray(G.render(ws)), ws


def run_teach(args: argparse.Namespace) -> int:
    from keypoints.template import KeypointTemplate, teach

    points = parse_named_points(args.points)
    blocks = None
    if args.blocks is not None:
        try:
            blocks = [int(b) for b in args.blocks.split(",") if b.strip()]
        except ValueError:
            raise VoicedragError("--blocks takes block numbers separated by commas, such as 3,4.") from None
    G, _, ws = _seed_latent(args.model, args.seed)
    base = KeypointTemplate.load(args.add_to) if args.add_to is not None else None
    if base is not None and blocks is None:
        blocks = base.blocks
    template = teach(G, ws, points, seed=args.seed, blocks=blocks)
    if base is not None:
        from keypoints.template import check_model

        check_model(base, G)
        template = base.merged(template)
    if args.rules is not None:
        from voicedrag.planning.rules import load_rules

        rules = load_rules(args.rules)
        unknown = [n for n in points if n not in rules.keypoints]
        if unknown:
            print(
                f"voicedrag: the {rules.name} rules use no keypoint named {', '.join(unknown)}; "
                f"their names are {', '.join(rules.keypoints)}.",
                file=sys.stderr,
            )
        template.rules = args.rules
    template.save(args.out)
    print(
        f"wrote {args.out}: {len(points)} points on seed {args.seed}, {len(template.samples)} taught "
        f"sample(s), blocks {template.blocks}",
        file=sys.stderr,
    )
    return 0


def _template_points(args: argparse.Namespace) -> tuple[Image.Image, dict[str, Point], dict[str, object]]:
    from keypoints.template import KeypointTemplate, find

    if args.seed is None or args.image is not None:
        raise VoicedragError("a template finds points on the model's own samples; give --seed N (not --image).")
    conf = args.min_confidence
    if conf is not None and not 0.0 <= conf <= 1.0:
        raise VoicedragError("--min-confidence must be between 0 and 1, such as 0.5.")
    template = KeypointTemplate.load(args.template)
    G, image, ws = _seed_latent(args.model, args.seed)
    found = find(template, G, ws, min_confidence=conf)
    for why in found.left_out.values():
        print(f"voicedrag: {why}", file=sys.stderr)
    return image, found.points, {"confidence": found.confidence, "left_out": found.left_out}


def run_keypoints(args: argparse.Namespace) -> int:
    from voicedrag.cli.engine import check_outputs
    from voicedrag.dragio import save_png

    extra: dict[str, object] = {}
    if args.out is not None:
        check_outputs(args)
    if args.template is not None:
        image, points, extra = _template_points(args)
    else:
        image = _source_image(args)
        detector = get_detector(args.detector)
        points = detector.detect(image)
    if args.out is not None:
        import numpy as np

        save_png(np.asarray(draw_points(image, points).convert("RGB")), args.out)
    if args.json:
        report = {
            "size": [image.size[0], image.size[1]],
            "points": {name: [round(p.x, 3), round(p.y, 3)] for name, p in points.items()},
            **extra,
        }
        if args.out is not None:
            report["out"] = str(args.out)
        print(json_line(report))
    else:
        for name, p in points.items():
            print(f"{name:>16}  {p.x:7.2f} {p.y:7.2f}")
        if args.out is not None:
            print(f"wrote {args.out}", file=sys.stderr)
    return 0
