"""Named keypoints on an image, behind one interface.

`Detector` is what the planner and the CLI call; `EmbeddedDetector` is the
small heatmap network shipped in `assets/keypoints/`, trained on the
procedural face world (`faceworld.render`). Other detectors (real face
landmarks, feature templates) implement the same protocol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from engine.errors import UserError
from engine.types import Point

if TYPE_CHECKING:
    import torch

    from keypoints.heatmap_net import HeatmapNet


def embedded_weights() -> Path:
    """Where the shipped keypoint model's weights are (its JSON config sits beside them)."""
    from voicedrag_assets import EMBEDDED_DETECTOR, asset_path

    return asset_path(EMBEDDED_DETECTOR)


@runtime_checkable
class Detector(Protocol):
    names: tuple[str, ...]

    def detect(self, image: Image.Image | np.ndarray) -> dict[str, Point]: ...


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or array -> uint8 [H, W, 3].

    Float arrays are taken as [0, 1]; grey images are repeated over three
    channels; an alpha channel is dropped.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise UserError(f"Expected an RGB image of shape [H, W, 3], got an array of shape {tuple(arr.shape)}.")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return arr


def to_input_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, size, size] in [-1, 1], channels_last.

    Images of another size are resized bilinearly (pixel centres aligned),
    the way `from_input_coords` maps the points back.
    """
    import torch
    from torch.nn import functional as F

    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous(memory_format=torch.channels_last)


def from_input_coords(points: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """Points [..., 2] in the network's square input -> pixels of the original image."""
    out = np.empty_like(points, dtype=np.float64)
    out[..., 0] = (points[..., 0] + 0.5) * (width / size) - 0.5
    out[..., 1] = (points[..., 1] + 0.5) * (height / size) - 0.5
    return out


@dataclass
class EmbeddedDetector:
    """The shipped heatmap network for the embedded face world."""

    model: HeatmapNet
    names: tuple[str, ...]
    metadata: dict[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, weights: Path | None = None, config: Path | None = None) -> EmbeddedDetector:
        import torch
        from safetensors.torch import load_file

        from keypoints.heatmap_net import HeatmapNet, HeatmapNetConfig

        weights = weights or embedded_weights()
        config = config or weights.with_suffix(".json")
        if not weights.is_file() or not config.is_file():
            raise UserError(
                f"The embedded keypoint model is missing ({weights}); train it with "
                "`python -m training.train_detector --out DIR` and export it, or reinstall voicedrag."
            )
        try:
            meta = json.loads(config.read_text())
            net_config = HeatmapNetConfig(**meta["config"])
            names = tuple(meta["keypoint_names"])
        except (ValueError, KeyError, TypeError) as err:
            raise UserError(f"{config} is not a keypoint model config ({err}); reinstall voicedrag.") from err
        if len(names) != net_config.num_keypoints:
            raise UserError(
                f"{config} names {len(names)} keypoints for a network that finds "
                f"{net_config.num_keypoints}; reinstall voicedrag."
            )
        model = HeatmapNet(net_config)
        state = load_file(str(weights))
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise UserError(f"{weights} does not match its config {config}; reinstall voicedrag.") from err
        model.eval()
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit Module.to's memory_format
        return cls(model=model, names=names, metadata=meta)

    @property
    def input_size(self) -> int:
        return self.model.config.input_size

    def detect_batch(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] -> points [N, K, 2] in the images' pixels."""
        import torch

        n, h, w, _ = images.shape
        # torch's thread count is the front end's to set (process-wide); the network is tiny (about
        # 6 ms per image on one core), so it runs well on whatever the front end chose.
        with torch.inference_mode():
            pts = self.model(to_input_tensor(images, self.input_size)).numpy()
        return from_input_coords(pts, w, h, self.input_size)

    def detect(self, image: Image.Image | np.ndarray) -> dict[str, Point]:
        arr = as_rgb_array(image)
        pts = self.detect_batch(arr[None])[0]
        return {name: Point(float(x), float(y)) for name, (x, y) in zip(self.names, pts.tolist(), strict=True)}
