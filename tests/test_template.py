"""Teach-once keypoints: taught on one latent, found on others by the generator's own features."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_generator
from engine.errors import UserError
from engine.loading import save_generator
from engine.types import Point
from keypoints.template import KeypointTemplate, default_blocks, find, sample_at, teach


def test_sample_at_reads_the_map_as_the_drag_resizes_it() -> None:
    """Reading a native map at image pixels equals resizing the whole map and indexing it."""
    g = torch.Generator().manual_seed(0)
    native = torch.randn(1, 5, 8, 8, generator=g)
    full = torch.nn.functional.interpolate(native, [32, 32], mode="bilinear", align_corners=False)
    xs = torch.tensor([0.0, 3.0, 17.0, 31.0])
    ys = torch.tensor([0.0, 30.0, 9.0, 31.0])
    got = sample_at(native, xs, ys, 32)
    want = full[0][:, ys.long(), xs.long()]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_a_taught_latent_finds_its_own_points_exactly(tiny_generator) -> None:
    ws = tiny_generator.ws_from_seed(1)
    taught = {"a": Point(10, 12), "b": Point(20.25, 7.5), "c": Point(3, 28)}
    tpl = teach(tiny_generator, ws, taught, seed=1, blocks=[2, 3])
    found = find(tpl, tiny_generator, ws)
    assert found.left_out == {}
    for name, p in taught.items():
        assert (found.points[name].x, found.points[name].y) == pytest.approx((p.x, p.y), abs=1e-6)
        assert found.confidence[name] == pytest.approx(1.0, abs=1e-3)


def test_a_point_it_is_not_sure_of_is_left_out_with_a_sentence(tiny_generator) -> None:
    tpl = teach(tiny_generator, tiny_generator.ws_from_seed(1), {"a": Point(10, 12)}, blocks=[2, 3])
    found = find(tpl, tiny_generator, tiny_generator.ws_from_seed(2), min_confidence=0.999)
    assert "a" not in found.points and found.confidence["a"] < 0.999
    assert found.left_out["a"].startswith("a is left out") and "teach it on more samples" in found.left_out["a"]


def test_a_template_round_trips_and_combines(tiny_generator, tmp_path: Path) -> None:
    one = teach(tiny_generator, tiny_generator.ws_from_seed(1), {"a": Point(10, 12)}, seed=1, blocks=[2, 3])
    two = teach(tiny_generator, tiny_generator.ws_from_seed(2), {"a": Point(11, 12), "b": Point(5, 5)}, seed=2,
                blocks=[2, 3])
    both = one.merged(two)
    both.save(tmp_path / "t.json")
    back = KeypointTemplate.load(tmp_path / "t.json")
    assert back.names == ("a", "b") and [s.seed for s in back.samples] == [1, 2] and back.blocks == [2, 3]
    ws = tiny_generator.ws_from_seed(3)
    a, b = find(both, tiny_generator, ws, min_confidence=0), find(back, tiny_generator, ws, min_confidence=0)
    for name in ("a", "b"):
        assert (a.points[name].x, a.points[name].y) == pytest.approx((b.points[name].x, b.points[name].y), abs=1e-3)
    with pytest.raises(UserError, match="different models or blocks"):
        one.merged(teach(tiny_generator, ws, {"a": Point(1, 1)}, blocks=[3]))


@pytest.mark.parametrize("content, why", [
    ("{", "is not JSON"),
    ('{"format": "other"}', "its format is not"),
    ('{"format": "voicedrag-keypoint-template", "version": 9}', "version 9"),
    ('{"format": "voicedrag-keypoint-template", "version": 1, "model": {}, "blocks": [2], "samples": []}',
     "no taught samples"),
    ('{"format": "voicedrag-keypoint-template", "version": 1, "model": {}, "blocks": [2], '
     '"samples": [{"points": {"a": {"xy": [1, "x"], "features": [[1]]}}}]}', "no valid 'xy'"),
    ('{"format": "voicedrag-keypoint-template", "version": 1, "model": {}, "blocks": [2], '
     '"samples": [{"points": {"a": {"xy": [1, 2], "features": [[NaN]]}}}]}', "not finite"),
    ('{"format": "voicedrag-keypoint-template", "version": 1, "model": {}, "blocks": [2, 3], '
     '"samples": [{"points": {"a": {"xy": [1, 2], "features": [[1.0]]}}}]}', "do not match its blocks"),
])
def test_a_broken_template_is_refused_in_one_sentence(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(UserError, match=why) as err:
        KeypointTemplate.load(path)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


def test_a_template_of_another_model_is_refused(tiny_generator) -> None:
    tpl = teach(tiny_generator, tiny_generator.ws_from_seed(1), {"a": Point(10, 12)}, blocks=[2, 3])
    other = make_tiny_generator(seed=5)
    with pytest.raises(UserError, match="taught on another model"):
        find(tpl, other, other.ws_from_seed(1))
    bigger = make_tiny_generator(resolution=64)
    with pytest.raises(UserError, match="another size or architecture"):
        find(tpl, bigger, bigger.ws_from_seed(1))


def test_default_blocks_are_at_16_and_32_px_or_a_sixteenth_of_the_image() -> None:
    from engine import Generator, GeneratorConfig

    def blocks(res: int) -> list[int]:
        G = Generator(GeneratorConfig(img_resolution=res, channel_base=4096, channel_max=8, z_dim=8, w_dim=8))
        return [G.synthesis.block_resolutions[b] for b in default_blocks(G)]

    assert blocks(64) == [16, 32] and blocks(128) == [16, 32] and blocks(512) == [32, 64]
    assert blocks(16) == [16]


def test_on_the_embedded_model_one_taught_face_finds_the_keypoints_of_others() -> None:
    """The renderer knows the truth: taught with the true keypoints of one sample, the template
    finds all 20 on other samples within a pixel on average (64 px)."""
    from voicedrag.models import load_model_file
    from faceworld.render import KEYPOINT_NAMES, render
    from training.train_generator import params_from_z, trained_latent_map

    try:
        G = load_model_file("embedded", device="cpu")
    except UserError as err:
        pytest.skip(f"the embedded model is not installed: {err}")
    latent_map = trained_latent_map("embedded")

    def sample(seed: int) -> tuple[torch.Tensor, dict[str, Point]]:
        z = G.z_from_seed(seed)
        with torch.no_grad():
            ws = G.mapping(z, None, truncation_psi=1.0)
        return ws, render(params_from_z(z[0].numpy(), latent_map), G.img_resolution).keypoints

    ws, truth = sample(0)
    tpl = teach(G, ws, truth, seed=0)
    errors = []
    for seed in range(1000, 1010):
        ws, truth = sample(seed)
        found = find(tpl, G, ws, min_confidence=0)
        assert set(found.points) == set(KEYPOINT_NAMES)
        errors += [np.hypot(found.points[n].x - truth[n].x, found.points[n].y - truth[n].y) for n in KEYPOINT_NAMES]
    assert float(np.mean(errors)) <= 1.3 * G.img_resolution / 64


def test_teach_and_find_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voicedrag.cli import main

    model = save_generator(make_tiny_generator(), tmp_path / "m.safetensors")
    tpl = tmp_path / "t.json"
    assert main(["keypoints", "teach", "--model", str(model), "--seed", "4", "--points", "nose=16,18;left_ear_tip=6,5",
                 "--out", str(tpl)]) == 0
    assert main(["keypoints", "teach", "--model", str(model), "--seed", "5", "--points", "nose=15,18",
                 "--add-to", str(tpl), "--out", str(tpl)]) == 0
    capsys.readouterr()
    assert main(["keypoints", "--model", str(model), "--seed", "4", "--template", str(tpl), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == [32, 32] and set(report["confidence"]) == {"nose", "left_ear_tip"}
    assert report["points"]["left_ear_tip"] == [6.0, 5.0]  # the one taught only on this seed
    assert main(["keypoints", "teach", "--model", str(model), "--seed", "4", "--points", "nose=16",
                 "--out", str(tpl)]) == 2
    assert "NAME=X,Y" in capsys.readouterr().err
    assert main(["keypoints", "teach", "--model", str(model), "--seed", "4", "--points", "nose=99,3",
                 "--out", str(tpl)]) == 2
    assert "outside the 32x32 image" in capsys.readouterr().err
    assert main(["keypoints", "--image", str(tpl), "--template", str(tpl), "--json"]) == 2
    assert "give --seed N" in capsys.readouterr().err


def test_edit_plans_words_from_a_template_on_a_model_without_a_detector(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model that names no detector, with a hand-made template: "raise the left ear" plans the
    ear's handles from the template's points (the picture is noise; the plan is what is checked)."""
    from voicedrag.cli import main
    from voicedrag.editor import NO_DETECTOR, load_kit

    model = save_generator(make_tiny_generator(), tmp_path / "m.safetensors")
    assert load_kit(model, device="cpu").limits == NO_DETECTOR
    tpl = tmp_path / "t.json"
    points = ("left_ear_tip=5,11;left_ear_base=9,13;right_ear_tip=27,11;right_ear_base=23,13;head_top=16,3;"
              "left_eye_center=12,15;right_eye_center=20,15")
    assert main(["keypoints", "teach", "--model", str(model), "--seed", "2", "--points", points,
                 "--out", str(tpl)]) == 0
    capsys.readouterr()
    code = main(["edit", "--model", str(model), "--seed", "2", "--template", str(tpl), "--say", "raise the left ear",
                 "--steps", "2", "--out", str(tmp_path / "o.png"), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    handles = [tuple(p["handle"]) for p in report["pairs"]]
    assert (5.0, 11.0) in handles and all(h[0] < 16 for h in handles)  # the left ear's tip, on the left


def test_a_template_can_name_the_animal_rules_for_a_model_that_names_none(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voicedrag.cli import main
    from voicedrag.editor import load_kit

    model = save_generator(make_tiny_generator(), tmp_path / "m.safetensors")
    tpl = tmp_path / "dog.json"
    points = "left_eye_center=6,12;right_eye_center=26,12;upper_lip=16,20;lower_lip=16,21;chin=16,27"
    assert main(["keypoints", "teach", "--model", str(model), "--seed", "3", "--points", points, "--rules", "animal",
                 "--out", str(tpl)]) == 0
    kit = load_kit(model, device="cpu", template=tpl)
    assert kit.rules.name == "animal" and kit.limits is None
    capsys.readouterr()
    assert main(["edit", "--model", str(model), "--seed", "3", "--template", str(tpl), "--say", "make it roar",
                 "--steps", "1", "--out", str(tmp_path / "o.png"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in report["plan"]["pairs"]] == ["lower_lip", "upper_lip"]
    assert main(["keypoints", "teach", "--model", str(model), "--seed", "3", "--points", "tail_tip=3,3",
                 "--rules", "animal", "--out", str(tmp_path / "t2.json")]) == 0
    assert "use no keypoint named tail_tip" in capsys.readouterr().err
