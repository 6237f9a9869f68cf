"""A small keypoint network: heatmaps at 1/4 resolution read out by soft-argmax.

The encoder goes down to 1/16 of the input so that every heatmap sees the
whole face (the chin and head top need global context), then a light decoder
comes back to 1/4 with skip connections. Each keypoint's heatmap is turned
into coordinates by a spatial softmax and its expectation ("integral
regression"), which is differentiable and sub-pixel, so the training loss is
simply L1 on coordinates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class HeatmapNetConfig:
    num_keypoints: int = 20
    input_size: int = 128  # images are resized to this square before detection
    stem: int = 16  # channels at 1/2
    c4: int = 32  # channels at 1/4 (the heatmap resolution)
    c8: int = 64  # channels at 1/8
    c16: int = 96  # channels at 1/16

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def stride(self) -> int:
        return 4


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class HeatmapNet(nn.Module):
    def __init__(self, config: HeatmapNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.down2 = _conv(3, c.stem, 2)
        self.down4 = nn.Sequential(_conv(c.stem, c.c4, 2), _conv(c.c4, c.c4))
        self.down8 = nn.Sequential(_conv(c.c4, c.c8, 2), _conv(c.c8, c.c8), _conv(c.c8, c.c8))
        self.down16 = nn.Sequential(_conv(c.c8, c.c16, 2), _conv(c.c16, c.c16), _conv(c.c16, c.c16))
        self.lat8 = nn.Conv2d(c.c16, c.c8, 1)
        self.up8 = _conv(c.c8, c.c8)
        self.lat4 = nn.Conv2d(c.c8, c.c4, 1)
        self.up4 = nn.Sequential(_conv(c.c4, c.c4), _conv(c.c4, c.c4))
        self.head = nn.Conv2d(c.c4, c.num_keypoints, 1)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, S, S] in [-1, 1] -> logits [N, K, S/4, S/4]."""
        f4 = self.down4(self.down2(x))
        f8 = self.down8(f4)
        f16 = self.down16(f8)
        g8 = self.up8(f8 + F.interpolate(self.lat8(f16), scale_factor=2.0, mode="bilinear", align_corners=False))
        g4 = self.up4(f4 + F.interpolate(self.lat4(g8), scale_factor=2.0, mode="bilinear", align_corners=False))
        return self.head(g4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, S, S] in [-1, 1] -> keypoints [N, K, 2] in input pixels (centres at integers)."""
        return soft_argmax(self.heatmaps(x), self.config.stride)


def soft_argmax(logits: torch.Tensor, stride: int) -> torch.Tensor:
    """logits [N, K, h, w] -> expected (x, y) [N, K, 2] in input pixels.

    Heatmap cell j covers input pixels j*stride .. j*stride+stride-1, so its
    centre is at j*stride + (stride-1)/2.
    """
    n, k, h, w = logits.shape
    prob = torch.softmax(logits.reshape(n, k, h * w).float(), dim=-1).reshape(n, k, h, w)
    xs = torch.arange(w, dtype=prob.dtype, device=prob.device) * stride + (stride - 1) / 2.0
    ys = torch.arange(h, dtype=prob.dtype, device=prob.device) * stride + (stride - 1) / 2.0
    x = (prob.sum(dim=2) * xs).sum(dim=-1)
    y = (prob.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def soft_argmax_reference(logits: torch.Tensor, stride: int) -> torch.Tensor:
    """Plain per-keypoint loop of `soft_argmax`, kept to test the vectorised one against."""
    n, k, h, w = logits.shape
    out = torch.zeros(n, k, 2)
    for i in range(n):
        for j in range(k):
            p = torch.softmax(logits[i, j].flatten().float(), dim=0).reshape(h, w)
            for yy in range(h):
                for xx in range(w):
                    out[i, j, 0] += p[yy, xx] * (xx * stride + (stride - 1) / 2.0)
                    out[i, j, 1] += p[yy, xx] * (yy * stride + (stride - 1) / 2.0)
    return out
