"""The embedded generator's trainer: its world, resuming, and export."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.loading import load_generator
from faceworld.render import ATTRIBUTE_NAMES, SIGNED_ATTRIBUTES
from training.train_generator import FIXED, VARIED, Z_DIM, Trainer, TrainConfig, params_from_z, sample_grid


def test_latents_name_faces_inside_the_narrowed_world() -> None:
    rng = np.random.default_rng(0)
    seen = {name: [] for name in VARIED}
    for _ in range(400):
        p = params_from_z(rng.standard_normal(Z_DIM))
        for name, value in FIXED.items():
            assert getattr(p, name) == value
        for name, (lo, hi) in VARIED.items():
            v = getattr(p, name)
            assert lo - 1e-9 <= v <= hi + 1e-9, name
            seen[name].append(v)
    for name, (lo, hi) in VARIED.items():
        # Every varied attribute really varies, over most of its range.
        assert np.ptp(seen[name]) > 0.6 * (hi - lo), name
    # Closed mouths and eyes are common enough to be reached by dragging.
    assert np.mean(np.array(seen["mouth_open"]) == 0.0) > 0.2
    assert np.mean(np.array(seen["eye_open_left"]) == 0.0) > 0.05
    assert set(VARIED) | set(FIXED) == set(ATTRIBUTE_NAMES)
    assert all(VARIED[n][0] < 0 for n in VARIED if n in SIGNED_ATTRIBUTES)


def _sweep(name: str, latent_map: str) -> np.ndarray:
    """The attribute `name` as its latent coordinate sweeps from -3 to 3 (the rest fixed)."""
    i = list(VARIED).index(name)
    out = []
    for v in np.linspace(-3.0, 3.0, 121):
        z = np.ones(Z_DIM)  # a latent whose RMS barely depends on the swept coordinate
        z[i] = v
        out.append(getattr(params_from_z(z, latent_map), name))
    return np.array(out)


@pytest.mark.parametrize("latent_map", ["smooth", "soft"])
def test_the_smooth_maps_have_no_flat_stretch_where_a_drag_would_find_no_gradient(latent_map: str) -> None:
    for name in ("mouth_open", "eye_open_left", "eye_open_right"):
        smooth, clipped = _sweep(name, latent_map), _sweep(name, "clipped")
        assert np.all(np.diff(smooth) > 0), name  # strictly increasing over the whole sweep
        assert np.sum(np.diff(clipped) == 0) > 20, name  # the old map is flat over long stretches
        assert 0.0 <= smooth.min() and smooth.max() <= 1.0
        if latent_map == "soft":
            # Close to the clipped map everywhere, so a model grown from a clipped-map one keeps its faces.
            assert np.max(np.abs(smooth - clipped)) <= 0.1 + 1e-9, name
    # On the smooth map nearly closed mouths and eyes are still common enough to learn.
    rng = np.random.default_rng(2)
    faces = [params_from_z(rng.standard_normal(Z_DIM), latent_map) for _ in range(400)]
    assert np.mean([f.mouth_open < 0.1 for f in faces]) > 0.15
    assert np.mean([f.eye_open_left < 0.25 for f in faces]) > 0.08
    with pytest.raises(ValueError, match="latent_map must be one of"):
        params_from_z(np.ones(Z_DIM), "linear")


def test_params_depend_on_the_normalised_latent_only() -> None:
    z = np.random.default_rng(1).standard_normal(Z_DIM)
    np.testing.assert_allclose(params_from_z(z).to_vector(), params_from_z(3.0 * z).to_vector(), atol=1e-6)
    assert not np.allclose(params_from_z(z).to_vector(), params_from_z(-z).to_vector(), atol=1e-2)


def test_training_resumes_and_exports(tmp_path: Path) -> None:
    cfg = TrainConfig(resolution=16, batch=2, compile=False, threads=1)
    torch.set_num_threads(1)
    first = Trainer(tmp_path / "run", cfg)
    losses = [first.train_step() for _ in range(3)]
    assert all(np.isfinite(losses))
    first.save()
    again = Trainer(tmp_path / "run", cfg)
    assert again.step == 3 and again.images_seen == 6
    for a, b in zip(first.G_ema.state_dict().values(), again.G_ema.state_dict().values()):
        assert torch.equal(a, b)
    again.train_step()
    assert again.step == 4

    path = again.export(tmp_path / "faces.safetensors", feature_block=2)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["config"]["feature_block"] == 2
    assert meta["training"]["steps"] == 4 and set(meta["training"]["world"]["varied"]) == set(VARIED)
    G = load_generator(path, device="cpu")
    assert G.cfg.drag_feature_block == 2 and G.img_resolution == 16
    with torch.no_grad():
        ws = G.mapping(G.z_from_seed(0), None)  # psi 1: the export only adds w_avg, which truncation uses
    with torch.no_grad():
        expected = again.G_ema.synthesis(ws, noise_mode="none").image
        got = G.synthesis(ws, noise_mode="none").image
    torch.testing.assert_close(got, expected)
    grid = sample_grid(G, tmp_path / "grid.png")
    from PIL import Image

    assert Image.open(grid).size == (64, 64)


def test_the_schedule_anneals_its_tail_and_stops_at_total_steps(tmp_path: Path) -> None:
    cfg = TrainConfig(resolution=16, batch=2, compile=False, threads=1, lr=1e-2, total_steps=6, anneal_steps=4)
    torch.set_num_threads(1)
    trainer = Trainer(tmp_path / "run", cfg)
    assert trainer.lr_at(0) == trainer.lr_at(2) == 1e-2  # constant before the tail
    assert trainer.lr_at(3) < trainer.lr_at(2) and trainer.lr_at(5) < trainer.lr_at(4)
    assert abs(trainer.lr_at(6) - 1e-2 * cfg.anneal_to) < 1e-12 and trainer.lr_at(100) == trainer.lr_at(6)
    trainer.run(minutes=5.0)  # ends at total_steps long before the time is up
    assert trainer.step == 6
    assert trainer.opt.param_groups[0]["lr"] == trainer.lr_at(5)
    assert Trainer(tmp_path / "run", cfg).step == 6  # and the end was checkpointed
    assert TrainConfig().total_steps is None and trainer.lr_at(10**6) > 0


def test_a_resume_with_other_settings_records_the_earlier_phase(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    first_cfg = TrainConfig(resolution=16, batch=2, compile=False, threads=1, total_steps=2)
    Trainer(tmp_path / "run", first_cfg).run(minutes=5.0)
    again_cfg = TrainConfig(resolution=16, batch=2, compile=False, threads=1, total_steps=3, lr=4e-3,
                            latent_map="smooth")
    again = Trainer(tmp_path / "run", again_cfg)
    again.run(minutes=5.0)
    assert again.step == 3
    meta = json.loads(again.export(tmp_path / "faces.safetensors").with_suffix(".json").read_text())
    phases = meta["training"]["earlier_phases"]
    assert [p["until_step"] for p in phases] == [2]
    assert phases[0]["config"]["latent_map"] == "clipped" and phases[0]["config"]["lr"] == 1e-2
    assert meta["training"]["config"]["latent_map"] == "smooth" and meta["training"]["config"]["lr"] == 4e-3
    # Resuming with the same settings starts no new phase.
    Trainer(tmp_path / "run", again_cfg).run(minutes=5.0)
    assert len(Trainer(tmp_path / "run", again_cfg).phases) == 1


def test_a_grown_generator_starts_as_the_old_one_upsampled_and_warms_up_its_new_block(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    small = Trainer(tmp_path / "small", TrainConfig(resolution=16, batch=2, compile=False, threads=1))
    small.train_step()
    old_path = small.export(tmp_path / "small.safetensors")
    cfg = TrainConfig(resolution=32, batch=2, compile=False, threads=1, grow_from=str(old_path), grow_warmup_steps=1)
    big = Trainer(tmp_path / "big", cfg)
    assert big.grown and all(not n.startswith("synthesis.b32.") for n in big.grown)
    old = load_generator(old_path, device="cpu")
    z = torch.randn(2, Z_DIM)
    with torch.no_grad():
        small_img = old.synthesis(old.mapping(z), noise_mode="none").image
        big_img = big.G.synthesis(big.G.mapping(z), noise_mode="none").image
        # The last block adds nothing yet: the image is the old one through the skip upsampler.
        from engine.ops import upsample2d

        expected = upsample2d(small_img, big.G.synthesis.b32.resample_filter)
    torch.testing.assert_close(big_img, expected, atol=1e-5, rtol=1e-5)
    before = {n: p.detach().clone() for n, p in big.G.named_parameters()}
    big.train_step()  # warm-up: only the new block moves
    after = dict(big.G.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in big.grown)
    assert any(not torch.equal(before[n], after[n]) for n in after if n not in big.grown)
    big.train_step()  # then everything trains
    assert any(not torch.equal(before[n], after[n]) for n in big.grown)
    big.save()
    assert Trainer(tmp_path / "big", cfg).grown == big.grown  # a resume remembers what was grown
    with pytest.raises(ValueError, match="cannot grow"):
        Trainer(tmp_path / "down", TrainConfig(resolution=8, batch=2, compile=False, threads=1, grow_from=str(old_path)))
