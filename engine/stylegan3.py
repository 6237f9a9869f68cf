"""StyleGAN3 (the T and R configurations) in plain PyTorch, numerically equal to NVlabs' code.

The network is built from an official `Generator(**init_kwargs)` call: the layer schedule
(cutoffs, stopbands, sampling rates, sizes, channels) is computed from the init arguments as
the official constructor computes it, and the weights and buffers (Fourier features, the
designed low-pass filters, the magnitude EMAs) come from the checkpoint. Nothing is chosen
from a file name.

Each synthesis layer is a modulated convolution followed by the filtered leaky ReLU, here its
plain reference form (upsample with the up filter, bias, leaky ReLU, clamp, downsample with the
down filter), which is what the official CUDA kernel computes. Drag features follow DragGAN's
convention for StyleGAN3: the outputs of layers L0..L14, each on its own grid with its margin,
index 5 by default, resized to the image size by the drag.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.ops import upfirdn2d
from engine.stylegan2 import (
    NOISE_MODES,
    FullyConnectedLayer,
    GeneratorBase,
    MappingConfig,
    MappingNetwork,
    SynthesisOutput,
)


@dataclass
class StyleGAN3Config:
    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2**2.1
    last_stopband_rel: float = 2**0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256
    magnitude_ema_beta: float = 0.999
    mapping: MappingConfig = field(
        default_factory=lambda: MappingConfig(num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998)
    )
    # The layer whose output drives the drag (None: DragGAN's index 5).
    feature_block: int | None = None
    drag: dict[str, Any] = field(default_factory=dict)

    @property
    def drag_feature_block(self) -> int:
        return 5 if self.feature_block is None else self.feature_block

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def schedule(self) -> dict[str, np.ndarray]:
        """The per-layer design of the official SynthesisNetwork (float64 numpy, as it computes it)."""
        last_cutoff = self.img_resolution / 2
        last_stopband = last_cutoff * self.last_stopband_rel
        exponents = np.minimum(np.arange(self.num_layers + 1) / (self.num_layers - self.num_critical), 1)
        cutoffs = self.first_cutoff * (last_cutoff / self.first_cutoff) ** exponents
        stopbands = self.first_stopband * (last_stopband / self.first_stopband) ** exponents
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, self.img_resolution))))
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        sizes = sampling_rates + self.margin_size * 2
        sizes[-2:] = self.img_resolution
        channels = np.rint(np.minimum((self.channel_base / 2) / cutoffs, self.channel_max))
        channels[-1] = self.img_channels
        return {
            "cutoffs": cutoffs,
            "sampling_rates": sampling_rates,
            "half_widths": half_widths,
            "sizes": sizes,
            "channels": channels,
        }


def modulated_conv2d_sg3(
    x: torch.Tensor, w: torch.Tensor, s: torch.Tensor, demodulate: bool, padding: int, input_gain: torch.Tensor | None
) -> torch.Tensor:
    """StyleGAN3's modulated convolution: weights and styles pre-normalised, then per-sample weights
    (one grouped convolution), demodulated, and scaled by the input gain."""
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = w.shape
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s.unsqueeze(1).unsqueeze(3).unsqueeze(4)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * dcoefs.unsqueeze(2).unsqueeze(3).unsqueeze(4)
    if input_gain is not None:
        w = w * input_gain.expand(batch, in_channels).unsqueeze(1).unsqueeze(3).unsqueeze(4)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = F.conv2d(x, w.to(x.dtype), padding=padding, groups=batch)
    return x.reshape(batch, -1, *x.shape[2:])


def filtered_lrelu_reference(
    x: torch.Tensor,
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    b: torch.Tensor,
    up: int,
    down: int,
    padding: tuple[int, int, int, int],
    gain: float,
    slope: float,
    clamp: float | None,
) -> torch.Tensor:
    """Bias, upsample (filter fu), leaky ReLU with gain and clamp, downsample (filter fd): the
    official op's reference path, which its fused CUDA kernel matches."""
    x = x + b.reshape(1, -1, 1, 1)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up**2)
    x = F.leaky_relu(x, slope) if slope != 1 else x
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return upfirdn2d(x, fd, down=down)


