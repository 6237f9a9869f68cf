"""Named keypoints on real face photographs: a face detector, then a 468-point face mesh.

The two networks are MediaPipe's short-range BlazeFace detector and its face mesh
(`assets/keypoints/*.tflite`, Apache-2.0, see the model card there), run by the LiteRT
interpreter (`pip install 'voicedrag[face]'`). The pipeline follows MediaPipe's own graph:

1. the image, padded to a square and resized to 128 px, gives up to 896 scored boxes, each
   with six keypoints (eyes, nose, mouth, ear tragions); the best one and its overlapping
   neighbours are blended, weighted by score;
2. a square crop around that box (1.5x its size, rotated so the eyes are level) resized to
   192 px gives the 468 mesh points;
3. the crop is built again from the mesh itself (its eye corners and extent) and the mesh
   run once more, which is what MediaPipe does from the second video frame on.

Points are image pixels with pixel centres at integers, like every point in voicedrag.
"Left" is the viewer's left: `left_eye_*` is the person's right eye. The mesh has no ear
tips, so the ears (and the edits that move them) are not offered on these faces.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from engine.errors import UserError
from engine.types import Point
from keypoints.detector import as_rgb_array

DETECTOR_FILE = "keypoints/face_detection_short_range.tflite"
MESH_FILE = "keypoints/face_landmark.tflite"

DETECT_SIZE = 128
MESH_SIZE = 192
MIN_FACE_SCORE = 0.5  # BlazeFace's own threshold
MIN_MESH_SCORE = 0.5  # the mesh's "a face fills this crop" output, after a sigmoid
ROI_SCALE = 1.5  # crop side / face box side, as in MediaPipe's face landmark graph
BLEND_IOU = 0.3  # boxes overlapping the best this much are blended into it
REFINE_PASSES = 1  # mesh -> crop -> mesh rounds after the first; a second one changed points < 0.1 px

# Mesh vertices of each named point. A name with several vertices is their mean. The
# person's right eye (viewer's left) holds vertices 33 (outer corner), 133 (inner), 159
# (upper lid), 145 (lower lid); their left eye 263, 362, 386, 374.
MESH_POINTS: dict[str, tuple[int, ...]] = {
    "head_top": (10,),  # the top of the face (the hairline), where the mesh ends
    "chin": (152,),
    "left_brow": (105,),
    "right_brow": (334,),
    "left_eye_top": (159,),
    "left_eye_bottom": (145,),
    "left_eye_center": (33, 133, 159, 145),
    "left_eye_outer": (33,),
    "left_eye_inner": (133,),
    "right_eye_top": (386,),
    "right_eye_bottom": (374,),
    "right_eye_center": (263, 362, 386, 374),
    "right_eye_outer": (263,),
    "right_eye_inner": (362,),
    "nose_root": (168,),
    "nose_tip": (1,),
    "upper_lip": (0,),  # the upper lip's top edge at the middle
    "lower_lip": (17,),  # the lower lip's bottom edge at the middle
    "mouth_left": (61,),
    "mouth_right": (291,),
}

NO_RUNTIME = (
    "the face detector needs the LiteRT runtime, which is not installed; install it with pip install 'voicedrag[face]'."
)
NO_FACE = (
    "no face was found in this image; use a photograph with one face seen from the front, "
    "or explicit points such as 'drag 120,200 to 140,180'."
)


@dataclass(frozen=True)
class FaceBox:
    """One detected face, in image pixels (continuous coordinates: pixel i spans [i, i+1))."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    keypoints: np.ndarray  # [6, 2]: right eye, left eye, nose, mouth, right tragion, left tragion (the person's)
    score: float


@dataclass(frozen=True)
class Roi:
    """A square crop: centre and side in continuous image pixels, turned by `rotation` radians."""

    cx: float
    cy: float
    side: float
    rotation: float

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        """Crop coordinates in [0, 1] (corner based) [..., 2] -> continuous image pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        d = (uv - 0.5) * self.side
        x = self.cx + c * d[..., 0] - s * d[..., 1]
        y = self.cy + s * d[..., 0] + c * d[..., 1]
        return np.stack([x, y], axis=-1)


def ssd_anchors() -> np.ndarray:
    """BlazeFace's 896 anchor centres [896, 2] in [0, 1]: 2 per cell of a 16x16 grid (stride 8),
    then 6 per cell of an 8x8 grid (its three stride-16 layers share the grid)."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float64)


