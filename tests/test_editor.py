"""The model kit and the editor: one pipeline behind `voicedrag edit` and the TUI."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.loading import save_generator
from voicedrag.models import embedded_model_path
from tests.conftest import fixture_path, make_tiny_generator
from voicedrag.cli import main
from voicedrag.editor import NO_DETECTOR, Editor, KitSpec, load_kit
from voicedrag.events import EditRequest, ImageState, Planned, Refused
from voicedrag.tui import workers

needs_embedded = pytest.mark.skipif(not embedded_model_path().is_file(), reason="the embedded model is not installed")


def _tui_plan(model: str, seed: int, text: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The last event the TUI's edit worker posts for `text` on the image of `seed` (the drag not run)."""
    monkeypatch.setattr(Editor, "_drag", lambda self, request, planned: iter(()))
    editor = Editor(load_kit(model, device="cpu"), paraphrase=False)
    ws, image = editor.seed(seed)
    backend = workers.Backend(editor=editor)
    posted: list[Any] = []
    editor.begin()
    workers.run_edit(backend, EditRequest(ImageState(ws, image, 1), text=text, controls=True), posted.append)
    return posted[-1].event


def _cli_edit(model: str, seed: int, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, list[str]]:
    code = main(["edit", "--model", model, "--seed", str(seed), "--say", text, "--steps", "1", "--device", "cpu",
                 "--out", str(tmp_path / "out.png"), "--json"])
    captured = capsys.readouterr()
    # The plan's warnings; the one-step drag's own verdict ("did not converge") is not the plan's.
    lines = [line.removeprefix("voicedrag: ") for line in captured.err.splitlines()
             if line.startswith("voicedrag: ") and "did not converge" not in line]
    return code, json.loads(captured.out) if code == 0 else None, lines


@needs_embedded
@pytest.mark.slow
@pytest.mark.parametrize("seed,text", [(5, "open the mouth"), (11, "raise the left ear and blorp"),
                                       (2, "close the eyes a little")])
def test_the_tui_and_edit_plan_the_same_pairs_and_warnings(seed: int, text: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, report, cli_warnings = _cli_edit("embedded", seed, text, tmp_path, capsys)
    assert code == 0
    tui = _tui_plan("embedded", seed, text, monkeypatch)
    assert isinstance(tui, Planned)
    plan = tui
    assert [p["name"] for p in report["plan"]["pairs"]] == list(plan.names)
    assert [tuple(p["handle"]) for p in report["plan"]["pairs"]] == pytest.approx(
        [(p.handle.x, p.handle.y) for p in plan.pairs], abs=1e-3)
    assert [tuple(p["target"]) for p in report["plan"]["pairs"]] == pytest.approx(
        [(p.target.x, p.target.y) for p in plan.pairs], abs=1e-3)
    assert cli_warnings == list(plan.warnings)
    if "blorp" in text:
        assert plan.warnings  # the parser's note on the unknown word reaches both


def test_a_model_without_a_detector_gets_the_same_sentence_in_the_tui_and_edit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(fixture_path("sg2_64_flat.pkl"))
    assert load_kit(model, device="cpu").limits == NO_DETECTOR  # an official pickle names no kit
    code, _, cli_lines = _cli_edit(model, 0, "open the mouth", tmp_path, capsys)
    tui = _tui_plan(model, 0, "open the mouth", monkeypatch)
    assert code == 2 and isinstance(tui, Refused)
    assert cli_lines == [NO_DETECTOR] and tui.sentence == NO_DETECTOR


def test_a_kit_comes_from_the_models_config(tmp_path: Path) -> None:
    G = make_tiny_generator()
    plain = save_generator(G, tmp_path / "plain.safetensors")
    assert load_kit(plain, device="cpu").spec == KitSpec()
    face = save_generator(G, tmp_path / "face.safetensors", extra={"kit": {"rules": "face", "detector": "faceworld"}})
    kit = load_kit(face, device="cpu")
    assert kit.has_detector and kit.limits is None and kit.rules.name == "face"
    assert "mouth" in kit.vocabulary() and "undo" in kit.vocabulary()
    odd = save_generator(G, tmp_path / "odd.safetensors", extra={"kit": {"detector": "dlib68"}})
    with pytest.raises(Exception, match="does not have; use one of faceworld"):
        load_kit(odd, device="cpu")


def test_the_editor_caches_keypoints_per_entry_and_cancels_through_one_handle() -> None:
    from engine.types import DragPair, Point
    from voicedrag.editor import kit_for_generator

    class Counting:
        names = ("a",)
        calls = 0

        def detect(self, image: Any) -> dict[str, Point]:
            Counting.calls += 1
            return {"a": Point(3.0, 4.0)}

    kit = kit_for_generator(make_tiny_generator(), spec=KitSpec(rules="face", detector="faceworld"))
    kit._detector = Counting()
    editor = Editor(kit, paraphrase=False)
    ws, image = editor.seed(0)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert editor.keypoints(1, image).points == editor.keypoints(1, image).points and Counting.calls == 1
    editor.keypoints(2, image)
    editor.forget(keep={2})
    assert editor.cached_keypoints(1) is None and editor.cached_keypoints(2) is not None
    editor.begin()
    steps = editor.drag(ws, [DragPair(Point(10, 10), Point(20, 10))], None, max_steps=50)
    next(steps)
    editor.cancel()
    for _ in steps:
        pass
    result = editor.result()
    assert result.cancelled and result.steps < 50
