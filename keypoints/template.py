"""Teach-once keypoints: named points found on any generator's samples by its own features.

A user names a few points on one sample ("nose=120,200"); `teach` stores each
point's generator features (two mid-resolution blocks, see `default_blocks`,
resampled at the point as the drag resizes them to the image size) and where
it was.
`find` looks for each name on another latent by nearest neighbour in the same
features, the correspondence DragGAN's point tracking already relies on, so
it works on any model, lions and cars as well as faces, with no detector.

The distance at a pixel is the sum over the blocks of |f_b - ref_b| / |ref_b|
(as in `engine.drag.track_points_blocks`), averaged over the taught samples.
The search runs over a window around where the point was taught (generators
of aligned datasets keep parts near their place; a window also keeps the left
eye from matching the right one), the best pixel is refined to a fraction of a
pixel on a quarter-pixel grid around it, and its confidence is how much
nearer than the window's typical pixel it is: 1 - best / median. A point under
the confidence threshold is left out with a sentence rather than guessed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from engine.atomic import write_text_atomic
from engine.errors import UserError
from engine.types import Point

if TYPE_CHECKING:
    from engine.stylegan2 import Generator

FORMAT = "voicedrag-keypoint-template"
VERSION = 1
# Share of the image's width around the taught position that the search covers (each way).
SEARCH_FRACTION = 0.2
# Measured on the embedded model: at 0.5 a template taught on one face left out 14-19% of the
# points (6 of 20 "open the mouth" plans lacked an eye centre); at 0.25 every plan was made and
# the mouth converged in 35% of 20 drags, against 45% from the detector.
MIN_CONFIDENCE = 0.25
# A gentle pull toward where the point was taught (per search radius, against relative feature
# distances of about 1): on the embedded model it cut the points left out by a quarter and the mean
# error a little (taught on seeds 0, 5, 7: 0.96 -> 0.94, 1.41 -> 1.34, 1.06 -> 1.05 px).
PRIOR = 0.2


@dataclass
class TaughtSample:
    """The points taught on one latent: name -> position and per-block features."""

    seed: int | None
    points: dict[str, Point]
    features: dict[str, list[list[float]]]  # name -> per block: [C_b]


@dataclass
class KeypointTemplate:
    model: dict[str, Any]  # what the template was taught on: resolution, blocks' channels, fingerprint
    blocks: list[int]
    samples: list[TaughtSample] = field(default_factory=list)
    search: float = SEARCH_FRACTION
    min_confidence: float = MIN_CONFIDENCE
    rules: str | None = None  # the rules its names are for ("animal"), used where the model names none

    @property
    def names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for s in self.samples:
            seen.update(dict.fromkeys(s.points))
        return tuple(seen)

    # ------------------------------------------------------------ files

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "blocks": self.blocks,
            "search": self.search,
            "min_confidence": self.min_confidence,
            "rules": self.rules,
            "samples": [
                {
                    "seed": s.seed,
                    "points": {
                        n: {
                            "xy": [round(p.x, 3), round(p.y, 3)],
                            "features": [[round(v, 6) for v in f] for f in s.features[n]],
                        }
                        for n, p in s.points.items()
                    },
                }
                for s in self.samples
            ],
        }

    def save(self, path: Path) -> None:
        """Write the template as JSON (whole or not at all)."""
        try:
            write_text_atomic(path, json.dumps(self.to_json(), separators=(",", ":")) + "\n")
        except OSError as err:
            raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --out path.") from None

    @classmethod
    def from_json(cls, data: Any, source: str = "the template") -> KeypointTemplate:
        def bad(why: str) -> UserError:
            return UserError(
                f"{source} is not a keypoint template ({why}); teach one with `voicedrag keypoints teach`."
            )

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"its format is not {FORMAT!r}")
        if data.get("version") != VERSION:
            raise bad(f"version {data.get('version')!r}, this voicedrag reads version {VERSION}")
        model, blocks, samples = data.get("model"), data.get("blocks"), data.get("samples")
        if (
            not isinstance(model, dict)
            or not isinstance(blocks, list)
            or not blocks
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocks)
        ):
            raise bad("'model' or 'blocks' is missing or malformed")
        if not isinstance(samples, list) or not samples:
            raise bad("it holds no taught samples")
        search = _number(data.get("search", SEARCH_FRACTION), 0.01, 1.0, "search", bad)
        min_conf = _number(data.get("min_confidence", MIN_CONFIDENCE), 0.0, 1.0, "min_confidence", bad)
        channels = model.get("channels")
        rules = data.get("rules")
        if rules is not None and not isinstance(rules, str):
            raise bad("'rules' must be the name of a rules file such as \"animal\"")
        out = []
        for s in samples:
            if not isinstance(s, dict) or not isinstance(s.get("points"), dict) or not s["points"]:
                raise bad("a sample has no points")
            seed = s.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                raise bad("a sample's seed is not a whole number")
            pts, feats = {}, {}
            for name, entry in s["points"].items():
                try:
                    x, y = (float(v) for v in entry["xy"])
                    fs = [[float(v) for v in f] for f in entry["features"]]
                except (KeyError, TypeError, ValueError):
                    raise bad(f"point {name!r} has no valid 'xy' and 'features'") from None
                if not (math.isfinite(x) and math.isfinite(y)) or not all(math.isfinite(v) for f in fs for v in f):
                    raise bad(f"point {name!r} holds a value that is not finite")
                if len(fs) != len(blocks) or (isinstance(channels, list) and [len(f) for f in fs] != channels):
                    raise bad(f"point {name!r} has features that do not match its blocks")
                pts[str(name)], feats[str(name)] = Point(x, y), fs
            out.append(TaughtSample(seed=seed, points=pts, features=feats))
        return cls(
            model=model,
            blocks=[int(b) for b in blocks],
            samples=out,
            search=search,
            min_confidence=min_conf,
            rules=rules,
        )

    @classmethod
    def load(cls, path: Path) -> KeypointTemplate:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(
                f"no keypoint template at {path}; check the path or teach one with `voicedrag keypoints teach`."
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"cannot read {path} ({err}); pass a template JSON file.") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise UserError(f"{path} is not JSON; pass a template written by `voicedrag keypoints teach`.") from None
        return cls.from_json(data, source=str(path))

    def merged(self, other: KeypointTemplate) -> KeypointTemplate:
        """This template with another's samples (taught on the same model and blocks)."""
        if other.model.get("fingerprint") != self.model.get("fingerprint") or other.blocks != self.blocks:
            raise UserError(
                "the templates were taught on different models or blocks; combine templates of one model only."
            )
        return KeypointTemplate(
            model=self.model,
            blocks=self.blocks,
            samples=self.samples + other.samples,
            search=self.search,
            min_confidence=self.min_confidence,
            rules=self.rules or other.rules,
        )


