"""GAN inversion (engine.invert) on tiny random generators, and on a StyleGAN3 fixture where present."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from engine import Inversion, InvertConfig, UserError, to_uint8
from engine.invert import (
    InversionError,
    reconstruction_loss,
    ssim,
    ssim_reference,
)
from tests.conftest import fixture_path, make_tiny_generator

# Short phases: the tiny generator takes a few ms a step.
QUICK = dict(preview_every=0, w_steps=4, wplus_steps=4, tune_steps=4, start_candidates=0, locality_samples=2)


def drawn(G, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    ws = G.ws_from_seed(seed)
    return G.render(ws), ws


def state_copy(G) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in G.state_dict().items()}


def assert_state_equal(G, before: dict[str, torch.Tensor]) -> None:
    after = G.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k


def test_psnr_rises_over_the_steps(tiny_generator):
    target, _ = drawn(tiny_generator, 5)
    steps = list(Inversion(tiny_generator, target, InvertConfig(**{**QUICK, "w_steps": 30, "wplus_steps": 30,
                                                                     "tune": False})).steps())
    w = [s.psnr for s in steps if s.phase == "w"]
    plus = [s.psnr for s in steps if s.phase == "w+"]
    assert len(w) == 30 and len(plus) == 30
    assert max(w[-5:]) > w[0] + 2.0
    assert max(plus[-5:]) > max(w) + 1.0


def test_a_drawn_image_is_recovered(tiny_generator):
    """From near the latent that drew it (a random 32 px network is too rugged to search from its
    mean in a unit test), the W phase finds the latent and the image again."""
    G = tiny_generator
    for seed in (2, 3):
        target, ws = drawn(G, seed)
        start = ws[:, 0] + 0.15 * torch.randn(ws[:, 0].shape, generator=torch.Generator().manual_seed(seed))
        cfg = InvertConfig(**{**QUICK, "w_steps": 60, "wplus_steps": 0, "tune": False, "w_lr": 0.1, "w_noise": 0.0})
        result = Inversion(G, target, cfg, start=start).run()
        assert result.psnr > 38.0
        assert float((result.ws - ws).norm() / ws.norm()) < 0.1


def test_cancel_stops_after_the_current_step(tiny_generator):
    target, _ = drawn(tiny_generator, 1)
    inv = Inversion(tiny_generator, target, InvertConfig(**{**QUICK, "w_steps": 50}))
    seen = []
    for s in inv.steps():
        seen.append(s)
        if len(seen) == 3:
            inv.cancel()
    result = inv.result()
    assert len(seen) == 3 and result.steps == 3 and result.cancelled
    assert result.tuned_state is None and result.image.shape == (32, 32, 3)


def test_cancel_from_another_thread(tiny_generator):
    target, _ = drawn(tiny_generator, 1)
    inv = Inversion(tiny_generator, target, InvertConfig(**{**QUICK, "w_steps": 10_000}))
    first = threading.Event()
    done: list[int] = []

    def work() -> None:
        n = 0
        for _ in inv.steps():
            n += 1
            first.set()
        done.append(n)

    worker = threading.Thread(target=work)
    worker.start()
    assert first.wait(30)
    inv.cancel()
    worker.join(30)
    assert not worker.is_alive() and done and done[0] < 10_000
    assert inv.result().cancelled


def test_step_limits_per_phase(tiny_generator):
    target, _ = drawn(tiny_generator, 1)
    cfg = InvertConfig(**{**QUICK, "start_candidates": 10, "w_steps": 3, "wplus_steps": 5, "tune_steps": 2,
                          "preview_every": 2})
    steps = list(Inversion(tiny_generator, target, cfg).steps())
    counts = {p: sum(s.phase == p for s in steps) for p in ("start", "w", "w+", "tune")}
    assert counts == {"start": 2, "w": 3, "w+": 5, "tune": 2}  # 11 candidates in batches of 8
    previews = [(s.phase, s.step) for s in steps if s.image is not None]
    assert ("w", 0) in previews and ("w", 2) in previews and ("w", 1) not in previews
    assert all(s.image.shape == (32, 32, 3) and s.image.dtype == np.uint8 for s in steps if s.image is not None)


def test_target_psnr_ends_the_inversion(tiny_generator):
    target, _ = drawn(tiny_generator, 1)
    inv = Inversion(tiny_generator, target, InvertConfig(**{**QUICK, "w_steps": 20, "target_psnr": 1.0}))
    steps = list(inv.steps())
    assert [(s.phase, s.step) for s in steps] == [("w", 0)]
    assert inv.result().tuned_state is None


def test_patience_ends_a_phase_that_stalls(tiny_generator):
    target, _ = drawn(tiny_generator, 1)
    # A zero learning rate and no noise on w: the loss never improves.
    cfg = InvertConfig(**{**QUICK, "w_steps": 50, "w_lr": 0.0, "w_noise": 0.0, "patience": 4, "tune": False})
    steps = list(Inversion(tiny_generator, target, cfg).steps())
    assert sum(s.phase == "w" for s in steps) == 5  # the first sets the best, four more without gain
    assert sum(s.phase == "w+" for s in steps) == 4


def test_tuning_leaves_the_generator_alone_and_keeps_locality():
    G = make_tiny_generator(seed=1)
    before = state_copy(G)
    target, _ = drawn(make_tiny_generator(seed=2), 3)  # another network's image: W+ cannot reach it
    pivot = Inversion(G, target, InvertConfig(**{**QUICK, "w_steps": 10, "wplus_steps": 10, "tune": False})).run()
    base = {**QUICK, "w_steps": 0, "wplus_steps": 0, "tune_steps": 30, "tune_lr": 3e-3, "locality_samples": 4}
    local = Inversion(G, target, InvertConfig(**base), start=pivot.ws).run()
    free = Inversion(G, target, InvertConfig(**{**base, "locality_weight": 0.0, "edit_weight": 0.0}),
                     start=pivot.ws).run()
    assert_state_equal(G, before)
    assert local.tuned_state and all(k.startswith("synthesis.") for k in local.tuned_state)
    assert local.psnr > pivot.psnr + 1.0
    # The tuned copy draws the result; the caller's generator still draws what it drew.
    tuned = local.apply_to(G)
    with torch.no_grad():
        image = tuned.synthesis(local.ws, fused=False).image
    np.testing.assert_array_equal(to_uint8(image), local.image)
    assert_state_equal(G, before)

    # Faces far from the pivot: the locality term keeps them closer to the original's.
    ws = G.mapping(torch.randn([6, 32], generator=torch.Generator().manual_seed(9)), None)
    far = local.ws.lerp(ws, 0.7)

    def error(result) -> float:
        with torch.no_grad():
            return float((result.apply_to(G).synthesis(far).image - G.synthesis(far).image).square().mean())

    assert error(local) < 0.5 * error(free)


def test_the_edit_term_keeps_the_generators_answer_to_a_small_change_of_latent():
    """Near the pivot the tuned generator must change its image as the untuned one does (the
    drag's moves): with the edit term the change of image differs less from the original's."""
    G = make_tiny_generator(seed=1)
    target, _ = drawn(make_tiny_generator(seed=2), 3)
    pivot = Inversion(G, target, InvertConfig(**{**QUICK, "w_steps": 10, "tune": False})).run()
    base = {**QUICK, "w_steps": 0, "wplus_steps": 0, "tune_steps": 30, "tune_lr": 3e-3, "locality_samples": 4,
            "locality_weight": 0.0}
    kept = Inversion(G, target, InvertConfig(**{**base, "edit_weight": 10.0}), start=pivot.ws).run()
    free = Inversion(G, target, InvertConfig(**{**base, "edit_weight": 0.0}), start=pivot.ws).run()
    # Latents the tuning never saw: the first 6 rows a tenth of the way toward other random w.
    ws = G.mapping(torch.randn([6, 32], generator=torch.Generator().manual_seed(11)), None)
    near = kept.ws.repeat(6, 1, 1)
    near[:, :6] = kept.ws[:, :6].lerp(ws[:, :6], 0.12)

    def error(result) -> float:
        with torch.no_grad():
            T = result.apply_to(G)
            change = T.synthesis(near).image - T.synthesis(result.ws).image
            wanted = G.synthesis(near).image - G.synthesis(result.ws).image
            return float((change - wanted).square().mean())

    assert kept.psnr > pivot.psnr + 1.0
    assert error(kept) < 0.7 * error(free)
    with pytest.raises(ValueError, match="edit_shares"):
        InvertConfig(edit_shares=(0.5, 0.1)).check()


def test_noise_is_optimised_on_a_copy(tiny_generator):
    G = tiny_generator
    before = state_copy(G)
    target, _ = drawn(G, 4)
    result = Inversion(G, target, InvertConfig(**{**QUICK, "tune": False})).run()
    assert_state_equal(G, before)
    assert result.noise is not None and result.tuned_state is None
    assert set(result.noise) == {k for k in before if k.endswith("noise_const")}
    for v in result.noise.values():  # kept white: zero mean, unit variance
        assert abs(float(v.mean())) < 1e-4 and abs(float(v.square().mean()) - 1) < 1e-3
    assert any(not torch.equal(v, before[k]) for k, v in result.noise.items())
    no_noise = Inversion(G, target, InvertConfig(**{**QUICK, "tune": False, "noise_weight": 0.0})).run()
    assert no_noise.noise is None and no_noise.apply_to(G) is G


def test_a_phase_never_leaves_the_image_worse(tiny_generator):
    target, _ = drawn(tiny_generator, 6)
    # A learning rate far too high for W+: the phase keeps the best state it saw, at worst its start.
    result = Inversion(tiny_generator, target, InvertConfig(**{**QUICK, "wplus_lr": 5.0, "tune": False})).run()
    assert result.psnr_by_phase["w+"] >= result.psnr_by_phase["w"] - 1e-6


def test_stylegan3_fixture_inverts():
    from engine import load_generator

    G = load_generator(fixture_path("sg3_t_64.pkl"), device="cpu")
    before = state_copy(G)
    target, _ = drawn(G, 3)
    # One step a phase: a StyleGAN3 step is slow on a CPU, and each phase's own code is what is tested.
    cfg = InvertConfig(**{**QUICK, "w_steps": 1, "wplus_steps": 1, "tune_steps": 1, "locality_samples": 1})
    result = Inversion(G, target, cfg).run()
    assert tuple(result.ws.shape) == (1, G.num_ws, G.cfg.w_dim)
    assert result.noise is None and np.isfinite(result.psnr) and result.steps == 3
    assert_state_equal(G, before)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((16, 16, 3), np.uint8), "16x16"),
    (np.zeros((32, 32), np.uint8), "colour channels"),
    (np.zeros((32, 32, 3), np.float64), "float64"),
    (torch.zeros(1, 3, 32, 32) + 3.0, "[-1, 1]"),
    (torch.full((3, 32, 32), float("nan")), "not finite"),
    (torch.zeros(1, 3, 16, 16), "16x16"),
    (torch.zeros(32, 32, 3, dtype=torch.int32), "int32"),
    ([[0, 0, 0]], "list"),
])
def test_bad_images_are_one_sentence(tiny_generator, bad, words):
    with pytest.raises(UserError) as err:
        Inversion(tiny_generator, bad)
    assert isinstance(err.value, InversionError)
    message = str(err.value)
    assert words in message and message.endswith(".") and "\n" not in message and message.count(". ") == 0


def test_bad_start_and_config(tiny_generator):
    target, _ = drawn(tiny_generator, 1)
    with pytest.raises(InversionError, match="starting latent"):
        Inversion(tiny_generator, target, start=torch.zeros(1, 3, 7))
    with pytest.raises(ValueError, match="tune_lr"):
        Inversion(tiny_generator, target, InvertConfig(tune_lr=-1.0))
    with pytest.raises(ValueError, match="not an inversion setting"):
        InvertConfig.from_dict({"steps": 3})
    with pytest.raises(ValueError, match="at least one"):
        InvertConfig(l1=0, l2=0, gradient=0, ssim=0).check()


def test_start_accepts_w_and_w_plus(tiny_generator):
    target, ws = drawn(tiny_generator, 2)
    w_plus = ws + 0.01 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(0))
    # A w+ whose rows differ starts W+ directly; a single w starts the W phase from it.
    cfg = InvertConfig(**{**QUICK, "w_steps": 1, "wplus_steps": 1, "tune_steps": 1, "locality_samples": 1})
    phases = {s.phase for s in Inversion(tiny_generator, target, cfg, start=w_plus).steps()}
    assert phases == {"w+", "tune"}
    phases = {s.phase for s in Inversion(tiny_generator, target, cfg, start=ws[:, 0]).steps()}
    assert phases == {"w", "w+", "tune"}


def test_ssim_fast_path_matches_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 40, generator=g) * 2 - 1
    y = (x[:1] + 0.2 * torch.randn(1, 3, 40, 40, generator=g)).clamp(-1, 1)
    torch.testing.assert_close(ssim(x, y), ssim_reference(x, y), rtol=0, atol=1e-5)
    assert float(ssim(y, y)[0]) == pytest.approx(1.0, abs=1e-5)
    small = x[:, :, :8, :8]  # smaller than the window (a 4 or 8 px model): the window shrinks to fit
    torch.testing.assert_close(ssim(small, y[:, :, :8, :8]), ssim_reference(small, y[:, :, :8, :8]), rtol=0, atol=1e-5)


def test_loss_is_per_sample_and_forgives_overshoot_of_a_saturated_target():
    g = torch.Generator().manual_seed(1)
    target = (torch.rand(1, 3, 32, 32, generator=g) * 2 - 1)
    target[:, :, :8] = 1.0
    images = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    cfg = InvertConfig(l1=1.0, l2=1.0, gradient=0.5, ssim=0.1, scales=3)
    batch = reconstruction_loss(images, target, cfg)
    one_by_one = torch.cat([reconstruction_loss(images[i : i + 1], target, cfg) for i in range(3)])
    torch.testing.assert_close(batch, one_by_one, rtol=1e-5, atol=1e-6)
    exact = target.clone()
    brighter = target.clone()
    brighter[:, :, :8] = 1.7  # brighter than a white target: displayed the same
    assert float(reconstruction_loss(brighter, target, cfg)[0]) == pytest.approx(
        float(reconstruction_loss(exact, target, cfg)[0]), abs=1e-6)


def test_tuning_batch_matches_two_passes(tiny_generator):
    target, ws = drawn(tiny_generator, 1)
    inv = Inversion(tiny_generator, target, InvertConfig(**QUICK))
    other = tiny_generator.ws_from_seed(8)
    fast = inv._tune_images(tiny_generator, ws, other)
    slow = inv._tune_images_reference(tiny_generator, ws, other)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_fused_adam_matches_the_plain_loop(tiny_generator):
    from engine.invert import adam

    g = torch.Generator().manual_seed(3)
    start = [torch.randn(64, 32, 3, 3, generator=g), torch.randn(32, generator=g)]
    grads = [[torch.randn(t.shape, generator=g) for t in start] for _ in range(5)]
    results = []
    for fused in (True, False):
        params = [t.clone().requires_grad_(True) for t in start]
        opt = adam(params, 1e-2, fused=fused)
        for step in grads:
            for p, grad in zip(params, step, strict=True):
                p.grad = grad.clone()
            opt.step()
        results.append(params)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-6)
    # The phases run the same with either: the fused update is the default and the plain one its reference.
    target, _ = drawn(tiny_generator, 1)
    runs = [Inversion(tiny_generator, target, InvertConfig(**{**QUICK, "fused_adam": fused})).run()
            for fused in (True, False)]
    torch.testing.assert_close(runs[0].ws, runs[1].ws, rtol=0, atol=1e-4)


def test_a_session_runs_once_and_its_result_fits_only_its_model(tiny_generator):
    target, _ = drawn(tiny_generator, 1)
    inv = Inversion(tiny_generator, target, InvertConfig(**QUICK))
    first = list(inv.steps())
    assert first and list(inv.steps()) == []
    result = inv.result()
    assert result.steps == len(first)
    other = make_tiny_generator(channel_base=1024)  # the same layers, other widths
    with pytest.raises(InversionError, match="another model"):
        result.apply_to(other)
