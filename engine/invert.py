"""GAN inversion: find the latent (and, optionally, generator weights) that draw a given image.

`Inversion` owns the loop, as `engine.drag.DragSession` does: front ends iterate over
`steps()`, may `cancel()` from another thread, and take `result()`. The phases, each one
optional by its step count:

1. start: w_avg, or the best by loss of w_avg and `start_candidates` random w;
2. "w": one w shared by every row of ws (Adam with the NVlabs projector's learning-rate ramp
   and its decaying noise on w, which keeps the search off the first local minimum);
3. "w+" (off by default, see `InvertConfig.wplus_steps`): every row of ws on its own, and,
   where the generator has noise inputs, the noise buffers too, with the projector's
   regulariser that keeps them noise-like (StyleGAN3 and models without noise inputs skip
   that part);
4. "tune": pivotal tuning (PTI, Roich et al. 2021): the generator's synthesis weights with
   ws fixed, plus a locality term: ws interpolated from the pivot toward random w must
   render as the generator rendered them before tuning, so the edit space around the pivot
   stays the generator's own.

The caller's generator is never changed. Noise optimisation and tuning work on a private
copy, and the result carries the changed tensors (`noise`, `tuned_state`) and
`InversionResult.apply_to(G)` that builds a generator which draws the result. A copy rather
than tune-and-restore because the caller's generator may be rendering in another thread (a
preview, a drag) while the inversion runs, and because an error or a cancel halfway through
can then never leave it half tuned; the copy costs the generator's size in memory once.

The reconstruction loss needs no download (no LPIPS/VGG weights; the generator's own features
of the target do not exist, nor does a discriminator): multi-scale pixel L1 and L2, L1 on the
image gradients and 1 - SSIM, with weights in `InvertConfig`; `benchmarks/inversion.py`
compares them on the face-world faces.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import UserError
from engine.ops import to_uint8
from engine.stylegan2 import GeneratorBase

PHASES = ("start", "w", "w+", "tune")
# Random latents behind the w statistics (the mean when a model has no w_avg, the spread that
# scales the projector's noise on w): enough for a spread to within a few percent.
STAT_SAMPLES = 1000
# Candidates of the start search rendered together: a batch beats one at a time on CPU
# without a 512 px batch's memory growing past a few hundred MB.
START_BATCH = 8


# The generator a result is applied to comes back as the same kind (a copy of it when tuned).
GenT = TypeVar("GenT", bound=GeneratorBase)


class InversionError(UserError):
    """An image that cannot be inverted as given (wrong size, type or range)."""


@dataclass
class InvertConfig:
    """Defaults measured on the project's own 128 px face model with rendered faces it never drew
    (benchmarks/inversion.py; the figures are in the model card)."""

    # Steps per phase; 0 skips a phase. Most of the budget goes to tuning: on faces outside the
    # generator's world W and W+ stop near 20-22 dB however long they run, tuning climbs to 30+
    # at about 0.05 dB a step. W+ is off by default: tuning from the W pivot ends higher than
    # from a W+ one (6 faces: 31.95 dB after W 30 + tuning 140, 31.84 after W 30 + W+ 20 +
    # tuning 150), as PTI found, and a W pivot stays on the generator's own manifold for edits.
    w_steps: int = 30
    wplus_steps: int = 0
    tune_steps: int = 130
    tune: bool = True
    # Adam learning rates. Each phase ramps up over its first `lr_rampup` and down, cosine, over
    # its last `lr_rampdown` (the NVlabs projector's schedule). The projector's 0.1 for w and
    # PTI's 3e-4 for tuning are for 1000 and 350 steps; these short phases want more.
    w_lr: float = 0.3
    wplus_lr: float = 0.1
    tune_lr: float = 1e-2
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    # The projector's noise on w during the W phase, per dimension: w_std * w_noise * (1 - t / w_noise_ramp)^2,
    # w_std being the root mean squared distance of random w to their mean (over all dimensions).
    w_noise: float = 0.05
    w_noise_ramp: float = 0.75
    # Start: 0 = w_avg; N = the lowest loss among w_avg and N random w (z drawn from `seed`).
    # The best of 64 starts W 0.5 dB higher but ends the same after tuning (6 faces: 32.48 dB
    # against 32.63 from w_avg) and costs 65 renders, so w_avg is the default.
    start_candidates: int = 0
    start_psi: float = 1.0
    # Reconstruction loss weights (see `reconstruction_loss`).
    l1: float = 0.0
    l2: float = 1.0
    gradient: float = 0.0
    ssim: float = 0.1
    scales: int = 1  # pixel and gradient terms on this many 2x average-pooled levels
    # The projector's noise regulariser in the W+ phase (0 also stops optimising the noise): its
    # 1e5 weighs LPIPS distances near 0.1-0.5; these pixel losses are some 100x smaller.
    noise_weight: float = 1e3
    noise_lr: float = 0.1
    # Pivotal tuning's locality term: its weight; the share of the way from the pivot toward
    # random w of the nearest of its samples (the rest spread evenly out to the random w); how
    # many fixed samples are cycled, one per step.
    locality_weight: float = 1.0
    locality_alpha: float = 0.3
    locality_samples: int = 8
    # The locality term on every this many steps (PTI's interval); the steps between render the
    # pivot alone, a batch of one instead of two.
    locality_every: int = 1
    # The edit term: near the pivot, the tuned generator must answer a change of latent as the
    # generator did before tuning: for ws whose first `edit_layers` rows move a share
    # `edit_shares` of the way toward random w (the rows and the distances a drag moves), the
    # change of image from the pivot's must equal the untuned generator's change. The locality
    # term keeps far latents' images; this one keeps the pivot's neighbourhood editable (without
    # it the tuning bakes the photo's closed mouth into every nearby latent, and a drag that
    # opens the generator's mouth barely opens the photo's). Alternates with the locality term,
    # so a step costs the same.
    edit_weight: float = 1.0
    edit_layers: int = 6
    edit_shares: tuple[float, float] = (0.05, 0.2)
    # Early stop: the whole inversion ends once a step reaches `target_psnr` dB; a phase ends
    # when its loss has not improved by `min_improvement` (relative) for `patience` steps.
    target_psnr: float | None = None
    patience: int | None = None
    min_improvement: float = 1e-3
    # A preview image every `preview_every` steps of each phase and on each phase's first (0: none).
    preview_every: int = 10
    seed: int = 0
    # Adam's fused update where torch has one (False: the plain loop, the reference).
    fused_adam: bool = True

    def check(self) -> None:
        """Raise ValueError naming the first setting out of its range."""
        from engine.settings import check_number

        def number(name: str, lo: float, hi: float, whole: bool = False, optional: bool = False) -> None:
            check_number("inversion", name, getattr(self, name), lo, hi, whole, optional)

        for name in ("w_steps", "wplus_steps", "tune_steps", "start_candidates", "preview_every"):
            number(name, 0, 1_000_000, whole=True)
        for name in ("w_lr", "wplus_lr", "tune_lr", "noise_lr"):
            number(name, 0.0, 10.0)
        for name in ("lr_rampup", "lr_rampdown", "w_noise_ramp", "locality_alpha", "min_improvement"):
            number(name, 0.0, 1.0)
        for name in ("l1", "l2", "gradient", "ssim", "w_noise", "noise_weight", "locality_weight"):
            number(name, 0.0, 1e9)
        number("start_psi", 0.0, 2.0)
        number("scales", 1, 8, whole=True)
        number("locality_samples", 1, 1024, whole=True)
        number("locality_every", 1, 1_000_000, whole=True)
        number("edit_weight", 0.0, 1e9)
        number("edit_layers", 1, 1024, whole=True)
        lo, hi = self.edit_shares
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(
                f"inversion setting edit_shares must be two shares 0 <= lo <= hi <= 1, got {self.edit_shares}"
            )
        number("target_psnr", 0.0, 200.0, optional=True)
        number("patience", 1, 1_000_000, whole=True, optional=True)
        number("seed", 0, 2**63 - 1, whole=True)
        for name in ("tune", "fused_adam"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"the inversion setting {name} must be true or false, not {getattr(self, name)!r}")
        if self.l1 + self.l2 + self.gradient + self.ssim <= 0:
            raise ValueError("the inversion's loss needs at least one of l1, l2, gradient and ssim above 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InvertConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an inversion setting (settings: {', '.join(sorted(known))})")
        config = cls(**d)
        config.check()
        return config


@dataclass
class InvertStep:
    phase: str  # one of PHASES
    step: int  # within the phase
    loss: float  # the reconstruction loss (plus the phase's regulariser)
    psnr: float  # dB of this step's image (before its update) against the target
    image: np.ndarray | None = None  # [H, W, 3] uint8 of this step's image, on the preview cadence
    seconds: float = 0.0


@dataclass
class InversionResult:
    ws: torch.Tensor  # [1, num_ws, w_dim], detached
    # Synthesis weights pivotal tuning changed ("synthesis.b4.conv1.weight" -> tensor), or None.
    tuned_state: dict[str, torch.Tensor] | None
    psnr: float  # dB of `image` against the target, both uint8
    steps: int  # iterations run, all phases
    seconds: float
    cancelled: bool
    image: np.ndarray  # [H, W, 3] uint8, drawn by `apply_to(G)` from `ws`
    # The optimised noise buffers ("synthesis.b8.conv0.noise_const" -> tensor), or None where
    # none were optimised (no W+ phase, StyleGAN3, models without noise inputs, noise_weight 0).
    noise: dict[str, torch.Tensor] | None = None
    psnr_by_phase: dict[str, float] | None = None  # PSNR (float image, dB) of the state each phase kept

    def apply_to(self, generator: GenT) -> GenT:
        """A generator that draws `image` from `ws`: `generator` itself when nothing of it changed,
        else a copy holding the optimised noise and the tuned weights (the original is untouched)."""
        changed = {**(self.noise or {}), **(self.tuned_state or {})}
        if not changed:
            return generator
        own = generator.state_dict()
        missing = {k for k, v in changed.items() if k not in own or own[k].shape != v.shape}
        if missing:
            raise InversionError(
                f"this inversion was made with another model (its {sorted(missing)[0]} does not fit); "
                "invert the image again with this one."
            )
        G = copy.deepcopy(generator)
        G.load_state_dict(changed, strict=False)
        return G.eval().requires_grad_(False)


# -- the loss -------------------------------------------------------------------------------------


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _window(size: int, image: torch.Tensor) -> int:
    """The window's size, shrunk (odd) to fit an image smaller than it (a 4 or 8 px model)."""
    fit = min(size, image.shape[-1], image.shape[-2])
    return fit if fit % 2 else fit - 1


