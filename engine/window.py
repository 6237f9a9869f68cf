"""Windowed synthesis: a block's features inside a small box, computed exactly.

Motion supervision and point tracking read the feature map only near the
handles. The low-resolution blocks are cheap and are computed densely; each
higher block is computed only on the crop its successors need. A crop carries
a margin wide enough for every layer's receptive field (the 3x3 convolutions
and the transposed convolution plus 4-tap FIR filter of the up-sampling
layers), so that values inside the box equal the dense computation's: zero
padding happens only where a crop touches the true image border, exactly
as in the dense network. The dense `SynthesisNetwork.forward` is the
reference; tests check that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.stylegan2 import SynthesisBlock, SynthesisNetwork

# Output pixel o of an up-sampling layer (transposed 3x3 conv, stride 2, then the 4-tap FIR
# filter) reads input pixels floor(o / 2) - 2 .. floor(o / 2) + 1; a 3x3 conv reads o - 1 .. o + 1.
UP_BELOW, UP_ABOVE = 2, 1
CONV_MARGIN = 1
# Crop a block only if its crop is at most this fraction of the full map; otherwise dense is as cheap.
MAX_CROP_FRACTION = 0.5
# The fixed cost of running one block on one crop (the style affines, weight demodulation and
# the kernel launches of its two layers), in multiply-adds of convolution work. Measured on
# this project's CPU: a block on a 1-pixel crop costs about as much as 4e5 multiply-adds, on
# a small 64 px model and on the official 512 px configuration alike.
CALL_OVERHEAD_MACS = 4e5


@dataclass(frozen=True)
class Box:
    """Half-open pixel box [y0, y1) x [x0, x1) at some resolution."""

    y0: int
    y1: int
    x0: int
    x1: int

    def clip(self, res: int) -> Box:
        return Box(max(self.y0, 0), min(self.y1, res), max(self.x0, 0), min(self.x1, res))

    def grow(self, m: int, res: int) -> Box:
        return Box(self.y0 - m, self.y1 + m, self.x0 - m, self.x1 + m).clip(res)

    @property
    def area(self) -> int:
        return max(self.y1 - self.y0, 0) * max(self.x1 - self.x0, 0)

    def slice(self, x: torch.Tensor, origin: Box | None = None) -> torch.Tensor:
        """The part of `x` covering this box; `x` itself covers `origin` (default: from 0)."""
        oy, ox = (origin.y0, origin.x0) if origin is not None else (0, 0)
        return x[:, :, self.y0 - oy : self.y1 - oy, self.x0 - ox : self.x1 - ox]


def _input_box(out: Box, in_res: int) -> Box:
    """Input box of an up-sampling block (conv0 up 2x, then conv1 3x3) needed for `out` exactly."""
    c = out.grow(CONV_MARGIN, in_res * 2)
    lo = lambda a: a // 2 - UP_BELOW  # noqa: E731
    hi = lambda b: (b - 1) // 2 + UP_ABOVE + 1  # noqa: E731  (exclusive end)
    return Box(lo(c.y0), hi(c.y1), lo(c.x0), hi(c.x1)).clip(in_res)


def plan_crops(net: SynthesisNetwork, block: int, box: Box) -> list[Box | None]:
    """For blocks 0..block: the output box each must produce, or None where it runs densely."""
    res = net.block_resolutions
    plan: list[Box | None] = [None] * (block + 1)
    plan[block] = box
    for j in range(block, 0, -1):
        need = plan[j]
        assert need is not None
        prev = _input_box(need, res[j - 1])
        if prev.area > MAX_CROP_FRACTION * res[j - 1] ** 2:
            break
        plan[j - 1] = prev
    return plan


def _block_macs(block: SynthesisBlock) -> float:
    """Multiply-adds per output pixel of a block's two convolutions: the up-sampling transposed
    3x3 (each output pixel receives 9/4 taps per channel pair) and the 3x3."""
    cin, cout = block.in_channels, block.out_channels
    return cin * cout * 9 / 4 + cout * cout * 9


def dense_cost(net: SynthesisNetwork, block: int, first: int = 1) -> float:
    """Estimated work of blocks first..block computed densely (block 0, the constant, is shared)."""
    blocks = net.blocks()
    res = net.block_resolutions
    return sum(res[j] ** 2 * _block_macs(blocks[j]) + CALL_OVERHEAD_MACS for j in range(first, block + 1))


def crop_cost(net: SynthesisNetwork, plan: list[Box | None], first: int) -> float:
    """Estimated work of blocks first..end of one crop plan."""
    blocks = net.blocks()
    return sum(
        b.area * _block_macs(blocks[j]) + CALL_OVERHEAD_MACS for j, b in enumerate(plan) if j >= first and b is not None
    )


def _union(a: Box, b: Box) -> Box:
    return Box(min(a.y0, b.y0), max(a.y1, b.y1), min(a.x0, b.x0), max(a.x1, b.x1))


def merge_boxes(boxes: list[Box]) -> tuple[list[Box], list[int]]:
    """Boxes merged wherever their union is no larger than the two apart (overlapping handles
    share one window); and, per input box, the index of the merged box it lies in.

    Pairs are merged one at a time, always the first pair (in order) that may merge, until none
    may: `merge_boxes_reference`, written plainly. Here a pass after a merge checks again only
    the pairs that the merge changed (those with the grown box, and the rows after it), on
    plain tuples: 20 handles cost tens of microseconds instead of milliseconds per step.
    """
    groups = [(b.y0, b.y1, b.x0, b.x1) for b in boxes]
    owner = list(range(len(boxes)))

    def area(b: tuple[int, int, int, int]) -> int:
        return max(b[1] - b[0], 0) * max(b[3] - b[2], 0)

    def union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])

    areas = [area(g) for g in groups]

    def merge(i: int, j: int, u: tuple[int, int, int, int]) -> None:
        groups[i], areas[i] = u, area(u)
        del groups[j], areas[j]
        owner[:] = [i if o == j else (o - 1 if o > j else o) for o in owner]

    changed = 0  # the box the last merge grew: rows before it failed with all but it last pass
    while True:
        hit: tuple[int, int, tuple[int, int, int, int]] | None = None
        for i in range(changed):
            u = union(groups[i], groups[changed])
            if area(u) <= areas[i] + areas[changed]:
                hit = (i, changed, u)
                break
        if hit is None:  # rows from the grown box on are checked in full
            for i in range(changed, len(groups)):
                for j in range(i + 1, len(groups)):
                    u = union(groups[i], groups[j])
                    if area(u) <= areas[i] + areas[j]:
                        hit = (i, j, u)
                        break
                if hit is not None:
                    break
        if hit is None:
            return [Box(*g) for g in groups], owner
        i, j, u = hit
        merge(i, j, u)
        changed = i


def merge_boxes_reference(boxes: list[Box]) -> tuple[list[Box], list[int]]:
    """`merge_boxes` written plainly: after every merge, the search starts again from the first pair."""
    groups = list(boxes)
    owner = list(range(len(boxes)))
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                u = _union(groups[i], groups[j])
                if u.area <= groups[i].area + groups[j].area:
                    groups[i] = u
                    del groups[j]
                    owner = [i if o == j else (o - 1 if o > j else o) for o in owner]
                    merged = True
                    break
            if merged:
                break
    return groups, owner


def _crop_block(
    block: SynthesisBlock,
    x: torch.Tensor,
    x_box: Box,
    out: Box,
    ws: torch.Tensor,
    noise_mode: str,
    force_fp32: bool,
    fused: bool,
) -> torch.Tensor:
    """Block output on `out`, from its input `x` covering `x_box` (one resolution lower)."""
    use_fp16 = block.use_fp16 and not force_fp32 and ws.device.type == "cuda"
    x = x.to(torch.float16 if use_fp16 else torch.float32)
    w0, w1 = ws[:, 0], ws[:, 1]
    conv_box = out.grow(CONV_MARGIN, block.resolution)
    # conv0 maps the crop x_box to the output box 2 * x_box (the op is shift-equivariant by 2).
    up_box = Box(2 * x_box.y0, 2 * x_box.y1, 2 * x_box.x0, 2 * x_box.x1)
    y = block.conv0(x, w0, noise_mode=noise_mode, fused=fused, crop=(up_box.y0, up_box.x0))
    y = conv_box.slice(y, up_box)
    y = block.conv1(y, w1, noise_mode=noise_mode, fused=fused, crop=(conv_box.y0, conv_box.x0))
    return out.slice(y, conv_box)


def windowed_features(
    net: SynthesisNetwork,
    ws: torch.Tensor,  # [N, num_ws, w_dim]
    block: int,
    boxes: list[Box],
    noise_mode: str = "const",
    force_fp32: bool = False,
    fused: bool = True,
) -> list[torch.Tensor]:
    """Features of `block` inside each box ([N, C, h, w] per box), as the dense network computes them.

    Boxes whose crops overlap are computed as one (`merge_boxes`), and when the estimated work
    of all crops reaches that of the dense map the dense map is computed and sliced instead;
    either way the values are those of the dense network.
    """
    if net.cfg.architecture == "resnet":
        raise ValueError("windowed synthesis supports the 'skip' and 'orig' architectures")
    if not boxes:
        return []
    merged, owner = merge_boxes(boxes)
    if windowed_cost(net, block, merged) >= dense_cost(net, block):
        full = (
            net(ws.to(torch.float32), noise_mode=noise_mode, stop_after=block, force_fp32=force_fp32, fused=fused)
            .features[-1]
            .to(torch.float32)
        )
        return [b.slice(full) for b in boxes]
    crops = _windowed(net, ws, block, merged, noise_mode, force_fp32, fused)
    return [b.slice(crop, m) for b, crop, m in ((b, crops[o], merged[o]) for b, o in zip(boxes, owner, strict=True))]


def windowed_cost(net: SynthesisNetwork, block: int, boxes: list[Box]) -> float:
    """Estimated work of `_windowed` on these boxes: the shared dense prefix, then every crop."""
    plans = [plan_crops(net, block, b) for b in boxes]
    first = max(next(j for j, p in enumerate(plan) if p is not None) for plan in plans)
    return dense_cost(net, first - 1) + sum(crop_cost(net, plan, first) for plan in plans)


def _windowed(
    net: SynthesisNetwork,
    ws: torch.Tensor,
    block: int,
    boxes: list[Box],
    noise_mode: str,
    force_fp32: bool,
    fused: bool,
) -> list[torch.Tensor]:
    """Each box's crop computed apart (the plain windowed path; the boxes as given)."""
    plans = [plan_crops(net, block, b) for b in boxes]
    # Block 0 (the learned constant) always runs densely.
    dense_until = max(0, max(next(j for j, p in enumerate(plan) if p is not None) for plan in plans) - 1)
    ws = ws.to(torch.float32)
    blocks = net.blocks()
    w_starts = []
    w_idx = 0
    for b in blocks:
        w_starts.append(w_idx)
        w_idx += b.num_conv
    x = net(ws, noise_mode=noise_mode, stop_after=dense_until, force_fp32=force_fp32, fused=fused).features[-1]
    res = net.block_resolutions[dense_until]
    outs = []
    for plan in plans:
        cur, cur_box = x, Box(0, res, 0, res)
        for j in range(dense_until + 1, block + 1):
            b = blocks[j]
            need = plan[j]
            assert need is not None and cur is not None
            bws = ws.narrow(1, w_starts[j], b.num_conv)
            prev = plan[j - 1]
            in_box = prev if prev is not None else cur_box
            cur = _crop_block(b, in_box.slice(cur, cur_box), in_box, need, bws, noise_mode, force_fp32, fused)
            cur_box = need
        assert cur is not None
        outs.append(cur.to(torch.float32))
    return outs


