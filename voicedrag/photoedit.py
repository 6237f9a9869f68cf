"""A user's photo in the model: framed from its own keypoints, inverted (cached), pasted back.

`open_photo` reads a photo, frames it the way the model was trained (the face world's mean
keypoints for the embedded model, the FFHQ recipe for photo-real faces), inverts the crop into
the model (`engine.invert`: W, then W+, then pivotal tuning of the weights) and keeps what an edit
needs: the latent, the generator that draws it (the tuned copy), the crop's keypoints found on the
photo itself, and the alignment to paste an edit back. An inversion is cached by the photo's and
the model's hashes, so the second edit of a photo starts at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.types import Point
from voicedrag.errors import VoicedragError

if TYPE_CHECKING:
    import torch

    from engine.invert import Inversion, InvertConfig, InvertStep
    from engine.stylegan2 import Generator
    from keypoints.align import Alignment
    from voicedrag.kit import ModelKit
    from voicedrag.photo import FramedPhoto, Photo

CACHE_VERSION = 1


def inversion_cache_dir() -> Path:
    """Where inversions are kept ($VOICEDRAG_INVERSIONS, default ~/.cache/voicedrag/inversions)."""
    return Path(os.environ.get("VOICEDRAG_INVERSIONS") or Path.home() / ".cache" / "voicedrag" / "inversions")


@dataclass
class PhotoState:
    """A photo as the model holds it."""

    path: str
    photo: Photo
    framed: FramedPhoto
    ws: np.ndarray  # [1, num_ws, w_dim] float32: the inversion's latent
    generator: Generator  # draws `image` from `ws` (the tuned copy, or the model itself)
    image: np.ndarray  # [S, S, 3] uint8: the inversion's picture of the crop
    keypoints: dict[str, Point]  # found on the photo's own crop (crop pixels)
    psnr: float  # dB of `image` against the crop
    photo_hash: str
    model_hash: str
    seconds: float = 0.0  # the inversion's time (0 when it came from the cache)
    cached: bool = False
    psnr_by_phase: dict[str, float] = field(default_factory=dict)

    @property
    def alignment(self) -> Alignment:
        return self.framed.alignment

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "size": list(self.photo.size),
            "notes": list(self.photo.notes),
            "alignment": self.alignment.to_json(),
            "already_framed": self.framed.already_framed,
            "psnr": round(self.psnr, 2),
            "psnr_by_phase": {k: round(v, 2) for k, v in self.psnr_by_phase.items()},
            "image_hash": self.photo_hash,
            "model_hash": self.model_hash,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
        }


def model_hash(generator: Generator) -> str:
    """The weights' digest: an inversion belongs to these weights and no others."""
    h = hashlib.sha256()
    for name, tensor in sorted(generator.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def frame(kit: ModelKit, photo: Photo) -> FramedPhoto:
    """The model's crop of the photo, from keypoints found on the photo itself."""
    from keypoints.align import faceworld_template, ffhq_alignment, warp_to_crop
    from voicedrag.photo import FramedPhoto, frame_photo

    size = kit.generator.img_resolution
    detector = kit.detector()
    if detector is None:
        raise VoicedragError(
            f"{kit.detector_error or 'this model has no keypoint detector'} A photo is framed "
            "from the face's keypoints, so it needs a model with a detector."
        )
    if kit.spec.detector == "face":
        # Photo-real faces are framed as FFHQ was: from the eyes and the mouth.
        alignment = ffhq_alignment(detector.detect(photo.rgb), size)
        crop = warp_to_crop(photo.rgb, alignment)
        return FramedPhoto(crop, alignment, False, dict(detector.detect(crop)), 0.0)
    return frame_photo(photo.rgb, None, size, faceworld_template(size), detector=detector)


def open_photo(
    kit: ModelKit,
    path: str | Path,
    config: InvertConfig | None = None,
    use_cache: bool = True,
    handle: CancelHandle | None = None,
) -> Iterator[InvertStep | PhotoState]:
    """Read, frame and invert a photo: the inversion's steps, then the PhotoState (from the cache
    when this photo was inverted into these weights before)."""
    from engine.invert import Inversion, InvertConfig
    from voicedrag.photo import load_photo, photo_hash

    photo = load_photo(path)
    framed = frame(kit, photo)
    G = kit.generator
    digest, key = model_hash(G), photo_hash(photo.rgb)
    config = config or InvertConfig()
    cache_file = inversion_cache_dir() / f"{key[:24]}-{digest[:16]}-{_config_key(config)}.npz"
    keypoints = _crop_keypoints(kit, framed)
    if use_cache and cache_file.is_file():
        state = _load_cached(cache_file, kit, str(path), photo, framed, keypoints, key, digest)
        if state is not None:
            yield state
            return
    inversion = Inversion(G, framed.crop, config)
    if handle is not None:
        handle.inversion = inversion
    yield from inversion.steps()
    result = inversion.result()
    if result.cancelled:
        raise PhotoCancelled("the photo was not opened: its inversion was stopped.")
    drawn = result.apply_to(G)
    ws = result.ws.detach().cpu().numpy().astype(np.float32)
    state = PhotoState(
        path=str(path),
        photo=photo,
        framed=framed,
        ws=ws,
        generator=drawn,
        image=result.image,
        keypoints=keypoints,
        psnr=result.psnr,
        photo_hash=key,
        model_hash=digest,
        seconds=result.seconds,
        psnr_by_phase=dict(result.psnr_by_phase or {}),
    )
    if use_cache:
        changed = {**(result.noise or {}), **(result.tuned_state or {})}
        save_inversion(cache_file, state, changed)
    yield state


class PhotoCancelled(VoicedragError):
    """The user stopped a photo's inversion."""


@dataclass
class CancelHandle:
    """Stops a running inversion from another thread (Esc in the TUI, Ctrl-C on the CLI)."""

    inversion: Inversion | None = None

    def cancel(self) -> None:
        if self.inversion is not None:
            self.inversion.cancel()


def _crop_keypoints(kit: ModelKit, framed: FramedPhoto) -> dict[str, Point]:
    """The keypoints an edit of the photo is planned from: found on the photo's own crop (not on
    the inversion, which may have drawn the face a little otherwise)."""
    if framed.points_in_crop and kit.spec.detector != "face":
        return dict(framed.points_in_crop)
    detector = kit.detector()
    return {} if detector is None else dict(detector.detect(framed.crop))


def _config_key(config: InvertConfig) -> str:
    from dataclasses import asdict

    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True, default=str).encode()).hexdigest()[:8]


