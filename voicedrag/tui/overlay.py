"""Draw points, arrows, keypoints, the cursor and the mask onto the image at the size it is shown.

Markers are drawn at display resolution (a terminal cell is one or two
pixels in half-block mode), so a handle stays visible however small the
image is shown, and is not blurred away by a later resize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

XY = tuple[float, float]
Rect = tuple[int, int, int, int]

HANDLE = (235, 40, 40)
TARGET = (40, 110, 255)
ARROW = (255, 255, 255)
KEYPOINT = (255, 215, 0)
CURSOR = (0, 255, 120)
MASK = (0, 220, 120)


@dataclass
class Overlay:
    handles: list[XY] = field(default_factory=list)
    targets: list[XY] = field(default_factory=list)  # targets[i] belongs to handles[i]; extra handles wait for one
    keypoints: dict[str, XY] = field(default_factory=dict)
    cursor: XY | None = None
    mask: list[Rect] | None = None  # region that may move (inclusive-exclusive)
    mask_corner: XY | None = None  # first corner of a mask being drawn


def compose(image: np.ndarray, size: tuple[int, int], overlay: Overlay) -> Image.Image:
    """The [H, W, 3] uint8 image resized to `size` (w, h) with the overlay drawn on it."""
    h, w = image.shape[:2]
    dw, dh = max(size[0], 1), max(size[1], 1)
    base = Image.fromarray(image).convert("RGB")
    if (dw, dh) != (w, h):
        base = base.resize((dw, dh), Image.Resampling.BILINEAR if dw < w else Image.Resampling.NEAREST)
    sx, sy = dw / w, dh / h

    def at(p: XY) -> tuple[float, float]:
        # Pixel centres: image pixel i covers [i, i+1) before scaling.
        return (p[0] + 0.5) * sx - 0.5, (p[1] + 0.5) * sy - 0.5

    if overlay.mask:
        # Dim what must stay fixed, so the movable region reads at a glance.
        arr = np.asarray(base).astype(np.float32)
        keep = np.zeros((dh, dw), dtype=bool)
        for x0, y0, x1, y1 in overlay.mask:
            keep[int(y0 * sy) : int(math.ceil(y1 * sy)), int(x0 * sx) : int(math.ceil(x1 * sx))] = True
        arr[~keep] *= 0.45
        base = Image.fromarray(arr.astype(np.uint8))
    draw = ImageDraw.Draw(base)
    unit = max(min(dw, dh) / 64.0, 1.0)  # marker size: about one display pixel per 64 across
    r = max(unit * 1.2, 1.0)

    for x0, y0, x1, y1 in overlay.mask or []:
        # A mask narrower than a display pixel is still drawn (Pillow refuses a rectangle whose far
        # corner comes before its near one).
        left, top = x0 * sx, y0 * sy
        draw.rectangle(
            [left, top, max(x1 * sx - 1, left), max(y1 * sy - 1, top)], outline=MASK, width=max(int(unit), 1)
        )
    if overlay.mask_corner is not None:
        cx, cy = at(overlay.mask_corner)
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], outline=MASK, width=1)

    for p in overlay.keypoints.values():
        x, y = at(p)
        if r <= 1.2:
            draw.point([(x, y)], fill=KEYPOINT)
        else:
            draw.ellipse([x - r * 0.6, y - r * 0.6, x + r * 0.6, y + r * 0.6], fill=KEYPOINT)

    for hnd, tgt in zip(overlay.handles, overlay.targets, strict=False):  # extra handles wait for a target
        hx, hy = at(hnd)
        tx, ty = at(tgt)
        draw.line([(hx, hy), (tx, ty)], fill=ARROW, width=max(int(unit * 0.6), 1))
        length = math.hypot(tx - hx, ty - hy)
        if length > 2 * r:
            ux, uy = (tx - hx) / length, (ty - hy) / length
            head = 2.5 * r
            left = (tx - ux * head - uy * head * 0.6, ty - uy * head + ux * head * 0.6)
            right = (tx - ux * head + uy * head * 0.6, ty - uy * head - ux * head * 0.6)
            draw.polygon([(tx, ty), left, right], fill=ARROW)
    for tgt in overlay.targets:
        x, y = at(tgt)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=TARGET)
    for hnd in overlay.handles:
        x, y = at(hnd)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=HANDLE)

    if overlay.cursor is not None:
        x, y = at(overlay.cursor)
        arm = 3 * r
        draw.line([(x - arm, y), (x - r, y)], fill=CURSOR, width=1)
        draw.line([(x + r, y), (x + arm, y)], fill=CURSOR, width=1)
        draw.line([(x, y - arm), (x, y - r)], fill=CURSOR, width=1)
        draw.line([(x, y + r), (x, y + arm)], fill=CURSOR, width=1)
    return base


def short_name(name: str) -> str:
    """A keypoint name short enough to sit beside its point: left_eye_center -> L eye c."""
    words = name.split("_")
    out = []
    for wd in words:
        out.append({"left": "L", "right": "R", "center": "c", "top": "t", "bottom": "b"}.get(wd, wd))
    return " ".join(out)
