"""StyleGAN2 generator in plain PyTorch.

Module and parameter names follow NVlabs' `networks_stylegan2.Generator`
(stylegan2-ada-pytorch, stylegan3 and DragGAN), so an official `G_ema` state
dict loads with `load_state_dict(strict=True)` and reproduces the official
images and features. The configuration travels with the weights as a
`GeneratorConfig`; nothing is guessed from a file name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.ops import (
    activation_gain,
    bias_act,
    conv2d_resample,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    to_uint8,
    upsample2d,
)
from engine.types import DEFAULT_PSI

NOISE_MODES = ("const", "random", "none")
# The largest network a config may describe: official 1024 px models have about 30 million
# weights; a config past this is a mistake or an attempt to exhaust memory.
MAX_PARAMETERS = 1_000_000_000


@dataclass
class MappingConfig:
    num_layers: int = 8
    embed_features: int | None = None
    layer_features: int | None = None
    activation: str = "lrelu"
    lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995


@dataclass
class GeneratorConfig:
    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 256
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: float | None = 256
    architecture: str = "skip"
    resample_filter: list[float] = field(default_factory=lambda: [1, 3, 3, 1])
    use_noise: bool = True
    activation: str = "lrelu"
    kernel_size: int = 3
    mapping: MappingConfig = field(default_factory=MappingConfig)
    # Block whose output features drive the drag (0 = the 4x4 block). None:
    # DragGAN's 6th block, or the last one for models that have fewer.
    feature_block: int | None = None
    # The model's own drag settings (DragConfig field -> value), measured on it and shipped in
    # its JSON config; empty for official checkpoints, which drag with the paper's.
    drag: dict[str, Any] = field(default_factory=dict)

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, int(math.log2(self.img_resolution)) + 1)]

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @property
    def drag_feature_block(self) -> int:
        if self.feature_block is not None:
            return self.feature_block
        return min(5, len(self.block_resolutions) - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        if not isinstance(d, dict) or not isinstance(d.get("mapping", {}), dict):
            raise ValueError("the config and its mapping must be JSON objects")
        d = dict(d)
        mapping = MappingConfig(**d.pop("mapping", {}))
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown generator config keys: {sorted(unknown)}")
        cfg = cls(mapping=mapping, **d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError naming the first value out of its range, before any tensor is allocated:
        a config file is user input, and a huge size would otherwise try to allocate without bound."""

        def whole(name: str, value: Any, lo: int, hi: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be a whole number from {lo} to {hi}, not {value!r}")

        def real(name: str, value: Any, lo: float, hi: float, optional: bool = False) -> None:
            if value is None and optional:
                return
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not lo <= value <= hi
            ):
                raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}, not {value!r}")

        whole("z_dim", self.z_dim, 1, 4096)
        whole("c_dim", self.c_dim, 0, 4096)
        whole("w_dim", self.w_dim, 1, 4096)
        whole("img_resolution", self.img_resolution, 4, 4096)
        if self.img_resolution & (self.img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two, not {self.img_resolution}")
        whole("img_channels", self.img_channels, 1, 4)
        whole("channel_base", self.channel_base, 1, 2**20)
        whole("channel_max", self.channel_max, 1, 4096)
        whole("num_fp16_res", self.num_fp16_res, 0, 12)
        real("conv_clamp", self.conv_clamp, 0.0, 1e6, optional=True)
        if self.architecture not in ("skip", "orig", "resnet"):
            raise ValueError(f"architecture must be 'skip', 'orig' or 'resnet', not {self.architecture!r}")
        for name, act in (("activation", self.activation), ("mapping.activation", self.mapping.activation)):
            if act not in ("lrelu", "linear", "relu"):
                raise ValueError(f"{name} must be 'lrelu', 'linear' or 'relu', not {act!r}")
        taps = self.resample_filter
        if (
            not isinstance(taps, list)
            or not 1 <= len(taps) <= 16
            or any(isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) for t in taps)
            or sum(taps) == 0
        ):
            raise ValueError(f"resample_filter must be 1 to 16 finite numbers with a non-zero sum, not {taps!r}")
        if not isinstance(self.use_noise, bool):
            raise ValueError(f"use_noise must be true or false, not {self.use_noise!r}")
        whole("kernel_size", self.kernel_size, 1, 7)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, not {self.kernel_size}")
        m = self.mapping
        whole("mapping.num_layers", m.num_layers, 1, 32)
        for name, value in (("mapping.embed_features", m.embed_features), ("mapping.layer_features", m.layer_features)):
            if value is not None:
                whole(name, value, 1, 4096)
        real("mapping.lr_multiplier", m.lr_multiplier, 1e-6, 1e3)
        real("mapping.w_avg_beta", m.w_avg_beta, 0.0, 1.0, optional=True)
        if self.feature_block is not None:
            whole("feature_block", self.feature_block, 0, len(self.block_resolutions) - 1)
        if not isinstance(self.drag, dict):
            raise ValueError(f"drag must be a JSON object of drag settings, not {self.drag!r}")
        if self.parameter_estimate() > MAX_PARAMETERS:
            raise ValueError(
                f"its layers would hold about {self.parameter_estimate() / 1e9:.1f} billion weights, "
                f"more than the {MAX_PARAMETERS / 1e9:g} billion that may be built"
            )

    def parameter_estimate(self) -> int:
        """About how many weights the synthesis network has (two convolutions and their affines per block)."""
        total, prev = 0, 0
        for res in self.block_resolutions:
            ch = self.channels(res)
            total += (prev or ch) * ch * self.kernel_size**2 + ch * ch * self.kernel_size**2 + 3 * self.w_dim * ch
            prev = ch
        return total


