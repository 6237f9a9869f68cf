"""Milliseconds per drag iteration: the engine's loop against a plain reference loop.

The reference loop is the official order of operations written out plainly:
full synthesis (image and every block's features) on every step, resize of
the feature block to the image size, tracking, motion loss, Adam step. The
engine's loop is `engine.DragSession` with previews off. Both run on randomly
initialised generators of the official 256 and 512 px configurations
(z/w 512, 8 mapping layers, channel_base 32768, channel_max 512), one handle.

    python benchmarks/drag_speed.py [--resolutions 256 512] [--iters 5] [--threads 2]

Prints a table, then one JSON object with the same figures as the last line.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine import DragConfig, DragPair, DragSession, Generator, GeneratorConfig, MappingConfig, Point
from engine.drag import motion_loss, track_points


def official_config(resolution: int) -> GeneratorConfig:
    return GeneratorConfig(
        z_dim=512, w_dim=512, img_resolution=resolution, channel_base=32768, channel_max=512,
        num_fp16_res=4, conv_clamp=256, mapping=MappingConfig(num_layers=8),
    )


@dataclass
class Timing:
    ms_per_iter: float
    gflop_per_iter: float | None


def reference_loop(G: Generator, ws0: torch.Tensor, pair: DragPair, iters: int, warmup: int) -> Timing:
    """Official order, nothing skipped: full synthesis every step."""
    cfg = DragConfig()
    res = G.img_resolution
    r1, r2 = cfg.radii(res)
    latent = ws0[:, :6].clone().requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=cfg.lr)
    point = (int(pair.handle.x), int(pair.handle.y))
    refs = None

    def step() -> None:
        nonlocal point, refs
        ws = torch.cat([latent, ws0[:, 6:]], dim=1)
        out = G.synthesis(ws, return_features=True)
        feat = F.interpolate(out.features[G.cfg.drag_feature_block], [res, res], mode="bilinear", align_corners=False)
        if refs is None:
            refs = feat.detach()[0, :, point[1], point[0]].unsqueeze(0)
        with torch.no_grad():
            point = track_points(feat, refs, [point], r2)[0]
        loss = motion_loss(feat, point, pair.target, r1)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _time(step, iters, warmup)


def engine_loop(G: Generator, ws0: torch.Tensor, pair: DragPair, iters: int, warmup: int) -> Timing:
    cfg = DragConfig(max_steps=10**9, preview_every=0, stop_distance=0.0)
    session = DragSession(G, ws0, [pair], config=cfg)
    session.step()  # the first step always renders a preview frame; time the steady state
    return _time(session.step, iters, warmup)


def _time(step, iters: int, warmup: int) -> Timing:
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    ms = (time.perf_counter() - t0) / iters * 1000
    flops = None
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops() / 1e9
    except Exception:  # the counter is a diagnostic; timing stands without it
        flops = None
    return Timing(ms, flops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    figures: dict[str, float | None] = {"threads": torch.get_num_threads()}
    print(f"{'config':>8} {'loop':>10} {'ms/iter':>10} {'GFLOP/iter':>11}")
    for res in args.resolutions:
        G = Generator(official_config(res)).eval().requires_grad_(False)
        ws0 = G.ws_from_seed(0)
        c = res // 2
        pair = DragPair(Point(c, c), Point(c + res // 25, c))  # a 20 px drag at 512
        ref = reference_loop(G, ws0, pair, args.iters, args.warmup)
        eng = engine_loop(G, ws0, pair, args.iters, args.warmup)
        for name, t in (("reference", ref), ("engine", eng)):
            gf = f"{t.gflop_per_iter:11.1f}" if t.gflop_per_iter is not None else f"{'-':>11}"
            print(f"{res:>8} {name:>10} {t.ms_per_iter:10.1f} {gf}")
        ratio = ref.ms_per_iter / eng.ms_per_iter
        print(f"{res:>8} {'ratio':>10} {ratio:10.2f}x")
        figures[f"ref_ms_{res}"] = round(ref.ms_per_iter, 1)
        figures[f"engine_ms_{res}"] = round(eng.ms_per_iter, 1)
        figures[f"ref_gflop_{res}"] = ref.gflop_per_iter and round(ref.gflop_per_iter, 2)
        figures[f"engine_gflop_{res}"] = eng.gflop_per_iter and round(eng.gflop_per_iter, 2)
        figures[f"ratio_{res}"] = round(ratio, 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
