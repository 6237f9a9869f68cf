"""Train the embedded keypoint detector on the procedural face world.

    python -m training.train_detector --out ~/.cache/voicedrag/train/detector --minutes 50
    python -m training.train_detector --out DIR --export assets/keypoints

Every batch is rendered on the fly from a generator seeded by (seed, step),
so a run is reproducible and resumes exactly from DIR's last checkpoint
(weights and Adam state in safetensors, counters in JSON; nothing pickled).
Augmentations (colour jitter, blur, resolution loss, JPEG, noise) make the
network robust to the softer, noisier images a generator produces.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from faceworld.render import KEYPOINT_NAMES, render_batch, render_seed

if TYPE_CHECKING:
    import torch

    from keypoints.heatmap_net import HeatmapNet

DEFAULT_OUT = Path.home() / ".cache" / "voicedrag" / "train" / "detector"
# Held-out faces are render_seed(HELDOUT_SEED_BASE + i); training draws from
# default_rng([seed, step]), a different seed sequence.
HELDOUT_SEED_BASE = 1_000_000


@dataclass
class TrainConfig:
    seed: int = 0
    batch: int = 32
    lr: float = 2e-3
    warmup_steps: int = 200
    total_steps: int = 4000  # the schedule's length; a run may stop earlier and resume later
    decay_start: float = 0.4  # cosine decay from this fraction of total_steps
    checkpoint_every_s: float = 120.0


# ---------------------------------------------------------------- data


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def make_batch(cfg: TrainConfig, step: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Rendered (and JPEG-degraded) images uint8 [B, H, W, 3] and true keypoints [B, K, 2] of one step."""
    rng = np.random.default_rng([cfg.seed, step])
    images, keypoints, _ = render_batch(rng, cfg.batch, size)
    for i in range(len(images)):
        if rng.random() < 0.2:
            images[i] = _jpeg(images[i], int(rng.integers(35, 90)))
    return images, keypoints


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Photometric augmentations on [N, 3, H, W] in [-1, 1]; no geometry changes, so keypoints stay true."""
    import torch
    from torch.nn import functional as F

    n, c, h, w = x.shape
    x = (x + 1.0) / 2.0

    def u(lo: float, hi: float, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(rng.uniform(lo, hi, size=shape).astype(np.float32))

    # Colour: per-channel gain, brightness, contrast, saturation.
    x = x * u(0.88, 1.12, (n, 3, 1, 1)) + u(-0.06, 0.06, (n, 1, 1, 1))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.8, 1.2, (n, 1, 1, 1)) + mean
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * u(0.7, 1.3, (n, 1, 1, 1))

    # Blur: a per-image Gaussian (sigma 0 for about half the batch), separable, as one grouped conv.
    sigma = rng.uniform(0.3, 0.9, size=n) * (rng.random(n) < 0.5)
    taps = np.arange(-3, 4, dtype=np.float64)
    kern = np.exp(-(taps[None, :] ** 2) / (2 * np.maximum(sigma[:, None], 1e-3) ** 2))
    kern /= kern.sum(axis=1, keepdims=True)
    k = torch.from_numpy(np.repeat(kern, 3, axis=0).astype(np.float32))  # [N*3, 7]
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (3, 3, 0, 0), mode="replicate"), k[:, None, None, :], groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, 3, 3), mode="replicate"), k[:, None, :, None], groups=n * c)
    x = flat.reshape(n, c, h, w)

    # Resolution loss: a quarter of the images go through half (or 3/4) size and back.
    soft = rng.random(n) < 0.25
    if soft.any():
        idx = torch.from_numpy(np.nonzero(soft)[0])
        small = int(h * (0.5 if rng.random() < 0.6 else 0.75))
        sub = F.interpolate(x[idx], size=(small, small), mode="bilinear", align_corners=False, antialias=True)
        x[idx] = F.interpolate(sub, size=(h, w), mode="bilinear", align_corners=False)

    # Noise.
    x = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(int(rng.integers(2**31)))) * u(
        0.0, 0.03, (n, 1, 1, 1)
    ) * torch.from_numpy((rng.random((n, 1, 1, 1)) < 0.5).astype(np.float32))
    return (x.clamp(0.0, 1.0) * 2.0 - 1.0).contiguous(memory_format=torch.channels_last)


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = int(cfg.decay_start * cfg.total_steps)
    if step < start:
        return cfg.lr
    frac = min(1.0, (step - start) / max(1, cfg.total_steps - start))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * frac)))


# ---------------------------------------------------------------- checkpoints (safetensors + JSON, no pickle)


def save_checkpoint(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, meta: dict[str, object]) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for idx, st in opt_state["state"].items():
        for key, val in st.items():
            tensors[f"opt.{idx}.{key}"] = val.detach().reshape(val.shape).contiguous()
    meta = dict(meta)
    meta["param_groups"] = opt_state["param_groups"]
    tmp_w, tmp_m = out / "checkpoint.safetensors.tmp", out / "checkpoint.json.tmp"
    save_file(tensors, str(tmp_w))
    tmp_m.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_w, out / "checkpoint.safetensors")
    os.replace(tmp_m, out / "checkpoint.json")


def load_checkpoint(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer | None) -> dict[str, object] | None:
    from safetensors.torch import load_file

    if not (out / "checkpoint.safetensors").is_file():
        return None
    meta = json.loads((out / "checkpoint.json").read_text())
    tensors = load_file(str(out / "checkpoint.safetensors"))
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    if opt is not None:
        state: dict[int, dict[str, object]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, idx, key = k.split(".", 2)
                state.setdefault(int(idx), {})[key] = v
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta


# ---------------------------------------------------------------- evaluation


@dataclass
class EvalResult:
    size: int
    images: int
    mean_px: float
    median_px: float
    p95_px: float
    worst_keypoint: str
    worst_keypoint_mean_px: float
    per_keypoint_mean_px: dict[str, float]


def heldout(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    points = np.empty((n, len(KEYPOINT_NAMES), 2), dtype=np.float64)
    for i in range(n):
        res = render_seed(HELDOUT_SEED_BASE + i, size)
        images[i] = np.asarray(res.image)
        points[i] = [[res.keypoints[k].x, res.keypoints[k].y] for k in KEYPOINT_NAMES]
    return images, points


def evaluate_points(pred: np.ndarray, true: np.ndarray, size: int) -> EvalResult:
    err = np.linalg.norm(pred - true, axis=-1)  # [N, K]
    per_kp = {name: float(err[:, j].mean()) for j, name in enumerate(KEYPOINT_NAMES)}
    worst = max(per_kp, key=per_kp.__getitem__)
    return EvalResult(
        size=size,
        images=int(err.shape[0]),
        mean_px=float(err.mean()),
        median_px=float(np.median(err)),
        p95_px=float(np.percentile(err, 95)),
        worst_keypoint=worst,
        worst_keypoint_mean_px=per_kp[worst],
        per_keypoint_mean_px=per_kp,
    )


def evaluate_model(model: HeatmapNet, n: int = 500, size: int = 128, chunk: int = 50) -> EvalResult:
    import torch

    from keypoints.detector import from_input_coords, to_input_tensor

    images, true = heldout(n, size)
    s = model.config.input_size
    preds = []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for i in range(0, n, chunk):
            p = model(to_input_tensor(images[i : i + chunk], s)).numpy()
            preds.append(from_input_coords(p, size, size, s))
    model.train(was_training)
    return evaluate_points(np.concatenate(preds), true, size)


# ---------------------------------------------------------------- main


def train(out: Path, minutes: float, cfg: TrainConfig, threads: int, eval_images: int = 200) -> None:
    import torch
    from tqdm import tqdm

    from keypoints.heatmap_net import HeatmapNet, HeatmapNetConfig

    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    net_cfg = HeatmapNetConfig(num_keypoints=len(KEYPOINT_NAMES))
    torch.manual_seed(cfg.seed)
    model = HeatmapNet(net_cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    meta = load_checkpoint(out, model, opt)
    step = int(meta["step"]) if meta else 0
    elapsed_before = float(meta["elapsed_s"]) if meta else 0.0
    if meta:
        print(f"resuming from step {step} ({elapsed_before / 60:.1f} min trained)", file=sys.stderr)
    stop = {"flag": False}

    def _stop(signum: int, frame: object) -> None:
        stop["flag"] = True

    # Stop cleanly (with a checkpoint) when the session is ended; restored on return.
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    log = (out / "loss_log.csv").open("a")
    if log.tell() == 0:
        log.write("step,images,elapsed_s,lr,loss_px,batch_mean_px\n")
    t0 = time.time()
    last_ckpt = t0
    model.train()
    bar = tqdm(total=cfg.total_steps, initial=step, file=sys.stderr, desc="detector", dynamic_ncols=True)
    run_meta: dict[str, object] = {}
    ema = None
    while step < cfg.total_steps and not stop["flag"] and (time.time() - t0) < minutes * 60:
        images, true = make_batch(cfg, step)
        aug_rng = np.random.default_rng([cfg.seed, step, 1])
        from keypoints.detector import to_input_tensor

        x = augment(to_input_tensor(images, net_cfg.input_size), aug_rng)
        y = torch.from_numpy(true)
        lr = lr_at(cfg, step)
        for g in opt.param_groups:
            g["lr"] = lr
        pred = model(x)
        loss = (pred - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with torch.no_grad():
            px = float((pred - y).norm(dim=-1).mean())
        ema = px if ema is None else 0.98 * ema + 0.02 * px
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", err_px=f"{ema:.2f}", lr=f"{lr:.1e}")
        elapsed = elapsed_before + time.time() - t0
        if step % 10 == 0:
            log.write(f"{step},{step * cfg.batch},{elapsed:.1f},{lr:.6g},{loss.item():.5f},{px:.5f}\n")
            log.flush()
        run_meta = {
            "step": step,
            "images": step * cfg.batch,
            "elapsed_s": elapsed,
            "train_config": asdict(cfg),
            "net_config": net_cfg.to_dict(),
        }
        if time.time() - last_ckpt > cfg.checkpoint_every_s:
            save_checkpoint(out, model, opt, run_meta)
            last_ckpt = time.time()
    bar.close()
    if run_meta:
        save_checkpoint(out, model, opt, run_meta)
    log.close()
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    ev = evaluate_model(model, n=eval_images)
    print(
        f"step {step}: held-out mean error {ev.mean_px:.3f} px ({eval_images} renders at 128 px), "
        f"worst {ev.worst_keypoint} {ev.worst_keypoint_mean_px:.3f} px",
        file=sys.stderr,
    )


def export(out: Path, dest: Path, n_eval: int) -> dict[str, object]:
    """Evaluate DIR's checkpoint on held-out renders and write the shipped weights and config."""
    import torch
    from safetensors.torch import save_file

    from keypoints.detector import EmbeddedDetector
    from keypoints.heatmap_net import HeatmapNet, HeatmapNetConfig

    torch.set_num_threads(max(1, torch.get_num_threads()))
    meta_probe = json.loads((out / "checkpoint.json").read_text())
    net_cfg = HeatmapNetConfig(**meta_probe["net_config"])
    model = HeatmapNet(net_cfg)
    meta = load_checkpoint(out, model, None)
    assert meta is not None
    model.eval()
    dest.mkdir(parents=True, exist_ok=True)
    weights = dest / "face_detector.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights))
    config = {
        "kind": "heatmap_net",
        "config": net_cfg.to_dict(),
        "keypoint_names": list(KEYPOINT_NAMES),
        "training": {
            "steps": meta["step"],
            "images": meta["images"],
            "minutes": round(float(meta["elapsed_s"]) / 60.0, 1),
            "train_config": meta["train_config"],
        },
    }
    (dest / "face_detector.json").write_text(json.dumps(config, indent=1))
    det = EmbeddedDetector.load(weights)
    metrics = {}
    for size in (128, 64):
        images, true = heldout(n_eval, size)
        pred = np.concatenate([det.detect_batch(images[i : i + 50]) for i in range(0, n_eval, 50)])
        ev = evaluate_points(pred, true, size)
        metrics[str(size)] = {k: v for k, v in asdict(ev).items()}
    config["heldout_error_px"] = metrics
    (dest / "face_detector.json").write_text(json.dumps(config, indent=1))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_detector", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="checkpoint directory (resumed if present)")
    parser.add_argument("--minutes", type=float, default=60.0, help="stop this run after this many minutes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves the other core free)")
    parser.add_argument("--total-steps", type=int, default=None, help=f"schedule length (default {TrainConfig.total_steps})")
    parser.add_argument("--batch", type=int, default=None, help=f"images per step (default {TrainConfig.batch})")
    parser.add_argument("--lr", type=float, default=None, help=f"peak Adam learning rate (default {TrainConfig.lr})")
    parser.add_argument("--seed", type=int, default=None, help="data and init seed (default 0)")
    parser.add_argument("--export", type=Path, default=None, help="write the shipped model here instead of training")
    parser.add_argument("--eval-images", type=int, default=500, help="held-out renders to measure on")
    args = parser.parse_args(argv)
    if args.export is not None:
        config = export(args.out, args.export, args.eval_images)
        print(json.dumps({"exported": str(args.export), "heldout_error_px": {
            s: {k: v for k, v in m.items() if k != "per_keypoint_mean_px"} for s, m in config["heldout_error_px"].items()
        }}))
        return 0
    # A resumed run keeps its stored settings unless one is given again on the command line.
    stored = args.out / "checkpoint.json"
    cfg = TrainConfig(**json.loads(stored.read_text())["train_config"]) if stored.is_file() else TrainConfig()
    for name in ("total_steps", "batch", "lr", "seed"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    train(args.out, args.minutes, cfg, args.threads, args.eval_images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
