"""The TUI's command worker without a screen: which messages it posts, in which order, for each kind of input.

The drag itself is replaced by a recorder and the keypoint network by a fake; what is tested is
the parse -> keypoints -> plan stage that the worker runs through the model kit's Editor, as
`voicedrag edit` does.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from textual.message import Message

from engine.types import Point
from tests.conftest import make_tiny_generator
from tests.test_planner import SIZE, face
from voicedrag.language.commands import CommandParser
from voicedrag.editor import NO_DETECTOR, Editor, KitSpec, kit_for_generator
from voicedrag.planning.pipeline import plan_command
from voicedrag.planning.rules import default_rules
from voicedrag.tui import workers
from voicedrag.tui.messages import (
    CommandFailed, CommandParsed, ControlRequested, DragFailed, DragPlanned, KeypointsFound,
)


class FakeDetector:
    """Stands in for the keypoint network: returns the given points and counts its calls."""

    def __init__(self, points: dict[str, Point]) -> None:
        self.points, self.calls = dict(points), 0
        self.names = tuple(points)

    def detect(self, image: Any) -> dict[str, Point]:
        self.calls += 1
        return dict(self.points)


def make_backend(detector: Any = None, spec: KitSpec | None = None) -> workers.Backend:
    """A backend whose editor has a face kit; `detector` replaces the keypoint network."""
    kit = kit_for_generator(make_tiny_generator(), spec=spec or KitSpec(rules="face", detector="faceworld"))
    if detector is not None:
        kit._detector = detector
    return workers.Backend(editor=Editor(kit, parser=PARSER))


PARSER = CommandParser(default_rules(), use_embeddings=False)


@pytest.fixture
def dragged(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stands in for the engine: records what would have been dragged."""
    calls: list[dict[str, Any]] = []

    def fake_drag(editor: Any, req: Any, pairs: list[Any], mask: Any, edits_json: Any, warnings: list[str],
                  post: Any) -> None:
        calls.append({"pairs": list(pairs), "mask": mask, "edits": edits_json, "warnings": list(warnings)})

    monkeypatch.setattr(workers, "drag", fake_drag)
    return calls


def run(backend: workers.Backend, label: str, cancelled: bool = False,
        mask: list[tuple[int, int, int, int]] | None = None) -> list[Message]:
    w, h = SIZE
    req = workers.DragRequest(label=label, ws=np.zeros((1, 4, 8), np.float32), image=np.zeros((h, w, 3), np.uint8),
                              max_steps=3, preview_seconds=0.0, mask=mask, entry_id=7)
    assert backend.editor is not None
    backend.editor.begin()
    if cancelled:
        backend.editor.cancel()
    posted: list[Message] = []
    workers.run_command(backend, req, posted.append)
    return posted


def kinds(posted: list[Message]) -> list[type]:
    return [type(m) for m in posted]


def test_cached_keypoints_are_planned_without_a_search(dragged: list[dict[str, Any]]) -> None:
    detector = FakeDetector(face())
    backend = make_backend(detector)
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    backend.editor.keypoints(7, image)  # found once, for entry 7 (the labels, say)
    posted = run(backend, "open the mouth")
    assert kinds(posted) == [CommandParsed, DragPlanned] and detector.calls == 1
    expected = plan_command(posted[0].result, image, None, keypoints=face())
    plan = posted[1].plan
    assert plan.handles == [(p.handle.x, p.handle.y) for p in expected.pairs]
    assert plan.targets == [(p.target.x, p.target.y) for p in expected.pairs]
    assert plan.names == expected.plan.names and "lower_lip" in plan.names
    assert plan.mask == expected.plan.mask and plan.mask is not None  # the rules' region, as rectangles
    assert plan.edits == [e.to_json() for e in posted[0].result.edits]
    assert len(dragged) == 1 and dragged[0]["pairs"] == expected.pairs and dragged[0]["mask"] == plan.mask


def test_the_users_mask_wins_over_the_rules(dragged: list[dict[str, Any]]) -> None:
    posted = run(make_backend(FakeDetector(face())), "open the mouth", mask=[(0, 0, 200, 200)])
    assert posted[-1].plan.mask == [(0, 0, 200, 200)] and dragged[0]["mask"] == [(0, 0, 200, 200)]


def test_keypoints_are_searched_once_per_entry_and_reported_before_the_plan(dragged: list[dict[str, Any]]) -> None:
    detector = FakeDetector(face())
    backend = make_backend(detector)
    posted = run(backend, "open the mouth")
    assert kinds(posted) == [CommandParsed, KeypointsFound, DragPlanned]
    assert detector.calls == 1 and posted[1].keypoints == face() and posted[1].entry_id == 7
    assert posted[1].notice is None and len(dragged) == 1
    assert kinds(run(backend, "close the eyes")) == [CommandParsed, DragPlanned] and detector.calls == 1
    backend.editor.forget()
    run(backend, "close the eyes")
    assert detector.calls == 2