def _number(value: Any, lo: float, hi: float, name: str, bad: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
        raise bad(f"{name!r} must be a number from {lo} to {hi}")
    return float(value)


# ------------------------------------------------------------ features


def model_signature(generator: Generator, blocks: list[int]) -> dict[str, Any]:
    """What a template must match: resolution, the blocks' channel counts and a weights fingerprint."""
    net = generator.synthesis
    channels = [int(net.blocks()[b].out_channels) for b in blocks]
    digest = hashlib.sha256()
    for name, tensor in sorted(generator.state_dict().items())[:8]:
        digest.update(name.encode())
        # The first 1,024 values: `find` checks the signature on every call (the TUI's hot path),
        # and copying a 512 px model's large weights to hash 4 KB of them costs more than the search.
        digest.update(tensor.detach().reshape(-1)[:1024].float().cpu().numpy().tobytes())
    return {"resolution": generator.img_resolution, "channels": channels, "fingerprint": digest.hexdigest()[:16]}


def default_blocks(generator: Generator) -> list[int]:
    """The blocks whose features match parts across samples best: those at max(16, R/16) px and twice
    that. Coarse blocks say what a part is, fine ones where; measured on the embedded model (64 and
    128 px), where the renderer knows the truth: blocks at 16 + 32 px found the keypoints of 50 other
    samples 0.95 and 0.89 px (in 64 px units) from the truth, the drag's own block 4 3.3 px."""
    if getattr(generator, "family", "stylegan2") != "stylegan2":
        # StyleGAN3's layers all sit on grids of 36 px and more; its drag layer is DragGAN's choice.
        return [generator.cfg.drag_feature_block]
    resolutions = generator.synthesis.block_resolutions
    first = max(16, generator.img_resolution // 16)
    return [i for i, r in enumerate(resolutions) if r in (first, 2 * first)] or [len(resolutions) - 1]


@torch.no_grad()
def feature_maps(generator: Generator, ws: torch.Tensor, blocks: list[int]) -> list[torch.Tensor]:
    """The native maps [1, C_b, R_b, R_b] of the blocks, float32."""
    out = generator.synthesis(ws.to(generator.device, torch.float32), noise_mode="const", stop_after=max(blocks))
    return [out.features[b].to(torch.float32) for b in blocks]


def sample_at(native: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, res: int) -> torch.Tensor:
    """[C, N]: the map resized bilinearly to res x res (align_corners=False, as the drag resizes it),
    read at image positions (xs, ys), without resizing the whole map."""
    r = native.shape[-1]
    # Image pixel centre x sits at (x + 0.5) * r / res - 0.5 on the native map; grid_sample with
    # align_corners=False takes g = (2 * src + 1) / r - 1, and border padding clamps as interpolate does.
    gx = (2 * ((xs + 0.5) * r / res - 0.5) + 1) / r - 1
    gy = (2 * ((ys + 0.5) * r / res - 0.5) + 1) / r - 1
    grid = torch.stack([gx, gy], dim=-1).reshape(1, 1, -1, 2).to(native)
    return F.grid_sample(native, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0]


def teach(
    generator: Generator,
    ws: torch.Tensor,
    points: dict[str, Point],
    seed: int | None = None,
    blocks: list[int] | None = None,
) -> KeypointTemplate:
    """A template of the named points on this latent."""
    blocks = list(blocks) if blocks is not None else default_blocks(generator)
    res = generator.img_resolution
    for b in blocks:
        if not 0 <= b < len(generator.synthesis.block_resolutions):
            raise UserError(f"block {b} is not one of the model's {len(generator.synthesis.block_resolutions)}.")
    if not points:
        raise UserError('name at least one point to teach, as in --points "nose=30,40".')
    for name, p in points.items():
        if not (0 <= p.x <= res - 1 and 0 <= p.y <= res - 1):
            raise UserError(f"{name} at ({p.x:g}, {p.y:g}) is outside the {res}x{res} image; give points inside it.")
    maps = feature_maps(generator, ws, blocks)
    xs = torch.tensor([p.x for p in points.values()], dtype=torch.float32)
    ys = torch.tensor([p.y for p in points.values()], dtype=torch.float32)
    per_block = [sample_at(m, xs, ys, res).cpu() for m in maps]  # each [C_b, N]
    features = {name: [pb[:, i].tolist() for pb in per_block] for i, name in enumerate(points)}
    sample = TaughtSample(seed=seed, points=dict(points), features=features)
    return KeypointTemplate(model=model_signature(generator, blocks), blocks=blocks, samples=[sample])


# ------------------------------------------------------------ finding


@dataclass
class Found:
    points: dict[str, Point]
    confidence: dict[str, float]  # every name searched, found or not
    left_out: dict[str, str]  # name -> why it was left out


def check_model(template: KeypointTemplate, generator: Generator) -> None:
    sig = (
        model_signature(generator, template.blocks)
        if max(template.blocks) < len(generator.synthesis.block_resolutions)
        else {}
    )
    if sig.get("resolution") != template.model.get("resolution") or sig.get("channels") != template.model.get(
        "channels"
    ):
        raise UserError(
            "this template was taught on a model of another size or architecture; teach it again "
            "on this model with `voicedrag keypoints teach`."
        )
    if sig.get("fingerprint") != template.model.get("fingerprint"):
        raise UserError(
            "this template was taught on another model (its weights differ); teach it again on "
            "this model with `voicedrag keypoints teach`."
        )


def _score(
    maps: list[torch.Tensor], taught: list[TaughtSample], name: str, xs: torch.Tensor, ys: torch.Tensor, res: int
) -> torch.Tensor:
    """[n]: the mean over taught samples of the summed relative distance at image positions (xs, ys)."""
    total = torch.zeros(xs.numel(), device=maps[0].device)
    feats = [sample_at(m, xs, ys, res) for m in maps]  # each [C_b, n]
    for s in taught:
        for f, ref in zip(feats, s.features[name], strict=True):
            r = torch.tensor(ref, dtype=torch.float32, device=f.device).reshape(-1, 1)
            total += torch.linalg.norm(f - r, dim=0) / (torch.linalg.norm(r) + 1e-8)
    return total / len(taught)


# The best pixel is refined on a grid of quarter pixels within one pixel of it: the features are
# bilinear between pixels, so a taught point between pixels is found where it was taught.
REFINE_STEPS = torch.arange(-4, 5, dtype=torch.float32) / 4


@torch.no_grad()
def find(
    template: KeypointTemplate, generator: Generator, ws: torch.Tensor, min_confidence: float | None = None
) -> Found:
    """Each taught name on the latent `ws`: where, how sure, and which were left out and why."""
    check_model(template, generator)
    res = generator.img_resolution
    maps = feature_maps(generator, ws, template.blocks)
    threshold = template.min_confidence if min_confidence is None else min_confidence
    radius = max(int(round(template.search * res)), 2)
    points: dict[str, Point] = {}
    confidence: dict[str, float] = {}
    left_out: dict[str, str] = {}
    for name in template.names:
        taught = [s for s in template.samples if name in s.points]
        cx = sum(s.points[name].x for s in taught) / len(taught)
        cy = sum(s.points[name].y for s in taught) / len(taught)
        x0, x1 = max(int(math.floor(cx)) - radius, 0), min(int(math.ceil(cx)) + radius, res - 1)
        y0, y1 = max(int(math.floor(cy)) - radius, 0), min(int(math.ceil(cy)) + radius, res - 1)
        gy, gx = torch.meshgrid(
            torch.arange(y0, y1 + 1, dtype=torch.float32), torch.arange(x0, x1 + 1, dtype=torch.float32), indexing="ij"
        )
        total = _score(maps, taught, name, gx.reshape(-1), gy.reshape(-1), res)
        if PRIOR:
            total = total + PRIOR * torch.hypot(gx.reshape(-1) - cx, gy.reshape(-1) - cy) / radius
        flat = int(torch.argmin(total))
        fy, fx = torch.meshgrid(REFINE_STEPS, REFINE_STEPS, indexing="ij")
        fx = (fx.reshape(-1) + float(gx.reshape(-1)[flat])).clamp(0, res - 1)
        fy = (fy.reshape(-1) + float(gy.reshape(-1)[flat])).clamp(0, res - 1)
        fine_scores = _score(maps, taught, name, fx, fy, res)
        fine = int(torch.argmin(fine_scores))
        best, typical = float(fine_scores[fine]), float(total.median())
        conf = max(0.0, 1.0 - best / typical) if typical > 0 else 0.0
        confidence[name] = round(conf, 3)
        if conf < threshold:
            left_out[name] = (
                f"{name} is left out: its best match is not clearly nearer than the rest "
                f"(confidence {conf:.2f} < {threshold:.2f}); teach it on more samples."
            )
            continue
        points[name] = Point(float(fx[fine]), float(fy[fine]))
    return Found(points=points, confidence=confidence, left_out=left_out)
