"""Windowed synthesis agrees with the dense reference network."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine import DragConfig, DragPair, DragSession, Point
from engine.window import Box, dense_cost, feature_box_for, merge_boxes, merge_boxes_reference, plan_crops, resize_window, windowed_cost, windowed_features
from tests.conftest import assert_same_drag


@pytest.fixture(scope="module")
def noisy_128(sg2_128):
    """The fixture generator with visible constant noise, so that noise cropping is tested too."""
    import copy

    G = copy.deepcopy(sg2_128)
    for layer in G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.3)
    return G


@pytest.mark.parametrize("block", [3, 4, 5])
@pytest.mark.parametrize("where", ["corner", "far_corner", "centre", "edge"])
def test_window_features_match_dense(noisy_128, block, where):
    G = noisy_128
    R = G.synthesis.block_resolutions[block]
    box = {
        "corner": Box(0, 10, 0, 12),
        "far_corner": Box(R - 9, R, R - 7, R),
        "centre": Box(R // 2 - 5, R // 2 + 6, R // 2 - 3, R // 2 + 9),
        "edge": Box(R // 2, R // 2 + 7, 0, 6),
    }[where].clip(R)
    ws = G.ws_from_seed(2)
    with torch.no_grad():
        dense = G.synthesis(ws, return_features=True).features[block]
        (win,) = windowed_features(G.synthesis, ws, block, [box])
    torch.testing.assert_close(win, box.slice(dense), rtol=0, atol=1e-4)


def test_crops_actually_shrink_the_high_blocks(sg2_128):
    plan = plan_crops(sg2_128.synthesis, 5, Box(60, 70, 60, 70))
    assert plan[5] == Box(60, 70, 60, 70)
    assert plan[4] is not None and plan[4].area < 0.2 * 64 * 64
    assert plan[0] is None and plan[1] is None


def test_resize_window_matches_interpolate():
    feat = torch.randn(1, 5, 32, 32)
    full = F.interpolate(feat, [128, 128], mode="bilinear", align_corners=False)
    for ob in (Box(50, 70, 10, 40), Box(0, 20, 100, 128), Box(120, 128, 0, 9)):
        fb = feature_box_for(ob, 128, 32)
        torch.testing.assert_close(resize_window(fb.slice(feat), fb, 32, ob, 128), ob.slice(full), rtol=0, atol=1e-6)


def test_windowed_drag_follows_the_dense_drag(sg2_128, monkeypatch):
    # Windows on every step (no timing of the dense path in between): the fast path itself is checked.
    monkeypatch.setattr("engine.drag.WINDOWS_SURELY_CHEAPER", math.inf)
    ws = sg2_128.ws_from_seed(0)
    pairs = [DragPair(Point(23, 98), Point(46, 99)), DragPair(Point(100, 20), Point(90, 30))]
    runs = {}
    for windowed in (True, False):
        cfg = DragConfig(max_steps=12, preview_every=0, stop_distance=0.0, windowed=windowed)
        s = DragSession(sg2_128, ws, pairs, config=cfg)
        runs[windowed] = [(r.points, r.loss_motion) for r in s.steps()], s.ws.detach()
    assert_same_drag(runs[True], runs[False])


def test_overlapping_boxes_merge_and_apart_ones_do_not():
    a, b, far = Box(10, 20, 10, 20), Box(12, 22, 11, 21), Box(40, 50, 40, 50)
    merged, owner = merge_boxes([a, far, b])
    assert merged == [Box(10, 22, 10, 21), far]
    assert owner == [0, 1, 0]
    assert merge_boxes([a, far]) == ([a, far], [0, 1])


def test_merged_and_dense_fallback_windows_equal_the_dense_map(noisy_128):
    G = noisy_128
    block = 5
    ws = G.ws_from_seed(4)
    with torch.no_grad():
        dense = G.synthesis(ws, return_features=True).features[block]
        # Two overlapping handles and one apart: the first two are computed as one crop.
        boxes = [Box(30, 44, 30, 44), Box(33, 47, 35, 49), Box(100, 112, 8, 20)]
        assert len(merge_boxes(boxes)[0]) == 2
        for box, win in zip(boxes, windowed_features(G.synthesis, ws, block, boxes)):
            torch.testing.assert_close(win, box.slice(dense), rtol=0, atol=1e-4)
        # Windows over most of the map cost more than the map: it is computed densely and sliced.
        many = [Box(y, y + 30, x, x + 30) for y in range(0, 128, 32) for x in range(0, 128, 32)]
        assert windowed_cost(G.synthesis, block, merge_boxes(many)[0]) >= dense_cost(G.synthesis, block)
        for box, win in zip(many, windowed_features(G.synthesis, ws, block, many)):
            torch.testing.assert_close(win, box.slice(dense), rtol=0, atol=1e-4)


def test_many_handles_drag_on_the_dense_path_and_follow_the_reference(sg2_128):
    """With 36 handles the windows cost more than the dense map: the session drags densely,
    and its trajectory is the reference path's."""
    ws = sg2_128.ws_from_seed(1)
    pairs = [DragPair(Point(8 + 20 * i, 8 + 20 * j), Point(10 + 20 * i, 9 + 20 * j))
             for i in range(6) for j in range(6)]
    runs = {}
    for windowed in (True, False):
        cfg = DragConfig(max_steps=8, preview_every=0, stop_distance=0.0, windowed=windowed)
        s = DragSession(sg2_128, ws, pairs, config=cfg)
        traj = []
        for r in s.steps():
            traj.append((r.points, r.loss_motion))
            assert s._dense_now
        runs[windowed] = traj, s.ws.detach()
    assert_same_drag(runs[True], runs[False])


def test_merge_boxes_equals_its_plain_reference_on_random_boxes() -> None:
    import random

    rng = random.Random(7)
    for _ in range(3000):
        res = rng.choice([8, 32, 64, 128])
        boxes = []
        for _ in range(rng.randint(0, 25)):
            y, x = rng.randrange(res), rng.randrange(res)
            boxes.append(Box(y, min(y + rng.randint(0, 20), res), x, min(x + rng.randint(0, 20), res)))
        assert merge_boxes(boxes) == merge_boxes_reference(boxes)