def save_inversion(path: Path, state: PhotoState, changed: dict[str, torch.Tensor]) -> Path:
    """The inversion as one .npz: the latent, the changed weights (tuning, noise), the alignment and
    the figures; written whole or not at all."""
    from engine.atomic import atomic_path

    arrays = {f"weights/{name}": t.detach().cpu().numpy() for name, t in changed.items()}
    meta = {
        "version": CACHE_VERSION,
        "image_hash": state.photo_hash,
        "model_hash": state.model_hash,
        "alignment": state.alignment.to_json(),
        "psnr": state.psnr,
        "psnr_by_phase": state.psnr_by_phase,
        "seconds": state.seconds,
        "path": state.path,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            arrays.update(ws=state.ws, image=state.image, meta=np.array(json.dumps(meta)))
            # numpy's stub reads **arrays as its allow_pickle flag; every value here is an array.
            np.savez(f, **arrays)  # type: ignore[arg-type]
    except OSError as err:
        raise VoicedragError(f"cannot write {path} ({err.strerror or err}); choose a writable path.") from err
    return path


def _load_cached(
    path: Path,
    kit: ModelKit,
    source: str,
    photo: Photo,
    framed: FramedPhoto,
    keypoints: dict[str, Point],
    key: str,
    digest: str,
) -> PhotoState | None:
    """A cached inversion, or None when it cannot be used (another version, damaged: invert again)."""
    import torch

    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != CACHE_VERSION or meta.get("model_hash") != digest:
                return None
            ws = np.asarray(data["ws"], np.float32)
            image = np.asarray(data["image"], np.uint8)
            changed = {
                k.removeprefix("weights/"): torch.from_numpy(np.array(data[k]))
                for k in data.files
                if k.startswith("weights/")
            }
    except (OSError, ValueError, KeyError):
        return None
    G = kit.generator
    if changed:
        import copy

        G = copy.deepcopy(G)
        G.load_state_dict({k: v.to(G.device) for k, v in changed.items()}, strict=False)
        G = G.eval().requires_grad_(False)
    return PhotoState(
        path=source,
        photo=photo,
        framed=framed,
        ws=ws,
        generator=G,
        image=image,
        keypoints=keypoints,
        psnr=float(meta.get("psnr", 0.0)),
        photo_hash=key,
        model_hash=digest,
        seconds=0.0,
        cached=True,
        psnr_by_phase=dict(meta.get("psnr_by_phase") or {}),
    )
