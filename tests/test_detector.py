from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import UserError
from engine.types import Point
from keypoints.detector import (
    embedded_weights,
    Detector,
    EmbeddedDetector,
    as_rgb_array,
    from_input_coords,
    to_input_tensor,
)
from faceworld.render import KEYPOINT_NAMES, render, render_seed, sample_params
from keypoints.heatmap_net import HeatmapNet, HeatmapNetConfig, soft_argmax, soft_argmax_reference
from training.train_detector import (
    HELDOUT_SEED_BASE,
    TrainConfig,
    augment,
    evaluate_points,
    load_checkpoint,
    lr_at,
    main,
    make_batch,
    save_checkpoint,
)
from voicedrag.cli import main as cli_main

TINY = HeatmapNetConfig(num_keypoints=len(KEYPOINT_NAMES), stem=4, c4=4, c8=4, c16=4)
SHIPPED = embedded_weights().is_file()


def test_soft_argmax_matches_reference() -> None:
    logits = torch.randn(2, 3, 5, 6) * 3
    assert torch.allclose(soft_argmax(logits, 4), soft_argmax_reference(logits, 4), atol=1e-4)


def test_soft_argmax_of_a_sharp_peak_is_the_cell_centre() -> None:
    logits = torch.full((1, 1, 8, 8), -50.0)
    logits[0, 0, 2, 5] = 50.0  # row 2, column 5
    xy = soft_argmax(logits, 4)[0, 0]
    assert xy.tolist() == pytest.approx([5 * 4 + 1.5, 2 * 4 + 1.5], abs=1e-4)


def test_network_output_shape_and_size() -> None:
    model = HeatmapNet(HeatmapNetConfig()).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 128, 128))
    assert out.shape == (2, len(KEYPOINT_NAMES), 2)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params * 4 < 2_000_000  # the shipped float32 weights stay under 2 MB


def test_input_coordinate_mapping_matches_the_renderer_at_two_sizes() -> None:
    params = sample_params(np.random.default_rng(4))
    large = render(params, 128).keypoints
    small = render(params, 64).keypoints
    big = np.array([[large[n].x, large[n].y] for n in KEYPOINT_NAMES])
    mapped = from_input_coords(big, 64, 64, 128)
    expected = np.array([[small[n].x, small[n].y] for n in KEYPOINT_NAMES])
    assert np.allclose(mapped, expected, atol=1e-6)


def test_to_input_tensor_range_shape_and_resize() -> None:
    imgs = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    imgs[:, :, :, 0] = 255
    x = to_input_tensor(imgs, 128)
    assert x.shape == (2, 3, 128, 128)
    assert float(x[:, 0].min()) == pytest.approx(1.0) and float(x[:, 1].max()) == pytest.approx(-1.0)


def test_as_rgb_array_accepts_common_inputs_and_rejects_others() -> None:
    grey = np.full((5, 7), 200, dtype=np.uint8)
    assert as_rgb_array(grey).shape == (5, 7, 3)
    rgba = Image.new("RGBA", (4, 3), (10, 20, 30, 40))
    assert as_rgb_array(rgba)[0, 0].tolist() == [10, 20, 30]
    floats = np.full((2, 2, 3), 0.5)
    assert as_rgb_array(floats)[0, 0, 0] == 128
    with pytest.raises(UserError):
        as_rgb_array(np.zeros((3, 3, 5)))


def test_missing_weights_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing"):
        EmbeddedDetector.load(tmp_path / "nothing.safetensors")


def test_augment_keeps_shape_range_and_is_deterministic() -> None:
    images, _ = make_batch(TrainConfig(batch=4), step=0, size=64)
    x = to_input_tensor(images, 64)
    a = augment(x.clone(), np.random.default_rng(3))
    b = augment(x.clone(), np.random.default_rng(3))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert float(a.min()) >= -1.0 and float(a.max()) <= 1.0
    assert not torch.equal(a, x)


def test_make_batch_is_reproducible_per_step() -> None:
    cfg = TrainConfig(batch=2)
    a, ka = make_batch(cfg, 5, 64)
    b, kb = make_batch(cfg, 5, 64)
    c, _ = make_batch(cfg, 6, 64)
    assert np.array_equal(a, b) and np.array_equal(ka, kb)
    assert not np.array_equal(a, c)


def test_lr_schedule_warms_up_then_decays() -> None:
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, total_steps=100, decay_start=0.5)
    assert lr_at(cfg, 0) < lr_at(cfg, 9) <= 1e-3
    assert lr_at(cfg, 30) == pytest.approx(1e-3)
    assert lr_at(cfg, 75) < 1e-3
    assert lr_at(cfg, 100) == pytest.approx(2e-5)


