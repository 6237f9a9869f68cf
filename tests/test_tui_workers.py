"""The TUI's command worker without a screen: which messages it posts, in which order, for each kind of input.

The drag itself is replaced by a recorder; what is tested is the parse -> keypoints -> plan
stage that the worker shares with `voicedrag edit` through `voicedrag.pipeline.plan_command`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from textual.message import Message

from engine.types import Point
from tests.test_planner import SIZE, face
from voicedrag.pipeline import plan_command
from voicedrag.tui import workers
from voicedrag.tui.messages import (
    CommandFailed, CommandParsed, ControlRequested, DragFailed, DragPlanned, KeypointsFound,
)


@pytest.fixture(scope="module")
def backend() -> workers.Backend:
    b = workers.Backend(paraphrase=False)
    b.get_parser()
    return b


@pytest.fixture
def dragged(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stands in for the engine: records what would have been dragged."""
    calls: list[dict[str, Any]] = []

    def fake_drag(backend: Any, req: Any, pairs: list[Any], mask: Any, edits_json: Any, warnings: list[str],
                  post: Any, cancelled: Any, on_session: Any) -> None:
        calls.append({"pairs": list(pairs), "mask": mask, "edits": edits_json, "warnings": list(warnings)})

    monkeypatch.setattr(workers, "drag", fake_drag)
    return calls


