"""The shipped face generator: its files, its faces, and "open the mouth" end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import to_uint8
from voicedrag.models import embedded_model_path, load_model_file

MODEL = embedded_model_path()
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="the embedded face model is not shipped in this checkout")


@pytest.fixture(scope="module")
def G():
    return load_model_file("embedded", device="cpu")


def test_the_shipped_files_and_their_record(G) -> None:
    meta = json.loads(MODEL.with_suffix(".json").read_text())
    assert MODEL.stat().st_size <= 30 * 2**20
    assert G.img_resolution == 128 and meta["config"]["img_resolution"] == 128
    # The drag block is part of the model (at 128 px the 6th block is the last one).
    assert meta["config"]["feature_block"] == G.cfg.drag_feature_block < len(G.synthesis.block_resolutions)
    training = meta["training"]
    assert training["steps"] > 0 and training["images_seen"] == training["steps"] * training["config"]["batch"]
    assert (MODEL.parent / "MODEL_CARD.md").is_file() and (MODEL.parent / "faces_samples.png").is_file()


def test_samples_draw_the_world_where_the_latent_says(G) -> None:
    """The detector finds a sample's keypoints where the renderer puts them for the same latent: the
    generator has learnt the world's geometry, not a blur of it."""
    from keypoints.detector import EmbeddedDetector
    from faceworld.render import KEYPOINT_NAMES, render
    from training.train_generator import params_from_z, trained_latent_map

    detector = EmbeddedDetector.load()
    errors = []
    latent_map = trained_latent_map("embedded")
    for seed in range(8):
        z = G.z_from_seed(seed)
        with torch.no_grad():
            img = to_uint8(G.synthesis(G.mapping(z, None, truncation_psi=1.0)).image)
        truth = render(params_from_z(z[0].numpy(), latent_map), G.img_resolution).keypoints
        found = detector.detect(img)
        errors.append(np.mean([np.hypot(found[n].x - truth[n].x, found[n].y - truth[n].y) for n in KEYPOINT_NAMES]))
    assert float(np.mean(errors)) < 1.5, errors


def test_open_the_mouth_opens_it(tmp_path: Path) -> None:
    out = tmp_path / "after.png"
    edit = subprocess.run([sys.executable, "-m", "voicedrag", "edit", "--model", "embedded", "--seed", "1",
                           "--say", "open the mouth", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert edit.returncode == 0, edit.stderr
    report = json.loads(edit.stdout)
    assert report["converged"], report
    pairs = {p["name"]: p for p in report["plan"]["pairs"]}

    def lip_gap(*source: str) -> float:
        found = subprocess.run([sys.executable, "-m", "voicedrag", "keypoints", *source, "--json"],
                               capture_output=True, text=True, timeout=300)
        assert found.returncode == 0, found.stderr
        points = json.loads(found.stdout)["points"]
        return points["lower_lip"][1] - points["upper_lip"][1]

    gap_before = lip_gap("--model", "embedded", "--seed", "1")
    gap_after = lip_gap("--image", str(out))
    # The commanded growth: each lip's move (handles may start off the keypoints, moves are kept).
    wanted = ((pairs["lower_lip"]["target"][1] - pairs["lower_lip"]["handle"][1])
              - (pairs["upper_lip"]["target"][1] - pairs["upper_lip"]["handle"][1]))
    assert gap_after - gap_before > 0.5 * wanted, (gap_before, gap_after, wanted)
