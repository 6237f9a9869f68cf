"""Framing photos (`keypoints.align`): the transform, the face world's template, the FFHQ recipe,
the warp's geometry, and the paste-back's promise that pixels outside the blend are the photo's."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.errors import UserError
from engine.types import Point
from faceworld.render import KEYPOINT_NAMES, render, sample_params
from keypoints.align import (
    FACEWORLD_MEAN,
    FACEWORLD_SIZE,
    Alignment,
    AlignmentError,
    align_from_keypoints,
    blend_alpha,
    faceworld_template,
    ffhq_alignment,
    paste_back,
    scaled_template,
    similarity_fit,
    warp_to_crop,
)

LABELS = Path(__file__).parent / "data" / "astronaut_landmarks.json"
HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None
HAS_RUNTIME = importlib.util.find_spec("ai_edge_litert") is not None


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    t = math.radians(degrees)
    c, s = math.cos(t) * scale, math.sin(t) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


def framing(scale: float, degrees: float, centre: tuple[float, float], size: int) -> Alignment:
    """The crop of `size` px centred on a photo point, `scale` crop px per photo px."""
    m = similarity(scale, degrees, 0.0, 0.0)
    m[:, 2] = np.array([(size - 1) / 2, (size - 1) / 2]) - m[:, :2] @ np.array(centre)
    return Alignment(m, size)


def ramp_photo(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo that is a plane in every channel (so any interpolation of it is exact), and its formula."""
    coef = np.array([[0.4, 0.1, 20.0], [-0.1, 0.3, 120.0], [0.2, -0.2, 140.0]])  # per channel: a x + b y + c
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    exact = np.stack([a * xs + b * ys + c for a, b, c in coef], axis=2)
    return np.clip(np.rint(exact), 0, 255).astype(np.uint8), coef


# ------------------------------------------------------------ the transform


def test_points_round_trip_through_the_crop() -> None:
    rng = np.random.default_rng(0)
    pts = {f"p{i}": Point(float(x), float(y)) for i, (x, y) in enumerate(rng.uniform(-50, 900, (30, 2)))}
    for m in (similarity(0.37, 12.0, -40.0, 17.5), similarity(3.2, -8.0, 100.0, -900.0),
              np.array([[0.9, 0.2, 3.0], [-0.1, 1.3, -7.0]])):  # an affine, too
        a = Alignment(m, 128)
        back = a.to_photo(a.to_crop(pts))
        for n, p in pts.items():
            assert back[n].distance(p) < 1e-4
        assert np.allclose(a.inverse[:, :2] @ a.matrix[:, :2], np.eye(2))


def test_alignment_survives_json() -> None:
    a = Alignment(similarity(0.41, 7.3, -12.25, 301.5), 256)
    b = Alignment.from_json(json.loads(json.dumps(a.to_json())))
    assert b.crop_size == 256 and np.array_equal(a.matrix, b.matrix)
    with pytest.raises(AlignmentError, match="recompute"):
        Alignment.from_json({"matrix": [[1, 0], [0, 1]], "crop_size": 64})
    with pytest.raises(AlignmentError, match="not a saved alignment"):
        Alignment.from_json({"crop_size": 64})


def test_the_fit_recovers_a_similarity_exactly() -> None:
    template = faceworld_template()
    m = similarity(2.7, -9.0, 310.0, 95.0)  # crop -> photo
    photo_pts = {n: Point(*(m[:, :2] @ [p.x, p.y] + m[:, 2])) for n, p in template.items()}
    a = align_from_keypoints(photo_pts, template, 128)
    assert a.scale == pytest.approx(1 / 2.7)
    # m turns the crop's x axis 9 degrees counter-clockwise on screen (y is down) into the photo.
    assert a.rotation_deg == pytest.approx(9.0)
    for n, q in a.to_crop(photo_pts).items():
        assert q.distance(template[n]) < 1e-9
    # Reflections are not similarities: a mirrored face is fitted as well as a rotation can.
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    fit = similarity_fit(src, src * [-1, 1])
    assert np.linalg.det(fit[:, :2]) > 0


