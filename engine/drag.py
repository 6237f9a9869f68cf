"""The DragGAN loop: motion supervision and point tracking on generator features.

`DragSession` owns the whole loop (convergence, max_steps, cancellation and
the preview cadence); front-ends only iterate over `steps()`. The order of
operations per step is the official one:

1. synthesise from the current ws, keeping the feature block's output `F`,
   resized bilinearly to the image size;
2. on the first step, remember `F0` and each handle's feature (the reference);
3. track: move each handle to the nearest neighbour of its reference feature
   inside a (2 r2 + 1)^2 window of `F`;
4. stop if every handle is close enough to its target; otherwise
5. motion supervision: L1 between the detached features of a disc of radius
   r1 around each handle and the same disc shifted one unit step toward the
   target (bilinear sampling), plus lambda * L1 between `F` and `F0` on the
   region that must stay fixed;
6. one Adam step on the first 6 rows of w+ (or on a single w).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.ops import to_uint8  # noqa: F401 - part of the engine's API here since the first release
from engine.resize import MaskedUpsampleL1, masked_upsampled_l1_reference
from engine.stylegan2 import Generator
from engine.types import DragPair, Point
from engine.window import Box, dense_cost, feature_box_for, merge_boxes, resize_window, windowed_cost, windowed_features

# The paper's radii are given for 512 px images and scale with resolution.
REFERENCE_RESOLUTION = 512


# Crops run slower per unit of estimated work than a dense map, the more so the more of them
# (each is a chain of small convolutions): one window at 512 px runs at about its estimate
# (64 ms a step against 870 ms dense, estimated 0.067), 20 windows estimated at a tenth of the
# map took longer than the map. `crop_slowdown` is that factor, written to err slow. Windows
# whose estimate times it is at most WINDOWS_SURELY_CHEAPER are taken without timing the dense
# path (one to five handles at 512 px: timing it cost the first steps of every drag about 1 s
# each); from DENSE_SURELY_CHEAPER of the estimate on, the dense path is; in between both
# paths are timed on a few steps.
WINDOWS_SURELY_CHEAPER = 0.3


def crop_slowdown(windows: int) -> float:
    return 1.0 + 0.5 * max(windows - 1, 0)


DENSE_SURELY_CHEAPER = 0.7
# Steps that keep a clearly dense choice before the windows are planned again.
DENSE_RECHECK_STEPS = 10
# Timed previews (preview_seconds) take at most about this share of a drag's wall time.
PREVIEW_SHARE = 0.2


@dataclass
class DragConfig:
    r1: float = 3.0  # motion-supervision radius, in 512-px units
    r2: float = 12.0  # tracking half-window, in 512-px units
    lr: float = 2e-3
    lambda_mask: float = 20.0
    # The mask term on every this many steps, with its weight times as much (1: every step, as
    # the paper). The term needs the whole feature map, so its steps cost the dense path
    # (870 ms at 512 px against 64 ms for windows); the steps between take windows. An
    # approximation, off by default: benchmarks/drag_speed.py measures its time and quality.
    mask_every: int = 1
    space: str = "w+"  # "w+" (per-layer rows) or "w" (one vector shared by the rows)
    num_optimized_ws: int = 6
    feature_block: int | None = None  # None: the generator config's choice
    max_steps: int = 300
    # None: 1 px, or 2 px with more than 5 handles (the paper's criterion).
    stop_distance: float | None = None
    # A full preview frame is rendered every `preview_every` steps (0: never),
    # or when `preview_seconds` have passed since the last one (None: off) and the last frame's
    # render took at most PREVIEW_SHARE of the time since (a frame of a big model costs more
    # than a step: timed previews then stay a small share of the drag),
    # and always on the first step.
    preview_every: int = 10
    preview_seconds: float | None = None
    # Preview frames at least this many pixels wide, not the full image: StyleGAN2's skip
    # architecture draws its image at every block's resolution on the way, so a frame for a
    # terminal pane stops at the smallest block at least this size (a 512 px model's 128 px
    # frame runs the blocks a drag step runs anyway, forward only). None: full size. The
    # result's image is always full size; other architectures draw previews full size.
    preview_size: int | None = None
    noise_mode: str = "const"
    # Synthesise only windows around the handles between previews when there is no mask
    # (exact; engine.window); with a mask, the native map, read through windows and the
    # chunked mask term (engine.resize). False: the full resized feature map on every step,
    # as the official loop (the reference path).
    windowed: bool = True
    # Modulated convolutions by scaling activations (False) or by per-sample weights (True);
    # equal to float rounding. Unfused is faster for one latent on CPU (benchmarks/drag_speed.py).
    fused_modconv: bool = False
    # Tracking and motion supervision on the feature map resampled at grid_scale x the image size
    # (1: the image's own pixel grid, as the paper). On a 64-128 px model a whole pixel is coarse
    # next to the 2-3 px moves asked for; at k > 1 handles are tracked to 1/k px. Radii, the
    # stop distance and the motion step stay in image pixels; the mask term stays at the image size.
    grid_scale: int = 1
    # The block, or blocks, whose features track the handles (None: the feature block itself, as
    # the paper). A thin top block can move a part while its own features lose it; a wider block
    # below follows the part. With several blocks a candidate pixel's distance is the sum over the
    # blocks of its distance to the reference relative to the reference's norm, so that each
    # block weighs the same whatever its channel count or scale.
    tracking_block: int | list[int] | None = None
    # How much of a candidate's distance is measured against the handle's look at the last step
    # rather than at the start (0: the start only, as the paper). A part that changes as it moves
    # (an eyelid closing: open-lid edge at the start, lash line at the end) drifts away from its
    # start feature; the last step's feature follows it, the start's keeps it from wandering.
    tracking_recent: float = 0.0
    # Track each handle only among the pixels within this many image pixels of the line through
    # its start and its target (None: the whole square window, as the paper). A part whose edge
    # becomes a uniform line as it moves (a closing eyelid's lash line) offers the tracker equally
    # good matches all along that line, and the handle slides sideways off the move asked for; the
    # band keeps it on the move, as FreeDrag's line search does, but loosely, so a part that
    # bends away from the straight move can still be followed within the band.
    tracking_line: float | None = None

    @classmethod
    def for_generator(cls, generator: Generator, **overrides: Any) -> DragConfig:
        """The paper's settings, then the model's own (its config's `drag`), then the caller's
        (an override of None keeps the model's or the paper's value)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(generator.cfg.drag) - known)
        if unknown:
            raise ValueError(
                f"the model's drag settings name {unknown[0]!r}, which is not a drag option; "
                f"fix the model's JSON config (options: {', '.join(sorted(known))})."
            )
        config = cls(**{**generator.cfg.drag, **{k: v for k, v in overrides.items() if v is not None}})
        config.check()
        config.blocks_to_track(len(generator.synthesis.block_resolutions), 0)
        return config

    def blocks_to_track(self, num_blocks: int, feature_block: int) -> tuple[int, ...]:
        """The blocks whose features point tracking compares: `tracking_block`, else the feature block."""
        tb = self.tracking_block
        blocks = (
            [feature_block]
            if tb is None
            else [tb]
            if isinstance(tb, int)
            else list(tb)
            if isinstance(tb, (list, tuple))
            else [None]
        )
        if (
            not blocks
            or any(isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < num_blocks for b in blocks)
            or len(set(blocks)) != len(blocks)
        ):
            raise ValueError(
                f"tracking_block must name one or more distinct blocks of the generator's "
                f"{num_blocks} (0 to {num_blocks - 1}), not {tb!r}"
            )
        return tuple(blocks)

    def check(self) -> None:
        """Raise ValueError naming the first setting out of its range (a model's JSON config is user input)."""
        from engine.settings import check_number

        def number(name: str, lo: float, hi: float, whole: bool = False, optional: bool = False) -> None:
            check_number("drag", name, getattr(self, name), lo, hi, whole, optional)

        number("r1", 0.0, 512.0)
        number("r2", 0.0, 512.0)
        number("lr", 1e-8, 1.0)
        number("lambda_mask", 0.0, 1e6)
        number("mask_every", 1, 1000, whole=True)
        number("num_optimized_ws", 1, 64, whole=True)
        number("max_steps", 0, 1_000_000, whole=True)
        number("stop_distance", 0.0, 1e4, optional=True)
        number("preview_every", 0, 1_000_000, whole=True)
        number("preview_seconds", 0.0, 1e6, optional=True)
        number("preview_size", 1, 1 << 16, whole=True, optional=True)
        number("grid_scale", 1, 8, whole=True)
        number("tracking_recent", 0.0, 1.0)
        number("tracking_line", 0.0, 512.0, optional=True)
        number("feature_block", 0, 64, whole=True, optional=True)
        if self.space not in ("w+", "w"):
            raise ValueError(f"the drag setting space must be 'w+' or 'w', not {self.space!r}")
        if self.noise_mode not in ("const", "random", "none"):
            raise ValueError(
                f"the drag setting noise_mode must be 'const', 'random' or 'none', not {self.noise_mode!r}"
            )
        for name in ("windowed", "fused_modconv"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"the drag setting {name} must be true or false, not {getattr(self, name)!r}")

    def radii(self, resolution: int) -> tuple[int, int]:
        """(r1, r2) in pixels at this resolution. r1 is kept >= 1 so that small
        models still supervise at least the handle's own pixel."""
        scale = resolution / REFERENCE_RESOLUTION
        return max(round(self.r1 * scale), 1), max(round(self.r2 * scale), 1)

    def stop_px(self, num_points: int) -> float:
        if self.stop_distance is not None:
            return self.stop_distance
        return 2.0 if num_points > 5 else 1.0


