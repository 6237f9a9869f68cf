"""Windowed synthesis agrees with the dense reference network."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine import DragConfig, DragPair, DragSession, Point
from engine.window import Box, feature_box_for, plan_crops, resize_window, windowed_features
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


def test_windowed_drag_follows_the_dense_drag(sg2_128):
    ws = sg2_128.ws_from_seed(0)
    pairs = [DragPair(Point(23, 98), Point(46, 99)), DragPair(Point(100, 20), Point(90, 30))]
    runs = {}
    for windowed in (True, False):
        cfg = DragConfig(max_steps=12, preview_every=0, stop_distance=0.0, windowed=windowed)
        s = DragSession(sg2_128, ws, pairs, config=cfg)
        runs[windowed] = [(r.points, r.loss_motion) for r in s.steps()], s.ws.detach()
    assert_same_drag(runs[True], runs[False])
