"""The face landmark detector for real photographs (`keypoints.facemesh`).

The geometry (anchors, decoding, crops) is checked without the runtime; the detector itself
against points placed by eye on scikit-image's astronaut photograph (tests/data), and on
flipped, scaled, rotated and cropped copies whose true points follow exactly.
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import UserError
from keypoints.facemesh import (
    MESH_POINTS,
    Roi,
    blend_best,
    crop,
    decode_detections,
    ssd_anchors,
)

LABELS = Path(__file__).parent / "data" / "astronaut_landmarks.json"
HAS_RUNTIME = importlib.util.find_spec("ai_edge_litert") is not None
HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None
needs_detector = pytest.mark.skipif(
    not (HAS_RUNTIME and HAS_SKIMAGE),
    reason="needs the LiteRT runtime and scikit-image's photographs (pip install -e '.[dev]')")
MAX_MEAN_IOD = 0.03  # the bar: mean error <= 3% of the inter-ocular distance


# ------------------------------------------------------------ geometry, no runtime

def test_anchors_follow_blazeface_layout() -> None:
    a = ssd_anchors()
    assert a.shape == (896, 2)
    # Two anchors per cell of the 16x16 grid, first cell centred at (1/32, 1/32) ...
    np.testing.assert_allclose(a[0], [1 / 32, 1 / 32])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [3 / 32, 1 / 32])
    # ... then six per cell of the 8x8 grid, row by row.
    np.testing.assert_allclose(a[512:518], np.tile([[1 / 16, 1 / 16]], (6, 1)))
    np.testing.assert_allclose(a[-1], [15 / 16, 15 / 16])


def test_decoding_offsets_are_relative_to_the_anchor() -> None:
    anchors = ssd_anchors()
    reg = np.zeros((896, 16), dtype=np.float32)
    logits = np.full(896, -10.0, dtype=np.float32)
    reg[600, :4] = [12.8, -6.4, 64.0, 32.0]  # shift +0.1, -0.05; size 0.5 x 0.25 of the input
    reg[600, 4:6] = [-12.8, 0.0]
    logits[600] = 3.0
    found = decode_detections(reg, logits, anchors)
    assert len(found) == 1
    box, kps, score = found[0]
    cx, cy = anchors[600] + [0.1, -0.05]
    np.testing.assert_allclose(box, [cx - 0.25, cy - 0.125, cx + 0.25, cy + 0.125], atol=1e-6)
    np.testing.assert_allclose(kps[0], anchors[600] + [-0.1, 0.0], atol=1e-6)
    assert score == pytest.approx(1 / (1 + math.exp(-3.0)))


def test_blend_weights_overlapping_boxes_by_score_and_ignores_others() -> None:
    kp = np.zeros((6, 2))
    best = (np.array([0.0, 0.0, 1.0, 1.0]), kp, 0.9)
    near = (np.array([0.1, 0.0, 1.1, 1.0]), kp + 1.0, 0.3)
    far = (np.array([5.0, 5.0, 6.0, 6.0]), kp + 9.0, 0.8)
    box, kps, score = blend_best([best, far, near])
    np.testing.assert_allclose(box, [0.025, 0.0, 1.025, 1.0])
    np.testing.assert_allclose(kps, 0.25)
    assert score == 0.9


def test_crop_and_roi_map_the_same_points() -> None:
    # A bright pixel at (70, 40) must land where Roi.to_image says the crop pixel is, turned or not.
    img = np.zeros((100, 120, 3), dtype=np.uint8)
    img[40, 70] = 255
    for rotation in (0.0, 0.4, -1.1):
        roi = Roi(cx=65.5, cy=45.5, side=32.0, rotation=rotation)
        out = crop(Image.fromarray(img), roi, 64)
        v, u = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
        back = roi.to_image(np.array([(u + 0.5) / 64, (v + 0.5) / 64]))
        # Continuous coordinates: pixel (70, 40) spans [70, 71) x [40, 41).
        assert np.hypot(back[0] - 70.5, back[1] - 40.5) <= 0.5 * 32 / 64 * math.sqrt(2) + 1e-6, rotation


def test_every_name_maps_to_mesh_vertices() -> None:
    assert all(idx and all(0 <= i < 468 for i in idx) for idx in MESH_POINTS.values())
    assert not any("ear" in name.split("_") for name in MESH_POINTS)  # the mesh has no ears


# ------------------------------------------------------------ the detector on photographs

@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    from keypoints.facemesh import FaceMeshDetector

    return FaceMeshDetector.load()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())


def _labels() -> dict[str, np.ndarray]:
    return {k: np.array(v, dtype=np.float64) for k, v in json.loads(LABELS.read_text())["points"].items()}


def _swap(name: str) -> str:
    return name.replace("left", "@").replace("right", "left").replace("@", "right")


def _relative_error(detector, image: Image.Image, truth: dict[str, np.ndarray]) -> float:  # type: ignore[no-untyped-def]
    found = detector.detect(image)
    errors = [math.hypot(found[k].x - p[0], found[k].y - p[1]) for k, p in truth.items()]
    iod = float(np.hypot(*(truth["left_eye_outer"] - truth["right_eye_outer"])))
    return float(np.mean(errors)) / iod


def _rotated(points: dict[str, np.ndarray], degrees: float, size: int) -> dict[str, np.ndarray]:
    # PIL turns the picture counter-clockwise on screen about the centre (in continuous coordinates).
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    out = {}
    for k, p in points.items():
        x, y = p[0] + 0.5 - size / 2, p[1] + 0.5 - size / 2
        out[k] = np.array([c * x + s * y + size / 2 - 0.5, -s * x + c * y + size / 2 - 0.5])
    return out


@needs_detector
def test_astronaut_points_within_three_percent_of_the_eye_distance(detector, astronaut) -> None:  # type: ignore[no-untyped-def]
    assert _relative_error(detector, astronaut, _labels()) <= MAX_MEAN_IOD


@needs_detector
@pytest.mark.parametrize("variant", ["flip", "half", "double", "rotate15", "rotate-25", "crop"])
def test_transformed_photographs(detector, astronaut, variant: str) -> None:  # type: ignore[no-untyped-def]
    truth = _labels()
    w = astronaut.size[0]
    if variant == "flip":
        # The mirrored face: the viewer's left eye is the other eye now.
        image = astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        truth = {_swap(k): np.array([w - 1 - p[0], p[1]]) for k, p in truth.items()}
    elif variant in ("half", "double"):
        f = 0.5 if variant == "half" else 2.0
        image = astronaut.resize((int(w * f), int(w * f)), Image.Resampling.LANCZOS)
        truth = {k: (p + 0.5) * f - 0.5 for k, p in truth.items()}
    elif variant.startswith("rotate"):
        deg = float(variant.removeprefix("rotate"))
        image = astronaut.rotate(deg, resample=Image.Resampling.BICUBIC)
        truth = _rotated(truth, deg, w)
    else:  # a non-square crop with the face off centre
        image = astronaut.crop((100, 20, 400, 260))
        truth = {k: p - np.array([100.0, 20.0]) for k, p in truth.items()}
    assert _relative_error(detector, image, truth) <= MAX_MEAN_IOD


@needs_detector
def test_no_face_is_one_sentence(detector) -> None:  # type: ignore[no-untyped-def]
    import skimage.data

    with pytest.raises(UserError, match="no face was found in this image"):
        detector.detect(skimage.data.coffee())


@needs_detector
def test_cli_prints_the_named_points_offline(tmp_path: Path, astronaut, capsys) -> None:  # type: ignore[no-untyped-def]
    from voicedrag.cli import main

    path = tmp_path / "astronaut.png"
    astronaut.save(path)
    assert main(["keypoints", "--image", str(path), "--detector", "face", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == [512, 512]
    assert set(report["points"]) == set(MESH_POINTS)
    mouth = np.array(report["points"]["mouth_left"])
    assert np.hypot(*(mouth - _labels()["mouth_left"])) < 4.0


@needs_detector
def test_face_rules_plan_on_a_photograph_and_name_what_is_missing(detector, astronaut) -> None:  # type: ignore[no-untyped-def]
    from voicedrag.language.commands import CommandParser
    from voicedrag.planning.pipeline import CommandError, plan_command
    from voicedrag.planning.rules import load_rules

    rules = load_rules("face")
    points = detector.detect(astronaut)
    parser = CommandParser()
    size = (np.asarray(astronaut).shape[1], np.asarray(astronaut).shape[0])
    planned = plan_command(parser.parse("open the mouth"), size, points, rules=rules)
    pairs = dict(zip(planned.plan.names, planned.pairs))
    assert "lower_lip" in pairs
    lower = pairs["lower_lip"]
    assert lower.target.y > lower.handle.y + 2  # down, by a visible amount at 512 px
    with pytest.raises(CommandError, match="I can't find the ears on this face"):
        plan_command(parser.parse("raise the left ear"), size, points, rules=rules)