@dataclass
class StepResult:
    step: int
    points: list[Point]  # handle positions after this step's tracking
    distances: list[float]
    mean_distance: float
    loss_motion: float
    loss_fix: float | None
    loss: float
    converged: bool
    image: np.ndarray | None = None  # [H, W, 3] uint8 of the ws this step started from
    seconds: float = 0.0  # wall time of this step


@dataclass
class DragResult:
    ws: torch.Tensor  # [1, num_ws, w_dim], detached
    points: list[Point]
    targets: list[Point]
    steps: int
    converged: bool
    cancelled: bool
    mean_distance: float
    seconds: float
    image: np.ndarray  # [H, W, 3] uint8 of `ws`
    frames: list[np.ndarray] = field(default_factory=list)
    start_distance: float = 0.0  # mean handle-to-target distance before the first step
    # One sentence when the drag failed (stopped at max_steps more than twice the stop distance
    # from its targets, or farther than it started), else None: a front end must not say "done".
    verdict: str | None = None


def drag_verdict(converged: bool, cancelled: bool, start: float, end: float, stop_px: float) -> str | None:
    """The sentence a failed drag carries, or None for one that converged, was stopped, or came close."""
    if converged or cancelled:
        return None
    if end > start:
        return (
            f"did not converge: the handles ended {end:.1f} px from their targets, "
            f"farther than the {start:.1f} px they started"
        )
    if end > 2 * stop_px:
        return f"did not converge: {end:.1f} px left of a {start:.1f} px move"
    return None


