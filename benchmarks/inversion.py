"""GAN inversion (engine.invert): reconstruction PSNR and time on faces the generator never drew.

    python benchmarks/inversion.py [--faces 12] [--first-seed 90000] [--parts faces starts losses curve official]
    python benchmarks/inversion.py --parts faces --set tune_steps=200 --set tune_lr=0.02   # other settings
    python benchmarks/inversion.py --parts official --official-full    # run a whole 512 px inversion

The targets are face-world renders (`faceworld.render.render_seed`, seeds from 90000 on, which no
test and no tuning run used) inverted into the embedded 128 px model. The renderer's faces
vary more than the model's training world (shifts, tilts, jaw, hair style, background
gradients are fixed there), so they stand in for photos: W and W+ cannot reach them, pivotal
tuning closes the rest. Parts:

- faces: the default settings; per phase the median PSNR at its end (start, W, W+, tuned),
  seconds per inversion, ms per step of each phase, and locality: PSNR of the tuned generator
  against the original on random w a share 0.3 / 0.5 / 1.0 of the way from the pivot (latents
  the tuning never saw);
- starts: W from w_avg against the best of 64 random w;
- losses: the reconstruction loss options, each with the default phases;
- curve: the step budget scaled (every phase's steps x 0.5 .. 2): PSNR against seconds;
- official: a random-weight StyleGAN2 of the official 512 px configuration (as
  benchmarks/drag_speed.py builds it): ms per step of each phase, a start batch, a render, and
  the time of a full inversion with the default settings, estimated from them (or run whole
  with --official-full).

PSNR is of the uint8 result against the uint8 target. Wall times depend on what else runs on the
machine: the 1-minute load average is printed with them. Prints tables, then one JSON object
with the figures as the last line.
"""

from __future__ import annotations

import os

# As the voicedrag command runs (voicedrag/__init__.py): set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import os
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from engine import Generator, GeneratorConfig, MappingConfig
from engine.invert import Inversion, InversionResult, InvertConfig, psnr_uint8
from engine.stylegan2 import GeneratorBase

PHASES = ("start", "w", "w+", "tune")
LOCALITY_SHARES = (0.3, 0.5, 1.0)
# The loss options compared (weights of `engine.invert.reconstruction_loss`).
LOSSES: dict[str, dict[str, Any]] = {
    "L1": dict(l1=1.0, l2=0.0, gradient=0.0, ssim=0.0, scales=1),
    "L2": dict(l1=0.0, l2=1.0, gradient=0.0, ssim=0.0, scales=1),
    "L2 + 0.1 SSIM": dict(l1=0.0, l2=1.0, gradient=0.0, ssim=0.1, scales=1),
    "L2 + 0.3 SSIM": dict(l1=0.0, l2=1.0, gradient=0.0, ssim=0.3, scales=1),
    "L2, 3 scales": dict(l1=0.0, l2=1.0, gradient=0.0, ssim=0.0, scales=3),
    "L2 + 0.1 gradient": dict(l1=0.0, l2=1.0, gradient=0.1, ssim=0.0, scales=1),
    "L1 + gradient, 2 scales": dict(l1=1.0, l2=0.0, gradient=1.0, ssim=0.0, scales=2),
}
CURVE = (0.5, 0.75, 1.0, 1.5, 2.0)


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def faces(first_seed: int, n: int, size: int) -> list[np.ndarray]:
    from faceworld.render import render_seed

    return [np.array(render_seed(first_seed + i, size).image) for i in range(n)]


def locality(G: GeneratorBase, result: InversionResult, seed: int, n: int = 4) -> dict[float, float]:
    """PSNR of the tuned generator against the original at shares of the way from the pivot to random w."""
    if result.tuned_state is None:
        return {share: float("inf") for share in LOCALITY_SHARES}
    tuned = result.apply_to(G)
    z = torch.randn([n, G.cfg.z_dim], generator=torch.Generator().manual_seed(10_000 + seed))
    with torch.no_grad():
        ws = G.mapping(z.to(G.device), None)
    out = {}
    for share in LOCALITY_SHARES:
        values = []
        for k in range(n):
            w = result.ws.lerp(ws[k : k + 1], share)
            values.append(psnr_uint8(tuned.render(w), G.render(w)))
        out[share] = float(np.median(values))
    return out


