from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from faceworld.render import (
    ATTRIBUTE_NAMES,
    KEYPOINT_NAMES,
    FaceParams,
    render,
    render_batch,
    render_seed,
    sample_params,
)

SIZE = 128


def _neutral(**changes: float) -> FaceParams:
    base = FaceParams(skin_tone=0.1, hair_style=0.3, bg_light=0.8)
    return dataclasses.replace(base, **changes)


def _luma(img: np.ndarray) -> np.ndarray:
    return img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114


def _mouth_box(res_kp: dict, margin: float = 1.0) -> tuple[slice, slice]:
    x0 = int(np.floor(res_kp["mouth_left"].x + margin))
    x1 = int(np.ceil(res_kp["mouth_right"].x - margin))
    y0 = int(np.floor(res_kp["upper_lip"].y))
    y1 = int(np.ceil(res_kp["lower_lip"].y)) + 1
    return slice(y0, y1), slice(x0, x1)


def test_names_are_the_contract() -> None:
    assert len(KEYPOINT_NAMES) == 20
    assert len(set(KEYPOINT_NAMES)) == 20
    for name in ("upper_lip", "lower_lip", "mouth_left", "mouth_right", "nose_tip", "left_ear_tip", "chin", "head_top"):
        assert name in KEYPOINT_NAMES


def test_render_is_deterministic() -> None:
    a = render_seed(11)
    b = render_seed(11)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.keypoints == b.keypoints
    c = render_seed(12)
    assert a.image.tobytes() != c.image.tobytes()


def test_parameter_vector_round_trip() -> None:
    params = sample_params(np.random.default_rng(3))
    vec = params.to_vector()
    assert vec.shape == (len(ATTRIBUTE_NAMES),)
    again = FaceParams.from_vector(vec)
    assert render(again).image.tobytes() == render(FaceParams.from_vector(vec)).image.tobytes()
    assert np.allclose(again.to_vector(), vec)
    with pytest.raises(ValueError):
        FaceParams.from_vector(vec[:-1])


def test_image_size_and_mode() -> None:
    res = render_seed(0, size=64)
    assert res.image.size == (64, 64)
    assert res.image.mode == "RGB"
    assert set(res.keypoints) == set(KEYPOINT_NAMES)
    assert set(res.attributes) == set(ATTRIBUTE_NAMES)


def test_keypoints_inside_image_over_many_seeds() -> None:
    for seed in range(300):
        res = render_seed(seed)
        for name, pt in res.keypoints.items():
            assert 0.0 <= pt.x <= SIZE - 1 and 0.0 <= pt.y <= SIZE - 1, (seed, name, pt)


def test_left_means_smaller_x() -> None:
    kp = render(_neutral()).keypoints
    for part in ("ear_tip", "ear_base", "brow", "eye_center", "eye_top"):
        assert kp[f"left_{part}"].x < kp[f"right_{part}"].x - 10
    assert kp["mouth_left"].x < kp["mouth_right"].x
    assert kp["head_top"].y < kp["nose_root"].y < kp["nose_tip"].y < kp["upper_lip"].y < kp["chin"].y


def test_closed_eye_lids_meet_and_open_eye_has_a_gap() -> None:
    closed = render(_neutral(eye_open_left=0.0, eye_open_right=1.0)).keypoints
    assert closed["left_eye_top"].distance(closed["left_eye_bottom"]) < 0.01
    assert closed["right_eye_bottom"].y - closed["right_eye_top"].y > 6.0


def test_open_eye_centre_is_dark_pupil_under_any_pose() -> None:
    rng = np.random.default_rng(5)
    for _ in range(40):
        params = dataclasses.replace(sample_params(rng), eye_open_left=1.0, eye_open_right=1.0)
        res = render(params)
        img = np.asarray(res.image).astype(np.float64)
        for side in ("left", "right"):
            pt = res.keypoints[f"{side}_eye_center"]
            patch = img[round(pt.y) - 1 : round(pt.y) + 2, round(pt.x) - 1 : round(pt.x) + 2]
            assert np.median(_luma(patch)) < 100, (side, params)


def test_mouth_open_grows_lip_gap_dark_pixels_and_teeth() -> None:
    closed = render(_neutral(mouth_open=0.0))
    opened = render(_neutral(mouth_open=1.0))
    gap_closed = closed.keypoints["lower_lip"].y - closed.keypoints["upper_lip"].y
    gap_open = opened.keypoints["lower_lip"].y - opened.keypoints["upper_lip"].y
    assert gap_closed == pytest.approx(0.0, abs=1e-6)
    assert gap_open > 8.0

    box = _mouth_box(opened.keypoints)
    img_open = np.asarray(opened.image).astype(np.float64)[box]
    img_closed = np.asarray(closed.image).astype(np.float64)[box]
    dark_open = int((_luma(img_open) < 70).sum())
    dark_closed = int((_luma(img_closed) < 70).sum())
    assert dark_open > dark_closed + 20

    def teeth(img: np.ndarray) -> int:
        return int((img.min(axis=-1) > 215).sum())

    assert teeth(img_open) >= 10
    assert teeth(img_closed) == 0


