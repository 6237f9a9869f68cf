"""The TUI's parts that need no screen: the edit history, app commands, the overlay, the CLI entry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.types import DragPair, Point
from voicedrag.session import Entry, Session
from voicedrag.tui.localcmd import read_local
from voicedrag.tui.overlay import HANDLE, TARGET, Overlay, compose, short_name


def _img(v: int) -> np.ndarray:
    return np.full((16, 16, 3), v, np.uint8)


def _drag(label: str, v: int, frames: int = 0) -> Entry:
    return Entry(label=label, kind="drag", ws=np.full((1, 4, 8), v, np.float32), image=_img(v),
                 pairs=[DragPair(Point(1, 2), Point(3, 4))], final_points=[Point(2, 3)], steps=5,
                 mean_distance=1.4, frames=[_img(v * 10 + i) for i in range(frames)])


def test_history_undo_redo_and_branching() -> None:
    s = Session(0, np.zeros((1, 4, 8), np.float32), _img(0), model="m")
    assert not s.can_undo and not s.can_redo and s.undo() is None
    s.push(_drag("a", 1))
    s.push(_drag("b", 2))
    assert s.current.label == "b" and s.index == 2
    assert s.undo().label == "a" and s.undo().label == "seed 0" and s.undo() is None
    assert s.redo().label == "a"
    s.push(_drag("c", 3))  # a new edit drops the undone "b"
    assert [e.label for e in s.entries] == ["seed 0", "a", "c"] and not s.can_redo


def test_reset_is_undoable_and_a_new_seed_keeps_the_old_history_reachable() -> None:
    s = Session(3, np.zeros((1, 4, 8), np.float32), _img(0))
    assert s.reset() is None  # already the original
    s.push(_drag("a", 7))
    r = s.reset()
    assert r is not None and r.kind == "reset" and np.array_equal(r.image, _img(0))
    assert s.undo().label == "a"
    s.redo()
    s.new_seed(4, np.ones((1, 4, 8), np.float32), _img(9))
    assert s.seed == 4 and s.current.label == "seed 4" and s.original is s.current
    assert s.reset() is None  # the new seed's image is its original
    s.push(_drag("b", 8))
    assert np.array_equal(s.reset().image, _img(9))  # reset goes back to this seed's image, not seed 3's
    s.undo()
    s.undo()
    assert s.undo().label == "reset" and s.seed == 3  # back on the previous image, its edits reachable
    assert s.undo().label == "a"


def test_save_writes_image_latent_history_and_gif(tmp_path: Path) -> None:
    s = Session(5, np.zeros((1, 4, 8), np.float32), _img(0), model="tiny")
    s.push(_drag("open the mouth", 8, frames=3))
    s.push(_drag("smile", 9))  # no frames: the GIF falls back to the last drag that has some
    s.undo()
    out = s.save(tmp_path / "out")
    assert sorted(f.name for f in out.files) == ["history.json", "image.png", "last_drag.gif", "latent.npy"]
    assert np.array_equal(np.load(out.folder / "latent.npy"), s.current.ws)
    hist = json.loads((out.folder / "history.json").read_text())
    assert hist["seed"] == 5 and hist["index"] == 1 and [e["label"] for e in hist["entries"]] == [
        "seed 5", "open the mouth", "smile"]
    assert hist["entries"][1]["pairs"] == [{"handle": [1.0, 2.0], "target": [3.0, 4.0]}]
    from PIL import Image

    with Image.open(out.folder / "last_drag.gif") as gif:
        assert gif.n_frames == 4  # three previews and the final image
    again = s.save(tmp_path / "out")  # a second save never overwrites the first
    assert again.folder != out.folder and again.folder.is_dir()


def test_save_without_a_drag_has_no_gif(tmp_path: Path) -> None:
    s = Session(1, np.zeros((1, 4, 8), np.float32), _img(0))
    assert [f.name for f in s.save(tmp_path / "x").files] == ["image.png", "latent.npy", "history.json"]


@pytest.mark.parametrize("text,kind,extra", [
    ("mask 10,20,30,40", "mask", (10.0, 20.0, 30.0, 40.0)),
    ("/mask 1 2 3 4", "mask", (1.0, 2.0, 3.0, 4.0)),
    ("mask off", "mask_off", ()),
    ("no mask", "mask_off", ()),
    ("seed 42", "seed", (42.0,)),
    ("new seed", "new_seed", ()),
    ("steps 50", "steps", (50.0,)),
    ("clear points", "clear", ()),
    ("go", "go", ()),
    ("labels", "labels", ()),
    ("Undo.", "control", ()),
    ("redo", "control", ()),
])
def test_local_commands(text: str, kind: str, extra: tuple[float, ...]) -> None:
    cmd = read_local(text)
    assert cmd is not None and cmd.kind == kind and cmd.numbers == extra


def test_point_specs_and_edits_fall_through() -> None:
    assert read_local("30,40>50,60").spec == "30,40>50,60"
    assert read_local("points 30 40 > 50 60; 1,2>3,4").spec == "30,40>50,60;1,2>3,4"
    for text in ("open the mouth", "drag 30,40 to 50,60", "turn the head a little to the left", ""):
        assert read_local(text) is None


def test_overlay_marks_handles_targets_and_dims_outside_the_mask() -> None:
    image = np.full((32, 32, 3), 200, np.uint8)
    ov = Overlay(handles=[(4, 4)], targets=[(28, 4)], mask=[(0, 0, 16, 16)])
    out = np.asarray(compose(image, (64, 64), ov))
    assert out.shape == (64, 64, 3)

    def near(x: int, y: int) -> set[tuple[int, ...]]:  # colours within a pixel of display (x, y)
        return {tuple(int(c) for c in out[j, i]) for j in range(y - 1, y + 2) for i in range(x - 1, x + 2)}

    assert HANDLE in near(9, 9) and TARGET in near(57, 9)
    assert out[40, 10].max() < 120  # outside the mask: dimmed
    assert (out[24, 20] == 200).all()  # inside, off the arrow: untouched
    plain = np.asarray(compose(image, (32, 32), Overlay()))
    assert (plain == 200).all()


def test_short_keypoint_names() -> None:
    assert short_name("left_eye_center") == "L eye c"
    assert short_name("nose_tip") == "nose tip"


def test_cli_entry_dispatches_the_tui_without_importing_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, voicedrag.cli, voicedrag.cli.tui as t;"
            "t.run = lambda a: print('RUN', a.model, a.seed, a.renderer) or 0;"
            "rc = voicedrag.cli.main([]); rc2 = voicedrag.cli.main(['tui', '--seed', '3', '--renderer', 'halfcell']);"
            "print('TORCH', 'torch' in sys.modules, rc, rc2)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stdout.split("\n")
    assert "RUN embedded 0 auto" in lines and "RUN embedded 3 halfcell" in lines, out.stderr
    assert "TORCH False 0 0" in lines
    help_out = subprocess.run([sys.executable, "-m", "voicedrag", "--help"], capture_output=True, text=True,
                              timeout=120)
    assert help_out.returncode == 0 and "tui" in help_out.stdout


@pytest.mark.parametrize("renderable", ["halfcell", "unicode", "tgp"])
def test_auto_renderer_is_the_apps_own_half_blocks_without_graphics(monkeypatch: pytest.MonkeyPatch,
                                                                     renderable: str) -> None:
    import importlib

    import textual_image.widget as tiw

    from voicedrag.tui import widgets

    chosen = importlib.import_module(f"textual_image.renderable.{renderable}").Image

    class Detected(tiw.BaseImage, Renderable=chosen):  # what textual-image's auto detection found
        pass

    monkeypatch.setattr(tiw, "Image", Detected)
    monkeypatch.setattr(widgets, "CELL_MEASURED", True)  # graphics need the terminal's cell size
    expected = Detected if renderable == "tgp" else widgets.HalfBlockPicture
    assert widgets.renderer_class("auto") is expected
