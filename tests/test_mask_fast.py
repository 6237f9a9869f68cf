"""The chunked mask term (engine.resize) agrees with the plain F.interpolate + L1 formula."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import DragConfig, DragPair, DragSession, Point
from engine.resize import MaskedUpsampleL1, masked_upsampled_l1_reference
from tests.conftest import make_tiny_generator


def fast_and_reference(feat0: torch.Tensor, diff: torch.Tensor, fixed: torch.Tensor, chunk: int):
    """(fast value, fast grad, reference value, reference grad), both gradients w.r.t. the native map F = F0 + D."""
    feat_ref = (feat0 + diff).requires_grad_(True)
    ref = masked_upsampled_l1_reference(feat_ref, feat0, fixed)
    ref.backward()
    feat_fast = (feat0 + diff).requires_grad_(True)
    fast = MaskedUpsampleL1(fixed, feat0.shape[-1], chunk=chunk)(feat_fast - feat0)
    fast.backward()
    return fast.detach(), feat_fast.grad, ref.detach(), feat_ref.grad


def smooth_map(c: int, r: int, g: torch.Generator) -> torch.Tensor:
    """Large same-sign regions and sign changes, like a drag's feature difference."""
    coarse = torch.randn(1, c, max(r // 4, 2), max(r // 4, 2), generator=g)
    return F.interpolate(coarse, [r, r], mode="bilinear", align_corners=False) + 0.1 * torch.randn(1, c, r, r, generator=g)


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_exact_on_dyadic_values(scale):
    """With values on a coarse dyadic grid every bilinear weight product is exact in float32 (the
    weights of a power-of-two factor are dyadic too), so signs and zeros agree exactly and only the
    summation order differs."""
    g = torch.Generator().manual_seed(scale)
    r, c = (12 if scale != 8 else 6), 5
    h = r * scale
    feat0 = torch.randint(-64, 64, (1, c, r, r), generator=g).float() / 8
    diff = torch.randint(-6, 7, (1, c, r, r), generator=g).float() / 8  # many exact zeros and ties
    diff[:, :, : r // 3] = diff[:, :, : r // 3].abs() + 0.125  # a block of one strict sign
    fixed = (torch.rand(h, h, generator=g) > 0.3).float()
    fixed[h // 3 : 2 * h // 3, h // 4 :] = 0
    v, gr, rv, rg = fast_and_reference(feat0, diff, fixed, chunk=2)
    torch.testing.assert_close(v, rv, rtol=1e-5, atol=0)
    torch.testing.assert_close(gr, rg, rtol=1e-5, atol=1e-5 * float(rg.abs().max()))


@pytest.mark.parametrize("scale,r,c", [(2, 16, 6), (3, 12, 5), (4, 32, 8)])
def test_matches_reference_on_float_maps(scale, r, c):
    g = torch.Generator().manual_seed(7)
    h = r * scale
    feat0 = torch.randn(1, c, r, r, generator=g)
    diff = smooth_map(c, r, g)
    fixed = torch.ones(h, h)
    fixed[h // 4 : 3 * h // 4, h // 4 : 3 * h // 4] = 0  # the benchmark's centre mask
    v, gr, rv, rg = fast_and_reference(feat0, diff, fixed, chunk=3)
    assert float(rv) > 0
    torch.testing.assert_close(v, rv, rtol=1e-5, atol=0)
    torch.testing.assert_close(gr, rg, rtol=1e-5, atol=1e-5 * float(rg.abs().max()))


def test_zero_difference_and_all_movable_cells():
    feat0 = torch.randn(1, 3, 8, 8)
    fixed = torch.zeros(32, 32)
    fixed[:4] = 1
    v, gr, rv, rg = fast_and_reference(feat0, torch.zeros_like(feat0), fixed, chunk=3)
    assert float(v) == 0.0 and float(rv) == 0.0
    assert not gr.any() and not rg.any()
    # Cells that hold no fixed pixel contribute nothing, whatever their values.
    diff = torch.randn(1, 3, 8, 8)
    v, gr, rv, rg = fast_and_reference(feat0, diff, fixed, chunk=3)
    torch.testing.assert_close(v, rv, rtol=1e-5, atol=0)
    torch.testing.assert_close(gr, rg, rtol=1e-5, atol=1e-5 * float(rg.abs().max()))
    assert not gr[0, :, 3:].any()  # rows below the fixed band's reach get no gradient


def test_sizes_that_do_not_divide_are_refused():
    with pytest.raises(ValueError):
        MaskedUpsampleL1(torch.ones(30, 30), 8)


@pytest.fixture(scope="module")
def tiny_64():
    """A small random StyleGAN2 at 64 px whose drag features (16 px) are up-sampled 4x."""
    return make_tiny_generator(resolution=64, channel_base=1024, feature_block=2, seed=1)


@pytest.mark.parametrize("feature_block", [2, 3])
def test_masked_drag_follows_the_reference_path(tiny_64, feature_block):
    ws = tiny_64.ws_from_seed(4)
    pairs = [DragPair(Point(20, 30), Point(34, 26)), DragPair(Point(45, 12), Point(40, 20))]
    movable = np.zeros((64, 64), bool)
    movable[5:45, 10:58] = True
    runs = {}
    for windowed in (True, False):
        cfg = DragConfig(max_steps=10, preview_every=0, stop_distance=0.0, windowed=windowed,
                         feature_block=feature_block)
        s = DragSession(tiny_64, ws, pairs, mask=movable, config=cfg)
        assert isinstance(s._mask_l1, MaskedUpsampleL1) == windowed  # the fast term on the windowed path only
        runs[windowed] = [(r.points, r.loss_motion, r.loss_fix) for r in s.steps()], s.ws.detach()
    (traj_fast, ws_fast), (traj_ref, ws_ref) = runs[True], runs[False]
    assert len(traj_fast) == len(traj_ref) == 10
    assert any(lf > 0 for _, _, lf in traj_ref[1:])  # the mask term is active
    # Adam turns float noise in near-zero gradient components into lr-sized moves, so the latents
    # drift apart slowly; the reference path drifts as far from itself when only the modulated
    # convolution's op order changes (fused_modconv), which sets these tolerances.
    for (pf, lmf, lff), (pr, lmr, lfr) in zip(traj_fast, traj_ref):
        assert pf == pr
        assert lmf == pytest.approx(lmr, rel=1e-3, abs=1e-6)
        assert lff == pytest.approx(lfr, rel=1e-3, abs=1e-7)
    torch.testing.assert_close(ws_fast, ws_ref, rtol=0, atol=5e-5)


def test_mask_term_every_k_steps_follows_the_reference_path_and_weighs_k_times(tiny_64, monkeypatch):
    """`mask_every`: the term (times k) on steps 0, k, 2k..., windows in between; the reference
    path does the same with its resized map."""
    import math

    monkeypatch.setattr("engine.drag.WINDOWS_SURELY_CHEAPER", math.inf)  # windows between mask steps
    ws = tiny_64.ws_from_seed(4)
    pairs = [DragPair(Point(20, 30), Point(34, 26))]
    movable = np.zeros((64, 64), bool)
    movable[5:45, 10:58] = True
    runs = {}
    for windowed in (True, False):
        cfg = DragConfig(max_steps=7, preview_every=0, stop_distance=0.0, windowed=windowed, mask_every=3)
        s = DragSession(tiny_64, ws, pairs, mask=movable, config=cfg)
        runs[windowed] = [(r.points, r.loss_motion, r.loss_fix) for r in s.steps()], s.ws.detach()
    (fast, ws_fast), (ref, ws_ref) = runs[True], runs[False]
    assert [lf is not None for _, _, lf in fast] == [True, False, False, True, False, False, True]
    for (pf, lmf, lff), (pr, lmr, lfr) in zip(fast, ref):
        assert pf == pr
        assert lmf == pytest.approx(lmr, rel=1e-3, abs=1e-6)
        assert (lff is None) == (lfr is None)
        if lff is not None:
            assert lff == pytest.approx(lfr, rel=1e-3, abs=1e-7)
    torch.testing.assert_close(ws_fast, ws_ref, rtol=0, atol=5e-5)
    # Weighed k times: on a mask step after the first, the loss is the motion term plus 3 x 20 x the term.
    s = DragSession(tiny_64, ws, pairs, mask=movable, config=DragConfig(max_steps=4, preview_every=0,
                                                                       stop_distance=0.0, mask_every=3))
    last = list(s.steps())[3]
    assert last.loss_fix is not None and last.loss_fix > 0
    assert last.loss == pytest.approx(last.loss_motion + 60.0 * last.loss_fix, rel=1e-5)


@pytest.mark.parametrize("windowed", [True, False])
def test_a_preview_at_the_feature_blocks_size_comes_from_the_steps_own_pass(tiny_64, windowed):
    ws = tiny_64.ws_from_seed(2)
    pairs = [DragPair(Point(20, 30), Point(30, 30))]
    movable = np.zeros((64, 64), bool)
    movable[10:50, 10:50] = True
    cfg = DragConfig(max_steps=3, preview_every=1, stop_distance=0.0, windowed=windowed, preview_size=16)
    s = DragSession(tiny_64, ws, pairs, mask=movable, config=cfg)
    assert s.preview_block() == s.feature_block == 2
    expected = s.render_preview()  # the 16 px image of the starting latent, by its own pass
    first = s.step()
    assert first.image is not None and first.image.shape == (16, 16, 3)
    np.testing.assert_array_equal(first.image, expected)
