"""DragGAN's face-landmark protocol (paper, Sec. 4.2) on a voicedrag generator.

    python benchmarks/paper_protocol.py [--model embedded] [--pairs 10] [--seed-base 1000] [--steps 300]
                                        [--threads 1] [--device cpu]

The protocol: render two faces from two seeds, A and B (truncation psi 0.7);
detect keypoints on both; the keypoints of A are the handles and the
same-named keypoints of B their targets; drag A with no mask; detect the
keypoints again on the result. The figure is the mean distance (MD) from each
dragged keypoint, re-detected, to its target. Three settings, each its own
drag from A's latent: 1 point and 5 points (chosen at random, as the paper
does, from an RNG seeded by the seed pair, so that a rerun drags the same
points), and all points (every keypoint the detector names; the paper's "all"
is the 68 dlib face landmarks, here it is this detector's set). Pair i uses
seeds A = seed_base + 2i and B = seed_base + 2i + 1.

Beside each MD: the no-edit MD (the same keypoints of A against B's, before
any drag: how far there was to go), the engine's own tracked distance at the
end (the drag's view; MD adds the detector's error and any gap between the
tracked feature and the keypoint), the fraction of drags that met the stop
criterion, mean steps and seconds, and the paper's figures (StyleGAN2 FFHQ at
512 px). Pixels are compared across resolutions as a percentage of the image
width. Drags use the model's own drag settings (its JSON config's `drag`, over
the paper's defaults), including its stop distance.

Prints a table, then one JSON object with the same figures (and every drag's
own, under `drag_cases`) as the last line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import DragConfig, DragPair, DragSession, Point, pick_device, to_uint8  # noqa: E402
from voicedrag.models import load_model_file  # noqa: E402
from engine.stylegan2 import Generator  # noqa: E402
from keypoints.detector import EmbeddedDetector  # noqa: E402

PSI = 0.7  # the paper samples its test faces with truncation 0.7
PAPER_RESOLUTION = 512
PAPER_ALL_POINTS = 68  # dlib's 68 face landmarks
# Table 1 of the paper, "Ours": MD in pixels at 512 px.
PAPER_MD_PX = {"1": 2.44, "5": 3.18, "all": 4.73}
# (setting name, number of points; None: every keypoint the detector names)
SETTINGS: tuple[tuple[str, int | None], ...] = (("1", 1), ("5", 5), ("all", None))


@dataclass
class DragCase:
    setting: str
    seed_a: int
    seed_b: int
    names: list[str]
    no_edit_px: float  # mean |keypoint of A - keypoint of B| over `names`, before the drag
    md_px: float  # mean |re-detected keypoint - target| over `names`, after the drag
    tracked_px: float  # the engine's tracked handles' mean distance to the targets at the end
    converged: bool
    steps: int
    seconds: float
    # Every handle already within the stop distance of its target: the engine stops at once and
    # the drag's MD is the no-edit MD, so such cases measure the detector, not the drag.
    trivial: bool


@dataclass
class SettingSummary:
    setting: str
    points: int  # keypoints per drag
    drags: int
    md_px: float
    md_pct: float  # of the image width
    no_edit_px: float
    no_edit_pct: float
    tracked_px: float
    converged: float  # fraction of drags
    trivial: int  # drags that started within the stop distance (DragCase.trivial)
    steps_mean: float
    seconds_mean: float
    paper_md_px: float
    paper_md_pct: float
    paper_points: int


def render(G: Generator, ws: torch.Tensor, config: DragConfig) -> np.ndarray:
    # The same noise mode and modconv path as the drag's own renders, so that A's keypoints
    # are detected on exactly the image the drag starts from.
    with torch.no_grad():
        out = G.synthesis(ws, noise_mode=config.noise_mode, fused=config.fused_modconv)
    assert out.image is not None
    return to_uint8(out.image)


def mean_distance(a: dict[str, Point], b: dict[str, Point], names: list[str]) -> float:
    return float(np.mean([np.hypot(a[n].x - b[n].x, a[n].y - b[n].y) for n in names]))


def choose_names(names: tuple[str, ...], count: int | None, rng: np.random.Generator) -> list[str]:
    """`count` distinct keypoints at random (None: all of them, in the detector's order)."""
    if count is None or count >= len(names):
        return list(names)
    picked = rng.choice(len(names), size=count, replace=False)
    return [names[i] for i in sorted(picked)]


def drag_pair(G: Generator, detector: EmbeddedDetector, seed_a: int, seed_b: int, config: DragConfig) -> list[DragCase]:
    """The three settings' drags for one seed pair."""
    ws_a = G.ws_from_seed(seed_a, PSI)
    ws_b = G.ws_from_seed(seed_b, PSI)
    kp_a = detector.detect(render(G, ws_a, config))
    kp_b = detector.detect(render(G, ws_b, config))
    # One RNG per pair, seeded by the pair, so that each pair's subsets do not depend on
    # how many pairs run or in which order.
    rng = np.random.default_rng([seed_a, seed_b])
    cases = []
    for setting, count in SETTINGS:
        names = choose_names(detector.names, count, rng)
        pairs = [DragPair(kp_a[n], kp_b[n]) for n in names]
        stop = config.stop_px(len(pairs))
        trivial = all(np.hypot(p.target.x - p.handle.x, p.target.y - p.handle.y) <= stop for p in pairs)
        session = DragSession(G, ws_a, pairs, mask=None, config=config)
        t0 = time.perf_counter()
        for _ in session.steps():
            pass
        result = session.result()
        seconds = time.perf_counter() - t0
        after = detector.detect(result.image)
        cases.append(DragCase(setting, seed_a, seed_b, names, mean_distance(kp_a, kp_b, names),
                              mean_distance(after, kp_b, names), result.mean_distance, result.converged,
                              result.steps, seconds, trivial))
    return cases


def summarise(cases: list[DragCase], resolution: int, detector_points: int) -> list[SettingSummary]:
    rows = []
    for setting, count in SETTINGS:
        cs = [c for c in cases if c.setting == setting]
        md = float(np.mean([c.md_px for c in cs]))
        no_edit = float(np.mean([c.no_edit_px for c in cs]))
        paper = PAPER_MD_PX[setting]
        rows.append(SettingSummary(
            setting=setting, points=detector_points if count is None else min(count, detector_points),
            drags=len(cs), md_px=md, md_pct=100 * md / resolution, no_edit_px=no_edit,
            no_edit_pct=100 * no_edit / resolution, tracked_px=float(np.mean([c.tracked_px for c in cs])),
            converged=sum(c.converged for c in cs) / len(cs), trivial=sum(c.trivial for c in cs),
            steps_mean=float(np.mean([c.steps for c in cs])),
            seconds_mean=float(np.mean([c.seconds for c in cs])), paper_md_px=paper,
            paper_md_pct=100 * paper / PAPER_RESOLUTION,
            paper_points=PAPER_ALL_POINTS if count is None else count,
        ))
    return rows


def print_table(rows: list[SettingSummary], resolution: int) -> None:
    print(f"\n{'setting':<12}{'MD px':>8}{'MD %':>8}{'no-edit px':>12}{'no-edit %':>11}{'tracked px':>12}"
          f"{'conv':>6}{'trivial':>9}{'steps':>7}{'s':>7}{'paper px':>10}{'paper %':>9}")
    for r in rows:
        label = f"{r.setting} ({r.points})" if r.setting == "all" else r.setting
        paper_label = f"{r.paper_md_px:.2f}" + ("*" if r.setting == "all" else "")
        print(f"{label:<12}{r.md_px:>8.2f}{r.md_pct:>7.2f}%{r.no_edit_px:>12.2f}{r.no_edit_pct:>10.2f}%"
              f"{r.tracked_px:>12.2f}{r.converged:>6.0%}{f'{r.trivial}/{r.drags}':>9}"
              f"{r.steps_mean:>7.0f}{r.seconds_mean:>7.1f}"
              f"{paper_label:>10}{r.paper_md_pct:>8.2f}%")
    print(f"MD and no-edit in px of this model's {resolution} px images, % of the width; the paper's at "
          f"{PAPER_RESOLUTION} px.")
    print(f"* the paper's 'all' is the {PAPER_ALL_POINTS} dlib face landmarks; here, every keypoint this "
          "detector names.")
    print("tracked: the engine's own handle distance at the end; trivial: drags whose handles started within "
          "the stop distance (nothing dragged).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--seed-base", type=int, default=1000,
                    help="pair i drags seed base+2i toward seed base+2i+1 (the tests use seeds 0-20)")
    ap.add_argument("--steps", type=int, default=300, help="max steps per drag")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    G = load_model_file(args.model, device=pick_device(args.device))
    detector = EmbeddedDetector.load()
    res = G.img_resolution
    # The model's own drag settings; previews off, because only the final image is measured.
    config = DragConfig.for_generator(G, max_steps=args.steps, preview_every=0)
    settings = {k: getattr(config, k) for k in ("lr", "r1", "r2", "space", "num_optimized_ws", "feature_block",
                                                "stop_distance", "lambda_mask", "max_steps", "grid_scale",
                                                "tracking_block", "tracking_recent", "tracking_line")}
    stops = {s: config.stop_px(c or len(detector.names)) for s, c in SETTINGS}
    print(f"model {args.model}: {res} px, device {G.device}, threads {torch.get_num_threads()}; "
          f"{args.pairs} seed pairs from {args.seed_base}; psi {PSI}")
    print("drag settings: " + json.dumps(settings))
    print("stop distance px (1 / 5 / all): " + " / ".join(f"{v:g} ({100 * v / res:.2f}%)" for v in stops.values()))

    cases: list[DragCase] = []
    for i in range(args.pairs):
        seed_a, seed_b = args.seed_base + 2 * i, args.seed_base + 2 * i + 1
        cases.extend(drag_pair(G, detector, seed_a, seed_b, config))
        print(f"\rpairs: {i + 1}/{args.pairs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    rows = summarise(cases, res, len(detector.names))
    print_table(rows, res)
    report: dict[str, object] = {
        "model": args.model, "resolution": res, "device": str(G.device), "threads": torch.get_num_threads(),
        "pairs": args.pairs, "seed_base": args.seed_base, "psi": PSI, "detector_points": len(detector.names),
        "drag_settings": settings, "stop_px": stops,
        "settings": {r.setting: {k: round(v, 4) if isinstance(v, float) else v
                                 for k, v in asdict(r).items() if k != "setting"} for r in rows},
        "paper": {"resolution": PAPER_RESOLUTION, "md_px": PAPER_MD_PX, "all_points": PAPER_ALL_POINTS},
        "seconds_total": round(time.perf_counter() - t_start, 1),
        # Every drag on its own, so that a bad pair can be looked at without a rerun.
        "drag_cases": [{"setting": c.setting, "seed_a": c.seed_a, "seed_b": c.seed_b,
                        "names": c.names if len(c.names) <= 5 else "all",
                        "no_edit_px": round(c.no_edit_px, 3), "md_px": round(c.md_px, 3),
                        "tracked_px": round(c.tracked_px, 3), "converged": c.converged, "trivial": c.trivial,
                        "steps": c.steps, "seconds": round(c.seconds, 2)} for c in cases],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