def track_points(
    feat: torch.Tensor,  # [1, C, h, w]: the resized feature map, or a window of it
    refs: torch.Tensor,  # [N, C]
    points: list[tuple[int, int]],  # (x, y) integer pixels of the full image
    r2: int,
    origin: tuple[int, int] = (0, 0),  # (x0, y0) of `feat` in the full image
    size: tuple[int, int] | None = None,  # (W, H) of the full image; default: feat's own
) -> list[tuple[int, int]]:
    """Nearest neighbour of each reference feature in a window around its point.

    Ties go to the first pixel in row-major order, as in the official code.
    """
    ox, oy = origin
    w, h = size if size is not None else (feat.shape[3], feat.shape[2])
    out = []
    for (x, y), ref in zip(points, refs, strict=True):
        top, bottom = max(y - r2, 0), min(y + r2 + 1, h)
        left, right = max(x - r2, 0), min(x + r2 + 1, w)
        patch = feat[0, :, top - oy : bottom - oy, left - ox : right - ox]  # [C, h', w']
        dist = torch.linalg.norm(patch - ref.reshape(-1, 1, 1), dim=0)
        idx = int(torch.argmin(dist.reshape(-1)))
        width = right - left
        out.append((idx % width + left, idx // width + top))
    return out


def track_points_blocks(
    views: list[tuple[torch.Tensor, tuple[int, int]]],  # per block: (map or window [1, C_b, h, w], origin)
    refs: list[torch.Tensor],  # per block: [C_b], the handle's feature at the start
    point: tuple[int, int],
    r2: int,
    size: tuple[int, int],  # (W, H) of the full grid
    weights: list[float] | None = None,  # per term; default 1 each
    line: tuple[tuple[float, float], tuple[float, float], float] | None = None,  # (start, target, half-width)
) -> tuple[int, int]:
    """Nearest neighbour of one handle in several blocks at once: the candidate whose summed
    relative distance (w_b |f_b - ref_b| / |ref_b| over the terms) is least. Ties go to the first
    pixel in row-major order, as in `track_points`. With `line`, only candidates within the
    half-width of the line through start and target count (the nearest of them when none is)."""
    x, y = point
    w, h = size
    top, bottom = max(y - r2, 0), min(y + r2 + 1, h)
    left, right = max(x - r2, 0), min(x + r2 + 1, w)
    total = None
    for (feat, (ox, oy)), ref, weight in zip(views, refs, weights or [1.0] * len(refs), strict=True):
        if weight == 0.0:
            continue
        patch = feat[0, :, top - oy : bottom - oy, left - ox : right - ox]
        dist = torch.linalg.norm(patch - ref.reshape(-1, 1, 1), dim=0) / (torch.linalg.norm(ref) + 1e-8)
        dist = dist if weight == 1.0 else dist * weight
        total = dist if total is None else total + dist
    assert total is not None
    if line is not None:
        total = total + line_band_penalty(line, (left, top), total.shape, total.device)
    idx = int(torch.argmin(total.reshape(-1)))
    width = right - left
    return idx % width + left, idx // width + top


def line_band_penalty(
    line: tuple[tuple[float, float], tuple[float, float], float],
    origin: tuple[int, int],
    shape: tuple[int, ...],
    device: torch.device,
) -> torch.Tensor:
    """[h, w] additive cost for a window at `origin`: 0 within the half-width of the line through
    start and target, a large cost growing with the distance outside it (so that a window lying
    wholly outside the band still picks its pixel nearest the line)."""
    (sx, sy), (tx, ty), half = line
    h, w = shape[-2], shape[-1]
    ys = torch.arange(origin[1], origin[1] + h, device=device, dtype=torch.float32).reshape(-1, 1)
    xs = torch.arange(origin[0], origin[0] + w, device=device, dtype=torch.float32).reshape(1, -1)
    dx, dy = tx - sx, ty - sy
    length = math.hypot(dx, dy)
    if length < 1e-6:  # no direction: the band is a disc around the start
        off = torch.sqrt((xs - sx) ** 2 + (ys - sy) ** 2)
    else:
        off = torch.abs((xs - sx) * dy - (ys - sy) * dx) / length
    outside = torch.clamp(off - half, min=0.0)
    return torch.where(outside > 0, 1e6 + outside, torch.zeros_like(outside))


def motion_loss(
    feat: torch.Tensor,  # [1, C, h, w], differentiable: the resized feature map, or a window of it
    point: tuple[int, int],
    target: Point,
    r1: int,
    origin: tuple[int, int] = (0, 0),  # (x0, y0) of `feat` in the full image
    size: tuple[int, int] | None = None,  # (W, H) of the full image; default: feat's own
    step: float = 1.0,  # the unit step, in grid pixels (grid_scale of them on a finer grid)
) -> torch.Tensor:
    """L1 between a disc of detached features and the same disc shifted one unit step toward the target."""
    ox, oy = origin
    _, _, fh, fw = feat.shape
    w, h = size if size is not None else (fw, fh)
    x, y = point
    # The official grid is linspace(0, size, size): pixel i sits at i * size / (size - 1).
    rows = torch.linspace(0, h, h, device=feat.device)[oy : oy + fh].reshape(-1, 1)
    cols = torch.linspace(0, w, w, device=feat.device)[ox : ox + fw].reshape(1, -1)
    dist = ((rows - y) ** 2 + (cols - x) ** 2).sqrt()
    ii, jj = torch.where(dist < r1)  # window-relative
    dx, dy = target.x - x, target.y - y
    d = torch.tensor([dx, dy], dtype=torch.float32, device=feat.device)
    # One unit step toward the target, or the rest of the way when that is shorter (only reached
    # with a stop distance under 1 px; the official loop never supervises a handle that close).
    # The length comes from the Python floats: no device sync on this per-step path.
    d = d / (torch.linalg.norm(d) + 1e-7) * min(math.hypot(dx, dy), step)
    gx = (jj + d[0]) / (fw - 1) * 2 - 1
    gy = (ii + d[1]) / (fh - 1) * 2 - 1
    grid = torch.stack([gx, gy], dim=-1).reshape(1, 1, -1, 2)
    shifted = F.grid_sample(feat, grid, align_corners=True).squeeze(2)  # [1, C, n]
    return F.l1_loss(feat[:, :, ii, jj].detach(), shifted)


def motion_loss_many(
    feat: torch.Tensor,  # [1, C, H, W], differentiable: the whole resized feature map
    points: list[tuple[int, int]],
    targets: list[Point],
    r1: int,
    step: float = 1.0,
) -> torch.Tensor:
    """The sum of `motion_loss` over several handles on one map, with one sampling call.

    Each handle's disc and its shifted copy are gathered from a crop just large enough for
    them, so neither the sampling nor its gradient touches the whole map (at 512 px the
    gradient of one whole-map sample is a quarter of a gigabyte). `motion_loss` is the plain
    reference: the sum of its values over the handles equals this, to float rounding.
    """
    _, c, h, w = feat.shape
    margin = int(math.ceil(r1 + step)) + 2  # the disc, the unit step and the bilinear neighbour
    # The discs are found with numpy on the grid's own float32 values: the same IEEE operations
    # as `motion_loss` (so the same pixels), without a dozen tiny torch calls per handle.
    # The official grid is linspace(0, size, size): pixel i sits at i * size / (size - 1).
    rows_all = torch.linspace(0, h, h).numpy()
    cols_all = torch.linspace(0, w, w).numpy()
    ii_parts, jj_parts, shift_x, shift_y, weight_parts = [], [], [], [], []
    for (x, y), target in zip(points, targets, strict=True):
        y0, y1 = max(y - margin, 0), min(y + margin + 1, h)
        x0, x1 = max(x - margin, 0), min(x + margin + 1, w)
        dist = np.sqrt(
            (rows_all[y0:y1].reshape(-1, 1) - np.float32(y)) ** 2
            + (cols_all[x0:x1].reshape(1, -1) - np.float32(x)) ** 2
        )
        ii, jj = np.nonzero(dist < r1)
        n = ii.size
        dx, dy = target.x - x, target.y - y
        scale = min(math.hypot(dx, dy), step) / (math.hypot(dx, dy) + 1e-7)
        ii_parts.append(ii + y0)  # whole-map pixels
        jj_parts.append(jj + x0)
        shift_x.append(np.full(n, dx * scale, np.float32))
        shift_y.append(np.full(n, dy * scale, np.float32))
        weight_parts.append(np.full(n, 1.0 / (c * max(n, 1)), np.float32))
    ii_t = torch.from_numpy(np.concatenate(ii_parts)).to(feat.device)
    jj_t = torch.from_numpy(np.concatenate(jj_parts)).to(feat.device)
    fixed = feat[:, :, ii_t, jj_t].detach()
    # Sample positions in the whole map's [-1, 1] coordinates (align_corners=True).
    gx = (jj_t + torch.from_numpy(np.concatenate(shift_x)).to(feat.device)) / (w - 1) * 2 - 1
    gy = (ii_t + torch.from_numpy(np.concatenate(shift_y)).to(feat.device)) / (h - 1) * 2 - 1
    grid = torch.stack([gx, gy], dim=-1).reshape(1, 1, -1, 2)
    weights = torch.from_numpy(np.concatenate(weight_parts)).to(feat.device)
    # Sampling from the bounding crop of all discs keeps the gradient small; coordinates are
    # mapped into it exactly (align_corners=True: -1 and 1 are the crop's first and last pixel).
    ys = grid[..., 1].mul(0.5).add(0.5).mul(h - 1)
    xs = grid[..., 0].mul(0.5).add(0.5).mul(w - 1)
    cy0, cy1 = int(ys.min().floor()), int(ys.max().ceil()) + 1
    cx0, cx1 = int(xs.min().floor()), int(xs.max().ceil()) + 1
    cy0, cx0 = max(cy0, 0), max(cx0, 0)
    cy1, cx1 = min(max(cy1, cy0 + 2), h), min(max(cx1, cx0 + 2), w)
    crop = feat[:, :, cy0:cy1, cx0:cx1]
    local = torch.stack([(xs - cx0) / (cx1 - cx0 - 1) * 2 - 1, (ys - cy0) / (cy1 - cy0 - 1) * 2 - 1], dim=-1)
    shifted = F.grid_sample(crop, local.reshape(1, 1, -1, 2), align_corners=True).squeeze(2)  # [1, C, n]
    diff = (fixed - shifted).abs().sum(dim=1)  # [1, n]
    return (diff[0] * weights).sum()


class DragSession:
    """One drag: handle/target pairs on a latent, optimised step by step.

    `mask` is a boolean [H, W] array where True marks the region that may move;
    the rest is held to its initial features (weight `lambda_mask`). Without a
    `config`, the model's own drag settings apply (`DragConfig.for_generator`);
    a config given is taken as it is.
    """

    def __init__(
        self,
        generator: Generator,
        ws: torch.Tensor,  # [1, num_ws, w_dim]
        pairs: list[DragPair],
        mask: np.ndarray | torch.Tensor | None = None,
        config: DragConfig | None = None,
    ) -> None:
        if not pairs:
            raise ValueError("a drag needs at least one handle/target pair")
        self.G = generator
        # Mean handle-to-target distance before any step: how far the drag set out to go.
        self.start_distance = float(
            np.mean([math.hypot(p.target.x - p.handle.x, p.target.y - p.handle.y) for p in pairs])
        )
        self.config = config or DragConfig.for_generator(generator)
        if self.config.windowed and not getattr(generator.synthesis, "supports_windows", True):
            # Windowed synthesis knows StyleGAN2's blocks only; other families drag on the dense path.
            self.config = replace(self.config, windowed=False)
        self.res = generator.img_resolution
        if self.config.grid_scale < 1:
            raise ValueError(f"grid_scale must be a whole number >= 1, not {self.config.grid_scale!r}")
        # The grid handles live on: the image's pixels (k = 1) or k x finer. Radii are the image's,
        # in grid pixels.
        self.k = int(self.config.grid_scale)
        self.grid = self.res * self.k
        r1, r2 = self.config.radii(self.res)
        self.r1, self.r2 = r1 * self.k, r2 * self.k
        self.feature_block = (
            self.config.feature_block if self.config.feature_block is not None else generator.cfg.drag_feature_block
        )
        device = generator.device
        self.ws0 = ws.detach().to(device, torch.float32).clone()
        k = self.config.num_optimized_ws
        if self.config.space == "w+":
            self.latent = self.ws0[:, :k].clone()
        elif self.config.space == "w":
            self.latent = self.ws0[:, 0].clone()
        else:
            raise ValueError(f"space must be 'w+' or 'w', not {self.config.space!r}")
        self.latent.requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.latent], lr=self.config.lr)
        self.targets = [p.target for p in pairs]
        # Handles live on the grid: tracking returns integer grid positions.
        for p in pairs:
            x, y = int(round(p.handle.x)), int(round(p.handle.y))
            if not (0 <= x < self.res and 0 <= y < self.res):
                raise ValueError(f"handle ({x}, {y}) is outside the {self.res}x{self.res} image")
        grid_targets = [self._to_grid(t) for t in self.targets]
        grid_handles = [self._to_grid(p.handle) for p in pairs]
        self.points = [
            (min(max(int(round(h.x)), 0), self.grid - 1), min(max(int(round(h.y)), 0), self.grid - 1))
            for h in grid_handles
        ]
        # A handle between pixels (a detected keypoint) is tracked from its pixel, and its target
        # shifted by the same rounding, so that the move asked for is the move made: at 64 px a
        # rounding of 0.5 px is a sixth of a lip's travel. Integer handles (the official case) are
        # unchanged; reported points carry the offset back.
        self._offsets = [(h.x - x, h.y - y) for h, (x, y) in zip(grid_handles, self.points, strict=True)]
        self._aims = [Point(t.x - ox, t.y - oy) for t, (ox, oy) in zip(grid_targets, self._offsets, strict=True)]
        # tracking_line's band per handle, in grid pixels: (start, aim, half-width), or None.
        line = self.config.tracking_line
        self._bands = [
            None if line is None else ((float(x), float(y)), (aim.x, aim.y), line * self.k)
            for (x, y), aim in zip(self.points, self._aims, strict=True)
        ]
        self.fixed = self._fixed_region(mask, device)
        self.step_index = 0
        self.converged = False
        self._cancel = threading.Event()
        # The step-0 feature map the mask term holds the fixed region to: resized to the image
        # size on the reference path, native (R x R) on the windowed one.
        self._feat0: torch.Tensor | None = None
        self.feat_res = generator.synthesis.block_resolutions[self.feature_block]
        self.tracking_blocks: tuple[int, ...] = self.config.blocks_to_track(
            len(generator.synthesis.block_resolutions), self.feature_block
        )
        if not 0.0 <= self.config.tracking_recent <= 1.0:
            raise ValueError(f"tracking_recent must be a share between 0 and 1, not {self.config.tracking_recent!r}")
        self._mask_l1 = (
            MaskedUpsampleL1(self.fixed, self.feat_res)
            if self.fixed is not None and self.config.windowed and self.res % self.feat_res == 0
            else None
        )
        self._refs: list[torch.Tensor] | None = None  # per tracking block: [N, C] at the start
        self._recent: list[torch.Tensor] | None = None  # per tracking block: [N, C] at the last step
        self._ref_image_feat: torch.Tensor | None = None  # the reference path's map at the image size
        self._step_features: list[torch.Tensor] | None = None  # the dense path's block outputs, this step
        # Windowed or dense, chosen per step (`_dense_this_step`): step times of each path (with the
        # estimate they were taken at), which path this step's time is for, and, once both were
        # timed, the measured windowed/dense time ratio per unit of estimated ratio.
        self._path_times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        self._timing: tuple[float, bool] | None = None
        self._calibration: float | None = None
        self._dense_now = not self.config.windowed
        self._dense_until = 0  # steps before this index take the dense path without planning windows
        self._last_preview = -math.inf
        self._render_seconds = 0.0  # wall time of the last preview's render
        self._step_image: torch.Tensor | None = None  # this step's pass's RGB, where a preview shares it
        self.frames: list[np.ndarray] = []
        self.seconds = 0.0

    def _fixed_region(self, mask: np.ndarray | torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
        if mask is None:
            return None
        movable = torch.as_tensor(np.asarray(mask), device=device).bool()
        if movable.shape != (self.res, self.res):
            raise ValueError(f"mask must be {self.res}x{self.res}, not {tuple(movable.shape)}")
        fixed = (~movable).float()
        # As in the official loop, a mask that is all movable or all fixed adds no term.
        if fixed.min() == fixed.max():
            return None
        return fixed.reshape(1, 1, self.res, self.res)

    @property
    def ws(self) -> torch.Tensor:
        """The full ws the generator sees: optimised rows, then the untouched rest of w0."""
        k = self.config.num_optimized_ws
        head = self.latent if self.config.space == "w+" else self.latent.unsqueeze(1).repeat(1, k, 1)
        return torch.cat([head, self.ws0[:, k:]], dim=1)

    def cancel(self) -> None:
        """Ask the loop to stop before its next step; the last completed step's state is kept."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _to_grid(self, p: Point) -> Point:
        # Pixel centres of the image and of the k x grid (align_corners=False): x -> (x + 0.5) k - 0.5.
        if self.k == 1:
            return p
        return Point((p.x + 0.5) * self.k - 0.5, (p.y + 0.5) * self.k - 0.5)

    def _from_grid(self, x: float, y: float) -> Point:
        if self.k == 1:
            return Point(x, y)
        return Point((x + 0.5) / self.k - 0.5, (y + 0.5) / self.k - 0.5)

    def current_points(self) -> list[Point]:
        return [self._from_grid(x + ox, y + oy) for (x, y), (ox, oy) in zip(self.points, self._offsets, strict=True)]

    def distances(self) -> list[float]:
        """Handle-to-target distances, in image pixels."""
        return [math.hypot(t.x - x, t.y - y) / self.k for (x, y), t in zip(self.points, self._aims, strict=True)]

    def _preview_due(self) -> bool:
        cfg = self.config
        if self.step_index == 0:
            return True
        if cfg.preview_every and self.step_index % cfg.preview_every == 0:
            return True
        if cfg.preview_seconds is None:
            return False
        since = time.perf_counter() - self._last_preview
        return since >= cfg.preview_seconds and self._render_seconds <= PREVIEW_SHARE * since

    def _window_boxes(self, block: int, margin: int) -> tuple[list[Box], list[Box]]:
        """Per handle: the window of the grid it needs (`margin` around it), and the box of
        `block`'s native map that bilinear resizing reads for it."""
        res = self.G.synthesis.block_resolutions[block]
        boxes = [Box(y - margin, y + margin + 1, x - margin, x + margin + 1).clip(self.grid) for x, y in self.points]
        return boxes, [feature_box_for(b, self.grid, res) for b in boxes]

    def _dense_this_step(self, fboxes: list[Box]) -> bool:
        """Whether this step runs the dense path although windows were asked for.

        Windows pay when they are few and small against the map (one handle at 512 px: 16x
        less work); many handles, or windows that cover much of a small model's map, are
        cheaper dense, where a step costs the same for 1 or 20 handles. The estimate of
        `engine.window` decides the clear cases; in between, each path is timed on three
        steps, and the measured ratio corrects the estimate for the rest of the drag
        (handles move, windows merge and part). Both paths give the
        same values (to float rounding), so the choice changes speed only.
        """
        self._timing = None
        if not self.config.windowed:
            return True
        if self._mask_now():
            return False  # the mask term needs the native map anyway; windows are read from it
        net = self.G.synthesis
        merged, _ = merge_boxes(fboxes)
        estimate = windowed_cost(net, self.feature_block, merged) / dense_cost(net, self.feature_block)
        if estimate >= DENSE_SURELY_CHEAPER:
            if estimate >= DENSE_SURELY_CHEAPER * 1.25:
                # Far into the dense side: handles move about a pixel a step, so the windows
                # cannot become cheaper within a few steps; planning them every step (20
                # handles: half a millisecond) would make the default slower than dense.
                self._dense_until = self.step_index + DENSE_RECHECK_STEPS
            return True
        if estimate * crop_slowdown(len(merged)) <= WINDOWS_SURELY_CHEAPER:
            return False
        if self._calibration is None:
            # Three steps of each path; the first of each warms its buffers up and is not counted.
            for dense in (False, True):
                if len(self._path_times[dense]) < 3:
                    self._timing = (estimate, dense)
                    return dense
            (tw, ew), (td, _) = min(self._path_times[False][1:]), min(self._path_times[True][1:])
            self._calibration = (tw / td) / ew
        return estimate * self._calibration >= 1.0

    def _features(self, rgb: bool = False) -> tuple[list[tuple[torch.Tensor, tuple[int, int]]], torch.Tensor | None]:
        """Per handle: (resized feature map or a window of it, its (x0, y0) origin in the image),
        and the native feature map [1, C, R, R] when the mask term needs it (None otherwise).

        Windowed without a mask: only windows around the handles are synthesised
        (engine.window). Windowed with a mask: the full native map (the mask term
        compares it everywhere), with motion supervision and tracking read from
        windows of it. Not windowed: the full map resized to the image size, as in
        the official loop (the reference path).
        """
        n = len(self.points)
        self._step_features = None
        if self.step_index < self._dense_until:  # a clear case a few steps ago: no windows to plan
            self._dense_now, self._timing = True, None
        else:
            # The tracking window, the motion disc around where tracking may move the handle,
            # and one more pixel for the shifted bilinear samples.
            boxes, fboxes = self._window_boxes(self.feature_block, self.r2 + self.r1 + self.k + 1)
            self._dense_now = self._dense_this_step(fboxes)
        if self._dense_now:
            out = self.G.synthesis(
                self.ws,
                noise_mode=self.config.noise_mode,
                stop_after=self.feature_block,
                fused=self.config.fused_modconv,
                **({"rgb": True} if rgb else {}),  # only StyleGAN2's skip networks know it
            )
            self._step_image = out.image
            self._step_features = out.features  # blocks 0..feature_block of this step, for tracking
            native = out.features[self.feature_block]
            feat = F.interpolate(native, [self.grid, self.grid], mode="bilinear", align_corners=False)
            # The mask term compares the map at the image size; on a finer grid it is resized apart.
            self._ref_image_feat = (
                feat
                if self.k == 1
                else F.interpolate(native, [self.res, self.res], mode="bilinear", align_corners=False)
            )
            return [(feat, (0, 0))] * n, None
        native = None
        if self._mask_now():
            out = self.G.synthesis(
                self.ws,
                noise_mode=self.config.noise_mode,
                stop_after=self.feature_block,
                fused=self.config.fused_modconv,
                **({"rgb": True} if rgb else {}),  # only StyleGAN2's skip networks know it
            )
            self._step_image = out.image
            native = out.features[self.feature_block].to(torch.float32)  # [1, C, R, R]
            crops = [fb.slice(native) for fb in fboxes]
        else:
            crops = windowed_features(
                self.G.synthesis,
                self.ws,
                self.feature_block,
                fboxes,
                self.config.noise_mode,
                fused=self.config.fused_modconv,
            )
        views = [
            (resize_window(c, fb, self.feat_res, b, self.grid), (b.x0, b.y0))
            for c, fb, b in zip(crops, fboxes, boxes, strict=True)
        ]
        return views, native

    @torch.no_grad()
    def _tracking_views(self, block: int) -> list[tuple[torch.Tensor, tuple[int, int]]]:
        """Per handle: one tracking block's map resized to the grid (or a window of it), and its origin."""
        n = len(self.points)
        if self._dense_now:
            # A block below the feature block came out of this step's forward pass already.
            if self._step_features is not None and block < len(self._step_features):
                native = self._step_features[block].detach()
            else:
                native = self.G.synthesis(
                    self.ws, noise_mode=self.config.noise_mode, stop_after=block, fused=self.config.fused_modconv
                ).features[block]
            feat = F.interpolate(native, [self.grid, self.grid], mode="bilinear", align_corners=False)
            return [(feat, (0, 0))] * n
        res = self.G.synthesis.block_resolutions[block]
        boxes, fboxes = self._window_boxes(block, self.r2 + 1)
        crops = windowed_features(
            self.G.synthesis, self.ws, block, fboxes, self.config.noise_mode, fused=self.config.fused_modconv
        )
        return [
            (resize_window(c, fb, res, b, self.grid), (b.x0, b.y0))
            for c, fb, b in zip(crops, fboxes, boxes, strict=True)
        ]

    @torch.no_grad()
    def _track(self, views: list[tuple[torch.Tensor, tuple[int, int]]]) -> None:
        """Move each handle to its nearest neighbour; records the references on the first call."""
        per_block = [views if b == self.feature_block else self._tracking_views(b) for b in self.tracking_blocks]

        def at_points() -> list[torch.Tensor]:
            return [
                torch.stack(
                    [v[0, :, y - o[1], x - o[0]].detach() for (x, y), (v, o) in zip(self.points, bviews, strict=True)]
                )
                for bviews in per_block
            ]

        if self._refs is None:
            self._refs = at_points()
        size = (self.grid, self.grid)
        recent = self.config.tracking_recent
        if len(per_block) == 1 and recent == 0.0 and self.config.tracking_line is None:  # the paper's, exactly
            bviews, refs = per_block[0], self._refs[0]
            self.points = [
                track_points(v, refs[i : i + 1], [p], self.r2, origin=o, size=size)[0]
                for i, (p, (v, o)) in enumerate(zip(self.points, bviews, strict=True))
            ]
            return
        # Each (block, reference) pair is one term of the summed relative distance.
        recent_refs = self._recent if self._recent is not None else self._refs
        terms = [(bv, refs, 1.0 - recent) for bv, refs in zip(per_block, self._refs, strict=True)]
        if recent > 0.0:
            terms += [(bv, refs, recent) for bv, refs in zip(per_block, recent_refs, strict=True)]
        self.points = [
            track_points_blocks(
                [t[0][i] for t in terms],
                [t[1][i] for t in terms],
                p,
                self.r2,
                size,
                weights=[t[2] for t in terms],
                line=self._bands[i],
            )
            for i, p in enumerate(self.points)
        ]
        if recent > 0.0:
            self._recent = at_points()

    def _mask_now(self) -> bool:
        """Whether this step has the mask term (`DragConfig.mask_every`)."""
        return self.fixed is not None and self.step_index % self.config.mask_every == 0

    def _mask_term(
        self, views: list[tuple[torch.Tensor, tuple[int, int]]], native: torch.Tensor | None
    ) -> torch.Tensor:
        """mean(|up(F) - up(F0)| on the fixed region) over C*H*W; the first call records F0."""
        assert self.fixed is not None
        if native is None:  # the reference path: the resized map itself, as the official loop
            feat = self._ref_image_feat
            assert feat is not None  # set by this step's dense pass, which gives no native map
            if self._feat0 is None:
                self._feat0 = feat.detach()
            return F.l1_loss(feat * self.fixed, self._feat0 * self.fixed)
        # up(F) - up(F0) = up(F - F0): only the native difference is resized, and never as a whole.
        if self._feat0 is None:
            self._feat0 = native.detach()
            # F == F0: the term and its gradient are exactly zero (and still part of the graph,
            # so that the optimiser steps as the official loop does).
            return (native - self._feat0).sum() * 0.0
        if self._mask_l1 is None:  # a feature size that does not divide the image size
            return masked_upsampled_l1_reference(native, self._feat0, self.fixed)
        return self._mask_l1(native - self._feat0)

    def step(self) -> StepResult:
        """One iteration of the loop (forward, track, stop check, loss, Adam step)."""
        t0 = time.perf_counter()
        # A preview is the image of the ws this step starts from, rendered without a graph:
        # the loss needs only the feature block, and a graph through the high blocks costs GBs at 512 px.
        image = None
        self._step_image = None
        # A pane-sized preview whose block is the feature block comes with this step's own pass
        # where that pass runs the whole map (a mask step, the dense path): the RGB branch costs
        # a few 1x1 convolutions, against a second pass through every block.
        due = self._preview_due()
        share = due and self.preview_block() == self.feature_block
        if due and not share:
            image = self.render_preview()
            self._render_seconds = time.perf_counter() - t0
        views, native = self._features(rgb=share)
        if share:
            image = to_uint8(self._step_image) if self._step_image is not None else self.render_preview()
            self._render_seconds = 0.0
        size = (self.grid, self.grid)
        self._track(views)
        dists = self.distances()
        stop_px = self.config.stop_px(len(dists))
        stop = all(d <= stop_px for d in dists)
        loss_motion = torch.zeros((), device=self.ws0.device)
        # Handles within 1 px are left alone, as in the official loop (a unit step would overshoot
        # them), unless the stop distance is tighter: then they take the shorter step that remains.
        pull = min(1.0, stop_px)
        active = [i for i, d in enumerate(dists) if d > pull]
        if self._dense_now and active:
            # One map for every handle: all discs in one sampling call.
            loss_motion = motion_loss_many(
                views[0][0],
                [self.points[i] for i in active],
                [self._aims[i] for i in active],
                self.r1,
                step=float(self.k),
            )
        else:
            for i in active:
                v, o = views[i]
                loss_motion = loss_motion + motion_loss(
                    v, self.points[i], self._aims[i], self.r1, origin=o, size=size, step=float(self.k)
                )
        loss = loss_motion
        loss_fix = None
        if self._mask_now():
            fix = self._mask_term(views, native)
            loss = loss + self.config.lambda_mask * self.config.mask_every * fix
            loss_fix = float(fix.detach())
        # Nothing to supervise (every handle within 1 px but a tighter stop asked for): no step.
        if not stop and loss.requires_grad:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        if image is not None:
            self.frames.append(image)
            self._last_preview = time.perf_counter()
        self.converged = stop
        result = StepResult(
            step=self.step_index,
            points=self.current_points(),
            distances=dists,
            mean_distance=float(np.mean(dists)),
            loss_motion=float(loss_motion.detach()),
            loss_fix=loss_fix,
            loss=float(loss.detach()),
            converged=stop,
            image=image,
            seconds=time.perf_counter() - t0,
        )
        self.seconds += result.seconds
        if self._timing is not None and image is None:  # a preview's render would skew the comparison
            estimate, dense = self._timing
            self._path_times[dense].append((result.seconds, estimate))
        self.step_index += 1
        return result

    def steps(self) -> Iterator[StepResult]:
        """Iterate until convergence, max_steps or cancellation."""
        while self.step_index < self.config.max_steps and not self.cancelled and not self.converged:
            yield self.step()

    def render(self) -> np.ndarray:
        with torch.no_grad():
            out = self.G.synthesis(self.ws, noise_mode=self.config.noise_mode, fused=self.config.fused_modconv)
        assert out.image is not None
        return to_uint8(out.image)

    def preview_block(self) -> int | None:
        """The block whose running image is the preview (None: the full render)."""
        size = self.config.preview_size
        net = self.G.synthesis
        if size is None or getattr(getattr(net, "cfg", None), "architecture", None) != "skip":
            return None
        res = list(net.block_resolutions)
        k = next((i for i, r in enumerate(res) if r >= size), len(res) - 1)
        return None if k == len(res) - 1 else k

    def render_preview(self) -> np.ndarray:
        """A preview frame: `render()`, or the skip architecture's smaller image (`preview_size`)."""
        k = self.preview_block()
        if k is None:
            return self.render()
        with torch.no_grad():
            out = self.G.synthesis(
                self.ws, noise_mode=self.config.noise_mode, fused=self.config.fused_modconv, stop_after=k, rgb=True
            )
        assert out.image is not None
        return to_uint8(out.image)

    def result(self) -> DragResult:
        image = self.render()
        end = float(np.mean(self.distances()))
        start = self.start_distance
        return DragResult(
            ws=self.ws.detach().clone(),
            points=self.current_points(),
            targets=list(self.targets),
            steps=self.step_index,
            converged=self.converged,
            cancelled=self.cancelled,
            mean_distance=end,
            seconds=self.seconds,
            image=image,
            frames=list(self.frames),
            start_distance=start,
            verdict=drag_verdict(self.converged, self.cancelled, start, end, self.config.stop_px(len(self.targets))),
        )

    def run(self) -> DragResult:
        for _ in self.steps():
            pass
        return self.result()
