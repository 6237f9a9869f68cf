"""The CUDA path in one run: reference checks on the GPU, iteration timings, a 20 px drag at 512.

    python benchmarks/gpu_check.py [--device cuda:0] [--iters 20] [--skip-timings]

On a machine without CUDA it prints one JSON line saying so and exits 0. With CUDA:
1. generator references: every fixture pickle (`$VOICEDRAG_FIXTURES`, default ../shared/fixtures)
   is loaded onto the GPU and its ws, images and the drag feature map compared with the recorded
   CPU outputs. Blocks an official config marks fp16 run in fp16 there, as the official code does,
   so those models get looser limits (ws 1e-4, images 5e-2); others 1e-4 / 1e-3;
2. the recorded DragGAN trajectories of sg2_128_ada (30 steps, 4 cases) on the GPU: the share of
   steps whose tracked points equal the recording's (fp16 blocks make the float path differ);
3. ms per drag iteration at the official 256, 512 and 1024 configurations (random weights), the
   engine against the reference loop (`benchmarks/drag_speed.py`'s), in one run;
4. seconds for the engine to bring a 20 px drag at 512 within 1 px.
The last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.drag_speed import ReferenceLoop, engine_session, make_generator, pair_for, time_steps  # noqa: E402
from engine import DragConfig, DragPair, DragSession, Point, load_generator  # noqa: E402

FIXTURES = Path(os.environ.get("VOICEDRAG_FIXTURES", ROOT.parent / "shared" / "fixtures"))
MODELS = {"sg2_64_flat": 4, "sg2_128_ada": 5, "sg3_t_64": 5, "sg3_r_64": 5}  # name -> drag feature index


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_checks(device: torch.device) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, block in MODELS.items():
        pkl, ref_file = FIXTURES / f"{name}.pkl", FIXTURES / f"{name}_ref.npz"
        if not pkl.is_file() or not ref_file.is_file():
            out[name] = "fixture missing"
            continue
        G = load_generator(pkl, device=device)
        ref = np.load(ref_file)
        fp16 = any(getattr(b, "use_fp16", False) for b in G.synthesis.blocks())
        ws_err = img_err = feat_err = 0.0
        for seed in (0, 1, 2):
            for psi in ("0.7", "1.0"):
                p = f"seed{seed}_psi{psi}"
                with torch.no_grad():
                    z = torch.from_numpy(ref[f"seed{seed}_z"]).to(device)
                    ws = G.mapping(z, torch.zeros([1, 0], device=device), truncation_psi=float(psi))
                    res = G.synthesis(ws, return_features=True)
                ws_err = max(ws_err, float(np.abs(ws.cpu().numpy() - ref[f"{p}_ws"]).max()))
                img_err = max(img_err, float(np.abs(res.image.cpu().numpy() - ref[f"{p}_img"]).max()))
                key = f"{p}_feat5" if f"{p}_feat5" in ref.files else None
                if key is None:
                    r = res.features[block].shape[-1]
                    key = f"{p}_feat_b{r}" if f"{p}_feat_b{r}" in ref.files else None
                if key is not None:
                    feat_err = max(feat_err, float(np.abs(res.features[block].cpu().numpy() - ref[key]).max()))
        limit = 5e-2 if fp16 else 1e-3
        out[name] = {"fp16": fp16, "ws_max_abs": ws_err, "img_max_abs": img_err, "feat_max_abs": feat_err,
                     "ok": ws_err <= 1e-4 and img_err <= limit}
    return out


def trajectory_check(device: torch.device, steps: int = 30) -> dict[str, object]:
    traj = FIXTURES / "drag_traj_sg2_128_ada.npz"
    if not traj.is_file():
        return {"skipped": "fixture missing"}
    G = load_generator(FIXTURES / "sg2_128_ada.pkl", device=device)
    T = np.load(traj)
    out: dict[str, object] = {}
    for case in ("case1", "case2", "case3", "case4"):
        pairs = [DragPair(Point(*map(float, h)), Point(*map(float, t)))
                 for h, t in zip(T[f"{case}_handles_xy"], T[f"{case}_targets_xy"])]
        mask = T[f"{case}_mask_movable"].astype(bool) if f"{case}_mask_movable" in T.files else None
        space = "w+" if bool(T[f"{case}_w_plus"]) else "w"
        cfg = DragConfig(space=space, stop_distance=2.0, max_steps=steps, preview_every=0, fused_modconv=True)
        session = DragSession(G, torch.from_numpy(T[f"{case}_ws_init"]).to(device), pairs, mask=mask, config=cfg)
        same = 0
        for k in range(steps):
            r = session.step()
            same += int(np.array_equal(np.array([[p.x, p.y] for p in r.points]), T[f"{case}_points_xy"][k]))
        out[case] = round(same / steps, 3)
    return out


def timings(device: torch.device, iters: int) -> dict[str, float]:
    fig: dict[str, float] = {}
    for res in (256, 512, 1024):
        G = make_generator(res).to(device)
        ws0 = G.ws_from_seed(0)
        pair = pair_for(res)
        ref = ReferenceLoop(G, ws0, pair)
        session = engine_session(G, ws0, pair, None)

        def timed(step: object) -> float:
            def run() -> None:
                step()  # type: ignore[operator]
                sync(device)

            return time_steps(run, iters, warmup=3).ms_per_iter

        fig[f"ms_per_iter_reference_{res}"] = round(timed(ref.step), 2)
        fig[f"ms_per_iter_engine_{res}"] = round(timed(session.step), 2)
        del G, ref, session
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return fig


def converge_512(device: torch.device) -> dict[str, object]:
    G = make_generator(512).to(device)
    ws0 = G.ws_from_seed(0)
    session = DragSession(G, ws0, [pair_for(512)], config=DragConfig(max_steps=500))
    sync(device)
    t0 = time.perf_counter()
    result = session.run()
    sync(device)
    return {"converge_512_s": round(time.perf_counter() - t0, 2), "converge_512_steps": result.steps,
            "converge_512_converged": result.converged}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--skip-timings", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device on this machine: nothing to check here (run this script where a GPU is).",
              file=sys.stderr)
        print(json.dumps({"cuda": False, "torch": torch.__version__}))
        return
    device = torch.device(args.device)
    report: dict[str, object] = {"cuda": True, "torch": torch.__version__,
                                 "gpu": torch.cuda.get_device_name(device)}
    t0 = time.perf_counter()
    report["references"] = reference_checks(device)
    report["trajectory_points_equal"] = trajectory_check(device)
    print(json.dumps(report["references"]), file=sys.stderr)
    if not args.skip_timings:
        report.update(timings(device, args.iters))
        report.update(converge_512(device))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
