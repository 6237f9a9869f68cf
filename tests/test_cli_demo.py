"""`voicedrag demo`: "open the mouth" on the embedded face model, or a plain drag on another model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import voicedrag.models
from engine.loading import save_generator
from engine.stylegan2 import Generator
from tests.conftest import fixture_path
from voicedrag.cli import main
from training.train_generator import generator_config


def test_demo_says_open_the_mouth_to_the_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    torch.manual_seed(0)
    # A face-world model names its rules and detector in its config, as the shipped one does.
    model = save_generator(Generator(generator_config(32)), tmp_path / "faces.safetensors",
                           extra={"kit": {"rules": "face", "detector": "faceworld"}})
    monkeypatch.setattr(voicedrag.models, "embedded_model_path", lambda: model)
    assert main(["demo", "--out-dir", str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["command"] == "open the mouth" and report["model"] == str(model)
    assert report["steps"] >= 1
    for key in ("before", "after", "gif"):
        assert Path(report[key]).is_file() and Path(report[key]).stat().st_size > 0


def test_demo_on_a_model_without_keypoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    fixture = fixture_path("sg2_64_flat.pkl")
    monkeypatch.setattr(voicedrag.models, "embedded_model_path", lambda: tmp_path / "absent.safetensors")
    monkeypatch.setenv("VOICEDRAG_FIXTURES", str(fixture.parent))
    monkeypatch.setattr("voicedrag.cli.demo._FIXTURE_MODEL", fixture)
    assert main(["demo", "--out-dir", str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["command"] is None and Path(report["after"]).is_file()
