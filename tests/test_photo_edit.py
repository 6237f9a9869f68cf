"""A user's photo through the editor: framed, inverted (and cached), edited by words, pasted back."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.invert import InvertConfig
from voicedrag.cli import main
from voicedrag.editor import Editor, load_kit
from voicedrag.events import DragOptions, EditRequest, Finished, Inverting, PhotoOpened, Planned, Refused
from voicedrag.models import embedded_model_path
from voicedrag.planning.pipeline import plan_command

pytestmark = pytest.mark.skipif(not embedded_model_path().is_file(), reason="the embedded model is not installed")

# A short inversion: these tests check the pipeline, not the reconstruction's quality
# (benchmarks/photo_edits.py measures that).
QUICK = InvertConfig(w_steps=6, wplus_steps=6, tune_steps=6, locality_samples=2)


@pytest.fixture(autouse=True)
def inversion_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "inversions"
    monkeypatch.setenv("VOICEDRAG_INVERSIONS", str(folder))
    return folder


@pytest.fixture(scope="module")
def editor() -> Editor:
    return Editor(load_kit("embedded", device="cpu"), paraphrase=False)


def photo_file(folder: Path, seed: int = 81234) -> Path:
    """A face-world face, smaller and off-centre in a larger JPEG photo."""
    from faceworld.render import render_seed

    face = render_seed(seed, 128).image.convert("RGB").resize((150, 150), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (300, 260), tuple(int(v) for v in np.asarray(face)[0, 0]))
    canvas.paste(face, (70, 50))
    path = folder / "me.jpg"
    canvas.save(path, quality=70)
    return path


def opened(editor: Editor, path: Path) -> tuple[list[object], PhotoOpened | Refused]:
    events = list(editor.open_photo(path, QUICK))
    last = events[-1]
    assert isinstance(last, PhotoOpened | Refused)
    return events, last


def test_a_photo_is_framed_inverted_edited_and_pasted_back(editor: Editor, tmp_path: Path,
                                                           inversion_cache: Path) -> None:
    path = photo_file(tmp_path)
    events, last = opened(editor, path)
    assert isinstance(last, PhotoOpened), last
    state = last.state
    assert any(isinstance(e, Inverting) for e in events) and not state.cached
    assert state.image.shape == (128, 128, 3) and state.ws.shape[0] == 1
    assert state.photo.size == (300, 260) and {"upper_lip", "lower_lip"} <= set(state.keypoints)
    # The edit is planned from the photo's own keypoints and pasted back into the photo.
    out = list(editor.run(EditRequest(editor.photo_state(state), text="open the mouth", drag=DragOptions(max_steps=20))))
    planned = next(e for e in out if isinstance(e, Planned))
    from_photo = plan_command(editor.parse("open the mouth"), (128, 128), state.keypoints, rules=editor.kit.rules)
    assert list(planned.pairs) == from_photo.pairs
    finished = out[-1]
    assert isinstance(finished, Finished) and finished.entry.photo_image is not None
    photo = np.asarray(Image.open(path).convert("RGB"))
    result = finished.entry.photo_image
    assert result.shape == photo.shape
    changed = np.any(result != photo, axis=2)
    assert changed.any()
    # Every changed pixel lies inside the crop's footprint in the photo: the rest is the photo's own.
    ys, xs = np.nonzero(changed)
    corners = state.alignment.crop_corners_in_photo()
    assert xs.min() >= corners[:, 0].min() - 1 and xs.max() <= corners[:, 0].max() + 1
    assert ys.min() >= corners[:, 1].min() - 1 and ys.max() <= corners[:, 1].max() + 1
    # The second opening of the same photo into the same weights comes from the cache.
    events, again = opened(editor, path)
    assert isinstance(again, PhotoOpened) and again.state.cached
    assert not any(isinstance(e, Inverting) for e in events)
    assert np.array_equal(again.state.ws, state.ws) and np.array_equal(again.state.image, state.image)


@pytest.mark.parametrize("make, needle", [
    (lambda folder: folder / "missing.png", "no photo at"),
    (lambda folder: (folder / "notes.png").write_text("not an image") and folder / "notes.png", "not an image"),
    (lambda folder: Image.new("RGB", (200, 160), (90, 120, 150)).save(folder / "sky.png") or folder / "sky.png",
     "no face"),
])
def test_a_photo_that_cannot_be_opened_is_one_sentence(editor: Editor, tmp_path: Path, make: object,
                                                        needle: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    _, last = opened(editor, path)
    assert isinstance(last, Refused) and needle in last.sentence.lower() and "\n" not in last.sentence


@pytest.mark.slow
def test_edit_image_writes_the_photo_sized_result_and_reuses_the_inversion(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import voicedrag.cli.photo

    monkeypatch.setattr(voicedrag.cli.photo, "invert_config", lambda args: QUICK)
    path = photo_file(tmp_path)
    out = tmp_path / "me-edited.png"
    args = ["edit", "--image", str(path), "--say", "open the mouth", "--steps", "20", "--out", str(out), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert Image.open(out).size == (300, 260) and first["photo"]["cached"] is False
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["photo"]["cached"] is True and second["photo"]["image_hash"] == first["photo"]["image_hash"]
    inv = tmp_path / "inv.npz"
    assert main(["invert", "--image", str(path), "--out", str(inv), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["out"] == str(inv) and "psnr" in report and "alignment" in report
    with np.load(inv) as data:
        assert data["ws"].shape[0] == 1
    # The photo itself is never an output.
    assert main(["edit", "--image", str(path), "--say", "smile", "--out", str(path)]) == 2


def test_demo_on_a_photo_writes_it_before_and_after_at_its_size(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import voicedrag.cli.photo

    monkeypatch.setattr(voicedrag.cli.photo, "invert_config", lambda args: QUICK)
    path = photo_file(tmp_path)
    out = tmp_path / "demo"
    assert main(["demo", "--image", str(path), "--out-dir", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["image"] == str(path) and report["command"] == "open the mouth"
    before, after = Image.open(report["before"]), Image.open(report["after"])
    assert before.size == after.size == (300, 260)
    # Before is the photo as read; after differs from it only inside the pasted region.
    original = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(before), original)
    changed = np.any(np.asarray(after) != original, axis=2)
    assert changed.any() and changed.mean() < 0.5