def no_search(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(image: np.ndarray) -> tuple[dict[str, Any], str | None]:
        raise AssertionError("keypoints were searched for although they were not needed or were cached")

    monkeypatch.setattr(workers, "find_keypoints", refuse)


def search_finds(monkeypatch: pytest.MonkeyPatch, kp: dict[str, Point], notice: str | None) -> list[int]:
    calls: list[int] = []

    def found(image: np.ndarray) -> tuple[dict[str, Any], str | None]:
        calls.append(1)
        return dict(kp), notice

    monkeypatch.setattr(workers, "find_keypoints", found)
    return calls


def run(backend: workers.Backend, label: str, keypoints: dict[str, Point] | None = None,
        cancelled: bool = False, mask: list[tuple[int, int, int, int]] | None = None) -> list[Message]:
    w, h = SIZE
    req = workers.DragRequest(label=label, ws=np.zeros((1, 4, 8), np.float32), image=np.zeros((h, w, 3), np.uint8),
                              max_steps=3, preview_seconds=0.0, mask=mask, keypoints=keypoints, entry_id=7)
    posted: list[Message] = []
    workers.run_command(backend, req, posted.append, lambda: cancelled, lambda session: None)
    return posted


def kinds(posted: list[Message]) -> list[type]:
    return [type(m) for m in posted]


def test_cached_keypoints_are_planned_without_a_search(backend: workers.Backend, dragged: list[dict[str, Any]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    no_search(monkeypatch)
    posted = run(backend, "open the mouth", keypoints=face())
    assert kinds(posted) == [CommandParsed, DragPlanned]
    expected = plan_command(posted[0].result, np.zeros((SIZE[1], SIZE[0], 3), np.uint8), None, keypoints=face())
    plan = posted[1].plan
    assert plan.handles == [(p.handle.x, p.handle.y) for p in expected.pairs]
    assert plan.targets == [(p.target.x, p.target.y) for p in expected.pairs]
    assert plan.names == expected.plan.names and "lower_lip" in plan.names
    assert plan.mask == expected.plan.mask and plan.mask is not None  # the rules' region, as rectangles
    assert plan.edits == [e.to_json() for e in posted[0].result.edits]
    assert len(dragged) == 1 and dragged[0]["pairs"] == expected.pairs and dragged[0]["mask"] == plan.mask


def test_the_users_mask_wins_over_the_rules(backend: workers.Backend, dragged: list[dict[str, Any]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    no_search(monkeypatch)
    posted = run(backend, "open the mouth", keypoints=face(), mask=[(0, 0, 200, 200)])
    assert posted[-1].plan.mask == [(0, 0, 200, 200)] and dragged[0]["mask"] == [(0, 0, 200, 200)]


def test_keypoints_are_searched_once_and_reported_before_the_plan(backend: workers.Backend,
                                                                  dragged: list[dict[str, Any]],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls = search_finds(monkeypatch, face(), None)
    posted = run(backend, "open the mouth")
    assert kinds(posted) == [CommandParsed, KeypointsFound, DragPlanned]
    assert calls == [1] and posted[1].keypoints == face() and posted[1].entry_id == 7 and posted[1].notice is None
    assert len(dragged) == 1


def test_a_missing_detector_is_named_as_the_cause(backend: workers.Backend, dragged: list[dict[str, Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    search_finds(monkeypatch, {}, workers.NO_DETECTOR)
    posted = run(backend, "open the mouth")
    assert kinds(posted) == [CommandParsed, KeypointsFound, CommandFailed]
    assert posted[1].notice == workers.NO_DETECTOR
    assert posted[2].error == workers.NO_DETECTOR and backend.detector_missing == workers.NO_DETECTOR
    assert dragged == []


def test_missing_keypoint_with_a_working_detector_is_the_planners_sentence(
        backend: workers.Backend, dragged: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    kp = {k: v for k, v in face().items() if k != "lower_lip"}
    search_finds(monkeypatch, kp, None)
    posted = run(backend, "open the mouth")
    assert kinds(posted) == [CommandParsed, KeypointsFound, CommandFailed]
    assert "no lower_lip keypoint was found" in posted[2].error and dragged == []


def test_explicit_drag_needs_no_keypoints(backend: workers.Backend, dragged: list[dict[str, Any]],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    no_search(monkeypatch)
    posted = run(backend, "drag 10,20 to 30,40")
    assert kinds(posted) == [CommandParsed, DragPlanned]
    plan = posted[1].plan
    assert plan.handles == [(10.0, 20.0)] and plan.targets == [(30.0, 40.0)] and plan.names == ["point 1"]
    assert plan.mask is None


def test_control_words_go_back_to_the_app_unplanned(backend: workers.Backend, dragged: list[dict[str, Any]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    no_search(monkeypatch)
    posted = run(backend, "undo")
    assert kinds(posted) == [CommandParsed, ControlRequested]
    assert posted[1].word == "undo" and posted[1].text == "undo" and dragged == []


def test_unknown_words_fail_with_suggestions(backend: workers.Backend, dragged: list[dict[str, Any]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    no_search(monkeypatch)
    posted = run(backend, "xyzzy")
    assert kinds(posted) == [CommandParsed, CommandFailed]
    failed = posted[1]
    assert failed.error == posted[0].result.error and "did you mean" in failed.error
    assert failed.suggestions and failed.suggestions == posted[0].result.suggestions and dragged == []


def test_a_command_that_moves_nothing_says_how_to_move_more(backend: workers.Backend,
                                                            dragged: list[dict[str, Any]],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    no_search(monkeypatch)
    posted = run(backend, "open the mouth a little", keypoints=face(scale=0.05))
    assert kinds(posted) == [CommandParsed, CommandFailed]
    assert posted[1].error.startswith("nothing needs to move for this command; try a larger amount")
    assert dragged == []


def test_cancelled_before_planning_stops_without_a_search(backend: workers.Backend,
                                                          dragged: list[dict[str, Any]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    no_search(monkeypatch)
    posted = run(backend, "open the mouth", cancelled=True)
    assert kinds(posted) == [CommandParsed, CommandFailed]
    assert posted[1].error == "stopped before the drag began." and dragged == []


def test_a_bug_in_planning_is_a_message_not_a_crash(backend: workers.Backend, dragged: list[dict[str, Any]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(parse: Any, image: np.ndarray, detector: Any, rules: Any = None, keypoints: Any = None) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("voicedrag.pipeline.plan_command", broken)
    posted = run(backend, "drag 10,20 to 30,40")
    assert kinds(posted) == [CommandParsed, DragFailed]
    assert "ZeroDivisionError" in posted[1].error and "please report it" in posted[1].error