def run_faces(
    G: GeneratorBase, targets: list[np.ndarray], cfg: InvertConfig, with_locality: bool = False
) -> dict[str, Any]:
    """Invert every target; medians of the phase PSNRs, the result's PSNR, seconds and ms per step."""
    per_phase: dict[str, list[float]] = {p: [] for p in PHASES}
    step_ms: dict[str, list[float]] = {p: [] for p in PHASES}
    psnr, seconds, steps = [], [], []
    local: dict[float, list[float]] = {s: [] for s in LOCALITY_SHARES}
    for i, target in enumerate(targets):
        inv = Inversion(G, target, cfg)
        for s in inv.steps():
            if s.step > 0:  # a phase's first step pays for its warm-up
                step_ms[s.phase].append(s.seconds * 1000)
        result = inv.result()
        for p, v in (result.psnr_by_phase or {}).items():
            per_phase[p].append(v)
        psnr.append(result.psnr)
        seconds.append(result.seconds)
        steps.append(result.steps)
        if with_locality:
            for share, v in locality(G, result, i).items():
                local[share].append(v)
    med = lambda xs: round(float(np.median(xs)), 2) if xs else None  # noqa: E731
    out: dict[str, Any] = {
        "psnr_median": med(psnr),
        "psnr_min": round(float(np.min(psnr)), 2),
        "seconds_median": med(seconds),
        "seconds_max": round(float(np.max(seconds)), 2),
        "steps_median": med(steps),
        **{f"{p}_psnr_median": med(per_phase[p]) for p in PHASES},
        "ms_per_step": {p: med(step_ms[p]) for p in PHASES if step_ms[p]},
    }
    if with_locality:
        out["locality_psnr_median"] = {str(s): med(v) for s, v in local.items()}
    return out


def fmt(x: Any, width: int = 8) -> str:
    return f"{x:>{width}.2f}" if isinstance(x, (int, float)) and x is not None else f"{'-':>{width}}"


def print_row(name: str, r: dict[str, Any]) -> None:
    print(
        f"{name:>26} {fmt(r['w_psnr_median'])} {fmt(r['w+_psnr_median'])} {fmt(r['tune_psnr_median'])} "
        f"{fmt(r['psnr_median'])} {fmt(r['seconds_median'])} {fmt(r['ms_per_step'].get('tune'))}"
    )


def header(first: str) -> None:
    print(f"{first:>26} {'W dB':>8} {'W+ dB':>8} {'tuned dB':>8} {'result':>8} {'s':>8} {'tune ms':>8}")


def official_generator(resolution: int = 512) -> Generator:
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        z_dim=512,
        w_dim=512,
        img_resolution=resolution,
        channel_base=32768,
        channel_max=512,
        num_fp16_res=4,
        conv_clamp=256,
        mapping=MappingConfig(num_layers=8),
    )
    G = Generator(cfg).eval().requires_grad_(False)
    with torch.no_grad():  # a random network's w_avg is zero; set it as training would have
        G.mapping.w_avg.copy_(G.mapping(torch.randn(2000, 512), None)[:, 0].mean(0))
    return G


