"""Train the embedded face generator on the procedural face world.

The generator is a standard StyleGAN2 (engine.stylegan2), so the drag engine
treats it exactly like an official checkpoint. Training is regression, not
adversarial: every latent z names one face of the world. The mapping network
sees z normalised to unit RMS; each coordinate of that normalised z, pushed
through the normal CDF, sets one renderer attribute (the mouth's and the
eyes' opening through one of the `LATENT_MAPS`), so z ~ N(0, I) draws faces
from the world and the target image of every z is known exactly. The loss is
L1 on pixels plus L1 on image gradients (for sharp edges), at full and half
resolution.

    python -m training.train_generator --out ~/.cache/voicedrag/train/faces64 [--minutes 60]
    python -m training.train_generator --out DIR --resolution 128 --grow-from assets/models/faces.safetensors

Runs resume from `DIR/checkpoint.pt` (written every few minutes and at the
end); `DIR/log.tsv` records the losses. A resume with other settings (say a
lower `--lr`, or another `--latent-map`) continues the same weights as a new
phase, and the export records every phase. `--export PATH.safetensors` writes
the EMA generator in the project's own format.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.loading import save_generator
from engine.stylegan2 import Generator, GeneratorConfig, MappingConfig
from faceworld.render import ATTRIBUTE_NAMES, FaceParams, render

Z_DIM = 32  # the first len(VARIED) coordinates name attributes; the rest are unused

# The generator's world is the face world narrowed to what the edits need: every
# attribute a command moves varies over its range, colours vary freely, and the
# whole-figure placement (shift, tilt), head height, chin, eye size and hair style
# stay fixed. Measured: on the full world a 128 px run was still a blur of colour
# layouts after 16k images (1.1 CPU-hours), because placement changes put every
# feature anywhere; fixing placement leaves the network only local changes to learn.
VARIED: dict[str, tuple[float, float]] = {
    "head_width": (0.2, 0.8), "skin_tone": (0.0, 1.0),
    "eye_open_left": (0.0, 1.0), "eye_open_right": (0.0, 1.0), "iris_color": (0.0, 1.0),
    "brow_raise": (-1.0, 1.0), "nose_length": (0.0, 1.0),
    "mouth_open": (0.0, 1.0), "mouth_smile": (-1.0, 1.0), "mouth_width": (0.0, 1.0),
    "ear_raise_left": (-1.0, 1.0), "ear_raise_right": (-1.0, 1.0), "turn": (-0.7, 0.7),
    "hair_color": (0.0, 1.0), "bg_hue": (0.0, 1.0), "shirt_hue": (0.0, 1.0),
}
FIXED: dict[str, float] = {
    "head_height": 0.5, "jaw": 0.5, "eye_size": 0.5, "shift_x": 0.0, "shift_y": 0.0, "tilt": 0.0,
    "hair_style": 0.3, "bg_light": 0.5, "bg_gradient": 0.0,
}
assert set(VARIED) | set(FIXED) == set(ATTRIBUTE_NAMES) and len(VARIED) <= Z_DIM


@dataclass
class TrainConfig:
    resolution: int = 64
    batch: int = 16
    # Measured on 64 px, 60 steps: lr 1e-2 with beta1 0.9 reached L1 0.29, the GAN
    # setting (2e-3, beta1 0) 0.38; a deterministic regression target tolerates momentum.
    lr: float = 1e-2
    beta1: float = 0.9
    ema_beta: float = 0.998
    grad_weight: float = 1.0
    seed: int = 0
    checkpoint_minutes: float = 5.0
    # Optional end of the schedule: stop at `total_steps`, with the learning rate falling
    # linearly to `anneal_to` x lr over the last `anneal_steps` (None: constant lr, stop by time).
    total_steps: int | None = None
    anneal_steps: int = 0
    anneal_to: float = 0.05
    threads: int = 2
    compile: bool = True
    latent_map: str = "clipped"  # see LATENT_MAPS
    # Growth: start from a trained generator of a lower (or the same) resolution. Its mapping and
    # blocks fill the new network's; the new blocks' toRGB starts at zero, so step 0 draws exactly
    # the old model's image, upsampled. For the first `grow_warmup_steps` only the new blocks train.
    grow_from: str | None = None
    grow_warmup_steps: int = 0


def generator_config(resolution: int) -> GeneratorConfig:
    # Narrow at high resolution: the world is flat-shaded, and CPU time is the budget.
    return GeneratorConfig(
        z_dim=Z_DIM, w_dim=256, img_resolution=resolution, channel_base=2048, channel_max=256,
        num_fp16_res=0, conv_clamp=None, use_noise=False,
        mapping=MappingConfig(num_layers=4, lr_multiplier=0.1, w_avg_beta=None),
        feature_block=None,
    )


def _phi(x: np.ndarray) -> np.ndarray:
    from math import erf

    return 0.5 * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


# How a latent's CDF value t in (0, 1) sets the mouth's and the eyes' opening.
# "clipped" (the shipped model): closed mouths and eyes, and fully open eyes, get probability
# mass by clipping, so 30% of latents draw the same closed mouth and 50% the same closed or fully
# open eye. Such flat stretches leave motion supervision little gradient: closed lips deep in the
# stretch barely part, while the same closed mouth at the stretch's edge opens (seeds 6 and 7:
# 1-5% of the commanded lip gap against 49-90%). "smooth": powers of t, strictly increasing, the
# mass still leaning toward closed mouths and open eyes. A model fine-tuned on it for 9 000 steps
# parted more closed lips but erased the mouth on others (assets/models/MODEL_CARD.md), so it is
# an option for the next model trained from scratch, not the default. "soft": the clipped map
# with its flat stretches replaced by gentle quadratic ramps, so it never differs from "clipped"
# by more than 0.1 (a model grown from a clipped-map model has almost nothing to relearn) while
# every attribute still strictly increases with its latent.
LATENT_MAPS = ("clipped", "smooth", "soft")

# The soft map's ramps: how much of the attribute's range the former flat stretches now span.
SOFT_MOUTH_RAMP = 0.05  # closed mouths (t < 0.3): opening 0 .. 0.05
SOFT_EYE_RAMP = (0.04, 0.1)  # closed eyes (t < 0.1): 0 .. 0.04; fully open (t > 0.6): 0.9 .. 1


def _soft_mouth(t: float) -> float:
    r = SOFT_MOUTH_RAMP
    if t < 0.3:
        return r * (t / 0.3) ** 2
    return r + (1.0 - r) * (t - 0.3) / 0.7


def _soft_eye(t: float) -> float:
    lo, hi = SOFT_EYE_RAMP
    if t < 0.1:
        return lo * (t / 0.1) ** 2
    if t > 0.6:
        return 1.0 - hi * (1.0 - (t - 0.6) / 0.4) ** 2
    return lo + (1.0 - hi - lo) * (t - 0.1) / 0.5


def trained_latent_map(model: str) -> str:
    """The latent map a project-trained model was trained with (its JSON's training record);
    models from before the maps were named used the clipped one."""
    from voicedrag.models import resolve_model_path

    config = resolve_model_path(model).with_suffix(".json")
    meta = json.loads(config.read_text()) if config.is_file() else {}
    return str(meta.get("training", {}).get("config", {}).get("latent_map", "clipped"))


def params_from_z(z: np.ndarray, latent_map: str = "clipped") -> FaceParams:
    """The face a latent names: z is normalised as the mapping network normalises it."""
    if latent_map not in LATENT_MAPS:
        raise ValueError(f"latent_map must be one of {LATENT_MAPS}, not {latent_map!r}")
    z = np.asarray(z, dtype=np.float64)
    zn = z / math.sqrt(float(np.mean(z * z)) + 1e-8)
    t = dict(zip(VARIED, np.clip(_phi(zn[: len(VARIED)]), 1e-6, 1 - 1e-6)))
    values = {name: lo + (hi - lo) * float(t[name]) for name, (lo, hi) in VARIED.items()}
    eyes = ("eye_open_left", "eye_open_right")
    if latent_map == "clipped":
        values["mouth_open"] = max(0.0, (t["mouth_open"] - 0.3) / 0.7)
        for eye in eyes:
            values[eye] = float(np.clip((t[eye] - 0.1) / 0.5, 0.0, 1.0))
    elif latent_map == "soft":
        values["mouth_open"] = _soft_mouth(float(t["mouth_open"]))
        for eye in eyes:
            values[eye] = _soft_eye(float(t[eye]))
    else:
        values["mouth_open"] = float(t["mouth_open"]) ** 1.5
        for eye in eyes:
            values[eye] = float(t[eye]) ** 0.75
    return FaceParams(**FIXED, **{k: float(v) for k, v in values.items()})


def target_batch(z: np.ndarray, resolution: int, latent_map: str = "clipped") -> torch.Tensor:
    """Rendered images of a batch of latents, [N, 3, H, W] in [-1, 1]."""
    imgs = np.stack([np.asarray(render(params_from_z(zi, latent_map), resolution).image) for zi in z])
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1


def image_loss(pred: torch.Tensor, target: torch.Tensor, grad_weight: float) -> torch.Tensor:
    loss = torch.zeros((), device=pred.device)
    for scale in (1, 2):
        p = F.avg_pool2d(pred, scale) if scale > 1 else pred
        t = F.avg_pool2d(target, scale) if scale > 1 else target
        loss = loss + F.l1_loss(p, t)
        if grad_weight:
            loss = loss + grad_weight * (
                F.l1_loss(p[..., 1:, :] - p[..., :-1, :], t[..., 1:, :] - t[..., :-1, :])
                + F.l1_loss(p[..., :, 1:] - p[..., :, :-1], t[..., :, 1:] - t[..., :, :-1])
            )
    return loss


def grow_into(G: Generator, source: Path) -> set[str]:
    """Fill `G` from a trained generator of a lower or equal resolution; return the names filled.

    Every tensor whose name and shape match is copied (the mapping, and every block up to the old
    resolution). The toRGB layers of the new blocks start at zero: in the skip architecture the
    image is the sum of every block's toRGB, upsampled, so the grown network first draws exactly
    the old image, upsampled, and the new blocks learn the detail on top of it.
    """
    from voicedrag.models import load_model_file

    old = load_model_file(source, device="cpu")
    if old.cfg.z_dim != G.cfg.z_dim or old.cfg.w_dim != G.cfg.w_dim or old.img_resolution > G.img_resolution:
        raise ValueError(f"{source} cannot grow into this generator: it needs the same z and w sizes and "
                         "a resolution no higher; pick a smaller model to grow from.")
    old_state = old.state_dict()
    state = G.state_dict()
    filled: set[str] = set()
    with torch.no_grad():
        for name, value in state.items():
            if name in old_state and old_state[name].shape == value.shape:
                value.copy_(old_state[name])
                filled.add(name)
        for res in G.cfg.block_resolutions:
            if res not in old.cfg.block_resolutions:
                state[f"synthesis.b{res}.torgb.weight"].zero_()
                state[f"synthesis.b{res}.torgb.bias"].zero_()
    params = {name for name, _ in G.named_parameters()}
    return filled & params


def compute_w_avg(G: Generator, n: int = 4096, seed: int = 123) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(n, G.cfg.z_dim, generator=g)
        return G.mapping(z)[:, 0].mean(0)


class Trainer:
    def __init__(self, out: Path, cfg: TrainConfig) -> None:
        self.out, self.cfg = out, cfg
        torch.manual_seed(cfg.seed)
        self.G = Generator(generator_config(cfg.resolution))
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.99), eps=1e-8)
        self.step = 0
        self.images_seen = 0
        self.seconds = 0.0
        self.rng = np.random.default_rng(cfg.seed)
        self.ckpt = out / "checkpoint.pt"
        self.trained_config: dict[str, object] = asdict(cfg)
        # Earlier phases of the run (a resume with other settings starts a new one).
        self.phases: list[dict[str, object]] = []
        # Compiled, the many small elementwise ops of the style modulation fuse into a few
        # kernels: measured 4.3x faster per step on CPU, after a one-off compile of minutes.
        self.loss_fn = torch.compile(self._loss) if cfg.compile else self._loss
        # Names of the parameters a growth brought in (empty when not grown).
        self.grown: set[str] = set()
        if self.ckpt.is_file():
            self._resume()
        elif cfg.grow_from:
            self.grown = grow_into(self.G, Path(cfg.grow_from))
            self.G_ema.load_state_dict(self.G.state_dict())

    def _resume(self) -> None:
        # Our own checkpoint, written by this script: tensors and plain values only.
        state = torch.load(self.ckpt, map_location="cpu", weights_only=True)
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt.load_state_dict(state["opt"])
        self.step, self.images_seen, self.seconds = int(state["step"]), int(state["images_seen"]), float(state["seconds"])
        self.rng = np.random.default_rng([self.cfg.seed, self.step])
        # The settings the weights were trained with (an export run is started with its own).
        self.trained_config = dict(state.get("config", {})) or asdict(self.cfg)
        self.phases = list(state.get("phases", []))
        # Checkpoints from before the latent maps were named were trained with the clipped one.
        self.trained_config.setdefault("latent_map", "clipped")
        self.grown = set(state.get("grown", []))
        print(f"resumed at step {self.step} ({self.images_seen} images, {self.seconds / 3600:.2f} h)", file=sys.stderr)

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(), "opt": self.opt.state_dict(),
                    "step": self.step, "images_seen": self.images_seen, "seconds": self.seconds,
                    "config": self.trained_config, "phases": self.phases, "grown": sorted(self.grown)}, tmp)
        tmp.replace(self.ckpt)

    def _loss(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ws = self.G.mapping(z)
        # The unfused modulated conv is the faster of the two for training batches on CPU.
        pred = self.G.synthesis(ws, noise_mode="none", fused=False).image
        return image_loss(pred, target, self.cfg.grad_weight)

    def lr_at(self, step: int) -> float:
        """The learning rate of `step`: constant, then the linear anneal of the schedule's tail."""
        cfg = self.cfg
        if cfg.total_steps is None or cfg.anneal_steps <= 0:
            return cfg.lr
        start = cfg.total_steps - cfg.anneal_steps
        frac = min(max((step - start) / cfg.anneal_steps, 0.0), 1.0)
        return cfg.lr * (1.0 - frac * (1.0 - cfg.anneal_to))

    def _freeze_grown(self, warm: bool) -> None:
        # During the warm-up the grown blocks hold still while the new ones learn to add detail;
        # without gradients they also cost no backward pass.
        for name, p in self.G.named_parameters():
            p.requires_grad_(not warm or name not in self.grown)

    def train_step(self) -> float:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        if self.grown:
            self._freeze_grown(self.step < self.cfg.grow_warmup_steps)
        z = self.rng.standard_normal((self.cfg.batch, Z_DIM))
        target = target_batch(z, self.cfg.resolution, self.cfg.latent_map)
        loss = self.loss_fn(torch.from_numpy(z).float(), target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        # The EMA ramps up so that early weights do not linger in it for thousands of steps.
        beta = min(self.cfg.ema_beta, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                pe.lerp_(p, 1 - beta)
        self.step += 1
        self.images_seen += self.cfg.batch
        return float(loss.detach())

    def run(self, minutes: float) -> None:
        if self.step > 0 and self.trained_config != asdict(self.cfg):
            self.phases.append({"until_step": self.step, "config": self.trained_config})
        self.trained_config = asdict(self.cfg)  # from here on the weights are trained with these settings
        self.out.mkdir(parents=True, exist_ok=True)
        log = (self.out / "log.tsv").open("a")
        if log.tell() == 0:
            log.write("step\timages\thours\tloss\n")
        t_end = time.time() + minutes * 60
        losses: list[float] = []
        # Ctrl-C or a SIGTERM finishes the current step (a step cut in half would leave the
        # optimiser and the EMA out of step), and the checkpoint below keeps everything.
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        last_ckpt = time.time()
        try:
            while time.time() < t_end and not stop.is_set():
                if self.cfg.total_steps is not None and self.step >= self.cfg.total_steps:
                    break
                t0 = time.time()
                losses.append(self.train_step())
                self.seconds += time.time() - t0
                if self.step % 10 == 0:
                    mean = float(np.mean(losses))
                    losses.clear()
                    log.write(f"{self.step}\t{self.images_seen}\t{self.seconds / 3600:.4f}\t{mean:.5f}\n")
                    log.flush()
                    total = f"/{self.cfg.total_steps}" if self.cfg.total_steps else ""
                    sys.stderr.write(f"\rstep {self.step}{total}  images {self.images_seen}  loss {mean:.4f}  "
                                     f"lr {self.lr_at(self.step):.2g}  {self.seconds / 3600:.2f} h")
                    sys.stderr.flush()
                if time.time() - last_ckpt > self.cfg.checkpoint_minutes * 60:
                    self.save()
                    last_ckpt = time.time()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.save()
            log.close()
            sys.stderr.write("\n")

    def export(self, path: Path, feature_block: int | None = None, drag: dict[str, Any] | None = None) -> Path:
        G = copy.deepcopy(self.G_ema)
        G.mapping.w_avg.copy_(compute_w_avg(G))
        G.cfg.feature_block = feature_block
        G.cfg.drag = dict(drag or {})
        # Every model of the face world speaks the face rules and is read by the face world's detector.
        extra = {"kit": {"rules": "face", "detector": "faceworld"}, "training": {"objective": "L1 regression on rendered targets (pixels + gradients, 2 scales)",
                              "steps": self.step, "images_seen": self.images_seen,
                              "cpu_hours": round(self.seconds / 3600, 3), "config": self.trained_config,
                              "earlier_phases": self.phases,
                              "world": {"varied": VARIED, "fixed": FIXED}}}
        return save_generator(G, path, extra=extra)


def sample_grid(G: Generator, path: Path, seeds: range = range(16), truncation_psi: float = 0.7) -> Path:
    """A 4x4 grid of the faces of `seeds`, as `voicedrag render` draws them."""
    from PIL import Image

    from engine.drag import to_uint8

    tiles = []
    with torch.no_grad():
        for seed in seeds:
            tiles.append(to_uint8(G.synthesis(G.ws_from_seed(seed, truncation_psi), noise_mode="const").image))
    res = G.img_resolution
    sheet = Image.new("RGB", (4 * res, 4 * res))
    for i, tile in enumerate(tiles):
        sheet.paste(Image.fromarray(tile), ((i % 4) * res, (i // 4) * res))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description="Train the embedded face generator (resumable).")
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log); keep it outside git")
    ap.add_argument("--minutes", type=float, default=60.0, help="train this long, then checkpoint and stop")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr, help="learning rate before any anneal")
    ap.add_argument("--latent-map", choices=LATENT_MAPS, default=TrainConfig.latent_map,
                    help="how a latent sets the mouth's and eyes' opening (see LATENT_MAPS)")
    ap.add_argument("--grow-from", type=Path, default=None,
                    help="start from this trained generator (.safetensors) of a lower resolution; "
                         "ignored when the run folder already has a checkpoint")
    ap.add_argument("--grow-warmup-steps", type=int, default=0,
                    help="with --grow-from: train only the new blocks for this many steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--total-steps", type=int, default=None, help="stop at this step (counted from the run's start)")
    ap.add_argument("--anneal-steps", type=int, default=0,
                    help="with --total-steps: the learning rate falls linearly to 5%% over this many last steps")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slower steps, no compile wait)")
    ap.add_argument("--export", type=Path, default=None, help="write the EMA generator here (.safetensors)")
    ap.add_argument("--feature-block", type=int, default=None,
                    help="the block whose features drive drags, written into the exported config")
    ap.add_argument("--drag", type=json.loads, default=None,
                    help="the model's drag settings as JSON (e.g. '{\"lr\": 0.006}'), measured with "
                         "benchmarks/embedded_quality.py --drag and written into the exported config")
    ap.add_argument("--grid", type=Path, default=None, help="write a 4x4 PNG of seeds 0-15 of the exported model")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.anneal_steps and args.total_steps is None:
        ap.error("--anneal-steps needs --total-steps; say at which step the run ends.")
    cfg = TrainConfig(resolution=args.resolution, batch=args.batch, lr=args.lr, threads=args.threads,
                      compile=not args.no_compile, total_steps=args.total_steps, anneal_steps=args.anneal_steps,
                      latent_map=args.latent_map, grow_from=str(args.grow_from) if args.grow_from else None,
                      grow_warmup_steps=args.grow_warmup_steps)
    trainer = Trainer(args.out, cfg)
    if args.minutes > 0:
        trainer.run(args.minutes)
    if args.export:
        path = trainer.export(args.export, args.feature_block, args.drag)
        report = {"exported": str(path), "step": trainer.step, "images_seen": trainer.images_seen,
                  "cpu_hours": round(trainer.seconds / 3600, 3)}
        if args.grid:
            from voicedrag.models import load_model_file

            report["grid"] = str(sample_grid(load_model_file(path, device="cpu"), args.grid))
        print(json.dumps(report))


if __name__ == "__main__":
    main()
