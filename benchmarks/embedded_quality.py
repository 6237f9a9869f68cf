"""Quality of the embedded model: keypoint detector accuracy and spoken-edit drags.

    python benchmarks/embedded_quality.py [--parts detector drags] [--seeds 20] [--feature-block K]
    python benchmarks/embedded_quality.py --parts blocks     # which feature block drags best
    python benchmarks/embedded_quality.py --parts drags --drag '{"lr": 0.002}'   # other drag settings
    python benchmarks/embedded_quality.py --parts drags --template T.json  # keypoints from a template

Drags use the model's own drag settings (its JSON config's `drag`, over the
paper's defaults); `--drag` overrides them to compare.

Detector: mean keypoint error on held-out renders of the face world (500 at
128 px and 500 at 64 px, seeds the detector never saw), and on generator
samples (psi 1, whose true keypoints are those of the face their latent names).

Drags: for each seed and each command, the command is parsed, keypoints are
detected on the generated face, the rules plan the drag, the engine drags,
and the keypoints are detected again on the result. Reported per command:
- converged: the engine's tracked handles ended within the stop distance, and
  their mean distance to the targets; <=1px: the share of drags whose handles end
  within 1 px of their targets on average;
- achieved: how much of the commanded change the re-detected keypoints show,
  as the commanded displacements' weighted projection (1.0 = all of it; for
  "open the mouth" this is the growth of the lip gap over the commanded growth,
  which is also printed on its own);
- others: median movement of the keypoints the command did not name: neither
  handles nor inside the region its rule lets move (a head turn names them all);
- commanded: the median length of the commanded moves, in pixels (a rule moves
  a part only as far as the face world draws it, so a half-open mouth is
  commanded the rest of the way).

The last line is one JSON object with the figures (and every drag's own, under
`drag_cases`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import DragConfig, DragSession, Point, to_uint8  # noqa: E402
from voicedrag.models import load_model_file, resolve_model_path  # noqa: E402
from engine.stylegan2 import Generator  # noqa: E402
from keypoints.detector import EmbeddedDetector  # noqa: E402
from faceworld.render import KEYPOINT_NAMES, render  # noqa: E402
from keypoints.template import KeypointTemplate, find  # noqa: E402
from training.train_detector import heldout  # noqa: E402
from training.train_generator import trained_latent_map  # noqa: E402
from voicedrag.language.commands import default_parser  # noqa: E402
from voicedrag.planning.pipeline import CommandError, NothingToMoveError, plan_command  # noqa: E402

COMMANDS = ("open the mouth", "close the eyes", "raise the left ear", "turn the head left")


@dataclass
class DragCase:
    command: str
    seed: int
    converged: bool
    steps: int
    mean_distance: float
    achieved: float  # fraction of the commanded displacement seen by the detector
    lip_gap_achieved: float | None
    others_median_px: float | None  # None: the command names every keypoint
    seconds: float
    commanded_px: float  # mean length of the commanded moves


def _points_array(points: dict, names: tuple[str, ...] = KEYPOINT_NAMES) -> np.ndarray:
    return np.array([[points[n].x, points[n].y] for n in names], dtype=np.float64)


def detector_error(detector: EmbeddedDetector, G: Generator, n_renders: int, n_samples: int,
                   latent_map: str = "clipped") -> dict[str, float]:
    out: dict[str, float] = {}
    for size in (128, 64):
        images, keypoints = heldout(n_renders, size)  # faces the detector's training stream never draws
        pred = np.concatenate([detector.detect_batch(images[i : i + 50]) for i in range(0, n_renders, 50)])
        out[f"renders_{size}_mean_px"] = float(np.linalg.norm(pred - keypoints, axis=-1).mean())
    from training.train_generator import params_from_z

    errors = []
    for seed in range(n_samples):
        z = G.z_from_seed(seed)
        with torch.no_grad():
            img = to_uint8(G.synthesis(G.mapping(z, None, truncation_psi=1.0)).image)
        truth = render(params_from_z(z[0].cpu().numpy(), latent_map), G.img_resolution).keypoints
        pred = detector.detect(img)
        errors.append(np.linalg.norm(_points_array(pred) - _points_array(truth), axis=-1).mean())
    out[f"samples_{G.img_resolution}_mean_px"] = float(np.mean(errors))
    return out


def drag_case(G: Generator, detector: EmbeddedDetector, command: str, seed: int, config: DragConfig,
              template: KeypointTemplate | None = None) -> DragCase:
    parse = default_parser().parse(command)
    ws = G.ws_from_seed(seed)
    with torch.no_grad():
        before_img = to_uint8(G.synthesis(ws).image)
    size = (before_img.shape[1], before_img.shape[0])
    if template is None:
        planned = plan_command(parse, size, detector.detect(before_img))
    else:  # planned from the template's points; measured by the detector all the same
        planned = plan_command(parse, size, find(template, G, ws).points)
        planned.keypoints = detector.detect(before_img)
    t0 = time.perf_counter()
    session = DragSession(G, ws, planned.pairs, mask=planned.mask, config=config)
    for _ in session.steps():
        pass
    result = session.result()
    seconds = time.perf_counter() - t0
    before = planned.keypoints
    after = detector.detect(result.image)
    named = set(planned.plan.names)
    moved = np.array([[after[n].x - before[n].x, after[n].y - before[n].y] for n in planned.plan.names])
    commanded = np.array([[p.target.x - p.handle.x, p.target.y - p.handle.y] for p in planned.pairs])
    achieved = float((moved * commanded).sum() / max((commanded**2).sum(), 1e-9))
    lip_gap = None
    if {"upper_lip", "lower_lip"} <= named:
        i, j = planned.plan.names.index("upper_lip"), planned.plan.names.index("lower_lip")
        wanted = commanded[j, 1] - commanded[i, 1]
        lip_gap = float((moved[j, 1] - moved[i, 1]) / wanted) if abs(wanted) > 1e-9 else None
    # The command names its handles and whatever lies in the region its rule lets move
    # (the whole head for a turn); everything else should stay put.
    others = tuple(n for n in KEYPOINT_NAMES if n not in named and not _inside(planned.mask, before[n]))
    shift = np.linalg.norm(_points_array(after, others) - _points_array(before, others), axis=-1)
    return DragCase(command, seed, result.converged, result.steps, result.mean_distance, achieved, lip_gap,
                    float(np.median(shift)) if others else None, seconds,
                    float(np.linalg.norm(commanded, axis=1).mean()))


def _inside(mask: np.ndarray | None, p: Point) -> bool:
    if mask is None:
        return True
    h, w = mask.shape
    x, y = min(max(round(p.x), 0), w - 1), min(max(round(p.y), 0), h - 1)
    return bool(mask[y, x])


def _median_or_none(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.median(kept)) if kept else None


def summarise(cases: list[DragCase]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for command in dict.fromkeys(c.command for c in cases):
        cs = [c for c in cases if c.command == command]
        row = {
            "converged": sum(c.converged for c in cs) / len(cs),
            # The share of drags that end with the handles' mean distance within 1 px (a drag
            # that was never planned counts as a miss); "converged" asks every handle to be.
            "mean_within_1px": sum(bool(c.mean_distance <= 1.0) for c in cs) / len(cs),
            "mean_distance_px": float(np.nanmean([c.mean_distance for c in cs])),
            "not_planned": int(sum(c.steps == 0 and np.isnan(c.mean_distance) for c in cs)),
            "achieved_median": float(np.median([c.achieved for c in cs])),
            "achieved_min": float(np.min([c.achieved for c in cs])),
            "others_median_px": _median_or_none([c.others_median_px for c in cs]),
            "steps_median": float(np.median([c.steps for c in cs])),
            "seconds_median": float(np.median([c.seconds for c in cs])),
            "commanded_px_median": float(np.nanmedian([c.commanded_px for c in cs])),
        }
        gaps = [c.lip_gap_achieved for c in cs if c.lip_gap_achieved is not None]
        if gaps:
            row["lip_gap_achieved_median"] = float(np.median(gaps))
        table[command] = row
    return table


def print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'command':<22}{'conv':>6}{'<=1px':>6}{'dist px':>9}{'achieved':>10}{'(min)':>8}{'others px':>11}{'steps':>7}{'s':>7}"
          f"{'commanded px':>14}")
    for command, r in table.items():
        others = "all named" if r["others_median_px"] is None else f"{r['others_median_px']:.2f}"
        print(f"{command:<22}{r['converged']:>6.0%}{r['mean_within_1px']:>6.0%}{r['mean_distance_px']:>9.2f}{r['achieved_median']:>10.2f}"
              f"{r['achieved_min']:>8.2f}{others:>11}{r['steps_median']:>7.0f}{r['seconds_median']:>7.1f}"
              f"{r['commanded_px_median']:>14.2f}")
        if r.get("not_planned"):
            print(f"{'':<22}{r['not_planned']} not planned (a keypoint the plan needs was not found)")
        if "lip_gap_achieved_median" in r:
            print(f"{'':<22}lip gap grew by {r['lip_gap_achieved_median']:.0%} of the commanded amount (median)")


def run_drags(G: Generator, detector: EmbeddedDetector, seeds: int, config: DragConfig,
              skipped: dict[str, list[int]] | None = None, template: KeypointTemplate | None = None,
              commands: tuple[str, ...] = COMMANDS, first_seed: int = 0) -> list[DragCase]:
    """`seeds` drags per command. A face already as the command would leave it (eyes already
    closed) has nothing to drag: its seed is recorded in `skipped` and the next seed taken."""
    cases = []
    for command in commands:
        seed, done = first_seed, 0
        while done < seeds:
            try:
                cases.append(drag_case(G, detector, command, seed, config, template))
                done += 1
            except NothingToMoveError:
                if skipped is not None:
                    skipped.setdefault(command, []).append(seed)
            except CommandError:
                # Keypoints missing for the plan (a template that left one out): a failed edit,
                # counted as not converged and nothing achieved.
                cases.append(DragCase(command, seed, False, 0, float("nan"), 0.0, None, None, 0.0, float("nan")))
                done += 1
            seed += 1
            print(f"\r{command}: {done}/{seeds}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    return cases


def drag_config(G: Generator, args: argparse.Namespace, feature_block: int | None) -> DragConfig:
    """The model's drag settings, then `--drag`, then this benchmark's own (no previews)."""
    return DragConfig.for_generator(G, **{**args.drag, "max_steps": args.max_steps, "preview_every": 0,
                                          "feature_block": feature_block})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--parts", nargs="+", default=["detector", "drags"], choices=["detector", "drags", "blocks"])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="drag seeds from this one on (settings chosen on seeds 0-19 can be checked on others)")
    ap.add_argument("--renders", type=int, default=500)
    ap.add_argument("--feature-block", type=int, default=None, help="override the model's drag feature block")
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=COMMANDS, metavar="COMMAND",
                    help="the commands to drag (default: all four)")
    ap.add_argument("--template", type=Path, default=None,
                    help="plan the drags from this keypoint template's points instead of the detector's")
    ap.add_argument("--drag", type=json.loads, default={},
                    help="drag settings over the model's own, as JSON (e.g. '{\"lr\": 0.002}')")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = load_model_file(args.model, device="cpu")
    detector = EmbeddedDetector.load()
    report: dict[str, object] = {"model": args.model, "resolution": G.img_resolution,
                                 "feature_block": args.feature_block if args.feature_block is not None
                                 else G.cfg.drag_feature_block}
    if "detector" in args.parts:
        det = detector_error(detector, G, args.renders, args.seeds, trained_latent_map(args.model))
        print("detector mean error (px):")
        for k, v in det.items():
            print(f"  {k:<24}{v:.3f}")
        report["detector"] = det
    if "drags" in args.parts:
        config = drag_config(G, args, args.feature_block)
        shown = ("lr", "r1", "r2", "space", "num_optimized_ws", "stop_distance", "lambda_mask", "max_steps",
                 "grid_scale", "tracking_block", "tracking_recent", "tracking_line")
        report["drag_settings"] = {k: getattr(config, k) for k in shown}
        print("drag settings: " + json.dumps(report["drag_settings"]))
        skipped: dict[str, list[int]] = {}
        template = KeypointTemplate.load(args.template) if args.template else None
        report["keypoints_from"] = str(args.template) if args.template else "detector"
        cases = run_drags(G, detector, args.seeds, config, skipped, template, tuple(args.commands),
                          args.first_seed)
        table = summarise(cases)
        print_table(f"drags over {args.seeds} seeds (feature block {report['feature_block']})", table)
        for command, seeds in skipped.items():
            print(f"{command}: seeds {seeds} skipped, the face was already that way (nothing to drag)")
        report["drags"] = table
        # Every drag on its own, so that a failing seed can be looked at without a rerun.
        report["drag_cases"] = [{"command": c.command, "seed": c.seed, "converged": c.converged, "steps": c.steps,
                                 "mean_distance": round(c.mean_distance, 3), "achieved": round(c.achieved, 3),
                                 "commanded_px": round(c.commanded_px, 3)} for c in cases]
        report["skipped_seeds"] = skipped
    if "blocks" in args.parts:
        blocks: dict[str, object] = {}
        for k in range(2, len(G.synthesis.block_resolutions)):
            config = drag_config(G, args, k)
            table = summarise(run_drags(G, detector, args.seeds, config))
            print_table(f"feature block {k} ({G.synthesis.block_resolutions[k]} px)", table)
            blocks[str(k)] = table
        report["blocks"] = blocks
    print(json.dumps(report))


if __name__ == "__main__":
    main()
