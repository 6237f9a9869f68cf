"""`voicedrag.planning.pipeline.plan_command`: parsed words + keypoints (found or given) -> drag pairs."""
from __future__ import annotations

import numpy as np
import pytest

from engine.types import Point
from tests.test_planner import SIZE, face
from voicedrag.language.commands import CommandParser
from voicedrag.planning.pipeline import CommandError, NothingToMoveError, needs_keypoints, plan_command


class CountingDetector:
    """Reports fixed keypoints and counts how often it was asked."""

    def __init__(self, keypoints: dict[str, Point]) -> None:
        self.keypoints = keypoints
        self.calls = 0

    def detect(self, image: np.ndarray) -> dict[str, Point]:
        self.calls += 1
        return dict(self.keypoints)


class RefusingDetector:
    def detect(self, image: np.ndarray) -> dict[str, Point]:
        raise AssertionError("the detector was called although keypoints were given")


@pytest.fixture(scope="module")
def parser() -> CommandParser:
    return CommandParser(use_embeddings=False)


def blank() -> np.ndarray:
    w, h = SIZE
    return np.zeros((h, w, 3), np.uint8)


def same_plan(a, b) -> None:  # noqa: ANN001 - two PlannedEdit
    assert a.pairs == b.pairs and a.plan.names == b.plan.names
    assert a.plan.mask == b.plan.mask and a.plan.warnings == b.plan.warnings
    assert (a.mask is None) == (b.mask is None)
    if a.mask is not None:
        assert np.array_equal(a.mask, b.mask)


@pytest.mark.parametrize("say", ["open the mouth", "turn the head a little to the left",
                                 "raise the left eyebrow and open the mouth wide"])
def test_given_keypoints_skip_the_detector_and_plan_the_same_pairs(parser: CommandParser, say: str) -> None:
    parse = parser.parse(say)
    assert parse.ok and needs_keypoints(parse.edits), parse.error
    detector = CountingDetector(face())
    detected = plan_command(parse, blank(), detector)
    assert detector.calls == 1 and detected.pairs

    given = plan_command(parse, blank(), RefusingDetector(), keypoints=face())
    same_plan(detected, given)
    assert given.keypoints == face()
    # No detector at all is fine too once the keypoints are known.
    same_plan(detected, plan_command(parse, blank(), None, keypoints=face()))


def test_given_keypoints_from_the_embedded_detector_plan_as_the_detector_would(parser: CommandParser) -> None:
    from keypoints.detector import EmbeddedDetector, embedded_weights
    from faceworld.render import render_seed

    if not embedded_weights().is_file():
        pytest.skip("the embedded keypoint detector is not shipped in this checkout")
    image = np.asarray(render_seed(0, 128).image.convert("RGB"))
    detector = EmbeddedDetector.load()
    parse = parser.parse("open the mouth")
    found = detector.detect(image)
    detected = plan_command(parse, image, detector)
    given = plan_command(parse, image, RefusingDetector(), keypoints=found)
    same_plan(detected, given)
    assert {"lower_lip"} <= set(given.plan.names)


def test_empty_given_keypoints_are_not_searched_again(parser: CommandParser) -> None:
    # {} means "searched, found nothing": the planner says which keypoint is missing.
    with pytest.raises(CommandError, match="no .* keypoint was found"):
        plan_command(parser.parse("open the mouth"), blank(), RefusingDetector(), keypoints={})


def test_named_edit_without_detector_or_keypoints_says_to_use_points(parser: CommandParser) -> None:
    with pytest.raises(CommandError, match="drag 30,40 to 50,60"):
        plan_command(parser.parse("open the mouth"), blank(), None)


def test_explicit_drag_needs_neither_detector_nor_keypoints(parser: CommandParser) -> None:
    parse = parser.parse("drag 10,20 to 30,40")
    assert not needs_keypoints(parse.edits)
    planned = plan_command(parse, blank(), RefusingDetector())
    assert [(p.handle, p.target) for p in planned.pairs] == [(Point(10, 20), Point(30, 40))]
    assert planned.keypoints == {} and planned.plan.names == ["point 1"]


def test_a_command_that_moves_nothing_is_its_own_error(parser: CommandParser) -> None:
    # A face a few pixels across: every displacement is under a pixel.
    with pytest.raises(NothingToMoveError, match="asks for no movement") as info:
        plan_command(parser.parse("open the mouth a little"), blank(), None, keypoints=face(scale=0.05))
    assert isinstance(info.value, CommandError)


@pytest.mark.parametrize("say,needle", [("undo", "control word"), ("xyzzy", "did you mean")])
def test_words_that_make_no_edit_are_refused_before_any_detection(parser: CommandParser, say: str,
                                                                   needle: str) -> None:
    with pytest.raises(CommandError) as info:
        plan_command(parser.parse(say), blank(), RefusingDetector())
    assert needle in str(info.value).lower()
