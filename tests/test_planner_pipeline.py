"""`voicedrag.planning.pipeline`: parsed words + the image's keypoints -> drag pairs, or one sentence."""
from __future__ import annotations

import numpy as np
import pytest

from engine.types import Point
from tests.test_planner import SIZE, face
from voicedrag.language.commands import CommandParser
from voicedrag.planning.pipeline import CommandError, NothingToMoveError, needs_keypoints, plan_command, refusal


@pytest.fixture(scope="module")
def parser() -> CommandParser:
    return CommandParser(use_embeddings=False)


@pytest.mark.parametrize("say", ["open the mouth", "turn the head a little to the left",
                                 "raise the left eyebrow and open the mouth wide"])
def test_named_edits_are_planned_from_the_keypoints(parser: CommandParser, say: str) -> None:
    parse = parser.parse(say)
    assert parse.ok and needs_keypoints(parse.edits), parse.error
    planned = plan_command(parse, SIZE, face())
    assert planned.pairs and planned.keypoints == face() and len(planned.plan.names) == len(planned.pairs)
    assert planned.mask is not None and planned.mask.shape == (SIZE[1], SIZE[0])


def test_keypoints_of_the_embedded_detector_plan_the_mouth(parser: CommandParser) -> None:
    from faceworld.render import render_seed
    from keypoints.detector import EmbeddedDetector, embedded_weights

    if not embedded_weights().is_file():
        pytest.skip("the embedded keypoint detector is not shipped in this checkout")
    image = np.asarray(render_seed(0, 128).image.convert("RGB"))
    planned = plan_command(parser.parse("open the mouth"), (128, 128), EmbeddedDetector.load().detect(image))
    assert {"lower_lip"} <= set(planned.plan.names)


def test_no_keypoints_names_the_missing_one(parser: CommandParser) -> None:
    # {} means "searched, found nothing": the planner says which keypoint is missing.
    with pytest.raises(CommandError, match="no .* keypoint was found"):
        plan_command(parser.parse("open the mouth"), SIZE, {})


def test_explicit_drag_needs_no_keypoints(parser: CommandParser) -> None:
    parse = parser.parse("drag 10,20 to 30,40")
    assert not needs_keypoints(parse.edits)
    planned = plan_command(parse, SIZE, {})
    assert [(p.handle, p.target) for p in planned.pairs] == [(Point(10, 20), Point(30, 40))]
    assert planned.keypoints == {} and planned.plan.names == ["point 1"]


def test_a_command_that_moves_nothing_is_its_own_error(parser: CommandParser) -> None:
    # A face a few pixels across: every displacement is under a pixel.
    with pytest.raises(NothingToMoveError, match="asks for no movement") as info:
        plan_command(parser.parse("open the mouth a little"), SIZE, face(scale=0.05))
    assert isinstance(info.value, CommandError)


@pytest.mark.parametrize("say,needle", [("undo", "control word"), ("xyzzy", "did you mean")])
def test_words_that_make_no_edit_are_refused_in_one_sentence(parser: CommandParser, say: str, needle: str) -> None:
    parse = parser.parse(say)
    why = refusal(parse)
    assert why is not None and needle in why.lower() and why.endswith((".", "?", "!"))
    with pytest.raises(CommandError, match=needle):
        plan_command(parse, SIZE, face())
    assert refusal(parser.parse("open the mouth")) is None