def ssim(image: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per sample ([N]) of images in [-1, 1] (range 2), Gaussian window, as Wang et al.;
    the window is separable, so it runs as two 1-D convolutions (`ssim_reference`: one 2-D)."""
    c = image.shape[1]
    size = _window(size, image)
    g = _gaussian_window(size, sigma, image.device)
    gx = g.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    gy = g.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, gx, groups=c), gy, groups=c)

    return _ssim_from(image, target.expand_as(image), blur)


def ssim_reference(image: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """`ssim` with the 2-D Gaussian window written out."""
    c = image.shape[1]
    size = _window(size, image)
    g = _gaussian_window(size, sigma, image.device)
    w2 = torch.outer(g, g).reshape(1, 1, size, size).repeat(c, 1, 1, 1)
    return _ssim_from(image, target.expand_as(image), lambda x: F.conv2d(x, w2, groups=c))


def _ssim_from(x: torch.Tensor, y: torch.Tensor, blur: Any) -> torch.Tensor:
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # K1, K2 of the paper, dynamic range 2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=[1, 2, 3])


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[:, :, :, 1:] - x[:, :, :, :-1], x[:, :, 1:, :] - x[:, :, :-1, :]


def reconstruction_loss(image: torch.Tensor, target: torch.Tensor, config: InvertConfig) -> torch.Tensor:
    """Per sample ([N]): over `scales` levels (each 2x average-pooled), l1 * mean |x - t| +
    l2 * mean (x - t)^2 + gradient * mean |grad x - grad t|, averaged over the levels; plus
    ssim * (1 - SSIM) at full size. image [N, C, H, W], target [1, C, H, W], both in [-1, 1]."""
    # Where the target sits at the end of the range, anything beyond it displays the same:
    # an image brighter than a white target is not wrong. Clamping only there keeps the pull of
    # every pixel whose target lies inside the range, whichever side the image is on.
    image = torch.where(target >= 1, image.clamp(max=1), torch.where(target <= -1, image.clamp(min=-1), image))
    total = image.new_zeros(image.shape[0])
    # Levels stop at 8x8: below that a face is a few blobs, and the pooled terms only repeat the coarser ones.
    levels = 1
    while levels < config.scales and image.shape[-1] >> levels >= 8:
        levels += 1
    x, t = image, target
    for level in range(levels):
        if level:
            x, t = F.avg_pool2d(x, 2), F.avg_pool2d(t, 2)
        d = x - t
        if config.l1:
            total = total + config.l1 * d.abs().mean(dim=[1, 2, 3])
        if config.l2:
            total = total + config.l2 * d.square().mean(dim=[1, 2, 3])
        if config.gradient:
            (xx, xy), (tx, ty) = _gradients(x), _gradients(t)
            total = total + config.gradient * 0.5 * (
                (xx - tx).abs().mean(dim=[1, 2, 3]) + (xy - ty).abs().mean(dim=[1, 2, 3])
            )
    total = total / levels
    if config.ssim:
        total = total + config.ssim * (1 - ssim(image, target))
    return total


def noise_regularizer(bufs: list[torch.Tensor]) -> torch.Tensor:
    """The NVlabs projector's penalty on noise maps that are not white: the squared
    autocorrelation at a one-pixel shift, both axes, on every 2x-pooled level down to 8x8."""
    reg = torch.zeros((), device=bufs[0].device if bufs else None)
    for v in bufs:
        noise = v[None, None]  # [1, 1, H, W]
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


def psnr_db(image: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), the image clamped as it is displayed."""
    mse = float((image.detach().clamp(-1, 1) - target).square().mean())
    return 10 * math.log10(4.0 / max(mse, 1e-12))


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def prepare_target(
    target: np.ndarray | torch.Tensor, resolution: int, channels: int, device: torch.device
) -> torch.Tensor:
    """The target as [1, C, R, R] float32 in [-1, 1]: from an [R, R, C] uint8 array or tensor, or
    a float tensor [C, R, R] / [1, C, R, R] already in [-1, 1] (the generator's own layout)."""
    size = f"{resolution}x{resolution}"
    if isinstance(target, np.ndarray):
        if target.dtype != np.uint8:
            raise InversionError(
                f"the image to invert is a {target.dtype} array; pass it as {size} RGB uint8 (values 0-255)."
            )
        target = torch.from_numpy(np.array(target, copy=True))  # a read-only array cannot back a tensor
    if not isinstance(target, torch.Tensor):
        raise InversionError(f"the image to invert is a {type(target).__name__}; pass a {size} RGB uint8 array.")
    if target.dtype == torch.uint8:
        if target.ndim != 3 or target.shape[2] != channels:
            raise InversionError(
                f"the image to invert has the shape {tuple(target.shape)}; "
                f"pass a {size} image with {channels} colour channels."
            )
        if tuple(target.shape[:2]) != (resolution, resolution):
            raise InversionError(
                f"the image to invert is {target.shape[1]}x{target.shape[0]}; this model draws "
                f"{size}, so crop and resize it to that first."
            )
        return (target.permute(2, 0, 1)[None].to(device, torch.float32) / 127.5 - 1).contiguous()
    if not target.is_floating_point():
        raise InversionError(
            f"the image to invert is a {target.dtype} tensor; pass uint8 (0-255) or floats in [-1, 1]."
        )
    t = target.detach()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != channels:
        raise InversionError(
            f"the image tensor to invert has the shape {tuple(target.shape)}; pass "
            f"[1, {channels}, {resolution}, {resolution}] in [-1, 1]."
        )
    if tuple(t.shape[2:]) != (resolution, resolution):
        raise InversionError(
            f"the image to invert is {t.shape[3]}x{t.shape[2]}; this model draws {size}, "
            "so crop and resize it to that first."
        )
    if not bool(torch.isfinite(t).all()):
        raise InversionError("the image to invert holds values that are not finite (NaN or inf); pass a real image.")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1.0001 or hi > 1.0001:
        raise InversionError(
            f"the image tensor to invert runs from {lo:g} to {hi:g}; scale it to [-1, 1] (or pass uint8 0-255)."
        )
    return t.to(device, torch.float32).clamp(-1, 1).contiguous()


def _lr_ramp(t: float, rampup: float, rampdown: float) -> float:
    """The NVlabs projector's schedule at t in [0, 1): linear warm-up, cosine ramp-down."""
    ramp = 1.0 if rampdown <= 0 else min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return ramp * (1.0 if rampup <= 0 else min(1.0, t / rampup))


def adam(params: Sequence[torch.Tensor] | Sequence[dict[str, Any]], lr: float, fused: bool = True) -> torch.optim.Adam:
    """Adam; `fused=True` runs each update as one fused kernel over all tensors, where this
    torch build has it. On the CPU the tuning phase's update of 3 million weights takes 2 ms
    fused against 19-23 ms as a loop of tensor operations (a third of a 128 px tuning step);
    `fused=False` is the plain reference, equal to float rounding (tests/test_invert.py)."""
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or dtype
            pass
    return torch.optim.Adam(params, lr=lr, foreach=False)


class _Best:
    """The lowest loss a phase's steps saw, its PSNR, and a copy of the state that drew it."""

    def __init__(self) -> None:
        self.loss, self.psnr = math.inf, -math.inf
        self.state: Any = None

    def offer(self, loss: float, psnr: float, snapshot: Any) -> None:
        if loss < self.loss:
            self.loss, self.psnr, self.state = loss, psnr, snapshot()


# -- the session ----------------------------------------------------------------------------------


class Inversion:
    """One inversion of one image. `start` (optional): a w [1, w_dim] or ws [1, num_ws, w_dim] to
    start from instead of w_avg; a ws whose rows differ skips the W phase and starts W+ from it."""

    def __init__(
        self,
        generator: GeneratorBase,
        target: np.ndarray | torch.Tensor,
        config: InvertConfig | None = None,
        start: torch.Tensor | None = None,
    ) -> None:
        self.G = generator
        self.config = config or InvertConfig()
        self.config.check()
        self.device = generator.device
        cfg_g = generator.cfg
        self.num_ws = int(generator.mapping.num_ws)
        self.w_dim = int(cfg_g.w_dim)
        self.target = prepare_target(target, int(cfg_g.img_resolution), int(cfg_g.img_channels), self.device)
        self.target_uint8 = to_uint8(self.target)
        self._cancel = threading.Event()
        self._rng = torch.Generator().manual_seed(self.config.seed)
        self._w_std: float | None = None
        self._stats_done = False
        self._start = self._check_start(start)
        self._work: GeneratorBase | None = None  # the private copy: noise and tuning change it
        self.ws = self._start if self._start is not None else self._w_avg().reshape(1, 1, -1).repeat(1, self.num_ws, 1)
        self.noise: dict[str, torch.Tensor] | None = None
        self.tuned_state: dict[str, torch.Tensor] | None = None
        self.step_count = 0
        self.seconds = 0.0
        self.psnr_by_phase: dict[str, float] = {}
        self.done = False  # target PSNR reached: no further phase runs
        self._best_loss, self._since_best = math.inf, 0
        self._started = False

    # -- helpers

    def _check_start(self, start: torch.Tensor | None) -> torch.Tensor | None:
        if start is None:
            return None
        s = start.detach().to(self.device, torch.float32)
        if s.ndim == 1:
            s = s[None]
        if s.ndim == 2 and tuple(s.shape) == (1, self.w_dim):
            s = s[:, None].repeat(1, self.num_ws, 1)
        if tuple(s.shape) != (1, self.num_ws, self.w_dim):
            raise InversionError(
                f"the starting latent has the shape {tuple(start.shape)}; this model needs "
                f"[1, {self.w_dim}] or [1, {self.num_ws}, {self.w_dim}]."
            )
        if not bool(torch.isfinite(s).all()):
            raise InversionError("the starting latent holds values that are not finite; start from the model's mean.")
        return s.clone()

    def _sample_ws(self, n: int, psi: float = 1.0) -> torch.Tensor:
        """n random latents through the mapping, [n, num_ws, w_dim] (z drawn from the session's seed)."""
        z = torch.randn([n, int(self.G.cfg.z_dim)], generator=self._rng).to(self.device)
        c = torch.zeros([n, int(self.G.cfg.c_dim)], device=self.device)
        with torch.no_grad():
            return self.G.mapping(z, c, truncation_psi=psi)

    def _stats(self) -> None:
        if self._stats_done:
            return
        ws = self._sample_ws(STAT_SAMPLES)[:, 0]
        mean = ws.mean(dim=0)
        self._w_mean = mean
        # The projector's w_std: root mean squared distance to the mean, over all dims.
        self._w_std = float(((ws - mean).square().sum(dim=1).mean()) ** 0.5)
        self._stats_done = True

    def _w_avg(self) -> torch.Tensor:
        w_avg = self.G.mapping.w_avg.detach().to(torch.float32)
        if bool((w_avg == 0).all()):  # a model trained without tracking it: the mean of samples
            self._stats()
            return self._w_mean.clone()
        return w_avg.clone()

    def _working_generator(self) -> GeneratorBase:
        if self._work is None:
            self._work = copy.deepcopy(self.G).eval().requires_grad_(False)
        return self._work

    def _synth(self, G: GeneratorBase, ws: torch.Tensor) -> torch.Tensor:
        # Unfused modulated convolutions: the faster form for one or two latents on CPU
        # (benchmarks/drag_speed.py); exact to float rounding either way.
        img = G.synthesis(ws, noise_mode="const", fused=False).image
        assert img is not None
        return img

    def _noise_buffers(self, G: GeneratorBase) -> dict[str, torch.Tensor]:
        return {name: buf for name, buf in G.named_buffers() if name.endswith("noise_const")}

    def _preview(self, step: int, img: torch.Tensor) -> np.ndarray | None:
        every = self.config.preview_every
        if every and step % every == 0:
            return to_uint8(img[:1])
        return None

    def cancel(self) -> None:
        """Ask the loop to stop after its current step; everything done so far is kept."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- phases

    def _phase_start(self) -> Iterator[InvertStep]:
        n = self.config.start_candidates
        if n == 0 or self._start is not None:
            return
        t0 = time.perf_counter()
        cands = torch.cat([self.ws, self._sample_ws(n, self.config.start_psi)])
        best_loss, best, best_psnr = math.inf, 0, -math.inf
        for i, lo in enumerate(range(0, len(cands), START_BATCH)):
            with torch.no_grad():
                img = self._synth(self.G, cands[lo : lo + START_BATCH])
                losses = reconstruction_loss(img, self.target, self.config)
            k = int(torch.argmin(losses))
            preview = None
            if float(losses[k]) < best_loss:
                best_loss, best, best_psnr = float(losses[k]), lo + k, psnr_db(img[k : k + 1], self.target)
                preview = self._preview(i, img[k : k + 1])
            seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            yield self._record(InvertStep("start", i, best_loss, best_psnr, preview, seconds))
            if self.cancelled:
                break
        self.ws = cands[best : best + 1].clone()
        self.psnr_by_phase["start"] = best_psnr

    def _finish(self, phase: str, best: _Best, G: GeneratorBase, restore: Any) -> None:
        """End of a phase: the state after its last update is rendered once more, and whichever of
        it and the best state a step saw has the lower reconstruction loss is kept. A phase can
        then never leave the inversion worse than it found it (Adam's first full-size steps on a
        short phase can throw the image far off; it comes back, but not always by the end)."""
        with torch.no_grad():
            img = self._synth(G, self.ws)
            loss = float(reconstruction_loss(img, self.target, self.config)[0])
        if best.state is not None and best.loss < loss:
            restore(best.state)
            self.psnr_by_phase[phase] = best.psnr
        else:
            self.psnr_by_phase[phase] = psnr_db(img, self.target)

    def _phase_w(self) -> Iterator[InvertStep]:
        cfg = self.config
        n = cfg.w_steps
        if n == 0 or (self._start is not None and not bool((self._start == self._start[:, :1]).all())):
            return
        w = self.ws[:, 0].clone().requires_grad_(True)  # [1, w_dim]
        opt = adam([w], cfg.w_lr, cfg.fused_adam)
        if cfg.w_noise > 0:
            self._stats()
        best = _Best()

        def restore(state: torch.Tensor) -> None:
            self.ws = state[:, None].repeat(1, self.num_ws, 1)

        try:
            for step in range(n):
                t0 = time.perf_counter()
                t = step / n
                for group in opt.param_groups:
                    group["lr"] = cfg.w_lr * _lr_ramp(t, cfg.lr_rampup, cfg.lr_rampdown)
                noisy = cfg.w_noise > 0 and t < cfg.w_noise_ramp
                w_in = w
                if noisy:
                    assert self._w_std is not None
                    scale = self._w_std * cfg.w_noise * (1 - t / cfg.w_noise_ramp) ** 2
                    w_in = w + torch.randn(w.shape, generator=self._rng).to(self.device) * scale
                img = self._synth(self.G, w_in[:, None].repeat(1, self.num_ws, 1))
                loss = reconstruction_loss(img, self.target, cfg)[0]
                psnr = psnr_db(img, self.target)
                if not noisy:  # a noisy step's loss is of a w that is not the one kept
                    best.offer(float(loss.detach()), psnr, lambda: w.detach().clone())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.ws = w.detach()[:, None].repeat(1, self.num_ws, 1)
                yield self._record(
                    InvertStep(
                        "w", step, float(loss.detach()), psnr, self._preview(step, img), time.perf_counter() - t0
                    )
                )
                if self._stop_phase(float(loss.detach()), psnr):
                    break
        finally:
            self._finish("w", best, self.G, restore)

    def _phase_wplus(self) -> Iterator[InvertStep]:
        cfg = self.config
        n = cfg.wplus_steps
        if n == 0:
            return
        G = self.G
        noise: dict[str, torch.Tensor] = {}
        if cfg.noise_weight > 0 and self._noise_buffers(self.G):
            G = self._working_generator()
            for name, buf in self._noise_buffers(G).items():
                leaf = buf.detach().clone().requires_grad_(True)
                G.get_submodule(name.rsplit(".", 1)[0]).noise_const = leaf  # the buffer becomes the variable
                noise[name] = leaf
        ws = self.ws.clone().requires_grad_(True)
        groups: list[dict[str, Any]] = [{"params": [ws], "lr": cfg.wplus_lr, "base": cfg.wplus_lr}]
        if noise:
            groups.append({"params": list(noise.values()), "lr": cfg.noise_lr, "base": cfg.noise_lr})
        opt = adam(groups, cfg.wplus_lr, cfg.fused_adam)
        best = _Best()

        def snapshot() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return ws.detach().clone(), {name: leaf.detach().clone() for name, leaf in noise.items()}

        def restore(state: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> None:
            self.ws = state[0]
            with torch.no_grad():
                for name, leaf in noise.items():
                    leaf.copy_(state[1][name])

        try:
            for step in range(n):
                t0 = time.perf_counter()
                ramp = _lr_ramp(step / n, cfg.lr_rampup, cfg.lr_rampdown)
                for group in opt.param_groups:
                    group["lr"] = group["base"] * ramp
                img = self._synth(G, ws)
                rec = reconstruction_loss(img, self.target, cfg)[0]
                loss = rec + cfg.noise_weight * noise_regularizer(list(noise.values())) if noise else rec
                psnr = psnr_db(img, self.target)
                best.offer(float(rec.detach()), psnr, snapshot)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if noise:
                    with torch.no_grad():  # each map zero-mean and unit-variance, as the projector keeps them
                        for buf in noise.values():
                            buf -= buf.mean()
                            buf *= buf.square().mean().rsqrt()
                self.ws = ws.detach().clone()
                yield self._record(
                    InvertStep(
                        "w+", step, float(loss.detach()), psnr, self._preview(step, img), time.perf_counter() - t0
                    )
                )
                if self._stop_phase(float(loss.detach()), psnr):
                    break
        finally:
            self._finish("w+", best, G, restore)
            if noise:
                for name, leaf in noise.items():
                    G.get_submodule(name.rsplit(".", 1)[0]).noise_const = leaf.detach()
                self.noise = {name: leaf.detach().clone() for name, leaf in noise.items()}

    def _locality_bank(self, G: GeneratorBase, pivot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed locality samples: ws [K, num_ws, w_dim] on the way from the pivot to random w, and
        their images [K, C, H, W] by the generator before tuning."""
        cfg = self.config
        k = cfg.locality_samples
        # Shares spread evenly from `locality_alpha` to the random w itself: the term then guards
        # the whole way from near the pivot out to the generator's other faces, not one shell
        # (measured: one share at 0.2 kept faces at 0.3 of the way to 32.6 dB of the originals
        # but those at the random w itself to 22.5 dB; the spread from 0.3 kept 29.6-32.6 dB).
        share = (
            torch.linspace(cfg.locality_alpha, 1.0, k, device=self.device)
            if k > 1
            else torch.full([1], cfg.locality_alpha, device=self.device)
        )
        ws = pivot.lerp(self._sample_ws(k), share.reshape(-1, 1, 1))
        with torch.no_grad():
            imgs = torch.cat([self._synth(G, ws[i : i + 1]) for i in range(len(ws))])
        return ws, imgs

    def _edit_bank(self, G: GeneratorBase, pivot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed edit samples: ws [K, num_ws, w_dim] near the pivot (the first `edit_layers` rows
        moved toward random w) and the untuned generator's change of image from the pivot's."""
        cfg = self.config
        k = cfg.locality_samples
        lo, hi = cfg.edit_shares
        share = torch.linspace(lo, hi, k, device=self.device) if k > 1 else torch.full([1], lo, device=self.device)
        rows = min(cfg.edit_layers, pivot.shape[1])
        ws = pivot.repeat(k, 1, 1)
        ws[:, :rows] = pivot[:, :rows].lerp(self._sample_ws(k)[:, :rows], share.reshape(-1, 1, 1))
        with torch.no_grad():
            base = self._synth(G, pivot)
            deltas = torch.cat([self._synth(G, ws[i : i + 1]) - base for i in range(len(ws))])
        return ws, deltas

    def _phase_tune(self) -> Iterator[InvertStep]:
        cfg = self.config
        n = cfg.tune_steps
        if not cfg.tune or n == 0:
            return
        G = self._working_generator()
        pivot = self.ws.detach()
        loc_ws, loc_imgs = self._locality_bank(G, pivot) if cfg.locality_weight > 0 else (None, None)
        edit_ws, edit_deltas = self._edit_bank(G, pivot) if cfg.edit_weight > 0 else (None, None)
        params = dict(G.synthesis.named_parameters())
        before = {name: p.detach().clone() for name, p in params.items()}
        for p in params.values():
            p.requires_grad_(True)
        opt = adam(list(params.values()), cfg.tune_lr, cfg.fused_adam)
        # Only the state before tuning is kept to fall back on, not the best step's: the weights
        # improve on almost every step, and a copy of them each time (120 MB at 512 px) would
        # cost more than the fallback is worth once the learning rate has ramped down.
        best = _Best()
        first = True

        def restore(state: dict[str, torch.Tensor]) -> None:
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(state[name])

        try:
            for step in range(n):
                t0 = time.perf_counter()
                for group in opt.param_groups:
                    group["lr"] = cfg.tune_lr * _lr_ramp(step / n, cfg.lr_rampup, cfg.lr_rampdown)
                regular = step % cfg.locality_every == 0
                # Locality and edit samples take turns (each on every other regularised step).
                edit_turn = edit_ws is not None and (loc_ws is None or (step // cfg.locality_every) % 2 == 1)
                if regular and edit_turn and edit_ws is not None and edit_deltas is not None:
                    k = (step // cfg.locality_every // 2) % len(edit_ws)
                    img, near = self._tune_images(G, pivot, edit_ws[k : k + 1])
                    rec = reconstruction_loss(img, self.target, cfg)[0]
                    loss = rec + cfg.edit_weight * ((near - img) - edit_deltas[k : k + 1]).square().mean()
                elif regular and loc_ws is not None and loc_imgs is not None:
                    k = (step // cfg.locality_every // (2 if edit_ws is not None else 1)) % len(loc_ws)
                    img, local = self._tune_images(G, pivot, loc_ws[k : k + 1])
                    rec = reconstruction_loss(img, self.target, cfg)[0]
                    loss = rec + cfg.locality_weight * (local - loc_imgs[k : k + 1]).square().mean()
                else:
                    img = self._synth(G, pivot)
                    rec = loss = reconstruction_loss(img, self.target, cfg)[0]
                psnr = psnr_db(img, self.target)
                if first:  # the pivot's loss alone decides: the locality term's sample changes every step
                    best.offer(float(rec.detach()), psnr, lambda: before)
                    first = False
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                yield self._record(
                    InvertStep(
                        "tune", step, float(loss.detach()), psnr, self._preview(step, img), time.perf_counter() - t0
                    )
                )
                if self._stop_phase(float(loss.detach()), psnr):
                    break
        finally:
            G.requires_grad_(False)
            self._finish("tune", best, G, restore)
            changed = {
                f"synthesis.{name}": p.detach().clone()
                for name, p in params.items()
                if not torch.equal(p.detach(), before[name])
            }
            self.tuned_state = changed or None

    def _tune_images(
        self, G: GeneratorBase, pivot: torch.Tensor, local: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tuned generator's images of the pivot and of one locality sample, in one batch:
        one pass through the network instead of two (`_tune_images_reference`)."""
        img2 = self._synth(G, torch.cat([pivot, local]))
        return img2[:1], img2[1:]

    def _tune_images_reference(
        self, G: GeneratorBase, pivot: torch.Tensor, local: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._synth(G, pivot), self._synth(G, local)

    # -- the loop

    def _record(self, s: InvertStep) -> InvertStep:
        self.step_count += 1
        return s

    def _stop_phase(self, loss: float, psnr: float) -> bool:
        """Whether the current phase ends after this step: target PSNR reached (then the whole
        inversion ends), cancelled, or no improvement for `patience` steps."""
        cfg = self.config
        if cfg.target_psnr is not None and psnr >= cfg.target_psnr:
            self.done = True
            return True
        if self.cancelled:
            return True
        if cfg.patience is not None:
            if loss < self._best_loss * (1 - cfg.min_improvement):
                self._best_loss, self._since_best = loss, 0
            else:
                self._since_best += 1
                if self._since_best >= cfg.patience:
                    return True
        return False

    def steps(self) -> Iterator[InvertStep]:
        """Run the phases in order, one InvertStep per iteration, until they are done, the target
        PSNR is reached, or `cancel()` is called (checked after every step). A session runs once:
        iterating again yields nothing (a second run would tune the tuned copy again)."""
        if self._started:
            return
        self._started = True
        for phase in (self._phase_start, self._phase_w, self._phase_wplus, self._phase_tune):
            if self.cancelled or self.done:
                return
            self._best_loss, self._since_best = math.inf, 0
            # `seconds` counts the session's own work, set-up included (a copy of the generator,
            # the locality samples), and not the time the caller holds a step.
            t0 = time.perf_counter()
            for s in phase():
                self.seconds += time.perf_counter() - t0
                yield s
                t0 = time.perf_counter()
            self.seconds += time.perf_counter() - t0

    def run(self) -> InversionResult:
        for _ in self.steps():
            pass
        return self.result()

    def render(self) -> np.ndarray:
        """The [H, W, 3] uint8 image the current ws draws (with the noise and weights so far)."""
        G = self._work if self._work is not None else self.G
        with torch.no_grad():
            return to_uint8(self._synth(G, self.ws))

    def result(self) -> InversionResult:
        image = self.render()
        return InversionResult(
            ws=self.ws.detach().clone(),
            tuned_state=self.tuned_state,
            psnr=psnr_uint8(image, self.target_uint8),
            steps=self.step_count,
            seconds=self.seconds,
            cancelled=self.cancelled,
            image=image,
            noise=self.noise,
            psnr_by_phase=dict(self.psnr_by_phase),
        )


__all__ = [
    "Inversion",
    "InversionError",
    "InversionResult",
    "InvertConfig",
    "InvertStep",
    "reconstruction_loss",
    "ssim",
    "ssim_reference",
]