def test_a_model_without_a_detector_says_so(dragged: list[dict[str, Any]]) -> None:
    posted = run(make_backend(spec=KitSpec()), "open the mouth")
    assert kinds(posted) == [CommandParsed, KeypointsFound, CommandFailed]
    assert posted[1].notice == NO_DETECTOR and posted[2].error == NO_DETECTOR and dragged == []


def test_missing_keypoint_with_a_working_detector_is_the_planners_sentence(dragged: list[dict[str, Any]]) -> None:
    kp = {k: v for k, v in face().items() if k != "lower_lip"}
    posted = run(make_backend(FakeDetector(kp)), "open the mouth")
    assert kinds(posted) == [CommandParsed, KeypointsFound, CommandFailed]
    assert "no lower_lip keypoint was found" in posted[2].error and dragged == []


def test_explicit_drag_needs_no_keypoints(dragged: list[dict[str, Any]]) -> None:
    detector = FakeDetector(face())
    posted = run(make_backend(detector), "drag 10,20 to 30,40")
    assert kinds(posted) == [CommandParsed, DragPlanned] and detector.calls == 0
    plan = posted[1].plan
    assert plan.handles == [(10.0, 20.0)] and plan.targets == [(30.0, 40.0)] and plan.names == ["point 1"]
    assert plan.mask is None


def test_control_words_go_back_to_the_app_unplanned(dragged: list[dict[str, Any]]) -> None:
    posted = run(make_backend(FakeDetector(face())), "undo")
    assert kinds(posted) == [CommandParsed, ControlRequested]
    assert posted[1].word == "undo" and posted[1].text == "undo" and dragged == []


def test_unknown_words_fail_with_suggestions(dragged: list[dict[str, Any]]) -> None:
    posted = run(make_backend(FakeDetector(face())), "xyzzy")
    assert kinds(posted) == [CommandParsed, CommandFailed]
    failed = posted[1]
    assert failed.error == posted[0].result.error and "did you mean" in failed.error
    assert failed.suggestions and failed.suggestions == posted[0].result.suggestions and dragged == []


def test_a_command_that_moves_nothing_says_the_planners_sentence(dragged: list[dict[str, Any]]) -> None:
    posted = run(make_backend(FakeDetector(face(scale=0.05))), "open the mouth a little")
    assert kinds(posted) == [CommandParsed, KeypointsFound, CommandFailed]
    assert posted[2].error.startswith("the command asks for no movement") and dragged == []


def test_cancelled_before_planning_stops_without_a_search(dragged: list[dict[str, Any]]) -> None:
    detector = FakeDetector(face())
    posted = run(make_backend(detector), "open the mouth", cancelled=True)
    assert kinds(posted) == [CommandParsed, CommandFailed]
    assert posted[1].error == "stopped before the drag began." and dragged == [] and detector.calls == 0


def test_a_bug_in_planning_is_a_message_not_a_crash(dragged: list[dict[str, Any]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(parse: Any, image: np.ndarray, detector: Any, rules: Any = None, keypoints: Any = None) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("voicedrag.editor.plan_command", broken)
    posted = run(make_backend(FakeDetector(face())), "drag 10,20 to 30,40")
    assert kinds(posted) == [CommandParsed, DragFailed]
    assert "ZeroDivisionError" in posted[1].error and "please report it" in posted[1].error


def test_torch_thread_runs_every_call_on_one_thread_in_order() -> None:
    import threading

    runner = workers.TorchThread("test-torch")
    seen: list[tuple[int, int]] = []
    callers = [threading.Thread(target=lambda i=i: seen.append((i, runner.call(threading.get_ident))))
               for i in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(seen) == 4 and len({ident for _, ident in seen}) == 1
    assert seen[0][1] not in {t.ident for t in callers} | {threading.get_ident()}
    # A call made from inside a call runs in place instead of waiting for itself.
    assert runner.call(lambda: runner.call(threading.get_ident)) == seen[0][1]


def test_torch_thread_hands_errors_back_and_keeps_serving() -> None:
    runner = workers.TorchThread("test-torch")

    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        runner.call(boom)
    assert runner.call(lambda: 41 + 1) == 42


def test_the_workers_run_torch_on_the_tui_torch_thread(dragged: list[dict[str, Any]]) -> None:
    import threading

    backend = make_backend(FakeDetector(face()))
    assert backend.editor is not None
    threads: list[int] = []
    parse = backend.editor.parse
    backend.editor.parse = lambda text: (threads.append(threading.get_ident()), parse(text))[1]  # type: ignore[method-assign]
    worker = threading.Thread(target=run, args=(backend, "open the mouth"))
    worker.start()
    worker.join()
    assert len(dragged) == 1
    assert threads and threads[0] == workers.TORCH.call(threading.get_ident) != worker.ident