class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b: torch.Tensor | None = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation)


class MappingNetwork(nn.Module):
    w_avg: torch.Tensor  # [w_dim], a buffer

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, cfg: MappingConfig) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = cfg.w_avg_beta
        embed_features = cfg.embed_features if cfg.embed_features is not None else w_dim
        if c_dim == 0:
            embed_features = 0
        layer_features = cfg.layer_features if cfg.layer_features is not None else w_dim
        features = [z_dim + embed_features] + [layer_features] * (cfg.num_layers - 1) + [w_dim]
        self.num_layers = cfg.num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(cfg.num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=cfg.activation, lr_multiplier=cfg.lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError("this generator is conditional: pass a class label c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        assert x is not None
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    resample_filter: torch.Tensor  # buffers
    noise_const: torch.Tensor  # [resolution, resolution], when use_noise

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: list[float] | None = None,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)
        self.register_buffer("resample_filter", setup_filter(resample_filter or [1, 3, 3, 1]))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "const",
        fused: bool = True,
        gain: float = 1.0,
        crop: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """`crop=(y0, x0)`: x is a crop of the layer's input whose output starts at
        (y0, x0) of the full output; the constant noise is cropped to match."""
        styles = self.affine(w)
        noise = None
        out_h, out_w = x.shape[2] * self.up, x.shape[3] * self.up
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, out_h, out_w], device=x.device)
            noise = noise * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const
            if crop is not None:
                noise = noise[crop[0] : crop[0] + out_h, crop[1] : crop[1] + out_w]
            noise = noise * self.noise_strength
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            fused=fused,
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), self.activation, gain=self.act_gain * gain, clamp=act_clamp)


class ToRGBLayer(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1, conv_clamp: float | None = None
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class Conv2dLayer(nn.Module):
    """Un-modulated convolution; only the resnet architecture's skip path uses it."""

    resample_filter: torch.Tensor  # a buffer

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        up: int = 1,
        resample_filter: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.up = up
        self.register_buffer("resample_filter", setup_filter(resample_filter or [1, 3, 3, 1]))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w.to(x.dtype), self.resample_filter, up=self.up, padding=self.padding)
        return x * gain if gain != 1 else x


class SynthesisBlock(nn.Module):
    resample_filter: torch.Tensor  # a buffer

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        resolution: int,
        is_last: bool,
        use_fp16: bool,
        cfg: GeneratorConfig,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.is_last, self.use_fp16, self.architecture = is_last, use_fp16, cfg.architecture
        self.register_buffer("resample_filter", setup_filter(cfg.resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        def layer(in_ch: int, up: int = 1) -> SynthesisLayer:
            return SynthesisLayer(
                in_ch,
                out_channels,
                w_dim=cfg.w_dim,
                resolution=resolution,
                kernel_size=cfg.kernel_size,
                up=up,
                use_noise=cfg.use_noise,
                activation=cfg.activation,
                resample_filter=cfg.resample_filter,
                conv_clamp=cfg.conv_clamp,
            )

        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = layer(in_channels, up=2)
            self.num_conv += 1
        self.conv1 = layer(out_channels)
        self.num_conv += 1
        if is_last or cfg.architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, cfg.img_channels, cfg.w_dim, conv_clamp=cfg.conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and cfg.architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, 1, up=2, resample_filter=cfg.resample_filter)

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,  # [N, num_conv + num_torgb, w_dim]
        noise_mode: str = "const",
        fused: bool = True,
        force_fp32: bool = False,
        need_rgb: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        w_iter = iter(ws.unbind(dim=1))
        # Off the GPU half precision is slow and inexact: the official code forces float32 there too.
        use_fp16 = self.use_fp16 and not force_fp32 and ws.device.type == "cuda"
        dtype = torch.float16 if use_fp16 else torch.float32
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused=fused)
        else:
            assert x is not None
            x = x.to(dtype)
            if self.architecture == "resnet":
                y = self.skip(x, gain=math.sqrt(0.5))
                x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused=fused)
                x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused=fused, gain=math.sqrt(0.5))
                x = y + x
            else:
                x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused=fused)
                x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused=fused)
        if not need_rgb:
            return x, img
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused=fused).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