def official(cfg: InvertConfig, full: bool) -> dict[str, Any]:
    """ms per step of each phase on the random 512 px network, and a full inversion's time."""
    G = official_generator()
    target = G.render(G.ws_from_seed(1))
    few = replace(cfg, w_steps=3, wplus_steps=3, tune_steps=3, start_candidates=15, preview_every=0)
    inv = Inversion(G, target, few)
    times: dict[str, list[float]] = {p: [] for p in PHASES}
    t0 = time.perf_counter()
    for s in inv.steps():
        times[s.phase].append(s.seconds)
    probe_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    inv.render()
    render_s = time.perf_counter() - t0
    ms = {p: round(float(np.median(v[1:] or v)) * 1000, 1) for p, v in times.items() if v}
    # The rest of the probe's time: the copy of the generator, the w statistics, each phase's
    # final render and the locality samples' renders.
    overhead = probe_seconds - sum(sum(v) for v in times.values())
    extra_locality = max(cfg.locality_samples - few.locality_samples, 0) * render_s
    batches = -(-(cfg.start_candidates + 1) // 8) if cfg.start_candidates else 0
    estimate = (
        batches * ms.get("start", 0) / 1000
        + cfg.w_steps * ms["w"] / 1000
        + cfg.wplus_steps * ms["w+"] / 1000
        + (cfg.tune_steps * ms["tune"] / 1000 if cfg.tune else 0)
        + overhead
        + extra_locality
    )
    out: dict[str, Any] = {
        "ms_per_step": ms,
        "render_ms": round(render_s * 1000, 1),
        "full_seconds_estimate": round(estimate, 1),
        "num_ws": G.num_ws,
    }
    print(
        f"\nofficial 512 px configuration (random weights): ms per step {ms} (start: a batch of 8 candidates), "
        f"render {render_s * 1000:.0f} ms"
    )
    print(f"  a full inversion with the default settings, estimated: {estimate:.0f} s")
    if full:
        result = Inversion(G, target, replace(cfg, preview_every=0)).run()
        out["full_seconds"] = round(result.seconds, 1)
        print(f"  a full inversion, run: {result.seconds:.0f} s ({result.steps} steps)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=12)
    ap.add_argument("--first-seed", type=int, default=90000)
    ap.add_argument("--loss-faces", type=int, default=6, help="faces of the losses, starts and curve parts")
    ap.add_argument(
        "--parts",
        nargs="+",
        choices=["faces", "starts", "losses", "curve", "official"],
        default=["faces", "starts", "losses", "curve", "official"],
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an InvertConfig setting over the defaults (JSON value)",
    )
    ap.add_argument("--official-full", action="store_true", help="run a whole 512 px inversion, not only its steps")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = dict(item.split("=", 1) for item in args.set)
    cfg = InvertConfig.from_dict({"preview_every": 0, **{k: parse_value(v) for k, v in settings.items()}})
    fig: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "load_avg_1min_start": round(os.getloadavg()[0], 2),
        "config": asdict(cfg),
    }

    from voicedrag.models import load_model_file

    G = load_model_file("embedded", device="cpu")
    targets = faces(args.first_seed, args.faces, G.img_resolution)
    few = targets[: args.loss_faces]

    if "faces" in args.parts:
        print(f"{args.faces} faces (seeds {args.first_seed}..{args.first_seed + args.faces - 1}), default settings")
        header("")
        r = run_faces(G, targets, cfg, with_locality=True)
        print_row("default", r)
        print(
            f"  result PSNR min {r['psnr_min']:.2f} dB; seconds max {r['seconds_max']:.2f}; ms per step "
            f"{r['ms_per_step']}; locality PSNR (share of the way to random w: dB) {r['locality_psnr_median']}"
        )
        fig["faces"] = {"n": args.faces, "first_seed": args.first_seed, **r}
    if "starts" in args.parts:
        print(f"\nstart of the W phase ({len(few)} faces)")
        header("start")
        fig["starts"] = {}
        for name, n in (("w_avg", 0), ("best of 64 random w", 64)):
            r = run_faces(G, few, replace(cfg, start_candidates=n))
            print_row(name, r)
            fig["starts"][name] = r
    if "losses" in args.parts:
        print(f"\nreconstruction loss ({len(few)} faces, default phases)")
        header("loss")
        fig["losses"] = {}
        for name, weights in LOSSES.items():
            r = run_faces(G, few, replace(cfg, **weights))
            print_row(name, r)
            fig["losses"][name] = r
    if "curve" in args.parts:
        print(f"\nstep budget ({len(few)} faces; every phase's steps scaled)")
        header("scale")
        fig["curve"] = {}
        for k in CURVE:
            scaled = replace(
                cfg,
                w_steps=round(cfg.w_steps * k),
                wplus_steps=round(cfg.wplus_steps * k),
                tune_steps=round(cfg.tune_steps * k),
            )
            r = run_faces(G, few, scaled)
            print_row(f"x{k}", r)
            fig["curve"][str(k)] = r
    if "official" in args.parts:
        fig["official_512"] = official(cfg, args.official_full)
    fig["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    summary = fig.get("faces")
    if summary:
        print(
            f"\nmedian over {summary['n']} faces: W {summary['w_psnr_median']} dB, "
            f"W+ {summary['w+_psnr_median']} dB, tuned {summary['psnr_median']} dB in {summary['seconds_median']} s "
            f"(load average {fig['load_avg_1min_start']} -> {fig['load_avg_1min_end']})"
        )
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