def resize_window(
    feat: torch.Tensor,  # [N, C, h, w]: a crop of a R x R map covering `feat_box`
    feat_box: Box,
    feat_res: int,
    out_box: Box,  # pixels wanted, at the image resolution
    out_res: int,
) -> torch.Tensor:
    """`F.interpolate(full, out_res, mode="bilinear", align_corners=False)` restricted to `out_box`.

    Source coordinates follow PyTorch's rule: src = (dst + 0.5) * R / H - 0.5,
    clamped at 0, and the upper neighbour clamped to the last pixel.
    """
    scale = feat_res / out_res

    def axis(lo: int, hi: int, origin: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dst = torch.arange(lo, hi, dtype=torch.float32, device=feat.device)
        src = ((dst + 0.5) * scale - 0.5).clamp(min=0)
        i0 = src.floor().long()
        i1 = torch.clamp(i0 + 1, max=feat_res - 1)
        lam = src - i0.float()
        return i0 - origin, i1 - origin, lam

    y0, y1, ly = axis(out_box.y0, out_box.y1, feat_box.y0)
    x0, x1, lx = axis(out_box.x0, out_box.x1, feat_box.x0)
    rows = feat[:, :, y0] * (1 - ly).reshape(-1, 1) + feat[:, :, y1] * ly.reshape(-1, 1)
    return rows[..., x0] * (1 - lx) + rows[..., x1] * lx


def feature_box_for(out_box: Box, out_res: int, feat_res: int) -> Box:
    """The box of the R x R feature map that bilinear resizing reads for `out_box` of the image."""
    scale = feat_res / out_res

    def src(i: int) -> int:
        return int(max((i + 0.5) * scale - 0.5, 0.0))

    return Box(src(out_box.y0), src(out_box.y1 - 1) + 2, src(out_box.x0), src(out_box.x1 - 1) + 2).clip(feat_res)