@dataclass
class SynthesisOutput:
    image: torch.Tensor | None  # [N, C, H, W], nominally in [-1, 1]; None if stopped early
    features: list[torch.Tensor]  # block outputs b4, b8, ... (only when asked for), each [N, C, R, R]


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.img_resolution = cfg.img_resolution
        self.block_resolutions = cfg.block_resolutions
        fp16_resolution = max(2 ** (int(math.log2(cfg.img_resolution)) + 1 - cfg.num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = cfg.channels(res // 2) if res > 4 else 0
            block = SynthesisBlock(
                in_channels,
                cfg.channels(res),
                res,
                is_last=(res == cfg.img_resolution),
                use_fp16=(res >= fp16_resolution),
                cfg=cfg,
            )
            self.num_ws += block.num_conv
            if res == cfg.img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(
        self,
        ws: torch.Tensor,  # [N, num_ws, w_dim]
        noise_mode: str = "const",
        return_features: bool = False,
        stop_after: int | None = None,
        fused: bool = True,
        force_fp32: bool = False,
        rgb: bool = False,
    ) -> SynthesisOutput:
        """Run the blocks in order. `stop_after=k` returns after block k (0 = 4x4),
        with features of blocks 0..k and no image (the RGB branch is skipped), unless `rgb`:
        then the skip architecture's image at block k's resolution comes too (the sum of the
        RGB outputs so far, the image the later blocks refine: a small preview)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, not {noise_mode!r}")
        if rgb and stop_after is not None and self.cfg.architecture != "skip":
            raise ValueError("only the skip architecture draws an image before its last block")
        ws = ws.to(torch.float32)
        need_rgb = stop_after is None or rgb
        x = img = None
        features: list[torch.Tensor] = []
        w_idx = 0
        for k, block in enumerate(self.blocks()):
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(
                x, img, block_ws, noise_mode=noise_mode, fused=fused, force_fp32=force_fp32, need_rgb=need_rgb
            )
            if return_features or stop_after is not None:
                features.append(x.to(torch.float32))
            if stop_after == k:
                return SynthesisOutput(image=img if rgb else None, features=features)
        return SynthesisOutput(image=img, features=features)


class GeneratorBase(nn.Module):
    """What every generator family shares: seeds as DragGAN's renderer draws them, and rendering.
    A subclass sets `cfg` (with z_dim, c_dim, img_resolution), `mapping` and `synthesis`."""

    cfg: Any
    mapping: MappingNetwork
    synthesis: nn.Module

    @property
    def img_resolution(self) -> int:
        return self.cfg.img_resolution

    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    @property
    def device(self) -> torch.device:
        return self.mapping.w_avg.device

    def z_from_seed(self, seed: int) -> torch.Tensor:
        """The latent DragGAN's renderer draws for a seed: numpy RandomState, float64 -> float32."""
        z = np.random.RandomState(seed).randn(1, self.cfg.z_dim)
        return torch.from_numpy(z).to(self.device)

    def ws_from_seed(self, seed: int, truncation_psi: float = DEFAULT_PSI) -> torch.Tensor:
        with torch.no_grad():
            c = torch.zeros([1, self.cfg.c_dim], device=self.device)
            return self.mapping(self.z_from_seed(seed), c, truncation_psi=truncation_psi)

    def render(self, ws: torch.Tensor | np.ndarray, noise_mode: str = "const") -> np.ndarray:
        """The [H, W, 3] uint8 image of one latent ws [1, num_ws, w_dim] (a tensor or a numpy array)."""
        if isinstance(ws, np.ndarray):
            ws = torch.from_numpy(np.ascontiguousarray(ws, dtype=np.float32))
        with torch.no_grad():
            image = self.synthesis(ws.to(self.device), noise_mode=noise_mode).image
        assert image is not None
        return to_uint8(image)


class Generator(GeneratorBase):
    """mapping(z) -> ws; synthesis(ws) -> image and block features."""

    family = "stylegan2"
    synthesis: SynthesisNetwork

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if cfg.architecture not in ("skip", "orig", "resnet"):
            raise ValueError(f"unknown StyleGAN2 architecture {cfg.architecture!r}")
        self.cfg = cfg
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi)
        out = self.synthesis(ws, noise_mode=noise_mode)
        assert out.image is not None
        return out.image
