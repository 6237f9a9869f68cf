"""A user's own photo: read it safely, and frame it the way the model frames its faces.

`load_photo` turns whatever Pillow can open into upright 8-bit RGB, saying in `notes` what it
converted; `frame_photo` crops the photo to the model's framing from keypoints found on the
photo itself (`keypoints.align`); `photo_hash` names the pixels for inversion caches.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.types import Point
from keypoints.align import (
    MAX_UPSCALE,
    Alignment,
    align_from_keypoints,
    align_with_detector,
    fit_residual,
    warp_to_crop,
)
from keypoints.detector import Detector
from voicedrag.errors import VoicedragError

# The same limits as `voicedrag keypoints --image` (voicedrag/cli/keypoints.py), which reads its
# own way: a header alone can claim 65535 x 65535 (12 GiB of RGB), so the size is checked before
# any pixel is decoded, and a 40 MP photo is already far more than a crop needs.
MAX_PHOTO_SIDE = 8192
MAX_PHOTO_PIXELS = 40_000_000

# Transparent parts are put on white: a photo with an alpha channel is usually a cut-out, shown
# on a white page; black would draw a dark halo into the crop's border that an inversion copies.
BACKGROUND = (255, 255, 255)

_EXIF_ORIENTATION = 0x0112
_TURNS = {
    2: "mirrored",
    3: "turned 180 degrees",
    4: "flipped upside down",
    5: "mirrored and turned",
    6: "turned 90 degrees clockwise",
    7: "mirrored and turned",
    8: "turned 90 degrees counter-clockwise",
}


class PhotoError(VoicedragError):
    """A photo file that cannot be read, or is too large to read safely."""


@dataclass
class Photo:
    rgb: np.ndarray  # uint8 [H, W, 3], upright
    mode: str  # Pillow's mode as stored in the file ("RGB", "I;16", "P", "CMYK", ...)
    format: str | None  # "JPEG", "PNG", ...
    notes: list[str] = field(default_factory=list)  # what was converted, one phrase each

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def _check_size(path: Path, w: int, h: int) -> None:
    if max(w, h) > MAX_PHOTO_SIDE or w * h > MAX_PHOTO_PIXELS:
        raise PhotoError(
            f"{path} is {w} x {h} pixels, more than voicedrag reads ({MAX_PHOTO_SIDE} on a side, "
            f"{MAX_PHOTO_PIXELS // 1_000_000} MP); scale it down first."
        )


def load_photo(path: str | Path) -> Photo:
    """The photo at `path` as upright uint8 RGB; PhotoError (one sentence) if it cannot be read."""
    path = Path(path)
    if path.is_dir():
        raise PhotoError(f"{path} is a folder; pass a photo file.")
    if not path.exists():
        raise PhotoError(f"no photo at {path}; check the path.")
    try:
        with Image.open(path) as im:
            _check_size(path, *im.size)
            fmt, mode = im.format, im.mode
            notes: list[str] = []
            # is_animated looks for a second frame only; counting them all would read the whole file.
            if getattr(im, "is_animated", False):
                notes.append("the first of its frames was used")
            sixteen = mode in ("RGB", "RGBA") and any("16" in str(t[3]) for t in im.tile)
            im.load()
            upright = _upright(im, notes)
            _check_size(path, *upright.size)
            rgb = _to_rgb(upright, notes)
            if sixteen:
                notes.append("16-bit colour was reduced to 8 bits")
    except PhotoError:
        raise
    except FileNotFoundError as err:
        raise PhotoError(f"no photo at {path}; check the path.") from err
    except IsADirectoryError as err:
        raise PhotoError(f"{path} is a folder; pass a photo file.") from err
    except PermissionError as err:
        raise PhotoError(f"{path} cannot be read (permission denied); check the file's permissions.") from err
    except Image.DecompressionBombError as err:
        raise PhotoError(f"{path} is too large to decode safely; scale it down first.") from err
    except UnidentifiedImageError as err:
        raise PhotoError(f"{path} is not an image; pass a photo such as a JPEG or PNG.") from err
    except (OSError, ValueError, SyntaxError, struct.error, EOFError) as err:
        # OSError: a truncated or corrupt file; ValueError: a text chunk that inflates past Pillow's
        # limit (a zTXt bomb); SyntaxError, struct.error, EOFError: some broken headers.
        raise PhotoError(
            f"{path} is damaged or not an image Pillow can read safely; pass a photo such as a JPEG or PNG."
        ) from err
    return Photo(rgb=rgb, mode=mode, format=fmt, notes=notes)


def _upright(im: Image.Image, notes: list[str]) -> Image.Image:
    """The image as a viewer shows it: phones store photos sideways and say so in EXIF."""
    try:
        orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (OSError, ValueError, SyntaxError, struct.error, TypeError):
        notes.append("its EXIF data could not be read, so it was used as stored")
        return im
    if orientation not in _TURNS:
        return im
    turned = ImageOps.exif_transpose(im)
    notes.append(f"{_TURNS[orientation]} upright, as its EXIF orientation ({orientation}) says")
    return turned


def _on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    out = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    out.alpha_composite(rgba)
    return out.convert("RGB")


def _to_rgb(im: Image.Image, notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        if mode == "I" and (a.min() < 0 or a.max() > 65535):
            a = np.clip(a, 0, 65535)
            notes.append("32-bit grey values were clipped to 16 bits")
        grey = np.rint(a / 257.0).astype(np.uint8)  # 65535 -> 255 exactly
        notes.append("16-bit grey was reduced to 8 bits and repeated over three channels")
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im).astype(np.float64)
        finite = a[np.isfinite(a)]
        top = 1.0 if finite.size and finite.min() >= 0 and finite.max() <= 1.0 else 255.0
        grey = np.rint(np.clip(np.nan_to_num(a), 0.0, top) * (255.0 / top)).astype(np.uint8)
        notes.append(f"floating-point grey (read as 0..{top:g}) was reduced to 8 bits")
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
        if mode in ("P", "PA"):
            notes.append("palette colours were expanded to RGB")
        elif mode in ("LA", "La"):
            notes.append("grey was repeated over three channels")
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            notes.append("transparent parts were put on white")
        return np.asarray(_on_white(im))
    described = {
        "P": "palette colours were expanded to RGB",
        "L": "grey was repeated over three channels",
        "1": "black-and-white pixels were made RGB",
        "CMYK": "CMYK was converted to RGB without a colour profile, so colours may shift a little",
        "YCbCr": "YCbCr was converted to RGB",
        "LAB": "Lab was converted to RGB",
        "HSV": "HSV was converted to RGB",
        "RGBX": "the unused fourth channel was dropped",
    }
    notes.append(described.get(mode, f"{mode} pixels were converted to RGB"))
    return np.asarray(im.convert("RGB"))


def photo_hash(rgb: np.ndarray) -> str:
    """sha256 of the pixels and their shape: the key an inversion is cached under (with the model's)."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise VoicedragError(
            f"a photo's pixels must be uint8 [H, W, 3], got {a.dtype} {tuple(a.shape)}; read the photo with load_photo."
        )
    h = hashlib.sha256(f"{a.shape[0]}x{a.shape[1]}x{a.shape[2]}:".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# "Already framed": a model-sized image whose fitted alignment would move no template point
# more than this share of the image (3.8 px at 128), which only resampling could lose to.
FRAMED_WITHIN = 0.03


@dataclass
class FramedPhoto:
    crop: np.ndarray  # uint8 [S, S, 3], the model's framing
    alignment: Alignment  # photo -> crop; the identity when the photo was framed already
    already_framed: bool  # the photo itself is the crop (no resampling)
    points_in_crop: dict[str, Point]  # the keypoints the framing was fitted to, in crop pixels
    residual_px: float  # their RMS distance from the template (crop pixels): the face's own shape, plus error


def frame_photo(
    rgb: np.ndarray,
    detector_points: dict[str, Point] | None,
    model_size: int,
    template: dict[str, Point],
    *,
    detector: Detector | None = None,
    framed_within_px: float | None = None,
    max_upscale: float = MAX_UPSCALE,
) -> FramedPhoto:
    """The model's crop of a photo, from keypoints found on the photo (photo pixels).

    With a `detector`, the framing is refined by detecting again on the crop until it settles
    (`keypoints.align.align_with_detector`); `detector_points` may then be None (found on the
    whole photo). A model-sized photo whose points already sit on the template (within
    `framed_within_px`, default FRAMED_WITHIN of the size) is its own crop.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise VoicedragError(
            f"a photo's pixels must be uint8 [H, W, 3], got {rgb.dtype} {tuple(rgb.shape)}; "
            "read the photo with load_photo."
        )
    if detector_points is None and detector is None:
        raise VoicedragError("framing a photo needs its keypoints or a detector to find them; pass one of them.")
    within = FRAMED_WITHIN * model_size if framed_within_px is None else framed_within_px
    h, w = rgb.shape[:2]
    if (h, w) == (model_size, model_size):
        points = detector_points if detector_points is not None else detector.detect(rgb)  # type: ignore[union-attr]
        fit = align_from_keypoints(points, template, model_size, max_upscale=max_upscale)
        moved = fit.to_crop({n: template[n] for n in template if n in points})
        if max(moved[n].distance(template[n]) for n in moved) <= within:
            kept = {n: points[n] for n in template if n in points}
            return FramedPhoto(rgb.copy(), Alignment.identity(model_size), True, kept, fit_residual(kept, template))
        detector_points = points
    if detector is not None:
        framing = align_with_detector(rgb, detector, template, model_size, detector_points, max_upscale=max_upscale)
        alignment, points_in_crop, residual = framing.alignment, framing.points_in_crop, framing.residual_px
    else:
        assert detector_points is not None
        alignment = align_from_keypoints(detector_points, template, model_size, max_upscale=max_upscale)
        points_in_crop = alignment.to_crop({n: detector_points[n] for n in template if n in detector_points})
        residual = fit_residual(points_in_crop, template)
    return FramedPhoto(warp_to_crop(rgb, alignment), alignment, False, points_in_crop, residual)
