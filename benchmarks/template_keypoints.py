"""Teach-once keypoints on the embedded model, where the renderer knows the truth.

    python benchmarks/template_keypoints.py [--model embedded] [--taught 0] [--taught 0,1,2] [--seeds 50]
    python benchmarks/template_keypoints.py --taught 0 --write face_template.json   # for embedded_quality --template

A template is taught with the true keypoints of the taught samples (psi 1, whose
keypoints are those of the face their latent names), then finds the 20
keypoints on `--seeds` other samples (seeds 1000 on, never taught). Printed:
the mean error per keypoint and overall, in pixels and in 64 px units, for each
`--taught` set, with the time per search; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicedrag.models import load_model_file  # noqa: E402
from engine.stylegan2 import Generator  # noqa: E402
from engine.types import Point  # noqa: E402
from faceworld.render import KEYPOINT_NAMES, render  # noqa: E402
from keypoints.template import KeypointTemplate, find, teach  # noqa: E402
from training.train_generator import params_from_z, trained_latent_map  # noqa: E402


def sample(G: Generator, seed: int, latent_map: str) -> tuple[torch.Tensor, dict[str, Point]]:
    z = G.z_from_seed(seed)
    with torch.no_grad():
        ws = G.mapping(z, None, truncation_psi=1.0)
    return ws, render(params_from_z(z[0].cpu().numpy(), latent_map), G.img_resolution).keypoints


def taught_template(G: Generator, seeds: list[int], latent_map: str, blocks: list[int] | None) -> KeypointTemplate:
    template = None
    for s in seeds:
        ws, truth = sample(G, s, latent_map)
        t = teach(G, ws, truth, seed=s, blocks=blocks)
        template = t if template is None else template.merged(t)
    assert template is not None
    return template


def evaluate(G: Generator, template: KeypointTemplate, seeds: int, latent_map: str) -> dict[str, object]:
    errors: dict[str, list[float]] = {n: [] for n in KEYPOINT_NAMES}
    left_out = 0
    t0 = time.perf_counter()
    for seed in range(1000, 1000 + seeds):
        ws, truth = sample(G, seed, latent_map)
        found = find(template, G, ws)
        left_out += len(found.left_out)
        # A point left out counts at the error of the search without a threshold, so that leaving
        # hard points out cannot flatter the mean.
        points = found.points if not found.left_out else find(template, G, ws, min_confidence=0).points
        for n in KEYPOINT_NAMES:
            errors[n].append(float(np.hypot(points[n].x - truth[n].x, points[n].y - truth[n].y)))
    seconds = (time.perf_counter() - t0) / seeds
    per = {n: float(np.mean(v)) for n, v in errors.items()}
    mean = float(np.mean([e for v in errors.values() for e in v]))
    return {"mean_px": mean, "mean_px_at_64": mean * 64 / G.img_resolution, "per_keypoint_px": per,
            "left_out": left_out, "searched": seeds * len(KEYPOINT_NAMES), "seconds_per_sample": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--taught", action="append", default=None, help="comma-separated taught seeds (repeatable)")
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--blocks", default=None, help="comma-separated blocks (default: the template's default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", type=Path, default=None, help="save the first --taught set's template here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = load_model_file(args.model, device="cpu")
    latent_map = trained_latent_map(args.model)
    blocks = [int(b) for b in args.blocks.split(",")] if args.blocks else None
    report: dict[str, object] = {"model": args.model, "resolution": G.img_resolution, "seeds": args.seeds}
    results = {}
    for k, spec in enumerate(args.taught or ["0", "0,1,2"]):
        seeds = [int(s) for s in spec.split(",")]
        template = taught_template(G, seeds, latent_map, blocks)
        if k == 0 and args.write:
            template.save(args.write)
        r = evaluate(G, template, args.seeds, latent_map)
        results[spec] = r
        print(f"\ntaught on seed(s) {spec}, blocks {template.blocks}: mean {r['mean_px']:.2f} px "
              f"({r['mean_px_at_64']:.2f} px at 64 px), {r['left_out']} of {r['searched']} left out, "
              f"{r['seconds_per_sample'] * 1000:.0f} ms per sample")
        per = r["per_keypoint_px"]
        assert isinstance(per, dict)
        for n in KEYPOINT_NAMES:
            print(f"  {n:<18}{per[n]:6.2f}")
        report["blocks"] = template.blocks
    report["taught"] = results
    print(json.dumps(report))


if __name__ == "__main__":
    main()