def decode_detections(
    regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, min_score: float = MIN_FACE_SCORE
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Raw outputs [896, 16] and [896] -> (box x0,y0,x1,y1 in [0, 1], keypoints [6, 2] in [0, 1], score)
    for every anchor scoring at least `min_score`, best first."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    r = regressors.astype(np.float64) / DETECT_SIZE
    cx, cy = r[:, 0] + anchors[:, 0], r[:, 1] + anchors[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    order = np.argsort(-scores)
    return [(boxes[i], kps[i], float(scores[i])) for i in order if scores[i] >= min_score]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def blend_best(candidates: list[tuple[np.ndarray, np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray, float]:
    """The best candidate averaged with those overlapping it, weighted by score (MediaPipe's
    weighted non-maximum suppression, kept to the one face voicedrag edits)."""
    best_box = candidates[0][0]
    group = [c for c in candidates if _iou(best_box, c[0]) >= BLEND_IOU]
    weights = np.array([c[2] for c in group])
    box = np.einsum("n,nk->k", weights, np.stack([c[0] for c in group])) / weights.sum()
    kps = np.einsum("n,nkd->kd", weights, np.stack([c[1] for c in group])) / weights.sum()
    return box, kps, candidates[0][2]


def roi_from_points(box: tuple[float, float, float, float], eye_a: np.ndarray, eye_b: np.ndarray) -> Roi:
    """The crop the mesh expects: centred on the box, rotated so that eye_a -> eye_b (the person's
    right eye to their left eye) is horizontal, its side 1.5x the box's longer side."""
    x0, y0, x1, y1 = box
    rotation = math.atan2(float(eye_b[1] - eye_a[1]), float(eye_b[0] - eye_a[0]))
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, ROI_SCALE * max(x1 - x0, y1 - y0), rotation)


def crop(image: Image.Image, roi: Roi, size: int) -> np.ndarray:
    """The ROI resampled to a size x size float32 array in [0, 1] (outside the image: black)."""
    k = int(roi.side / size)
    if k >= 2:
        # Shrink first by whole pixels (a box filter), so the bilinear crop does not alias.
        image = image.reduce(k)
        roi = Roi(roi.cx / k, roi.cy / k, roi.side / k, roi.rotation)
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    step = roi.side / size
    # Output pixel (u, v) (PIL samples at its centre u + 0.5) comes from the image point
    # centre + R @ ((u + 0.5) * step - side / 2, ...), continuous coordinates both sides.
    a, b = c * step, -s * step
    d, e = s * step, c * step
    cx = roi.cx - (a + b) * size / 2
    cy = roi.cy - (d + e) * size / 2
    out = image.transform(
        (size, size), Image.Transform.AFFINE, (a, b, cx, d, e, cy), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.float32) / 255.0


def _interpreter(relative: str) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ModuleNotFoundError as err:
        raise UserError(NO_RUNTIME) from err
    from voicedrag_assets import asset_path

    path = asset_path(relative)
    if not path.is_file():
        raise UserError(f"the face landmark model {path.name} is not in this installation; reinstall voicedrag.")
    with _quiet_stderr():
        interp = Interpreter(model_path=str(path), num_threads=1)
        interp.allocate_tensors()
    return interp


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Keep the runtime's C++ start-up line ("Created TensorFlow Lite XNNPACK delegate") off
    the user's terminal: it is written to file descriptor 2, below Python's sys.stderr."""
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a detached process): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _run(interp: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    interp.set_tensor(interp.get_input_details()[0]["index"], x[None].astype(np.float32))
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


@dataclass
class FaceMeshDetector:
    """The `Detector` for photographs and photo-real generators (FFHQ, CelebA-HQ, MetFaces)."""

    detector: Any
    mesh: Any
    names: tuple[str, ...] = tuple(MESH_POINTS)

    def __post_init__(self) -> None:
        self._anchors = ssd_anchors()

    @classmethod
    def load(cls) -> FaceMeshDetector:
        """The detector on the shipped model files."""
        return cls(detector=_interpreter(DETECTOR_FILE), mesh=_interpreter(MESH_FILE))

    def find_face(self, image: Image.Image) -> FaceBox | None:
        """The most confident face, or None."""
        w, h = image.size
        side = max(w, h)
        # Pad to a centred square (the letterbox MediaPipe uses), then 128 px in [-1, 1].
        px, py = (side - w) // 2, (side - h) // 2
        square = Image.new("RGB", (side, side))
        square.paste(image, (px, py))
        small = square.resize((DETECT_SIZE, DETECT_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
        out = _run(self.detector, np.asarray(small, dtype=np.float32) / 127.5 - 1.0)
        found = decode_detections(out["regressors"][0], out["classificators"][0, :, 0], self._anchors)
        if not found:
            return None
        box, kps, score = blend_best(found)
        box = box * side - np.array([px, py, px, py])
        kps = kps * side - np.array([px, py])
        x0, y0, x1, y1 = (float(v) for v in box)
        return FaceBox(box=(x0, y0, x1, y1), keypoints=kps, score=score)

    def mesh_points(self, image: Image.Image, roi: Roi) -> tuple[np.ndarray, float]:
        """The 468 mesh points [468, 2] in continuous image pixels, and the mesh's face score."""
        out = _run(self.mesh, crop(image, roi, MESH_SIZE))
        values = list(out.values())
        lm = next(v for v in values if v.size == 468 * 3).reshape(468, 3)
        flag = float(next(v for v in values if v.size == 1).ravel()[0])
        return roi.to_image(lm[:, :2] / MESH_SIZE), 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, flag))))

    def landmarks(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """All 468 mesh points [468, 2], pixel centres at integers; UserError if no face."""
        pil = Image.fromarray(as_rgb_array(image))
        face = self.find_face(pil)
        if face is None:
            raise UserError(NO_FACE)
        roi = roi_from_points(face.box, face.keypoints[0], face.keypoints[1])
        pts, score = self.mesh_points(pil, roi)
        for _ in range(REFINE_PASSES):
            box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
            pts, score = self.mesh_points(pil, roi_from_points(box, pts[33], pts[263]))
        if score < MIN_MESH_SCORE:
            raise UserError(NO_FACE)
        return pts - 0.5

    def detect(self, image: Image.Image | np.ndarray) -> dict[str, Point]:
        pts = self.landmarks(image)
        return {
            name: Point(float(pts[list(idx), 0].mean()), float(pts[list(idx), 1].mean()))
            for name, idx in MESH_POINTS.items()
        }
