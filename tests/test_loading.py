"""load_generator: formats, the project's own format, and one clear sentence for every bad file."""
from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch

from engine import CheckpointError, Generator, load_generator, save_generator
from engine.loading import config_from_init_kwargs
from tests.conftest import fixture_path


def one_sentence(err: BaseException) -> str:
    msg = str(err)
    assert msg.endswith(".") and "\n" not in msg and "Traceback" not in msg
    return msg


def test_own_format_round_trip(tiny_generator, tmp_path):
    path = save_generator(tiny_generator, tmp_path / "m.safetensors")
    assert path.with_suffix(".json").is_file()
    G = load_generator(path, device="cpu")
    assert G.cfg == tiny_generator.cfg
    ws = tiny_generator.ws_from_seed(5)
    with torch.no_grad():
        torch.testing.assert_close(G.synthesis(ws).image, tiny_generator.synthesis(ws).image, rtol=0, atol=0)
    # The config file can be named instead of the weights.
    assert load_generator(path.with_suffix(".json"), device="cpu").cfg == G.cfg


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: None, "no model file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"hello, this is text"), "neither"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("data.pkl", b"x"), "torch.save archive"),
        (lambda p: p.write_bytes(b"\x80\x04\x95" + bytes(range(200))), "corrupt"),
    ],
)
def test_bad_files_give_one_sentence(tmp_path, make, needle):
    path = tmp_path / "model.pkl"
    make(path)
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    assert needle in one_sentence(info.value)


def test_truncated_official_pickle(tmp_path):
    data = fixture_path("sg2_128_ada.pkl").read_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    one_sentence(info.value)


def test_corrupt_safetensors(tiny_generator, tmp_path):
    path = save_generator(tiny_generator, tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    assert "corrupt" in one_sentence(info.value)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    assert "config" in one_sentence(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_weights_that_are_not_finite_are_refused_at_load(tiny_generator, tmp_path, bad):
    import torch

    name, param = next((n, p) for n, p in tiny_generator.named_parameters() if p.numel() > 3)
    with torch.no_grad():
        saved = param.clone()
        param.view(-1)[2] = bad
        try:
            path = save_generator(tiny_generator, tmp_path / "m.safetensors")
        finally:
            param.copy_(saved)  # the fixture is shared
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    assert "not finite" in one_sentence(info.value) and name in str(info.value)


@pytest.mark.parametrize("change, needle", [
    ({"img_resolution": -64}, "img_resolution"), ({"img_resolution": 64.5}, "img_resolution"),
    ({"img_resolution": 2**40}, "img_resolution"), ({"img_resolution": 96}, "power of two"),
    ({"img_resolution": "64"}, "img_resolution"), ({"channel_max": 10**9}, "channel_max"),
    ({"activation": "gelu"}, "activation"), ({"architecture": "sideways"}, "architecture"),
    ({"kernel_size": 0}, "kernel_size"), ({"resample_filter": []}, "resample_filter"),
    ({"feature_block": 40}, "feature_block"), ({"conv_clamp": float("nan")}, "conv_clamp"),
    ({"mapping": {"num_layers": 10**6}}, "num_layers"), ({"mapping": []}, "JSON objects"),
    ({"drag": 3}, "drag"), ({"drag": {"lr": "fast"}}, "drag setting lr"),
    ({"drag": {"grid_scale": 1000}}, "grid_scale"), ({"drag": {"nonsense": 1}}, "not a drag option"),
    ({"drag": {"space": "z"}}, "space"), ({"drag": {"tracking_block": 99}}, "tracking_block"),
    ({"drag": {"tracking_block": "a"}}, "tracking_block"), ({"img_channels": 2}, "shape"), ({"channel_base": 2**20, "channel_max": 4096, "img_resolution": 4096}, "billion"),
])
def test_configs_out_of_range_are_refused_before_building(tiny_generator, tmp_path, change, needle):
    import json

    path = save_generator(tiny_generator, tmp_path / "m.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    mapping = change.get("mapping")
    meta["config"].update(change)
    if isinstance(mapping, dict):
        meta["config"]["mapping"] = {**json.loads(path.with_suffix(".json").read_text())["config"]["mapping"], **mapping}
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    assert needle in one_sentence(info.value)


def test_a_deeply_nested_config_is_refused(tiny_generator, tmp_path):
    path = save_generator(tiny_generator, tmp_path / "m.safetensors")
    path.with_suffix(".json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    assert "not valid JSON" in one_sentence(info.value)


def test_a_config_with_a_5000_digit_number_is_refused(tiny_generator, tmp_path):
    path = save_generator(tiny_generator, tmp_path / "m.safetensors")
    text = path.with_suffix(".json").read_text()
    path.with_suffix(".json").write_text(text.replace('"z_dim": ', '"z_dim": ' + "9" * 5000 + ", \"x\": ", 1))
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    assert "not valid JSON" in one_sentence(info.value)


def test_stylegan3_pickles_load_as_stylegan3():
    G = load_generator(fixture_path("sg3_t_64.pkl"), device="cpu")
    assert G.family == "stylegan3" and G.img_resolution == 64


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_calling_os_system_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(str(marker))}, protocol=4))
    with pytest.raises(CheckpointError) as info:
        load_generator(path, device="cpu")
    msg = one_sentence(info.value)
    assert "refused" in msg and "system" in msg
    assert not marker.exists()


def test_architecture_comes_from_init_kwargs_not_the_name(tmp_path):
    # A copy under a misleading name still builds the 128 px generator its pickle describes.
    src = fixture_path("sg2_64_flat.pkl")
    dst = tmp_path / "stylegan2-ffhq-512x512.pkl"
    dst.write_bytes(src.read_bytes())
    assert load_generator(dst, device="cpu").img_resolution == 64


def test_unknown_init_arguments_are_named():
    with pytest.raises(CheckpointError) as info:
        config_from_init_kwargs({"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 32, "img_channels": 3,
                                 "channel_base": 256, "magic_flux": 3})
    assert "magic_flux" in one_sentence(info.value)


def test_both_kwarg_layouts():
    flat = config_from_init_kwargs({"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 32, "img_channels": 3,
                                    "channel_base": 256, "channel_max": 16, "mapping_kwargs": {"num_layers": 2}})
    nested = config_from_init_kwargs({"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 32, "img_channels": 3,
                                      "synthesis_kwargs": {"channel_base": 256, "channel_max": 16},
                                      "mapping_kwargs": {"num_layers": 2}})
    assert flat == nested and flat.channel_max == 16 and flat.mapping.num_layers == 2
    assert Generator(flat).num_ws == 8
    assert np.isclose(flat.mapping.lr_multiplier, 0.01)
