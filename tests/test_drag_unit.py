"""Unit tests of the drag loop's parts on synthetic data and a tiny random generator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import DragConfig, DragPair, DragSession, Point
from engine.drag import motion_loss, track_points
from tests.conftest import assert_same_drag


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


def test_tighter_stop_pulls_handles_within_a_pixel(tiny_generator):
    ws = tiny_generator.ws_from_seed(0)
    near = [DragPair(Point(10, 10), Point(10.8, 10))]  # 0.8 px away
    # The official rule: within 1 px a handle is converged and left alone.
    official = DragSession(tiny_generator, ws, near, config=DragConfig(max_steps=1)).step()
    assert official.converged and official.loss_motion == 0.0
    # A stop distance under 1 px keeps pulling it, by the 0.8 px that remain rather than a unit step.
    tight = DragSession(tiny_generator, ws, near, config=DragConfig(max_steps=1, stop_distance=0.5)).step()
    assert not tight.converged and tight.loss_motion > 0.0
    feat = torch.randn(1, 4, 20, 20)
    short = motion_loss(feat, (10, 10), Point(10.8, 10.0), r1=1)
    # The disc of radius 1 on the official grid (pixel i at i * 20 / 19) holds rows and columns 9 and 10.
    f = feat[0]
    disc = [(i, j) for i in (9, 10) for j in (9, 10)]
    expected = torch.stack([f[:, i, j] - (0.2 * f[:, i, j] + 0.8 * f[:, i, j + 1]) for i, j in disc]).abs().mean()
    assert float(short) == pytest.approx(float(expected), rel=1e-4)


def test_a_handle_between_pixels_keeps_its_offset(tiny_generator):
    ws = tiny_generator.ws_from_seed(0)
    # Tracked from pixel (10, 10), its target shifted by the same 0.4 px: 0.8 px to go, not 1.2.
    s = DragSession(tiny_generator, ws, [DragPair(Point(10.4, 10.0), Point(11.2, 10.0))], config=DragConfig(max_steps=3))
    first = s.step()
    assert first.converged and first.distances == [pytest.approx(0.8)]
    assert first.points == [Point(10.4, 10.0)] and s.result().targets == [Point(11.2, 10.0)]
    # A longer drag reports where the handle is on the image's own scale, offset included.
    s = DragSession(tiny_generator, ws, [DragPair(Point(10.4, 10.6), Point(16.4, 10.6))],
                    config=DragConfig(max_steps=2, stop_distance=0.0))
    for r in s.steps():
        (p,) = r.points
        assert (p.x - 0.4) == pytest.approx(round(p.x - 0.4)) and (p.y + 0.4) == pytest.approx(round(p.y + 0.4))
        assert r.distances[0] == pytest.approx(math.hypot(16.4 - p.x, 10.6 - p.y))


def test_model_drag_settings_sit_between_the_papers_and_the_callers(tiny_generator):
    assert DragConfig.for_generator(tiny_generator) == DragConfig()  # no settings of its own: the paper's
    tiny_generator.cfg.drag = {"lr": 0.006, "stop_distance": 0.75}
    try:
        cfg = DragConfig.for_generator(tiny_generator, max_steps=9, lr=None)
        assert (cfg.lr, cfg.stop_distance, cfg.max_steps, cfg.r1) == (0.006, 0.75, 9, DragConfig().r1)
        assert DragConfig.for_generator(tiny_generator, lr=0.001).lr == 0.001
        ws = tiny_generator.ws_from_seed(0)
        assert DragSession(tiny_generator, ws, [DragPair(Point(8, 8), Point(12, 8))]).config.lr == 0.006
        tiny_generator.cfg.drag = {"learning_rate": 0.01}
        with pytest.raises(ValueError, match="'learning_rate', which is not a drag option; fix the model's JSON"):
            DragConfig.for_generator(tiny_generator)
    finally:
        tiny_generator.cfg.drag = {}


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


def test_previews_at_pane_size_are_the_skip_images_of_a_smaller_block(tiny_generator):
    ws = tiny_generator.ws_from_seed(1)
    net = tiny_generator.synthesis
    pair = [DragPair(Point(8, 8), Point(24, 20))]
    cfg = DragConfig(max_steps=2, preview_every=1, stop_distance=0.0, preview_size=10)
    s = DragSession(tiny_generator, ws, pair, config=cfg)
    first = s.step()
    # The smallest block at least 10 px wide is the 16 px one.
    assert first.image is not None and first.image.shape == (16, 16, 3)
    # Reference: the blocks run one by one with their RGB branch, the running image at 16 px.
    with torch.no_grad():
        x = img = None
        w_idx = 0
        for block in net.blocks():
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), fused=False)
            w_idx += block.num_conv
            if block.resolution == 16:
                break
    expected = ((img[0].clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(first.image, expected)
    # The result is always full size; a size at or above the image's renders previews full size.
    assert s.result().image.shape == (32, 32, 3)
    full = DragSession(tiny_generator, ws, pair, config=DragConfig(max_steps=1, preview_every=1, preview_size=32))
    assert full.step().image.shape == (32, 32, 3)


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



def test_a_failed_drag_carries_a_verdict_and_a_converged_one_none(tiny_generator) -> None:
    from engine.drag import DragConfig, DragSession, drag_verdict
    from engine.types import DragPair, Point

    assert drag_verdict(True, False, 4.0, 0.5, 1.0) is None
    assert drag_verdict(False, True, 4.0, 3.0, 1.0) is None  # stopped by the user: not a failure
    assert drag_verdict(False, False, 4.0, 1.5, 1.0) is None  # close: within twice the stop distance
    assert drag_verdict(False, False, 4.0, 2.9, 1.0) == "did not converge: 2.9 px left of a 4.0 px move"
    assert "farther than the 2.5 px they started" in drag_verdict(False, False, 2.5, 2.9, 2.0)
    ws = tiny_generator.ws_from_seed(0)
    session = DragSession(tiny_generator, ws, [DragPair(Point(8, 8), Point(24, 24))],
                          config=DragConfig.for_generator(tiny_generator, max_steps=1))
    result = session.run()
    assert not result.converged and result.start_distance == pytest.approx(16 * 2**0.5)
    assert result.verdict is not None and result.verdict.startswith("did not converge")


@pytest.mark.parametrize("with_mask", [False, True])
def test_a_finer_grid_tracks_to_sub_pixels_and_its_fast_path_follows_the_reference(tiny_generator,
                                                                                 with_mask: bool) -> None:
    from engine.drag import DragConfig, DragSession
    from engine.types import DragPair, Point

    ws = tiny_generator.ws_from_seed(1)
    pairs = [DragPair(Point(10.3, 12.0), Point(14.3, 12.0)), DragPair(Point(22.0, 20.0), Point(20.0, 23.0))]
    mask = None
    if with_mask:
        mask = np.zeros((32, 32), bool)
        mask[4:28, 4:30] = True
    runs = {}
    for windowed in (True, False):
        cfg = DragConfig(max_steps=8, preview_every=0, stop_distance=0.0, windowed=windowed, grid_scale=2, lr=0.01)
        s = DragSession(tiny_generator, ws, pairs, mask=mask, config=cfg)
        assert s.grid == 64 and (s.r1, s.r2) == (2, 2)  # the 32 px radii (1 px) in grid pixels
        first = s.current_points()
        assert first == [p.handle for p in pairs]  # reported in image pixels, offsets kept
        runs[windowed] = [(r.points, r.loss) for r in s.steps()], s.ws.detach()
    assert_same_drag(runs[True], runs[False])
    traj_w = runs[True][0]
    # Tracked points land on the half-pixel grid (plus the handles' own offsets).
    fractions = {round((p.x - pairs[i].handle.x) * 2, 6) % 1 for pts, _ in traj_w for i, p in enumerate(pts)}
    assert fractions == {0.0}
    assert any(p != pairs[i].handle for pts, _ in traj_w for i, p in enumerate(pts))
    with pytest.raises(ValueError, match="grid_scale"):
        DragSession(tiny_generator, ws, pairs, config=DragConfig(grid_scale=0))


def test_tracking_on_another_block_follows_the_reference_path(tiny_generator) -> None:
    from engine.drag import DragConfig, DragSession
    from engine.types import DragPair, Point

    ws = tiny_generator.ws_from_seed(2)
    pairs = [DragPair(Point(10, 12), Point(15, 12)), DragPair(Point(22, 20), Point(20, 24))]
    runs = {}
    for windowed in (True, False):
        cfg = DragConfig(max_steps=6, preview_every=0, stop_distance=0.0, windowed=windowed, tracking_block=2,
                         lr=0.01)
        s = DragSession(tiny_generator, ws, pairs, config=cfg)
        assert s.tracking_blocks == (2,) and s.feature_block == 3
        runs[windowed] = [(r.points, r.loss) for r in s.steps()], s.ws.detach()
    assert_same_drag(runs[True], runs[False])
    # The same block for both is the paper's loop.
    same = DragSession(tiny_generator, ws, pairs, config=DragConfig(max_steps=3, preview_every=0, tracking_block=3))
    plain = DragSession(tiny_generator, ws, pairs, config=DragConfig(max_steps=3, preview_every=0))
    assert [r.points for r in same.steps()] == [r.points for r in plain.steps()]
    with pytest.raises(ValueError, match="tracking_block"):
        DragSession(tiny_generator, ws, pairs, config=DragConfig(tracking_block=9))
    for bad in ([], [2, 2], [2, 9], True):
        with pytest.raises(ValueError, match="tracking_block"):
            DragSession(tiny_generator, ws, pairs, config=DragConfig(tracking_block=bad))


def _both_paths(generator, seed: int, **settings) -> tuple[dict, dict, list]:
    """The same six-step drag of two handles on the windowed and on the reference path: per path,
    its (steps, ws) and its session, and the pairs dragged."""
    from engine.drag import DragConfig, DragSession
    from engine.types import DragPair, Point

    ws = generator.ws_from_seed(seed)
    pairs = [DragPair(Point(10, 12), Point(15, 12)), DragPair(Point(22, 20), Point(20, 24))]
    runs, sessions = {}, {}
    for windowed in (True, False):
        cfg = DragConfig(max_steps=6, preview_every=0, stop_distance=0.0, windowed=windowed, **settings)
        sessions[windowed] = s = DragSession(generator, ws, pairs, config=cfg)
        runs[windowed] = [(r.points, r.loss) for r in s.steps()], s.ws.detach()
    return runs, sessions, pairs


def test_tracking_on_several_blocks_sums_relative_distances(tiny_generator):
    """Tracking on blocks [2, 3]: windowed equals the reference path, and the tracker picks the
    candidate with the least summed relative distance (checked against a brute-force search)."""
    import torch
    import torch.nn.functional as F

    from engine.drag import track_points_blocks

    runs, _, _ = _both_paths(tiny_generator, 4, tracking_block=[2, 3], lr=0.01)
    assert_same_drag(runs[True], runs[False])
    ws = tiny_generator.ws_from_seed(4)

    res = tiny_generator.img_resolution
    out = tiny_generator.synthesis(ws, stop_after=3)
    maps = [F.interpolate(out.features[b], [res, res], mode="bilinear", align_corners=False) for b in (2, 3)]
    x, y = 12, 14
    shifted = [m.roll(shifts=(1, -2), dims=(2, 3)) for m in maps]  # the content moves 2 left, 1 down
    refs = [m[0, :, y, x] for m in maps]
    r2 = 4
    got = track_points_blocks([(m, (0, 0)) for m in shifted], refs, (x, y), r2, (res, res))
    best, best_d = None, float("inf")
    for yy in range(y - r2, y + r2 + 1):
        for xx in range(x - r2, x + r2 + 1):
            d = sum(float(torch.linalg.norm(m[0, :, yy, xx] - r) / torch.linalg.norm(r)) for m, r in zip(shifted, refs))
            if d < best_d - 1e-9:
                best, best_d = (xx, yy), d
    assert got == best == (x - 2, y + 1)


def test_tracking_against_the_last_step_follows_a_changing_part(tiny_generator):
    """tracking_recent = w: a candidate's distance is (1 - w) to the start feature plus w to the
    feature the handle had at the last step; windowed equals the reference path, and 0 is the paper."""
    import torch

    from engine.drag import DragConfig, DragSession, track_points_blocks

    runs, sessions, pairs = _both_paths(tiny_generator, 5, tracking_recent=0.5, lr=0.01)
    for s in sessions.values():
        assert s._recent is not None and s._refs is not None
        # The last step's reference is the feature at the handle's last tracked point, not the start's.
        assert not all(torch.equal(a, b) for a, b in zip(s._recent, s._refs))
    assert_same_drag(runs[True], runs[False])
    ws = tiny_generator.ws_from_seed(5)
    paper = DragSession(tiny_generator, ws, pairs, config=DragConfig(max_steps=4, preview_every=0))
    zero = DragSession(tiny_generator, ws, pairs, config=DragConfig(max_steps=4, preview_every=0, tracking_recent=0.0))
    assert [r.points for r in zero.steps()] == [r.points for r in paper.steps()]
    with pytest.raises(ValueError, match="tracking_recent"):
        DragSession(tiny_generator, ws, pairs, config=DragConfig(tracking_recent=1.5))

    # The weights choose between two references that disagree: the start's look at (3, 3) and
    # the last step's at (6, 5).
    feat = torch.zeros(1, 2, 10, 10)
    feat[0, 0, 3, 3] = 1.0
    feat[0, 1, 5, 6] = 1.0
    start, last = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    views = [(feat, (0, 0))] * 2
    assert track_points_blocks(views, [start, last], (4, 4), 3, (10, 10), weights=[0.7, 0.3]) == (3, 3)
    assert track_points_blocks(views, [start, last], (4, 4), 3, (10, 10), weights=[0.3, 0.7]) == (6, 5)
    assert track_points_blocks(views, [start, last], (4, 4), 3, (10, 10), weights=[0.0, 1.0]) == (6, 5)


def test_tracking_within_a_band_along_the_move(tiny_generator):
    """tracking_line = b: only candidates within b px of the line through the handle's start and
    its target count; a better match off the band loses to the best one on it. Windowed equals
    the reference path, tracked points stay in the band, and None is the paper."""
    import torch

    from engine.drag import DragConfig, DragSession, line_band_penalty, track_points_blocks

    # A vertical move from (4, 2) to (4, 8): the exact match at (7, 5) lies 3 px off the line,
    # a weaker one at (4, 6) lies on it.
    feat = torch.zeros(1, 1, 12, 12)
    feat[0, 0, 5, 7] = 1.0
    feat[0, 0, 6, 4] = 0.8
    ref = torch.tensor([1.0])
    views = [(feat, (0, 0))]
    assert track_points_blocks(views, [ref], (4, 4), 4, (12, 12)) == (7, 5)
    assert track_points_blocks(views, [ref], (4, 4), 4, (12, 12), line=((4.0, 2.0), (4.0, 8.0), 0.5)) == (4, 6)
    assert track_points_blocks(views, [ref], (4, 4), 4, (12, 12), line=((4.0, 2.0), (4.0, 8.0), 3.0)) == (7, 5)
    # A window wholly off the band picks its pixel nearest the line, whatever the features say.
    pen = line_band_penalty(((0.0, 0.0), (0.0, 10.0), 0.5), (3, 0), (4, 4), torch.device("cpu"))
    assert int(torch.argmin(pen[0])) == 0 and float(pen.min()) > 1e5
    # A diagonal line: the band's distance is perpendicular to it.
    pen = line_band_penalty(((0.0, 0.0), (4.0, 4.0), 0.8), (0, 0), (5, 5), torch.device("cpu"))
    assert float(pen[2, 2]) == 0.0 and float(pen[1, 2]) == 0.0 and float(pen[0, 2]) > 1e5

    runs, _, pairs = _both_paths(tiny_generator, 6, tracking_line=0.5, lr=0.02)
    ws = tiny_generator.ws_from_seed(6)
    for steps, _ in runs.values():
        for points, _ in steps:
            for p, pair in zip(points, pairs):
                (sx, sy), (tx, ty) = (pair.handle.x, pair.handle.y), (pair.target.x, pair.target.y)
                off = abs((p.x - sx) * (ty - sy) - (p.y - sy) * (tx - sx)) / ((tx - sx) ** 2 + (ty - sy) ** 2) ** 0.5
                assert off <= 0.5 + 1e-6
    assert_same_drag(runs[True], runs[False])
    paper = DragSession(tiny_generator, ws, pairs, config=DragConfig(max_steps=4, preview_every=0))
    none = DragSession(tiny_generator, ws, pairs, config=DragConfig(max_steps=4, preview_every=0, tracking_line=None))
    assert [r.points for r in none.steps()] == [r.points for r in paper.steps()]
    with pytest.raises(ValueError, match="tracking_line"):
        DragConfig(tracking_line=-1.0).check()


def test_many_handle_motion_loss_is_the_sum_of_the_plain_one():
    from engine.drag import motion_loss, motion_loss_many

    torch.manual_seed(3)
    base = torch.randn(1, 6, 40, 40)
    points = [(5, 5), (20, 31), (38, 2), (21, 30)]
    targets = [Point(9, 7.5), Point(20, 25), Point(30, 2), Point(21.4, 30.2)]
    grads = []
    for many in (False, True):
        feat = base.clone().requires_grad_(True)
        if many:
            loss = motion_loss_many(feat, points, targets, r1=3, step=1.0)
        else:
            loss = sum(motion_loss(feat, p, t, 3) for p, t in zip(points, targets))
        loss.backward()
        grads.append((float(loss.detach()), feat.grad.clone()))
    assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-6)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-5, atol=1e-7)


def test_a_clearly_dense_drag_plans_no_windows_between_rechecks(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import drag as drag_module
    from tests.conftest import make_tiny_generator

    G = make_tiny_generator()
    rng = np.random.default_rng(3)
    pairs = [DragPair(Point(float(x), float(y)), Point(float(x) + 2, float(y)))
             for x, y in rng.uniform(6, 26, size=(20, 2))]
    cfg = DragConfig.for_generator(G, max_steps=25, preview_every=0, stop_distance=0.0)
    session = DragSession(G, G.ws_from_seed(0), pairs, config=cfg)
    planned: list[int] = []
    plan = drag_module.DragSession._window_boxes

    def counting(self: DragSession, block: int, margin: int) -> object:
        if block == self.feature_block and margin == self.r2 + self.r1 + self.k + 1:
            planned.append(self.step_index)
        return plan(self, block, margin)

    monkeypatch.setattr(drag_module.DragSession, "_window_boxes", counting)
    dense_path: list[bool] = []
    for _ in range(25):
        session.step()
        dense_path.append(session._dense_now)
    # 20 windows cover the 32 px map: dense every step, the windows planned once per recheck.
    assert all(dense_path)
    assert planned == list(range(0, 25, drag_module.DENSE_RECHECK_STEPS))


def test_two_handles_at_512_take_windows_from_the_first_step_without_timing_the_dense_path() -> None:
    """The dense path's first steps cost about a second each at 512 px; where the windows' estimate
    is far below the map's, no step is spent timing it."""
    from engine import Generator, GeneratorConfig, MappingConfig

    torch.manual_seed(0)
    config = GeneratorConfig(z_dim=512, w_dim=512, img_resolution=512, channel_base=16384, channel_max=512,
                             num_fp16_res=4, conv_clamp=256, mapping=MappingConfig(num_layers=8))
    G = Generator(config).eval().requires_grad_(False)
    pairs = [DragPair(Point(250, 330), Point(250, 350)), DragPair(Point(250, 300), Point(250, 290))]
    session = DragSession(G, G.ws_from_seed(0), pairs, config=DragConfig.for_generator(G, max_steps=1))
    _, fboxes = session._window_boxes(session.feature_block, session.r2 + session.r1 + session.k + 1)
    assert session._dense_this_step(fboxes) is False
    assert session._timing is None
