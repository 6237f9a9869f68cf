"""StyleGAN3 (T and R) reproduces the official outputs recorded in the fixtures, and drags on it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fixture_path
from engine import DragConfig, DragPair, DragSession, Point, load_generator

WS_TOL = 1e-5
MAP_TOL = 1e-4  # the fixtures README's limits for a faithful float32 CPU reimplementation
CASES = [(s, psi) for s in (0, 1, 2) for psi in ("0.7", "1.0")]
MODELS = ["sg3_t_64", "sg3_r_64"]


@pytest.fixture(scope="module")
def sg3():
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_generator(fixture_path(f"{name}.pkl"), device="cpu")
        return cache[name]

    return get


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("seed,psi", CASES)
def test_matches_official_reference(name: str, seed: int, psi: str, sg3, npz_cache) -> None:
    G = sg3(name)
    ref = npz_cache(f"{name}_ref.npz")
    p = f"seed{seed}_psi{psi}"
    np.testing.assert_array_equal(G.mapping.w_avg.numpy(), ref["w_avg"])
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(ref[f"seed{seed}_z"]), torch.zeros([1, 0]), truncation_psi=float(psi))
        out = G.synthesis(ws, return_features=True)
    np.testing.assert_allclose(ws.numpy(), ref[f"{p}_ws"], rtol=0, atol=WS_TOL)
    np.testing.assert_allclose(out.image.numpy(), ref[f"{p}_img"], rtol=0, atol=MAP_TOL)
    names = G.synthesis.layer_names
    assert len(out.features) == len(names) == 15
    for layer, feat in zip(names, out.features):
        f64 = feat.double()[0]
        np.testing.assert_allclose(f64.mean(dim=(1, 2)).numpy(), ref[f"{p}_featmean_{layer}"], rtol=0, atol=MAP_TOL)
        np.testing.assert_allclose(f64.std(dim=(1, 2)).numpy(), ref[f"{p}_featstd_{layer}"], rtol=0, atol=MAP_TOL)
    if f"{p}_feat5" in ref.files:  # the map DragGAN drags on
        np.testing.assert_allclose(out.features[5].numpy(), ref[f"{p}_feat5"], rtol=0, atol=MAP_TOL)


@pytest.mark.parametrize("name", MODELS)
def test_the_architecture_comes_from_the_init_arguments(name: str, sg3) -> None:
    G = sg3(name)
    assert G.num_ws == 16 and G.cfg.drag_feature_block == 5
    assert G.synthesis.block_resolutions[5] == 52 and G.synthesis.block_resolutions[-1] == 64
    assert (G.cfg.conv_kernel, G.cfg.use_radial_filters) == ((1, True) if name == "sg3_r_64" else (3, False))
    assert G.synthesis.layer_names[-1] == "L14_64_3" and G.synthesis.blocks()[-1].is_torgb


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("windowed", [True, False])
def test_a_drag_brings_the_handle_nearer(name: str, windowed: bool, sg3) -> None:
    G = sg3(name)
    pair = DragPair(Point(30, 30), Point(35, 32))
    cfg = DragConfig.for_generator(G, max_steps=40, preview_every=0, windowed=windowed)
    session = DragSession(G, G.ws_from_seed(1), [pair], config=cfg)
    assert session.config.windowed is False  # StyleGAN3 drags run on the dense path
    result = session.run()
    assert result.mean_distance < result.start_distance - 2


def test_a_masked_drag_runs_on_stylegan3(sg3) -> None:
    G = sg3("sg3_t_64")
    mask = np.zeros((64, 64), bool)
    mask[20:44, 20:44] = True
    session = DragSession(G, G.ws_from_seed(2), [DragPair(Point(30, 30), Point(34, 30))], mask=mask,
                          config=DragConfig.for_generator(G, max_steps=5, preview_every=0))
    steps = list(session.steps())
    assert steps[-1].loss_fix is not None and steps[-1].loss_fix > 0


def test_unknown_stylegan3_arguments_are_one_sentence(tmp_path, monkeypatch) -> None:
    from engine import loading
    from engine.errors import UserError

    real = loading._build3
    path = fixture_path("sg3_t_64.pkl")

    def odd(args, kwargs, state, source):
        return real(args, {**kwargs, "warp_field": 3}, state, source)

    monkeypatch.setattr(loading, "_build3", odd)
    with pytest.raises(UserError, match=r"cannot be built \(warp_field\)") as err:
        load_generator(path, device="cpu")
    assert str(err.value).endswith("checkpoint.")


def test_the_gpu_check_says_so_on_a_machine_without_cuda() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-GPU line is not what the script prints here")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout.strip().splitlines()[-1])["cuda"] is False
    assert "no CUDA device" in out.stderr


@pytest.mark.parametrize("field, value", [("z_dim", 10**9), ("w_dim", 0), ("img_resolution", 2**20),
                                          ("channel_max", -1), ("num_layers", 10**6)])
def test_sizes_no_stylegan3_has_are_refused_before_anything_is_allocated(field: str, value: int) -> None:
    from engine.stylegan3 import config3_from_init_kwargs

    kwargs = {"z_dim": 512, "w_dim": 512, "img_resolution": 64, "img_channels": 3, field: value}
    with pytest.raises(ValueError, match=f"{field} must be a whole number"):
        config3_from_init_kwargs(kwargs)
