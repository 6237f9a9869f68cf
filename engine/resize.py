"""The drag loop's mask term without the image-sized feature map.

The official mask term is

    mean(|up(F) * fixed - up(F0) * fixed|)     mean over C x H x W,

where `up` is `F.interpolate(..., size=(H, W), mode="bilinear", align_corners=False)`
of the R x R feature map and `fixed` is 0/1 (the loop multiplies it by lambda).
At 512 px that is 67M values per step, forward and backward. Three exact facts
make it cheap:

1. `up` is linear, so up(F) - up(F0) = up(D) with D = F - F0, and with a 0/1
   mask the term is sum(|up(D)| * fixed) / (C H W).
2. For an integer factor s = H / R, every output pixel lies in a *cell*: the
   square between four neighbouring native pixels of D padded by one pixel
   (replicate), and is their bilinear blend with weights that depend only on
   its slot in the cell (PyTorch's source rule src = (dst + 0.5) / s - 0.5;
   PyTorch clamps the source at the border, which blends equal values, as
   the replicate padding does). A cell holds s x s output pixels.
3. A blend with non-negative weights of four values of one strict sign has
   that sign. In such a cell |up(D)| = sign * up(D) is linear, and its sum over
   the cell's fixed pixels is sign * (w . corners), with w [4] fixed by the
   mask. Only the cells whose corners change sign (or touch zero) and that
   hold fixed pixels need their s x s values; on a drag's feature difference
   that is about a tenth to a fifth of them.

`MaskedUpsampleL1` evaluates the term chunk by chunk over the channels and, in
the same pass, its gradient with respect to D (sign(0) = 0, as autograd's L1),
so no C x H x W tensor is ever held. A D that is zero everywhere is exact but
slow (every cell touches zero); the drag loop knows that case (its first step)
and skips the call. `masked_upsampled_l1_reference` is the plain formula; tests
check that both agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Channels per chunk. The largest tensors are a few of [chunk, R+1, R+1] floats (17 MB each for all
# 256 channels at 512 px) and the mixed cells' slots; fewer, larger operations are faster on a busy CPU.
DEFAULT_CHUNK = 256


def masked_upsampled_l1_reference(
    feat: torch.Tensor,  # [1, C, R, R]
    feat0: torch.Tensor,  # [1, C, R, R]
    fixed: torch.Tensor,  # [H, W] or [1, 1, H, W], 0/1
) -> torch.Tensor:
    """The official formula, written out: L1 between the resized maps on the fixed region, mean over C*H*W."""
    fixed = fixed.reshape(1, 1, *fixed.shape[-2:])
    size = list(fixed.shape[-2:])
    up = F.interpolate(feat, size, mode="bilinear", align_corners=False)
    up0 = F.interpolate(feat0, size, mode="bilinear", align_corners=False)
    return F.l1_loss(up * fixed, up0 * fixed)


def cell_layout(scale: int, out_res: int) -> tuple[int, torch.Tensor]:
    """(pad_before, lam): output pixel o sits in cell a at slot o + pad_before - a * scale, where
    cell a spans padded native pixels a, a + 1; lam [scale] is the weight of pixel a + 1 per slot."""

    def cell_of(o: int) -> tuple[int, float]:
        src = (o + 0.5) / scale - 0.5
        return math.floor(src) + 1, src - math.floor(src)

    pad_before = -min(o for o in range(-2 * scale, out_res) if cell_of(o)[0] == 0)
    lam = torch.zeros(scale, dtype=torch.float64)
    for o in range(scale - pad_before, 2 * scale - pad_before):  # the slots of cell 1
        a, frac = cell_of(o)
        assert a == 1
        lam[o + pad_before - scale] = frac
    return pad_before, lam


class MaskedUpsampleL1:
    """sum(|up(D)| * fixed) / (C H W) for a native difference map D [1, C, R, R], differentiable in D.

    Built once per drag (the mask and the resolutions are fixed); call it on D = F - F0.

    Layout: D padded by one pixel is P [c, R+2, R+2], flattened per chunk. The cell whose
    top-left corner is P's flat element i has corners i, i+1, i+R+2, i+R+3; elements in
    P's last row or column start no cell and carry zero weight, so every per-cell tensor
    is a flat slice of P's length and no index arithmetic is needed beyond `i`.
    """

    def __init__(self, fixed: torch.Tensor, feat_res: int, chunk: int = DEFAULT_CHUNK) -> None:
        fixed = fixed.reshape(fixed.shape[-2:]).to(torch.float64)
        h, w = fixed.shape
        if h != w or h % feat_res:
            raise ValueError(f"the image size {h}x{w} must be a multiple of the feature size {feat_res}")
        s = h // feat_res
        n = feat_res + 1  # cells per axis
        p = feat_res + 2  # padded pixels per axis
        device = fixed.device
        self.scale, self.feat_res, self.chunk, self.out_res = s, feat_res, chunk, h
        self.plane = p * p
        pad, lam = cell_layout(s, h)
        wy = torch.stack([1 - lam, lam], dim=1).to(device)  # [s, 2]: weights of the cell's top and bottom pixel
        # blend[i*s + j, k]: weight of corner k (top-left, top-right, bottom-left, bottom-right) at slot (i, j).
        blend = (wy[:, None, :, None] * wy[None, :, None, :]).reshape(s * s, 4)
        # The mask on the cell grid, zero on the slots outside the image, then on P's grid (a zero last row/column).
        grid = torch.zeros(n * s, n * s, dtype=torch.float64, device=device)
        grid[pad : pad + h, pad : pad + w] = fixed
        cells = torch.zeros(p, p, s * s, dtype=torch.float64, device=device)
        cells[:n, :n] = grid.reshape(n, s, n, s).permute(0, 2, 1, 3).reshape(n, n, s * s)
        cells = cells.reshape(self.plane, s * s)
        self.blend = blend.to(torch.float32)  # [s*s, 4]
        self.blend_t = self.blend.t().contiguous()  # [4, s*s]
        self.fixed_cells = cells.to(torch.float32)  # [(R+2)^2, s*s]
        # Where a cell's sign is uniform, the gradient on its corners is sign * (fixed slots @ blend).
        self.corner_weights = (cells @ blend).t().contiguous().to(torch.float32)  # [4, (R+2)^2]
        self.has_fixed = cells.any(dim=1)  # [(R+2)^2]
        self.shifts = (0, 1, p, p + 1)  # flat offsets of the four corners
        self._tiled: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _per_chunk(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """corner_weights and has_fixed repeated over c channels, cut to the cells' flat length."""
        if c not in self._tiled:
            length = c * self.plane - self.shifts[-1]
            self._tiled[c] = (
                self.corner_weights.repeat(1, c)[:, :length].contiguous(),
                self.has_fixed.repeat(c)[:length].contiguous(),
            )
        return self._tiled[c]

    def __call__(self, diff: torch.Tensor) -> torch.Tensor:
        return _MaskedUpsampleL1Fn.apply(diff, self)

    def value_and_grad(self, diff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(term * count, gradient * count [1, C, R, R], count = C*H*W), computed together chunk by chunk.

        Both come from one map G on P: the gradient of the cell sums with respect to the
        corners. The term is <G, P> (|u| = sign(u) u, and u is linear in the corners); the
        gradient is G with the pad ring folded back. The 1/count is left to the caller, so
        that it costs a scalar operation.
        """
        n_img, c_all, r, r2 = diff.shape
        if n_img != 1 or r != self.feat_res or r2 != self.feat_res:
            raise ValueError(f"expected a [1, C, {self.feat_res}, {self.feat_res}] map, not {tuple(diff.shape)}")
        d = diff[0].detach().to(torch.float32)
        total = torch.zeros((), dtype=torch.float64, device=d.device)
        grads = []
        for c0 in range(0, c_all, self.chunk):
            c = min(self.chunk, c_all - c0)
            x = F.pad(d[c0 : c0 + c].unsqueeze(0), (1, 1, 1, 1), mode="replicate")[0]  # [c, R+2, R+2]
            g = self._corner_grad(x.reshape(-1)).reshape(c, r + 2, r + 2)
            total += torch.dot(g.reshape(-1), x.reshape(-1)).double()
            # Adjoint of the replicate padding: the pad ring folds back onto the edge pixels.
            g[:, 1, :] += g[:, 0, :]
            g[:, r, :] += g[:, r + 1, :]
            g[:, :, 1] += g[:, :, 0]
            g[:, :, r] += g[:, :, r + 1]
            grads.append(g[:, 1 : r + 1, 1 : r + 1])
        grad = grads[0] if len(grads) == 1 else torch.cat(grads)
        return total, grad.unsqueeze(0), float(c_all * self.out_res * self.out_res)

    def _corner_grad(self, x: torch.Tensor) -> torch.Tensor:
        """G, flat like x (P of c channels): d/dx of the sum over cells and slots of |blend . corners| * fixed."""
        weights, has_fixed = self._per_chunk(x.numel() // self.plane)
        length = weights.shape[1]
        p = self.shifts[2]
        sx = torch.sign(x)
        pair = sx[:-1] + sx[1:]
        # +-4 where all four corners have one strict sign; the cell's sign is then +-1, else 0.
        sign = torch.div(pair[:length] + pair[p:], 4, rounding_mode="trunc")
        g = torch.zeros_like(x)
        for k, shift in enumerate(self.shifts):
            g[shift : shift + length].addcmul_(sign, weights[k])
        # Mixed cells that hold fixed pixels: every slot, as the plain formula.
        idx = ((sign == 0) & has_fixed).nonzero().squeeze(1)
        if idx.numel():
            at = idx[:, None] + torch.tensor(self.shifts, device=x.device)  # [n, 4]
            u = x[at] @ self.blend_t  # [n, s*s]: up(D) at the cell's slots
            u.mul_(self.fixed_cells[idx % self.plane])  # with a 0/1 mask, |u * fixed| = |u| * fixed
            g.index_add_(0, at.reshape(-1), (u.sign_() @ self.blend).reshape(-1))
        return g


class _MaskedUpsampleL1Fn(torch.autograd.Function):
    """The gradient is computed in the forward pass (same chunks, no recomputation) and saved."""

    @staticmethod
    def forward(ctx, diff: torch.Tensor, op: MaskedUpsampleL1) -> torch.Tensor:
        total, grad, count = op.value_and_grad(diff)
        ctx.save_for_backward(grad)
        ctx.scale = 1.0 / count
        return (total / count).to(diff.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (grad,) = ctx.saved_tensors
        return grad * (grad_out * ctx.scale).to(grad.dtype), None