class SynthesisInput(nn.Module):
    """Fourier features rotated and translated by an affine of w."""

    transform: torch.Tensor  # buffers: [3, 3]
    freqs: torch.Tensor  # [channels, 2]
    phases: torch.Tensor  # [channels]

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        self.weight = nn.Parameter(torch.zeros([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", torch.zeros([channels, 2]))
        self.register_buffer("phases", torch.zeros([channels]))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        transforms = self.transform.unsqueeze(0)
        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0)
        t = self.affine(w)  # (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        m_r = torch.eye(3, device=w.device).unsqueeze(0).repeat([n, 1, 1])  # inverse rotation
        m_r[:, 0, 0] = t[:, 0]
        m_r[:, 0, 1] = -t[:, 1]
        m_r[:, 1, 0] = t[:, 1]
        m_r[:, 1, 1] = t[:, 0]
        m_t = torch.eye(3, device=w.device).unsqueeze(0).repeat([n, 1, 1])  # inverse translation
        m_t[:, 0, 2] = -t[:, 2]
        m_t[:, 1, 2] = -t[:, 3]
        transforms = m_r @ m_t @ transforms
        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # Out-of-band frequencies (a user transform can make them) fade out.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.size / self.sampling_rate
        theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grids = F.affine_grid(theta.unsqueeze(0), [1, 1, self.size, self.size], align_corners=False)
        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    magnitude_ema: torch.Tensor  # buffers
    up_filter: torch.Tensor | None  # None: no upsampling filter
    down_filter: torch.Tensor | None

    def __init__(self, cfg: StyleGAN3Config, idx: int, sched: dict[str, np.ndarray]) -> None:
        super().__init__()
        prev = max(idx - 1, 0)
        self.is_torgb = idx == cfg.num_layers
        self.is_critically_sampled = idx >= cfg.num_layers - cfg.num_critical
        rates = sched["sampling_rates"]
        self.use_fp16 = bool(rates[idx] * (2**cfg.num_fp16_res) > cfg.img_resolution)
        self.in_channels, self.out_channels = int(sched["channels"][prev]), int(sched["channels"][idx])
        self.in_size, self.out_size = int(sched["sizes"][prev]), int(sched["sizes"][idx])
        in_rate, out_rate = int(rates[prev]), int(rates[idx])
        self.conv_kernel = 1 if self.is_torgb else cfg.conv_kernel
        self.conv_clamp = cfg.conv_clamp
        tmp_rate = max(in_rate, out_rate) * (1 if self.is_torgb else cfg.lrelu_upsampling)
        self.affine = FullyConnectedLayer(cfg.w_dim, self.in_channels, bias_init=1)
        self.weight = nn.Parameter(
            torch.zeros([self.out_channels, self.in_channels, self.conv_kernel, self.conv_kernel])
        )
        self.bias = nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.up_factor = int(np.rint(tmp_rate / in_rate))
        self.down_factor = int(np.rint(tmp_rate / out_rate))
        up_taps = cfg.filter_size * self.up_factor if self.up_factor > 1 and not self.is_torgb else 1
        down_taps = cfg.filter_size * self.down_factor if self.down_factor > 1 and not self.is_torgb else 1
        down_radial = cfg.use_radial_filters and not self.is_critically_sampled
        # The filters are designed by the official constructor (a Kaiser FIR, or a jinc for radial
        # ones) and stored in every checkpoint; they are loaded from it, so only their shapes live here.
        self.register_buffer("up_filter", torch.zeros([up_taps]) if up_taps > 1 else None)
        self.register_buffer(
            "down_filter",
            (torch.zeros([down_taps, down_taps]) if down_radial else torch.zeros([down_taps]))
            if down_taps > 1
            else None,
        )
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += up_taps + down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2  # the symmetric interpretation of sample locations
        pad_hi = pad_total - pad_lo
        self.padding = (int(pad_lo), int(pad_hi), int(pad_lo), int(pad_hi))

    def forward(self, x: torch.Tensor, w: torch.Tensor, force_fp32: bool = False) -> torch.Tensor:
        input_gain = self.magnitude_ema.rsqrt()
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * (self.conv_kernel**2)))
        # fp16 where the official config marks it, on CUDA only, as the official code does.
        dtype = torch.float16 if self.use_fp16 and not force_fp32 and x.device.type == "cuda" else torch.float32
        x = modulated_conv2d_sg3(
            x.to(dtype),
            self.weight,
            styles,
            demodulate=not self.is_torgb,
            padding=self.conv_kernel - 1,
            input_gain=input_gain,
        )
        gain, slope = (1.0, 1.0) if self.is_torgb else (math.sqrt(2), 0.2)
        fu = None if self.up_filter is None else self.up_filter.to(x.dtype)
        fd = None if self.down_filter is None else self.down_filter.to(x.dtype)
        return filtered_lrelu_reference(
            x,
            fu,
            fd,
            self.bias.to(x.dtype),
            self.up_factor,
            self.down_factor,
            self.padding,
            gain,
            slope,
            self.conv_clamp,
        )


