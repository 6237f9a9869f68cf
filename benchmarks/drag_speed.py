"""Milliseconds per drag iteration: the engine's loop against a plain reference loop.

The reference loop is the official order of operations written out plainly:
full synthesis (image and every block's features) on every step, resize of
the whole feature block to the image size, tracking, motion loss (and mask
loss), Adam step. The engine's loop is `engine.DragSession`: between preview
frames it synthesises only up to the feature block, and without a mask only
windows around the handles. Both run on randomly initialised generators of
the official 256 and 512 px configurations (z/w 512, 8 mapping layers,
channel_base 32768, channel_max 512), one handle.

    python benchmarks/drag_speed.py [--resolutions 256 512] [--iters 5] [--traj-steps 50] [--parts handles]

The many-handle case (1, 5, 20 handles on the embedded model and the 512 px configuration)
compares the session as it runs by default with the dense path on every step.

Prints a table, then one JSON object with the same figures as the last line.
Preview frames are excluded from the per-iteration times and timed separately.
"""
from __future__ import annotations

import argparse
import json
import os

# As the voicedrag command runs (voicedrag/__init__.py): set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine import DragConfig, DragPair, DragSession, Generator, GeneratorConfig, MappingConfig, Point
from engine.drag import motion_loss, track_points


def official_config(resolution: int, channel_base: int = 32768) -> GeneratorConfig:
    """The official configurations: config-f (channel_base 32768), paper512 (16384)."""
    return GeneratorConfig(
        z_dim=512, w_dim=512, img_resolution=resolution, channel_base=channel_base, channel_max=512,
        num_fp16_res=4, conv_clamp=256, mapping=MappingConfig(num_layers=8),
    )


def make_generator(resolution: int, channel_base: int = 32768) -> Generator:
    torch.manual_seed(0)
    return Generator(official_config(resolution, channel_base)).eval().requires_grad_(False)


CONFIGS = {"config-f": 32768, "paper512": 16384}


def mouth_case(res: int) -> tuple[list[DragPair], np.ndarray]:
    """A word edit's shape on a face-framed image: "open the mouth" moves the lower lip down and
    the upper lip up, inside a movable region around the mouth (the face rules' mouth mask
    spans about a third of the face's width and a sixth of its height)."""
    cx, cy = res / 2, res * 0.72
    d = res * 12 / 512
    pairs = [DragPair(Point(cx, cy + 2), Point(cx, cy + 2 + d)), DragPair(Point(cx, cy - 2), Point(cx, cy - 2 - d / 3))]
    movable = np.zeros((res, res), bool)
    movable[int(cy - res * 0.09) : int(cy + res * 0.1), int(cx - res * 0.17) : int(cx + res * 0.17)] = True
    return pairs, movable


def whole_drags(steps: int, mask_every: int, preview_size: int, fig: dict[str, float | int | None]) -> None:
    """Whole drags as a user meets them: 40 steps at 512 px, 2 handles, with and without the
    mouth mask; session set-up, path choice, previews at pane size (one every 0.25 s, as the
    TUI asks) and the final full-size render included. Each configuration beside the official
    loop's step (from the same state; its whole drag is `steps` of them)."""
    print(f"whole drags at 512 px: {steps} steps, 2 handles, previews of {preview_size} px every 0.25 s")
    for name, base in CONFIGS.items():
        G = make_generator(512, base)
        ws0 = G.ws_from_seed(0)
        pairs, movable = mouth_case(512)
        for mask in (None, movable):
            tag = f"{name}{'_mask' if mask is not None else ''}"
            cfg = DragConfig.for_generator(G, max_steps=steps, stop_distance=0.0, preview_every=0,
                                           preview_seconds=0.25, preview_size=preview_size,
                                           mask_every=mask_every if mask is not None else 1)
            t0 = time.perf_counter()
            session = DragSession(G, ws0, pairs, mask=mask, config=cfg)
            for _ in session.steps():
                pass
            session.result()
            whole = time.perf_counter() - t0
            ref = time_steps(ReferenceLoop(G, ws0, pairs[0], mask).step, 3, 1)
            print(f"{tag:>18}: {whole:6.2f} s ({whole / steps * 1000:6.1f} ms a step, {len(session.frames)} previews);"
                  f" official loop {ref.ms_per_iter:7.1f} ms a step, {ref.ms_per_iter * steps / 1000:6.1f} s a drag")
            fig[f"drag40_s_{tag}"] = round(whole, 2)
            fig[f"drag40_ref_s_{tag}"] = round(ref.ms_per_iter * steps / 1000, 2)
        s = DragSession(G, ws0, pairs, config=DragConfig(max_steps=1, preview_every=0, preview_size=preview_size))
        s.render_preview()
        t0 = time.perf_counter()
        s.render_preview()
        fig[f"preview_pane_ms_{name}"] = round((time.perf_counter() - t0) * 1000, 1)
        print(f"{name:>18}: a {preview_size} px preview frame {fig[f'preview_pane_ms_{name}']:.1f} ms")


