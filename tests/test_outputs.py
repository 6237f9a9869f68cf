"""Outputs never overwrite inputs or each other, and their names say a format that is written."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import fixture_path
from tests.test_cli_engine import voicedrag


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "net.pkl"
    shutil.copy(fixture_path("sg2_64_flat.pkl"), path)
    return path


def refused(*args: str) -> str:
    p = voicedrag(*args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_an_output_named_as_the_model_is_refused_and_the_model_kept(model: Path) -> None:
    before = model.read_bytes()
    assert "must end in" in refused("render", "--model", str(model), "--out", str(model))
    assert "must end in" in refused("drag", "--model", str(model), "--points", "20,20>22,22", "--out", str(model))
    assert model.read_bytes() == before


def test_an_output_that_reaches_the_model_through_a_link_or_dots_is_refused(model: Path, tmp_path: Path) -> None:
    link = tmp_path / "result.png"
    os.symlink(model, link)
    line = refused("render", "--model", str(model), "--out", str(link))
    assert "--out" in line and "the command reads" in line
    sub = tmp_path / "sub"
    sub.mkdir()
    dotted = sub / ".." / model.name  # --save-latent takes any name: only the input check stands here
    line = refused("drag", "--model", str(model), "--points", "20,20>22,22", "--out", str(tmp_path / "x.png"),
                   "--save-latent", str(dotted))
    assert "--save-latent" in line and "the command reads" in line
    assert model.is_file() and model.stat().st_size > 1000


def test_an_output_over_the_input_image_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "face.png"
    Image.new("RGB", (128, 128), (120, 100, 90)).save(image)
    before = image.read_bytes()
    line = refused("keypoints", "--image", str(image), "--out", str(image))
    assert "--image" in line and image.read_bytes() == before


def test_an_unknown_image_extension_is_refused_with_the_formats_that_work(model: Path, tmp_path: Path) -> None:
    line = refused("render", "--model", str(model), "--out", str(tmp_path / "result.txt"))
    assert ".png" in line and ".jpg" in line and not (tmp_path / "result.txt").exists()
    assert ".gif" in refused("drag", "--model", str(model), "--points", "20,20>22,22", "--out", str(tmp_path / "a.png"),
                             "--gif", str(tmp_path / "a.png.mp4"))