class SynthesisNetwork3(nn.Module):
    # Windowed synthesis (engine.window) is for StyleGAN2's blocks; drags on StyleGAN3 run dense.
    supports_windows = False

    def __init__(self, cfg: StyleGAN3Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.img_resolution = cfg.img_resolution
        self.num_ws = cfg.num_layers + 2
        sched = cfg.schedule()
        self.input = SynthesisInput(
            cfg.w_dim,
            int(sched["channels"][0]),
            int(sched["sizes"][0]),
            sched["sampling_rates"][0],
            sched["cutoffs"][0],
        )
        self.layer_names: list[str] = []
        for idx in range(cfg.num_layers + 1):
            layer = SynthesisLayer(cfg, idx, sched)
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)
        # The "blocks" a drag reads features from: the layers, each on its own grid.
        self.block_resolutions = [getattr(self, n).out_size for n in self.layer_names]

    def blocks(self) -> list[SynthesisLayer]:
        return [getattr(self, n) for n in self.layer_names]

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        return_features: bool = False,
        stop_after: int | None = None,
        fused: bool = True,
        force_fp32: bool = False,
    ) -> SynthesisOutput:
        """Input, then layers L0..L14; `stop_after=k` returns after layer k with the features of
        L0..Lk and no image. StyleGAN3 has no noise inputs and one modulated-conv form, so
        `noise_mode` is only checked and `fused` ignored."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, not {noise_mode!r}")
        rows = ws.to(torch.float32).unbind(dim=1)
        x = self.input(rows[0])
        features: list[torch.Tensor] = []
        for k, (name, w) in enumerate(zip(self.layer_names, rows[1:], strict=True)):
            x = getattr(self, name)(x, w, force_fp32=force_fp32)
            if return_features or stop_after is not None:
                features.append(x.to(torch.float32))
            if stop_after == k:
                return SynthesisOutput(image=None, features=features)
        if self.cfg.output_scale != 1:
            x = x * self.cfg.output_scale
        return SynthesisOutput(image=x.to(torch.float32), features=features)


class Generator3(GeneratorBase):
    """mapping(z) -> ws; synthesis(ws) -> image and layer features (StyleGAN3)."""

    family = "stylegan3"

    def __init__(self, cfg: StyleGAN3Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.synthesis = SynthesisNetwork3(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping)


_SG3_KEYS = {f for f in StyleGAN3Config.__dataclass_fields__ if f not in ("mapping", "feature_block", "drag")}


def config3_from_init_kwargs(init_kwargs: dict[str, Any]) -> StyleGAN3Config:
    """An official StyleGAN3 `Generator(**init_kwargs)` call as a config; ValueError names what is unknown."""
    kw = dict(init_kwargs)
    mapping = dict(kw.pop("mapping_kwargs", None) or {})
    kw.update(kw.pop("synthesis_kwargs", None) or {})
    unknown = sorted(set(kw) - _SG3_KEYS) + sorted(set(mapping) - set(MappingConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(", ".join(unknown))
    defaults = {"num_layers": 2, "lr_multiplier": 0.01, "w_avg_beta": 0.998}
    cfg = StyleGAN3Config(mapping=MappingConfig(**{**defaults, **mapping}), **kw)
    check_sizes(cfg)
    return cfg


def check_sizes(cfg: StyleGAN3Config) -> None:
    """ValueError for sizes no StyleGAN3 has: a file's arguments are checked before any weight is
    allocated (z_dim = 10**9 would ask for hundreds of GB)."""
    from engine.settings import check_number

    for name, lo, hi in (
        ("z_dim", 1, 4096),
        ("c_dim", 0, 4096),
        ("w_dim", 1, 4096),
        ("img_resolution", 4, 4096),
        ("img_channels", 1, 4),
        ("channel_base", 1, 2**20),
        ("channel_max", 1, 4096),
        ("num_layers", 1, 64),
        ("num_critical", 0, 64),
        ("margin_size", 0, 1024),
        ("num_fp16_res", 0, 64),
        ("conv_kernel", 1, 7),
        ("filter_size", 1, 64),
        ("lrelu_upsampling", 1, 8),
    ):
        check_number("StyleGAN3", name, getattr(cfg, name), lo, hi, whole=True)
    check_number("StyleGAN3 mapping", "num_layers", cfg.mapping.num_layers, 1, 64, whole=True)


__all__ = ["Generator3", "StyleGAN3Config", "config3_from_init_kwargs"]