def busy(seconds: float) -> subprocess.Popen[bytes]:
    """A competing process that keeps one core busy (a user's machine is rarely idle)."""
    code = (
        "import time, torch\n"
        "torch.set_num_threads(1)\n"
        "a = torch.randn(512, 512)\n"
        f"end = time.time() + {seconds}\n"
        "while time.time() < end:\n"
        "    a = torch.tanh(a @ a)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def centre_mask(res: int) -> np.ndarray:
    m = np.zeros((res, res), bool)
    m[res // 4 : 3 * res // 4, res // 4 : 3 * res // 4] = True
    return m


class ReferenceLoop:
    """The official loop, nothing skipped."""

    def __init__(self, G: Generator, ws0: torch.Tensor, pair: DragPair, mask: np.ndarray | None = None) -> None:
        cfg = DragConfig()
        self.G, self.ws0, self.pair, self.cfg = G, ws0, pair, cfg
        self.res = G.img_resolution
        self.r1, self.r2 = cfg.radii(self.res)
        self.latent = ws0[:, :6].clone().requires_grad_(True)
        self.opt = torch.optim.Adam([self.latent], lr=cfg.lr)
        self.point = (int(pair.handle.x), int(pair.handle.y))
        self.fixed = None if mask is None else torch.from_numpy(~mask).float()[None, None]
        self.refs: torch.Tensor | None = None
        self.feat0: torch.Tensor | None = None

    def step(self) -> tuple[int, int]:
        ws = torch.cat([self.latent, self.ws0[:, 6:]], dim=1)
        out = self.G.synthesis(ws, return_features=True)
        feat = F.interpolate(out.features[self.G.cfg.drag_feature_block], [self.res, self.res], mode="bilinear",
                             align_corners=False)
        if self.refs is None:
            self.feat0 = feat.detach()
            self.refs = self.feat0[0, :, self.point[1], self.point[0]].unsqueeze(0)
        with torch.no_grad():
            self.point = track_points(feat, self.refs, [self.point], self.r2)[0]
        x, y = self.point
        if np.hypot(self.pair.target.x - x, self.pair.target.y - y) <= 1:
            return self.point  # the official loop supervises only handles more than 1 px away
        loss = motion_loss(feat, self.point, self.pair.target, self.r1)
        if self.fixed is not None:
            loss = loss + self.cfg.lambda_mask * F.l1_loss(feat * self.fixed, self.feat0 * self.fixed)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return self.point


@dataclass
class Timing:
    ms_per_iter: float
    gflop_per_iter: float | None


def time_steps(step: Callable[[], object], iters: int, warmup: int) -> Timing:
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    ms = (time.perf_counter() - t0) / iters * 1000
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        flops: float | None = counter.get_total_flops() / 1e9
    except Exception:  # the counter is a diagnostic; the timing stands without it
        flops = None
    return Timing(ms, flops)


def engine_session(G: Generator, ws0: torch.Tensor, pair: DragPair, mask: np.ndarray | None) -> DragSession:
    cfg = DragConfig(max_steps=10**9, preview_every=0, stop_distance=0.0)
    s = DragSession(G, ws0, [pair], mask=mask, config=cfg)
    s.step()  # the first step always renders a preview; time the steady state
    return s


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB. Linux's VmHWM belongs to the current program
    image; getrusage's ru_maxrss survives exec and so, in a child forked from a large parent,
    reports the parent's size (measured: 3.5 GB against 0.9 GB after a 512 px reference loop)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_child(resolution: int, steps: int) -> float:
    """Peak resident memory (MB) of a fresh process that runs an engine drag at this resolution."""
    code = (
        "import sys, torch\n"
        "sys.path.insert(0, %r)\n"
        "from benchmarks.drag_speed import make_generator, engine_session, pair_for, peak_rss_mb\n"
        "G = make_generator(%d); ws = G.ws_from_seed(0)\n"
        "s = engine_session(G, ws, pair_for(%d), None)\n"
        "[s.step() for _ in range(%d)]\n"
        "s.render()\n"
        "print(peak_rss_mb())\n"
    ) % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), resolution, resolution, steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def pair_for(res: int) -> DragPair:
    c = res // 2
    return DragPair(Point(c, c), Point(c + res * 20 // 512, c))  # a 20 px drag at 512


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--traj-steps", type=int, default=50, help="steps of the trajectory comparison (256 px)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--converge-steps", type=int, default=150, help="cap of the 20 px convergence race (512 px)")
    ap.add_argument("--parts", nargs="+",
                    choices=["timing", "drags", "trajectory", "convergence", "memory", "handles"],
                    default=["timing", "drags", "trajectory", "convergence", "memory", "handles"])
    ap.add_argument("--drag-steps", type=int, default=40, help="steps of the whole drags (drags)")
    ap.add_argument("--mask-every", type=int, default=1, help="DragConfig.mask_every of the masked whole drags")
    ap.add_argument("--preview-size", type=int, default=128, help="preview frames' width of the whole drags")
    ap.add_argument("--load", action="store_true",
                    help="run everything beside a competing process that keeps one core busy")
    ap.add_argument("--handle-models", nargs="+", default=["embedded", "512"],
                    help="models of the many-handle case: 'embedded', a model path, or a resolution")
    ap.add_argument("--handle-iters", type=int, default=20, help="timed steps per case of the many-handle case")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fig: dict[str, float | int | None] = {"threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0],
                                          "competing_process": args.load}
    competitor = busy(24 * 3600) if args.load else None
    try:
        run(args, fig)
    finally:
        if competitor is not None:
            competitor.kill()
    fig["peak_rss_mb_this_run"] = round(peak_rss_mb(), 1)
    print(json.dumps(fig))


def run(args: argparse.Namespace, fig: dict[str, float | int | None]) -> None:
    print(f"{'config':>10} {'loop':>10} {'ms/iter':>10} {'GFLOP/iter':>11}")

    def row(name: str, res: str, t: Timing) -> None:
        gf = f"{t.gflop_per_iter:11.1f}" if t.gflop_per_iter is not None else f"{'-':>11}"
        print(f"{res:>10} {name:>10} {t.ms_per_iter:10.1f} {gf}")

    for res in args.resolutions if "timing" in args.parts else []:
        G = make_generator(res)
        ws0 = G.ws_from_seed(0)
        masks = [None, centre_mask(res)] if res == 512 else [None]
        for mask in masks:
            tag = f"{res}" + ("_mask" if mask is not None else "")
            ref = time_steps(ReferenceLoop(G, ws0, pair_for(res), mask).step, args.iters, args.warmup)
            eng = time_steps(engine_session(G, ws0, pair_for(res), mask).step, args.iters, args.warmup)
            row("reference", tag, ref)
            row("engine", tag, eng)
            ratio = ref.ms_per_iter / eng.ms_per_iter
            print(f"{tag:>10} {'ratio':>10} {ratio:10.2f}x")
            fig[f"ref_ms_{tag}"] = round(ref.ms_per_iter, 1)
            fig[f"engine_ms_{tag}"] = round(eng.ms_per_iter, 1)
            fig[f"ref_gflop_{tag}"] = None if ref.gflop_per_iter is None else round(ref.gflop_per_iter, 2)
            fig[f"engine_gflop_{tag}"] = None if eng.gflop_per_iter is None else round(eng.gflop_per_iter, 2)
            fig[f"ratio_{tag}"] = round(ratio, 3)
        # A full preview frame, timed on its own.
        s = engine_session(G, ws0, pair_for(res), None)
        t0 = time.perf_counter()
        s.render()
        fig[f"preview_ms_{res}"] = round((time.perf_counter() - t0) * 1000, 1)
        print(f"{res:>10} {'preview':>10} {fig[f'preview_ms_{res}']:10.1f}")

    if "drags" in args.parts:
        whole_drags(args.drag_steps, args.mask_every, args.preview_size, fig)
    if "trajectory" in args.parts:
        trajectory_gap(args.traj_steps, fig)
    if "convergence" in args.parts:
        convergence_race(max(args.resolutions), args.converge_steps, fig)
    if "handles" in args.parts:
        for model in args.handle_models:
            many_handles(model, args.handle_iters, fig)
    if "memory" in args.parts:
        fig["peak_rss_mb_512"] = round(peak_rss_child(512, 5), 1)
        print(f"peak resident memory of a 512 px engine drag (fresh process): {fig['peak_rss_mb_512']:.0f} MB")


def many_handles(model: str, iters: int, fig: dict[str, float | int | None]) -> None:
    """ms per step with 1, 5 and 20 handles (random, 5% of the image apart from their targets):
    the session as it runs by default (windows, merged, or the dense path when cheaper) against
    the dense path on every step; and the largest gap between the two trajectories.

    The first steps of a session time both paths (`DragSession._dense_this_step`); they are
    run before the timed ones, as in any drag longer than a few steps."""
    if model.isdigit():
        G, tag = make_generator(int(model)), model
    else:
        from voicedrag.models import load_model_file

        G, tag = load_model_file(model, device="cpu"), Path(model).stem
    res = G.img_resolution
    ws0 = G.ws_from_seed(0)
    rng = np.random.default_rng(0)
    warm = 8
    base = None
    print(f"many handles, {tag} ({res} px): ms/step, default session against dense on every step")
    for n in (1, 5, 20):
        pts = rng.uniform(0.15 * res, 0.85 * res, size=(n, 2))
        pairs = [DragPair(Point(float(x), float(y)), Point(float(x) + 0.05 * res, float(y))) for x, y in pts]
        sessions, trajs, step_ms = {}, {}, {}
        for windowed in (True, False):
            cfg = DragConfig.for_generator(G, windowed=windowed, max_steps=warm + iters, preview_every=0,
                                           stop_distance=0.0)
            sessions[windowed] = DragSession(G, ws0, pairs, config=cfg)
            trajs[windowed] = [sessions[windowed].step().points for _ in range(warm)]
            step_ms[windowed] = []
        # The two sessions step in turn and each one's median step is taken: on a shared CPU
        # whose speed drifts, timing one after the other compares two different machines.
        for _ in range(iters):
            for windowed in (True, False):
                t0 = time.perf_counter()
                trajs[windowed].append(sessions[windowed].step().points)
                step_ms[windowed].append((time.perf_counter() - t0) * 1000)
        times = {windowed: float(np.median(ms)) for windowed, ms in step_ms.items()}
        gaps = [max(float(np.hypot(a.x - b.x, a.y - b.y)) for a, b in zip(pa, pb))
                for pa, pb in zip(trajs[True], trajs[False])]
        gap = max(gaps)
        # The two paths agree to float rounding, not bit for bit: over many steps a rounding
        # difference can flip one nearest-neighbour choice of the tracking by a pixel.
        parted = next((k for k, g in enumerate(gaps) if g > 0), None)
        if n == 1:
            base = times[False]
        assert base is not None
        print(f"{n:>4} handles: default {times[True]:8.1f}  dense {times[False]:8.1f}  "
              f"default/dense {times[True] / times[False]:5.2f}  vs 1-handle dense {times[True] / base:5.2f}x  "
              f"trajectory gap {gap:.4f} px" + ("" if parted is None else f" (from step {parted + 1} of {len(gaps)})"))
        fig.update({f"handles{n}_default_ms_{tag}": round(times[True], 1),
                    f"handles{n}_dense_ms_{tag}": round(times[False], 1),
                    f"handles{n}_vs_1_dense_{tag}": round(times[True] / base, 3),
                    f"handles{n}_gap_px_{tag}": round(gap, 4),
                    f"handles{n}_gap_from_step_{tag}": None if parted is None else parted + 1})


def trajectory_gap(steps: int, fig: dict[str, float | int | None]) -> None:
    """The engine's handle against the reference loop's, step by step, at 256 px."""
    G = make_generator(256)
    ws0 = G.ws_from_seed(1)
    pair = DragPair(Point(100, 140), Point(130, 120))
    ref_loop = ReferenceLoop(G, ws0, pair)
    eng = DragSession(G, ws0, [pair], config=DragConfig(max_steps=steps, stop_distance=0.0))
    gap = 0.0
    for _ in range(steps):
        rx, ry = ref_loop.step()
        r = eng.step()
        gap = max(gap, float(np.hypot(r.points[0].x - rx, r.points[0].y - ry)))
    fig["trajectory_gap_px"] = round(gap, 3)
    print(f"trajectory gap over {steps} steps at 256 px (previews every 10 steps): {gap:.3f} px")


def convergence_race(res: int, max_steps: int, fig: dict[str, float | int | None]) -> None:
    """Wall time to bring a 20 px (at 512) drag within 1 px: the reference loop, which renders the
    full image on every step as the official one does, against DragSession with its default
    preview cadence (previews included in its time)."""
    G = make_generator(res)
    ws0 = G.ws_from_seed(0)
    pair = pair_for(res)
    ref_loop = ReferenceLoop(G, ws0, pair)
    t0 = time.perf_counter()
    ref_steps, ref_dist = 0, float("inf")
    while ref_steps < max_steps and ref_dist > 1:
        x, y = ref_loop.step()
        ref_steps += 1
        ref_dist = float(np.hypot(pair.target.x - x, pair.target.y - y))
    ref_s = time.perf_counter() - t0
    session = DragSession(G, ws0, [pair], config=DragConfig(max_steps=max_steps))
    t0 = time.perf_counter()
    result = session.run()
    eng_s = time.perf_counter() - t0
    previews = len(session.frames)
    print(f"20 px drag at {res} px, to within 1 px (cap {max_steps} steps):")
    print(f"{'reference':>12}: {ref_steps:4d} steps, {ref_s:7.1f} s, final distance {ref_dist:.2f} px"
          f"{'' if ref_dist <= 1 else ' (not converged)'}")
    print(f"{'engine':>12}: {result.steps:4d} steps, {eng_s:7.1f} s, final distance {result.mean_distance:.2f} px"
          f"{'' if result.converged else ' (not converged)'}, {previews} preview frames")
    fig.update({f"converge_ref_s_{res}": round(ref_s, 2), f"converge_ref_steps_{res}": ref_steps,
                f"converge_ref_converged_{res}": ref_dist <= 1, f"converge_engine_s_{res}": round(eng_s, 2),
                f"converge_engine_steps_{res}": result.steps, f"converge_engine_converged_{res}": result.converged,
                f"converge_ratio_{res}": round(ref_s / eng_s, 3)})


if __name__ == "__main__":
    main()
