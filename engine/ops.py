"""Low-level StyleGAN2 operations in plain PyTorch.

Each operation computes exactly what NVlabs' `torch_utils/ops` computes (the
same float32 arithmetic, up to operation order), so that official checkpoints
reproduce their reference outputs. Where a faster formulation exists it sits
beside the plain one, and tests check that the two agree.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

LRELU_ALPHA = 0.2
LRELU_GAIN = math.sqrt(2.0)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None,
    activation: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias, activation, gain and clamp, in that order (bias along dim 1)."""
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_ALPHA)
        default_gain = LRELU_GAIN
    elif activation == "linear":
        default_gain = 1.0
    elif activation == "relu":
        x = F.relu(x)
        default_gain = LRELU_GAIN
    else:
        raise ValueError(f"unsupported activation {activation!r}")
    gain = default_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def activation_gain(activation: str) -> float:
    return LRELU_GAIN if activation in ("lrelu", "relu") else 1.0


def setup_filter(taps: list[float]) -> torch.Tensor:
    """The separable low-pass filter as a normalised 2-D kernel, [fh, fw]."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad or crop, FIR filter, downsample.

    padding = (x0, x1, y0, y1); negative values crop. x: [N, C, H, W]. `f` is a 2-D kernel, a 1-D
    separable one (filtered along x, then y, as the official op does), or None (identity).
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # The official op convolves (flips the kernel); gain is spread over both axes.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        weight = f[None, None].repeat(c, 1, 1)  # [C, 1, taps]
        x = F.conv2d(x, weight.unsqueeze(2), groups=c)
        x = F.conv2d(x, weight.unsqueeze(3), groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """2x FIR up-sampling that keeps the image centred (used on the skip RGB image)."""
    fw = f.shape[-1]
    pad = ((fw + up - 1) // 2, (fw - up) // 2)
    return upfirdn2d(x, f, up=up, padding=(pad[0], pad[1], pad[0], pad[1]), gain=up * up)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """Convolution with optional 2x up-sampling, as StyleGAN2's synthesis layers use it.

    Up-sampling runs as a strided transposed convolution followed by the FIR
    filter: the official order of operations, which keeps float results equal.
    """
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    assert f is not None
    fw = f.shape[-1]
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    if kh == 1 and kw == 1:
        x = F.conv2d(x, w, groups=groups)
        pad = (padding + (fw + up - 1) // 2, padding + (fw - up) // 2)
        return upfirdn2d(x, f, up=up, padding=(pad[0], pad[1], pad[0], pad[1]), gain=up * up)
    # Transposed convolution wants [in, out/groups, kh, kw] per group.
    if groups == 1:
        wt = w.transpose(0, 1)
    else:
        wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    pt = max(min(-p0, -p1), 0)
    x = F.conv_transpose2d(x, wt, stride=up, padding=pt, groups=groups)
    return upfirdn2d(x, f, padding=(p0 + pt, p1 + pt, p0 + pt, p1 + pt), gain=up * up)


def modulated_conv2d(
    x: torch.Tensor,  # [N, I, H, W]
    weight: torch.Tensor,  # [O, I, kh, kw]
    styles: torch.Tensor,  # [N, I]
    noise: torch.Tensor | None = None,  # broadcastable to [N, O, H', W']
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused: bool = True,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution with weight demodulation.

    `fused=True` folds the per-sample weights into one grouped convolution, as
    the official op does by default; `fused=False` scales activations instead
    and demodulates with a small matrix product. Both are exact up to float
    rounding; tests hold them to each other. The unfused form is the faster
    one for single latents on CPU (the drag loop) and for training batches.
    """
    n = x.shape[0]
    out_c, in_c, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # Keep fp16 activations in range: normalise before modulating (as the official op does).
        weight = weight * (1 / math.sqrt(in_c * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    if not fused:
        # sum_ikk (W_oikk s_i)^2 = sum_i s_i^2 sum_kk W_oikk^2: a [N, I] x [I, O] product instead of
        # materialising the [N, O, I, kh, kw] modulated weights, which dominate small (windowed) crops.
        dcoefs = None
        if demodulate:
            dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding)
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_c, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=n)
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] in [-1, 1] -> [H, W, 3] uint8, as the official renderer rounds."""
    x = (img[0].detach().float().clamp(-1, 1) + 1) * 127.5
    return x.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
