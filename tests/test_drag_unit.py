"""Unit tests of the drag loop's parts on synthetic data and a tiny random generator."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import DragConfig, DragPair, DragSession, Point
from engine.drag import motion_loss, track_points


def test_tracking_finds_a_known_shift_exactly():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 16, 40, 40, generator=g)
    moved = torch.roll(base, shifts=(2, -3), dims=(2, 3))  # content moves down 2, left 3
    points = [(20, 20), (10, 30)]
    refs = torch.stack([base[0, :, y, x] for x, y in points])
    tracked = track_points(moved, refs, points, r2=4)
    assert tracked == [(17, 22), (7, 32)]


def test_tracking_stays_inside_its_window():
    feat = torch.zeros(1, 4, 30, 30)
    feat[0, :, 0, 0] = 1.0  # the perfect match lies far outside the window
    refs = torch.ones(1, 4)
    (x, y), = track_points(feat, refs, [(20, 20)], r2=3)
    assert 17 <= x <= 23 and 17 <= y <= 23


def test_motion_loss_gradient_pulls_toward_the_target():
    feat = torch.randn(1, 8, 32, 32, requires_grad=True)
    loss = motion_loss(feat, (16, 16), Point(26.0, 16.0), r1=2)
    loss.backward()
    grad = feat.grad[0].abs().sum(0)
    # Gradient flows only through the shifted samples, which lie right of the disc centre.
    assert grad[16, 17] > 0
    assert grad[:, :14].sum() == 0


def test_radii_scale_with_resolution():
    cfg = DragConfig()
    assert cfg.radii(512) == (3, 12)
    assert cfg.radii(256) == (2, 6)
    assert cfg.radii(128) == (1, 3)
    assert cfg.radii(32) == (1, 1)


def test_stop_criterion(tiny_generator):
    ws = tiny_generator.ws_from_seed(0)
    # Target 1 px away: converged at step 0, and no optimiser step is taken.
    s = DragSession(tiny_generator, ws, [DragPair(Point(10, 10), Point(11, 10))], config=DragConfig(max_steps=5))
    results = list(s.steps())
    assert len(results) == 1 and results[0].converged
    torch.testing.assert_close(s.ws, ws)
    # Target 2 px away: not converged at 1 px (default), converged at 2 px.
    far = [DragPair(Point(10, 10), Point(12, 10))]
    assert not DragSession(tiny_generator, ws, far, config=DragConfig(max_steps=1)).step().converged
    assert DragSession(tiny_generator, ws, far, config=DragConfig(max_steps=1, stop_distance=2)).step().converged
    # More than 5 handles: the criterion relaxes to 2 px.
    six = [DragPair(Point(4 + 4 * i, 10), Point(6 + 4 * i, 10)) for i in range(6)]
    assert DragSession(tiny_generator, ws, six, config=DragConfig(max_steps=1)).step().converged


def test_max_steps_and_previews(tiny_generator):
    ws = tiny_generator.ws_from_seed(1)
    cfg = DragConfig(max_steps=7, preview_every=3, stop_distance=0.0)
    s = DragSession(tiny_generator, ws, [DragPair(Point(8, 8), Point(24, 20))], config=cfg)
    results = list(s.steps())
    assert [r.step for r in results] == list(range(7))
    assert [r.image is not None for r in results] == [True, False, False, True, False, False, True]
    assert results[0].image.shape == (32, 32, 3) and results[0].image.dtype == np.uint8
    res = s.result()
    assert res.steps == 7 and not res.converged and not res.cancelled
    assert (res.ws[:, 6:] == ws[:, 6:]).all() and (res.ws[:, :6] != ws[:, :6]).any()


def test_cancellation_keeps_the_last_good_state(tiny_generator):
    ws = tiny_generator.ws_from_seed(2)
    s = DragSession(tiny_generator, ws, [DragPair(Point(8, 8), Point(24, 20))],
                    config=DragConfig(max_steps=50, stop_distance=0.0))
    seen = []
    for r in s.steps():
        seen.append(r)
        if r.step == 2:
            ws_after_step2 = s.ws.detach().clone()
            s.cancel()
    assert len(seen) == 3
    res = s.result()
    assert res.cancelled and res.steps == 3 and not res.converged
    torch.testing.assert_close(res.ws, ws_after_step2, rtol=0, atol=0)
    assert res.points == seen[-1].points
    # The result's image is the image of the kept latent.
    with torch.no_grad():
        from engine import to_uint8
        np.testing.assert_array_equal(res.image, to_uint8(tiny_generator.synthesis(res.ws).image))


def test_mask_keeps_fixed_region(tiny_generator):
    ws = tiny_generator.ws_from_seed(3)
    pairs = [DragPair(Point(8, 8), Point(16, 12))]
    movable = np.zeros((32, 32), bool)
    movable[:16, :20] = True
    s = DragSession(tiny_generator, ws, pairs, mask=movable, config=DragConfig(max_steps=3, stop_distance=0.0))
    r = s.step()
    assert r.loss_fix is not None and r.loss_fix == pytest.approx(0.0, abs=1e-7)
    # All-movable masks add no term, as in the official loop.
    s2 = DragSession(tiny_generator, ws, pairs, mask=np.ones((32, 32), bool), config=DragConfig(max_steps=1))
    assert s2.step().loss_fix is None
    with pytest.raises(ValueError):
        DragSession(tiny_generator, ws, pairs, mask=np.ones((8, 8), bool))


def test_handles_outside_the_image_are_refused(tiny_generator):
    with pytest.raises(ValueError):
        DragSession(tiny_generator, tiny_generator.ws_from_seed(0), [DragPair(Point(40, 3), Point(5, 5))])


def test_handles_within_one_pixel_with_a_tighter_stop_take_no_step(tiny_generator):
    ws = tiny_generator.ws_from_seed(0)
    s = DragSession(tiny_generator, ws, [DragPair(Point(10, 10), Point(11, 10))],
                    config=DragConfig(max_steps=2, stop_distance=0.0))
    results = list(s.steps())
    assert len(results) == 2 and not results[-1].converged
    torch.testing.assert_close(s.ws, ws)