def test_checkpoint_round_trip_resumes_adam_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    y = torch.rand(2, len(KEYPOINT_NAMES), 2) * 32

    def step(model: HeatmapNet, opt: torch.optim.Optimizer) -> None:
        loss = (model(x) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    model = HeatmapNet(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    step(model, opt)
    save_checkpoint(tmp_path, model, opt, {"step": 1})
    step(model, opt)  # the uninterrupted run

    resumed = HeatmapNet(TINY)
    opt2 = torch.optim.Adam(resumed.parameters(), lr=1e-2)
    meta = load_checkpoint(tmp_path, resumed, opt2)
    assert meta is not None and meta["step"] == 1
    step(resumed, opt2)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


def test_evaluate_points_reports_mean_and_worst() -> None:
    true = np.zeros((2, len(KEYPOINT_NAMES), 2))
    pred = true.copy()
    pred[:, 3, 0] = 2.0
    ev = evaluate_points(pred, true, 128)
    assert ev.mean_px == pytest.approx(2.0 / len(KEYPOINT_NAMES))
    assert ev.worst_keypoint == KEYPOINT_NAMES[3]
    assert ev.worst_keypoint_mean_px == pytest.approx(2.0)


@pytest.mark.slow
def test_training_command_runs_resumes_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--out", str(out), "--batch", "2", "--total-steps", "2", "--eval-images", "4"]
    assert main(args) == 0
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["step"] == 2
    assert main(["--out", str(out), "--total-steps", "3", "--eval-images", "4"]) == 0
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["step"] == 3 and meta["train_config"]["batch"] == 2
    log = (out / "loss_log.csv").read_text().splitlines()
    assert log[0].startswith("step,")
    dest = tmp_path / "assets"
    assert main(["--out", str(out), "--export", str(dest), "--eval-images", "4"]) == 0
    config = json.loads((dest / "face_detector.json").read_text())
    assert config["keypoint_names"] == list(KEYPOINT_NAMES)
    assert set(config["heldout_error_px"]) == {"128", "64"}
    det = EmbeddedDetector.load(dest / "face_detector.safetensors")
    assert isinstance(det, Detector)
    assert set(det.detect(render_seed(0).image)) == set(KEYPOINT_NAMES)


def test_cli_render_seed_json_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not SHIPPED:
        with pytest.raises(UserError):
            EmbeddedDetector.load()
        assert cli_main(["keypoints", "--render-seed", "3", "--json"]) == 2
        return
    png = tmp_path / "kp.png"
    assert cli_main(["keypoints", "--render-seed", "3", "--json", "--out", str(png)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == [128, 128]
    assert set(report["points"]) == set(KEYPOINT_NAMES)
    assert Image.open(png).size[0] >= 128
    truth = render_seed(3).keypoints
    err = np.mean([Point(*report["points"][n]).distance(truth[n]) for n in KEYPOINT_NAMES])
    assert err < 3.0


def test_cli_image_file_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["keypoints", "--json"]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert cli_main(["keypoints", "--image", str(tmp_path / "none.png"), "--json"]) == 2
    assert "no photo at" in capsys.readouterr().err  # read as every photo is
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert cli_main(["keypoints", "--image", str(bad)]) == 2
    assert "not an image" in capsys.readouterr().err
    if not SHIPPED:
        return
    img = tmp_path / "face.png"
    render_seed(HELDOUT_SEED_BASE + 1, 64).image.save(img)
    assert cli_main(["keypoints", "--image", str(img), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == [64, 64]
    truth = render_seed(HELDOUT_SEED_BASE + 1, 64).keypoints
    err = np.mean([Point(*report["points"][n]).distance(truth[n]) for n in KEYPOINT_NAMES])
    assert err < 1.5


@pytest.mark.skipif(not SHIPPED, reason="the embedded detector weights are not exported yet")
def test_shipped_detector_meets_its_error_target_on_heldout_renders() -> None:
    det = EmbeddedDetector.load()
    assert isinstance(det, Detector)
    assert det.names == KEYPOINT_NAMES
    n = 60
    images = np.stack([np.asarray(render_seed(HELDOUT_SEED_BASE + 10_000 + i).image) for i in range(n)])
    true = np.array(
        [[[p.x, p.y] for p in render_seed(HELDOUT_SEED_BASE + 10_000 + i).keypoints.values()] for i in range(n)]
    )
    pred = det.detect_batch(images)
    ev = evaluate_points(pred, true, 128)
    assert ev.mean_px <= 1.5
    single = det.detect(Image.fromarray(images[0]))
    assert np.allclose([[single[k].x, single[k].y] for k in KEYPOINT_NAMES], pred[0], atol=1e-3)


def test_model_image_without_shipped_generator_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import voicedrag.models
    from voicedrag.cli.keypoints import _render_model_image

    monkeypatch.setattr(voicedrag.models, "embedded_model_path", lambda: tmp_path / "faces.safetensors")
    with pytest.raises(UserError, match="--image"):
        _render_model_image("embedded", 0)
    with pytest.raises(UserError):
        _render_model_image(str(tmp_path / "missing.safetensors"), 0)
