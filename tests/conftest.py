"""Shared test fixtures.

Reference data recorded from the official StyleGAN2/DragGAN code lives in
`../shared/fixtures` next to the repository (or wherever VOICEDRAG_FIXTURES
points). A user's clone does not have it; tests that need it skip and say why.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("VOICEDRAG_FIXTURES", REPO.parent / "shared" / "fixtures"))


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"reference fixture {name} is not available (looked in {FIXTURES}; set VOICEDRAG_FIXTURES)")
    return path


@pytest.fixture(scope="session")
def sg2_128():
    from engine import load_generator

    return load_generator(fixture_path("sg2_128_ada.pkl"), device="cpu")


@pytest.fixture(scope="session")
def sg2_64():
    from engine import load_generator

    return load_generator(fixture_path("sg2_64_flat.pkl"), device="cpu")


def assert_same_drag(fast: tuple[list, torch.Tensor], reference: tuple[list, torch.Tensor]) -> None:
    """Two runs of one drag, each ([(points, loss) per step], final ws): the same points at every
    step, losses to 1e-5 and latents to 1e-4 (the windowed fast path against the reference)."""
    (traj_f, ws_f), (traj_r, ws_r) = fast, reference
    assert len(traj_f) == len(traj_r)
    for (pf, lf), (pr, lr) in zip(traj_f, traj_r):
        assert pf == pr
        assert lf == pytest.approx(lr, abs=1e-5)
    torch.testing.assert_close(ws_f, ws_r, rtol=0, atol=1e-4)


def make_tiny_generator(resolution: int = 32, channel_base: int = 512, feature_block: int = 3, seed: int = 0):
    """A small random StyleGAN2 (32 channels at most) for fast tests that need no reference data."""
    from engine import Generator, GeneratorConfig, MappingConfig

    torch.manual_seed(seed)
    cfg = GeneratorConfig(
        z_dim=32, w_dim=32, img_resolution=resolution, channel_base=channel_base, channel_max=32, num_fp16_res=0,
        conv_clamp=None, mapping=MappingConfig(num_layers=2), feature_block=feature_block,
    )
    return Generator(cfg).eval().requires_grad_(False)


@pytest.fixture(scope="session")
def tiny_generator():
    """A small random StyleGAN2 (32 px) for fast unit tests that need no reference data."""
    return make_tiny_generator()


@pytest.fixture(scope="session")
def npz_cache():
    cache: dict[str, np.lib.npyio.NpzFile] = {}

    def load(name: str) -> np.lib.npyio.NpzFile:
        if name not in cache:
            cache[name] = np.load(fixture_path(name))
        return cache[name]

    return load
