"""The StyleGAN2 generator reproduces the official outputs recorded in the fixtures."""
from __future__ import annotations

import numpy as np
import pytest
import torch

WS_TOL = 1e-5
MAP_TOL = 1e-4  # images and feature maps (fixtures README: faithful float32 CPU reimplementation)
CASES = [(s, psi) for s in (0, 1, 2) for psi in ("0.7", "1.0")]


@pytest.mark.parametrize("model", ["sg2_64", "sg2_128"])
@pytest.mark.parametrize("seed,psi", CASES)
def test_matches_official_reference(model, seed, psi, request, npz_cache):
    G = request.getfixturevalue(model)
    ref = npz_cache("sg2_64_flat_ref.npz" if model == "sg2_64" else "sg2_128_ada_ref.npz")
    p = f"seed{seed}_psi{psi}"
    np.testing.assert_array_equal(G.mapping.w_avg.numpy(), ref["w_avg"])
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(ref[f"seed{seed}_z"]), torch.zeros([1, 0]), truncation_psi=float(psi))
        out = G.synthesis(ws, noise_mode="const", return_features=True)
    np.testing.assert_allclose(ws.numpy(), ref[f"{p}_ws"], rtol=0, atol=WS_TOL)
    np.testing.assert_allclose(out.image.numpy(), ref[f"{p}_img"], rtol=0, atol=MAP_TOL)
    assert len(out.features) == len(G.cfg.block_resolutions)
    for feat in out.features:
        r = feat.shape[-1]
        full = f"{p}_feat_b{r}"
        if full in ref.files:
            np.testing.assert_allclose(feat.numpy(), ref[full], rtol=0, atol=MAP_TOL)
        f64 = feat.double()[0]
        np.testing.assert_allclose(f64.mean(dim=(1, 2)).numpy(), ref[f"{p}_featmean_b{r}"], rtol=0, atol=MAP_TOL)
        np.testing.assert_allclose(f64.std(dim=(1, 2)).numpy(), ref[f"{p}_featstd_b{r}"], rtol=0, atol=MAP_TOL)


def test_seed_latent_is_draggans(sg2_128, npz_cache):
    ref = npz_cache("sg2_128_ada_ref.npz")
    np.testing.assert_array_equal(sg2_128.z_from_seed(1).numpy(), ref["seed1_z"])
    np.testing.assert_allclose(sg2_128.ws_from_seed(1, 0.7).numpy(), ref["seed1_psi0.7_ws"], atol=WS_TOL, rtol=0)


def test_fused_and_reference_modconv_agree(sg2_128):
    ws = sg2_128.ws_from_seed(3)
    with torch.no_grad():
        fast = sg2_128.synthesis(ws, return_features=True, fused=True)
        plain = sg2_128.synthesis(ws, return_features=True, fused=False)
    torch.testing.assert_close(fast.image, plain.image, rtol=0, atol=1e-4)
    for a, b in zip(fast.features, plain.features):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_stop_after_gives_the_same_features_without_an_image(sg2_128):
    ws = sg2_128.ws_from_seed(4)
    with torch.no_grad():
        full = sg2_128.synthesis(ws, return_features=True)
        early = sg2_128.synthesis(ws, stop_after=3)
    assert early.image is None
    assert len(early.features) == 4
    for a, b in zip(full.features, early.features):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_noise_modes(tiny_generator):
    G = tiny_generator
    for layer in G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    try:
        ws = G.ws_from_seed(0)
        with torch.no_grad():
            const_a = G.synthesis(ws, noise_mode="const").image
            const_b = G.synthesis(ws, noise_mode="const").image
            none = G.synthesis(ws, noise_mode="none").image
            rand = G.synthesis(ws, noise_mode="random").image
        torch.testing.assert_close(const_a, const_b, rtol=0, atol=0)
        assert (const_a - none).abs().max() > 1e-3
        assert (const_a - rand).abs().max() > 1e-3
        with pytest.raises(ValueError):
            G.synthesis(ws, noise_mode="loud")
    finally:
        for layer in G.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.data.zero_()


def test_conv_clamp_limits_activations(tiny_generator):
    from engine import Generator

    cfg = tiny_generator.cfg
    clamped = Generator(type(cfg)(**{**cfg.__dict__, "conv_clamp": 0.05}))
    clamped.load_state_dict(tiny_generator.state_dict())
    ws = tiny_generator.ws_from_seed(0)
    with torch.no_grad():
        out = clamped.synthesis(ws, return_features=True)
    assert max(float(f.abs().max()) for f in out.features) <= 0.05 + 1e-6