def test_too_few_points_and_too_small_faces_are_refused_in_a_sentence() -> None:
    template = faceworld_template()
    two = {n: template[n] for n in ("left_eye_center", "right_eye_center")}
    with pytest.raises(AlignmentError) as err:
        align_from_keypoints(two, template, 128)
    msg = str(err.value)
    assert msg.startswith("only 2 of the 6 points") and "nose_root" in msg and msg.endswith("visible.")
    small = {n: Point(p.x * 0.3, p.y * 0.3) for n, p in template.items()}  # eyes 7.8 px apart
    with pytest.raises(AlignmentError) as err:
        align_from_keypoints(small, template, 128)
    assert str(err.value) == ("the face is too small in this photo: its eyes are 8 px apart and must be at least "
                              "13 px for a 128 px crop; use a larger or closer photo.")
    same = {n: Point(5.0, 5.0) for n in template}
    with pytest.raises(AlignmentError, match="one spot"):
        align_from_keypoints(same, template, 128)


def test_the_stored_face_world_template_is_the_renders_mean() -> None:
    """The table in keypoints/align.py, regenerated by the command in its comment."""
    rng = np.random.default_rng(20240611)
    pts = np.array([[(r.keypoints[n].x, r.keypoints[n].y) for n in KEYPOINT_NAMES]
                    for r in (render(sample_params(rng), 128) for _ in range(2000))]).mean(0)
    flip = [KEYPOINT_NAMES.index(n.replace("left", "x").replace("right", "left").replace("x", "right"))
            for n in KEYPOINT_NAMES]
    sym = (pts + np.c_[127 - pts[flip, 0], pts[flip, 1]]) / 2
    for n, (x, y) in zip(KEYPOINT_NAMES, sym.tolist(), strict=True):
        assert (FACEWORLD_MEAN[n].x, FACEWORLD_MEAN[n].y) == pytest.approx((x, y), abs=0.006), n


def test_templates_scale_with_pixel_centres() -> None:
    t = scaled_template({"a": Point(0.0, 63.5)}, FACEWORLD_SIZE, 256)
    assert (t["a"].x, t["a"].y) == (0.5, 127.5)  # pixel 0's centre spans [0, 1) -> [0, 2): centre 0.5


# ------------------------------------------------------------ the FFHQ recipe


def test_ffhq_recipe_on_a_level_face() -> None:
    # Eyes 100 px apart, mouth 100 px below them: the recipe's square has side 4 eye distances,
    # its centre 0.1 of the eye-to-mouth vector below the eyes.
    face = {"left_eye_center": Point(100, 100), "right_eye_center": Point(200, 100),
            "mouth_left": Point(110, 200), "mouth_right": Point(190, 200)}
    for size in (256, 1024):
        a = ffhq_alignment(face, size)
        assert a.scale == pytest.approx(size / 400)
        assert a.rotation_deg == pytest.approx(0.0, abs=1e-9)
        q = a.to_crop(face)
        for name, (u, v) in (("left_eye_center", (0.375, 0.475)), ("right_eye_center", (0.625, 0.475))):
            assert (q[name].x, q[name].y) == pytest.approx((u * size - 0.5, v * size - 0.5))
    # A face turned 30 degrees is turned back level.
    m = similarity(1.0, 30.0, 0.0, 0.0)
    turned = {n: Point(*(m[:, :2] @ [p.x, p.y])) for n, p in face.items()}
    q = ffhq_alignment(turned, 256).to_crop(turned)
    assert q["left_eye_center"].y == pytest.approx(q["right_eye_center"].y, abs=1e-9)
    with pytest.raises(AlignmentError, match="mouth_right"):
        ffhq_alignment({n: p for n, p in face.items() if n != "mouth_right"}, 256)


@pytest.mark.skipif(not HAS_SKIMAGE, reason="needs scikit-image's photographs (pip install -e '.[dev]')")
def test_ffhq_recipe_from_hand_placed_points_on_the_astronaut() -> None:
    """No eye centres in the labels: the corners' and lids' means stand in for them."""
    from skimage.data import astronaut

    labels = {n: Point(*p) for n, p in json.loads(LABELS.read_text())["points"].items()}
    a = ffhq_alignment(labels, 256)
    crop = warp_to_crop(astronaut(), a)
    assert crop.shape == (256, 256, 3)
    q = a.to_crop(labels)
    eye_l = np.mean([[q[f"left_eye_{k}"].x, q[f"left_eye_{k}"].y] for k in ("outer", "inner", "top", "bottom")], 0)
    assert eye_l / 256 == pytest.approx([0.375, 0.475], abs=0.02)


@pytest.mark.skipif(not (HAS_SKIMAGE and HAS_RUNTIME),
                    reason="needs the LiteRT runtime and scikit-image's photographs (pip install -e '.[dev]')")
