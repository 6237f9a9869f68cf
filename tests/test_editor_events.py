"""`Editor.run`: which events an edit yields, in which order, for each kind of input, and the
TUI's worker that posts them (one message per event).

The drag itself is replaced by a recorder and the keypoint network by a fake; what is tested is
the parse -> keypoints -> plan stage that every front end consumes.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from engine.types import DragPair, Point
from tests.conftest import make_tiny_generator
from tests.test_planner import SIZE, face
from voicedrag.editor import NO_DETECTOR, Editor, KitSpec, kit_for_generator
from voicedrag.events import (
    Control,
    EditEvent,
    EditRequest,
    ImageState,
    KeypointsFound,
    Parsed,
    Planned,
    Refused,
)
from voicedrag.language.commands import CommandParser
from voicedrag.planning.pipeline import plan_command
from voicedrag.planning.rules import default_rules
from voicedrag.tui import workers
from voicedrag.tui.messages import EditUpdate


class FakeDetector:
    """Stands in for the keypoint network: returns the given points and counts its calls."""

    def __init__(self, points: dict[str, Point]) -> None:
        self.points, self.calls = dict(points), 0
        self.names = tuple(points)

    def detect(self, image: Any) -> dict[str, Point]:
        self.calls += 1
        return dict(self.points)


def make_editor(detector: Any = None, spec: KitSpec | None = None) -> Editor:
    """An editor with a face kit; `detector` replaces the keypoint network."""
    kit = kit_for_generator(make_tiny_generator(), spec=spec or KitSpec(rules="face", detector="faceworld"))
    if detector is not None:
        kit._detector = detector
    return Editor(kit, parser=PARSER)


PARSER = CommandParser(default_rules(), use_embeddings=False)


@pytest.fixture
def dragged(monkeypatch: pytest.MonkeyPatch) -> list[Planned]:
    """Stands in for the engine: records what would have been dragged."""
    calls: list[Planned] = []

    def fake_drag(self: Editor, request: EditRequest, planned: Planned) -> Iterator[EditEvent]:
        calls.append(planned)
        return iter(())

    monkeypatch.setattr(Editor, "_drag", fake_drag)
    return calls


def state() -> ImageState:
    w, h = SIZE
    return ImageState(np.zeros((1, 4, 8), np.float32), np.zeros((h, w, 3), np.uint8), entry_id=7)


def run(editor: Editor, text: str, cancelled: bool = False,
        mask: tuple[tuple[int, int, int, int], ...] | None = None) -> list[EditEvent]:
    editor.begin()
    if cancelled:
        editor.cancel()
    return list(editor.run(EditRequest(state(), text=text, mask=mask, controls=True)))


def kinds(events: list[EditEvent]) -> list[type]:
    return [type(e) for e in events]


def test_cached_keypoints_are_planned_without_a_search(dragged: list[Planned]) -> None:
    detector = FakeDetector(face())
    editor = make_editor(detector)
    editor.keypoints(7, state().image)  # found once, for entry 7 (the labels, say)
    events = run(editor, "open the mouth")
    assert kinds(events) == [Parsed, Planned] and detector.calls == 1
    parsed, planned = events
    assert isinstance(parsed, Parsed) and isinstance(planned, Planned)
    expected = plan_command(parsed.result, SIZE, face())
    assert list(planned.pairs) == expected.pairs
    assert list(planned.names) == expected.plan.names and "lower_lip" in planned.names
    assert planned.mask == tuple(expected.plan.mask or ()) and planned.mask  # the rules' region, as rectangles
    assert list(planned.edits) == [e.to_json() for e in parsed.result.edits]
    assert dragged == [planned]


def test_the_users_mask_wins_over_the_rules(dragged: list[Planned]) -> None:
    events = run(make_editor(FakeDetector(face())), "open the mouth", mask=((0, 0, 200, 200),))
    assert isinstance(events[-1], Planned) and events[-1].mask == ((0, 0, 200, 200),) and dragged == [events[-1]]


def test_keypoints_are_searched_once_per_entry_and_reported_before_the_plan(dragged: list[Planned]) -> None:
    detector = FakeDetector(face())
    editor = make_editor(detector)
    events = run(editor, "open the mouth")
    assert kinds(events) == [Parsed, KeypointsFound, Planned]
    found = events[1]
    assert isinstance(found, KeypointsFound)
    assert detector.calls == 1 and found.points == face() and found.entry_id == 7
    assert found.notice is None and len(dragged) == 1
    assert kinds(run(editor, "close the eyes")) == [Parsed, Planned] and detector.calls == 1
    editor.forget()
    run(editor, "close the eyes")
    assert detector.calls == 2


def test_a_model_without_a_detector_says_so(dragged: list[Planned]) -> None:
    events = run(make_editor(spec=KitSpec()), "open the mouth")
    assert kinds(events) == [Parsed, KeypointsFound, Refused]
    assert events[1].notice == NO_DETECTOR and events[2].sentence == NO_DETECTOR and dragged == []  # type: ignore[union-attr]


def test_missing_keypoint_with_a_working_detector_is_the_planners_sentence(dragged: list[Planned]) -> None:
    kp = {k: v for k, v in face().items() if k != "lower_lip"}
    events = run(make_editor(FakeDetector(kp)), "open the mouth")
    assert kinds(events) == [Parsed, KeypointsFound, Refused]
    assert "no lower_lip keypoint was found" in events[2].sentence and dragged == []  # type: ignore[union-attr]


def test_explicit_drag_needs_no_keypoints(dragged: list[Planned]) -> None:
    detector = FakeDetector(face())
    events = run(make_editor(detector), "drag 10,20 to 30,40")
    assert kinds(events) == [Parsed, Planned] and detector.calls == 0
    planned = events[1]
    assert isinstance(planned, Planned)
    assert planned.pairs == (DragPair(Point(10, 20), Point(30, 40)),) and planned.names == ("point 1",)
    assert planned.mask is None


def test_hand_placed_pairs_are_planned_as_given(dragged: list[Planned]) -> None:
    editor = make_editor(FakeDetector(face()))
    pair = DragPair(Point(3, 4), Point(5, 6))
    events = list(editor.run(EditRequest(state(), pairs=(pair,))))
    assert kinds(events) == [Planned] and events[0].pairs == (pair,)  # type: ignore[union-attr]
    assert events[0].label == "drag 3,4 to 5,6" and dragged == events  # type: ignore[union-attr]


def test_control_words_go_back_to_the_front_end_unplanned_or_are_refused(dragged: list[Planned]) -> None:
    editor = make_editor(FakeDetector(face()))
    events = run(editor, "undo")
    assert kinds(events) == [Parsed, Control]
    assert events[1].word == "undo" and events[1].text == "undo" and dragged == []  # type: ignore[union-attr]
    refused = list(editor.run(EditRequest(state(), text="undo")))  # a front end without control words
    assert kinds(refused) == [Parsed, Refused] and "control word" in refused[1].sentence  # type: ignore[union-attr]


def test_unknown_words_are_refused_with_suggestions(dragged: list[Planned]) -> None:
    events = run(make_editor(FakeDetector(face())), "xyzzy")
    assert kinds(events) == [Parsed, Refused]
    parsed, refused = events
    assert isinstance(parsed, Parsed) and isinstance(refused, Refused)
    assert refused.sentence.startswith(parsed.result.error.rstrip(". ")) and "did you mean" in refused.sentence
    assert refused.suggestions and list(refused.suggestions) == parsed.result.suggestions and dragged == []


def test_a_command_that_moves_nothing_says_the_planners_sentence(dragged: list[Planned]) -> None:
    events = run(make_editor(FakeDetector(face(scale=0.05))), "open the mouth a little")
    assert kinds(events) == [Parsed, KeypointsFound, Refused]
    assert events[2].sentence.startswith("the command asks for no movement") and dragged == []  # type: ignore[union-attr]


def test_cancelled_before_planning_stops_without_a_search(dragged: list[Planned]) -> None:
    detector = FakeDetector(face())
    events = run(make_editor(detector), "open the mouth", cancelled=True)
    assert kinds(events) == [Parsed, Refused]
    assert events[1].sentence == "stopped before the drag began." and dragged == [] and detector.calls == 0  # type: ignore[union-attr]


def test_a_handle_outside_the_mask_is_refused_before_the_drag(dragged: list[Planned]) -> None:
    events = run(make_editor(FakeDetector(face())), "drag 20,20 to 24,22", mask=((0, 0, 10, 10),))
    assert kinds(events) == [Parsed, Refused] and dragged == []
    assert events[1].sentence.startswith("the handle at 20,20 lies outside the mask")  # type: ignore[union-attr]


def worker_messages(editor: Editor, text: str) -> list[EditUpdate]:
    posted: list[Any] = []
    editor.begin()
    workers.run_edit(workers.Backend(editor=editor), EditRequest(state(), text=text, controls=True), posted.append)
    return posted


def test_the_worker_posts_one_message_per_event(dragged: list[Planned]) -> None:
    editor = make_editor(FakeDetector(face()))
    posted = worker_messages(editor, "open the mouth")
    assert [type(m) for m in posted] == [EditUpdate] * 3
    assert [type(m.event) for m in posted] == [Parsed, KeypointsFound, Planned]


def test_a_bug_in_planning_is_a_refusal_not_a_crash(dragged: list[Planned], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(parse: Any, size: Any, keypoints: Any, rules: Any = None) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("voicedrag.editor.plan_command", broken)
    posted = worker_messages(make_editor(FakeDetector(face())), "drag 10,20 to 30,40")
    assert [type(m.event) for m in posted] == [Parsed, Refused]
    assert "ZeroDivisionError" in posted[1].event.sentence and "please report it" in posted[1].event.sentence  # type: ignore[union-attr]


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


def test_the_workers_run_torch_on_the_tui_torch_thread(dragged: list[Planned]) -> None:
    import threading

    editor = make_editor(FakeDetector(face()))
    threads: list[int] = []
    parse = editor.parse
    editor.parse = lambda text: (threads.append(threading.get_ident()), parse(text))[1]  # type: ignore[method-assign]
    worker = threading.Thread(target=worker_messages, args=(editor, "open the mouth"))
    worker.start()
    worker.join()
    assert len(dragged) == 1
    assert threads and threads[0] == workers.TORCH.call(threading.get_ident) != worker.ident


def _result(steps: int = 5, converged: bool = True) -> Any:
    import torch

    from engine.drag import DragResult

    w, h = SIZE
    return DragResult(ws=torch.zeros(1, 4, 8), points=[], targets=[], steps=steps, converged=converged,
                      cancelled=False, mean_distance=0.5, seconds=0.1, image=np.zeros((h, w, 3), np.uint8),
                      frames=[], start_distance=5.0, verdict=None)


def test_a_word_edit_whose_parts_stopped_short_goes_on_from_where_the_detector_sees_them(
    dragged: list[Planned],
) -> None:
    from voicedrag.events import DragOptions

    detector = FakeDetector(face())
    editor = make_editor(detector)
    run(editor, "open the mouth")
    planned = dragged[-1]
    assert planned.plan is not None
    # The detector still sees the lips where they were: one more round, from there to the same targets.
    again = editor._checked_pairs(planned, _result(), 1, DragOptions())
    assert again is not None
    assert [p.target for p in again] == [p.target for p in planned.pairs]
    assert [p.handle for p in again] == [face()[n] for n in planned.names]
    # No more rounds than asked for, none after a drag that ran out of steps or did not converge.
    assert editor._checked_pairs(planned, _result(), 1, DragOptions(check_rounds=0)) is None
    assert editor._checked_pairs(planned, _result(), 3, DragOptions(check_rounds=2)) is None
    assert editor._checked_pairs(planned, _result(steps=300), 1, DragOptions(max_steps=300)) is None
    assert editor._checked_pairs(planned, _result(converged=False), 1, DragOptions()) is None
    # The parts where they were asked to go (within the detector's slack): done.
    moved = dict(face())
    for name, pair in zip(planned.names, planned.pairs, strict=True):
        moved[name] = Point(pair.target.x + 0.3, pair.target.y)
    detector.points = moved
    assert editor._checked_pairs(planned, _result(), 1, DragOptions()) is None
    # Explicit points have nothing to check against.
    run(editor, "drag 10,10 to 12,12")
    assert editor._checked_pairs(dragged[-1], _result(), 1, DragOptions()) is None


def test_a_drags_rounds_join_into_one_result() -> None:
    from dataclasses import replace

    from voicedrag.editor import _joined

    first, second = _result(steps=40), replace(_result(steps=25), start_distance=1.5, mean_distance=0.4)
    joined = _joined([first, second])
    assert joined.steps == 65 and joined.seconds == pytest.approx(0.2)
    assert joined.start_distance == 5.0 and joined.mean_distance == 0.4 and joined.ws is second.ws
    assert _joined([first]) is first