def test_smile_lifts_corners_and_frown_lowers_them() -> None:
    smile = render(_neutral(mouth_smile=1.0)).keypoints
    frown = render(_neutral(mouth_smile=-1.0)).keypoints
    assert smile["mouth_left"].y < frown["mouth_left"].y - 4
    assert smile["mouth_right"].y < frown["mouth_right"].y - 4


def test_mouth_width_widens() -> None:
    narrow = render(_neutral(mouth_width=0.0)).keypoints
    wide = render(_neutral(mouth_width=1.0)).keypoints
    assert wide["mouth_right"].x - wide["mouth_left"].x > narrow["mouth_right"].x - narrow["mouth_left"].x + 5


def test_turn_left_moves_nose_tip_left_more_than_its_root() -> None:
    front = render(_neutral(turn=0.0)).keypoints
    left = render(_neutral(turn=-1.0)).keypoints
    right = render(_neutral(turn=1.0)).keypoints
    assert left["nose_tip"].x < front["nose_tip"].x - 6
    assert right["nose_tip"].x > front["nose_tip"].x + 6
    assert front["nose_tip"].x - left["nose_tip"].x > front["nose_root"].x - left["nose_root"].x
    # Far side compresses: turning left brings the left eye closer to the face's left edge.
    assert (left["right_eye_center"].x - left["left_eye_center"].x) < (
        front["right_eye_center"].x - front["left_eye_center"].x
    )
    # The silhouette does not slide.
    assert left["chin"].x == pytest.approx(front["chin"].x, abs=1e-6)


def test_ear_raise_moves_only_that_ear_tip_up() -> None:
    down = render(_neutral(ear_raise_left=-1.0)).keypoints
    up = render(_neutral(ear_raise_left=1.0)).keypoints
    assert up["left_ear_tip"].y < down["left_ear_tip"].y - 6
    assert up["right_ear_tip"] == down["right_ear_tip"]
    assert up["left_ear_base"] == down["left_ear_base"]


def test_brow_raise_moves_brows_up() -> None:
    low = render(_neutral(brow_raise=-1.0)).keypoints
    high = render(_neutral(brow_raise=1.0)).keypoints
    assert high["left_brow"].y < low["left_brow"].y - 3
    assert high["right_brow"].y < low["right_brow"].y - 3


def test_nose_length_moves_tip_down() -> None:
    short = render(_neutral(nose_length=0.0)).keypoints
    long = render(_neutral(nose_length=1.0)).keypoints
    assert long["nose_tip"].y > short["nose_tip"].y + 3
    assert long["nose_root"] == short["nose_root"]


def test_tilt_rotates_eye_line_and_shift_translates_everything() -> None:
    tilted = render(_neutral(tilt=1.0)).keypoints
    slope = (tilted["right_eye_center"].y - tilted["left_eye_center"].y) / (
        tilted["right_eye_center"].x - tilted["left_eye_center"].x
    )
    assert slope > 0.15  # clockwise on screen: the right eye drops
    base = render(_neutral()).keypoints
    moved = render(_neutral(shift_x=1.0, shift_y=-1.0)).keypoints
    dx = moved["nose_tip"].x - base["nose_tip"].x
    dy = moved["nose_tip"].y - base["nose_tip"].y
    assert dx > 5 and dy < -5
    for name in KEYPOINT_NAMES:
        assert moved[name].x - base[name].x == pytest.approx(dx, abs=1e-6)
        assert moved[name].y - base[name].y == pytest.approx(dy, abs=1e-6)


def test_render_batch_matches_render() -> None:
    images, keypoints, attributes = render_batch(np.random.default_rng(9), 4, 64)
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
    assert keypoints.shape == (4, len(KEYPOINT_NAMES), 2) and keypoints.dtype == np.float32
    assert attributes.shape == (4, len(ATTRIBUTE_NAMES)) and attributes.dtype == np.float32
    rng = np.random.default_rng(9)
    first = render(sample_params(rng), 64)
    assert np.array_equal(images[0], np.asarray(first.image))
    assert np.allclose(keypoints[0], [[first.keypoints[k].x, first.keypoints[k].y] for k in KEYPOINT_NAMES], atol=1e-4)


def test_keypoints_scale_with_size() -> None:
    params = sample_params(np.random.default_rng(21))
    small = render(params, 64).keypoints
    large = render(params, 128).keypoints
    for name in KEYPOINT_NAMES:
        # Pixel centres at integers: x_64 = (x_128 + 0.5) / 2 - 0.5.
        assert small[name].x == pytest.approx((large[name].x + 0.5) / 2 - 0.5, abs=1e-6)
        assert small[name].y == pytest.approx((large[name].y + 0.5) / 2 - 0.5, abs=1e-6)


def test_sampled_worlds_vary() -> None:
    rng = np.random.default_rng(0)
    vectors = np.stack([sample_params(rng).to_vector() for _ in range(200)])
    assert (vectors.std(axis=0) > 0.05).all()
    opens = vectors[:, ATTRIBUTE_NAMES.index("mouth_open")]
    assert (opens == 0).mean() > 0.2 and (opens > 0.5).mean() > 0.2