def test_ffhq_recipe_with_the_face_mesh_on_the_astronaut() -> None:
    from skimage.data import astronaut

    from keypoints.facemesh import FaceMeshDetector

    mesh = FaceMeshDetector.load()
    photo = astronaut()
    points = mesh.detect(photo)
    size = 256
    a = ffhq_alignment(points, size)
    crop = warp_to_crop(photo, a)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    q = a.to_crop(points)
    # Where the recipe puts the eyes of a face whose eye-to-mouth distance is about its eye distance
    # (as on FFHQ's faces): a quarter of the side apart, just above the middle.
    for name, canonical in (("left_eye_center", (0.375, 0.475)), ("right_eye_center", (0.625, 0.475))):
        assert ((q[name].x + 0.5) / size, (q[name].y + 0.5) / size) == pytest.approx(canonical, abs=0.02)
    # The mesh finds the same eyes on the crop: the warp put the photo where the alignment says.
    again = mesh.detect(crop)
    for name in ("left_eye_center", "right_eye_center", "mouth_left", "mouth_right"):
        assert again[name].distance(q[name]) < 0.01 * size, name


# ------------------------------------------------------------ the warp


@pytest.mark.parametrize("scale, degrees", [(1.0, 0.0), (2.5, 8.0), (0.8, -10.0), (0.3, 5.0), (0.12, 0.0)])
def test_the_warp_samples_the_photo_where_the_alignment_says(scale: float, degrees: float) -> None:
    photo, coef = ramp_photo(300, 420)
    a = framing(scale, degrees, (210.0, 150.0), 96)
    crop = warp_to_crop(photo, a).astype(np.float64)
    ys, xs = np.mgrid[:96, :96].astype(np.float64)
    src = np.stack([xs.ravel(), ys.ravel()], 1) @ a.inverse[:, :2].T + a.inverse[:, 2]
    # Away from the photo's edge by the filter's reach (its support widens as the crop shrinks the photo),
    # where the mirrored border would bend the plane.
    reach = 3 + 2 / min(scale, 1.0)
    inside = ((src[:, 0] > reach) & (src[:, 0] < 419 - reach) & (src[:, 1] > reach)
              & (src[:, 1] < 299 - reach)).reshape(96, 96)
    for c, (ka, kb, kc) in enumerate(coef):
        want = (ka * src[:, 0] + kb * src[:, 1] + kc).reshape(96, 96)
        err = np.abs(crop[..., c] - want)[inside]
        # The photo's rounding and the crop's (0.5 each), and no bias: the mean error is a rounding's, 0.25.
        assert err.max() <= 1.0 and err.mean() <= 0.32


def test_an_identity_or_whole_pixel_crop_is_the_photo_itself() -> None:
    photo = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert np.array_equal(warp_to_crop(photo, Alignment.identity(128)), photo)
    shifted = Alignment(np.array([[1.0, 0.0, -10.0], [0.0, 1.0, -20.0]]), 64)
    assert np.array_equal(warp_to_crop(photo, shifted), photo[20:84, 10:74])


def test_the_crop_is_mirrored_where_it_leaves_the_photo() -> None:
    photo = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    a = Alignment(np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 3.0]]), 60)  # the crop starts 5 px left of the photo
    crop = warp_to_crop(photo, a)
    want = np.pad(photo, ((3, 17), (5, 5), (0, 0)), mode="symmetric")
    assert np.array_equal(crop, want)


def test_a_wild_alignment_is_refused_rather_than_filling_memory() -> None:
    photo = np.zeros((100, 100, 3), dtype=np.uint8)
    with pytest.raises(AlignmentError, match="reaches far beyond the photo's edges"):
        warp_to_crop(photo, framing(0.001, 0.0, (50.0, 50.0), 128))  # a 128000 px wide crop


def test_downscaling_does_not_alias() -> None:
    """A fine stripe pattern shrunk 5x is its mean grey, not a moire of it."""
    stripes = np.zeros((500, 500, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    crop = warp_to_crop(stripes, framing(0.2, 7.0, (250.0, 250.0), 64)).astype(np.float64)
    assert abs(crop[8:-8, 8:-8].mean() - 127.5) < 2.0
    assert crop[8:-8, 8:-8].std() < 3.0


# ------------------------------------------------------------ paste back


def edited(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An edit of part of a crop: a disc of new pixels, and a noisy change of a level or two everywhere
    (what an inversion's latent steps do), which must not count as an edit."""
    s = crop.shape[0]
    ys, xs = np.mgrid[:s, :s]
    disc = (xs - s * 0.55) ** 2 + (ys - s * 0.6) ** 2 < (s * 0.15) ** 2
    out = np.clip(crop.astype(np.int16) + rng.integers(-2, 3, crop.shape), 0, 255).astype(np.uint8)
    out[disc] = rng.integers(0, 256, (int(disc.sum()), 3), dtype=np.uint8)
    return out, disc


@pytest.mark.parametrize("photo_shape, scale, degrees", [
    ((128, 128), 1.0, 0.0),  # a model-sized photo
    ((700, 1024), 0.25, 6.0),  # a larger photo: the crop shrinks it
    ((90, 110), 1.6, -9.0),  # a small one: the crop enlarges it
])
def test_paste_back_keeps_every_pixel_outside_the_blend(photo_shape: tuple[int, int], scale: float,
                                                        degrees: float) -> None:
    rng = np.random.default_rng(3)
    h, w = photo_shape
    photo = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    a = framing(scale, degrees, (w * 0.45, h * 0.5), 128)
    crop = warp_to_crop(photo, a)
    new, disc = edited(crop, rng)
    out, alpha = paste_back(photo, new, crop, a, feather_px=5)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert alpha.shape == (h, w) and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    outside = alpha == 0
    assert np.array_equal(out[outside], photo[outside])  # bit for bit, not close
    assert outside.mean() > 0.3  # the edit is a disc, not the whole crop: the noise was not taken for an edit
    # The disc's middle is fully the edit, and the blend reaches past the disc (dilated, feathered).
    centre = a.to_photo({"c": Point(128 * 0.55 - 0.5, 128 * 0.6 - 0.5)})["c"]
    assert alpha[round(centre.y), round(centre.x)] == 1.0
    assert (alpha > 0).sum() > disc.sum() / a.scale**2


def test_paste_back_of_no_edit_is_the_photo() -> None:
    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    a = framing(0.7, 4.0, (150.0, 100.0), 64)
    crop = warp_to_crop(photo, a)
    out, alpha = paste_back(photo, crop, crop, a)
    assert np.array_equal(out, photo) and not alpha.any()
    # A region given by hand is blended even where nothing changed.
    region = np.zeros((64, 64), bool)
    region[20:40, 20:40] = True
    out, alpha = paste_back(photo, crop, crop, a, region)
    assert alpha.max() == 1.0 and np.array_equal(out[alpha == 0], photo[alpha == 0])
    with pytest.raises(UserError, match="must be 64 x 64 like the alignment"):
        paste_back(photo, crop[:32, :32], crop[:32, :32], a)


def test_paste_back_puts_the_crop_back_where_it_came_from() -> None:
    """Pasting an unedited crop over the whole face gives the photo back (up to two resamplings);
    half a pixel off anywhere in the conventions would double the difference."""
    ys, xs = np.mgrid[:240, :320].astype(np.float64)
    waves = 128 + 40 * np.sin(xs / 2.1) + 30 * np.sin(ys / 1.7 + xs / 5.0) + 20 * np.cos((xs - ys) / 2.9)
    photo = np.repeat(np.rint(waves)[..., None], 3, axis=2).astype(np.uint8)
    region = np.zeros((256, 256), bool)
    region[64:192, 64:192] = True
    a = framing(2.0, 5.0, (160.0, 120.0), 256)
    errors = []
    for dx in (0.0, 0.3, -0.3):
        crop = warp_to_crop(photo, Alignment(a.matrix + np.array([[0, 0, dx], [0, 0, 0]]), 256))
        out, alpha = paste_back(photo, crop, crop, a, region)
        full = alpha == 1.0
        errors.append(np.abs(out.astype(np.float64) - photo)[full].mean())
    assert errors[0] < 0.6 * min(errors[1:])


def test_the_blend_falls_to_zero_at_the_crops_border() -> None:
    region = np.zeros((64, 64), bool)
    region[:, :10] = True  # an edit that reaches the crop's left edge
    alpha = blend_alpha(region, 3.0, 6.0)
    assert alpha[:, 0].max() < 0.05 and alpha[32, 10] == 1.0
    assert alpha[:, 10 + 3 + 6 + 1:].max() == 0.0
