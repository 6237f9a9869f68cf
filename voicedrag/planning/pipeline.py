"""One edit, end to end: words -> edit intents -> keypoints -> drag pairs (and mask).

`plan_command` is shared by the headless `voicedrag edit` and the TUI: it
takes the parsed words, finds the named keypoints on the current image (or
uses keypoints the caller already has) and turns the intents into
handle/target pairs with the model's rules. The TUI answers control words and
parse errors itself, and finds keypoints itself so that it can cache them per
image and report them; it then hands those keypoints to `plan_command`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from voicedrag.errors import VoicedragError
from engine.types import DragPair, Point

if TYPE_CHECKING:
    from keypoints.detector import Detector
    from voicedrag.language.commands import ParseResult
    from voicedrag.intents import EditIntent
    from voicedrag.planning.rules import Plan, Rules


class CommandError(VoicedragError):
    """Words that do not make an edit (unknown, half-finished, or a control word where an edit is needed)."""


@dataclass
class PlannedEdit:
    parse: ParseResult
    keypoints: dict[str, Point]
    plan: Plan
    pairs: list[DragPair] = field(default_factory=list)
    mask: np.ndarray | None = None  # [H, W] bool, True = may move

    @property
    def warnings(self) -> list[str]:
        """What the user should hear about this edit: the parser's notes, then the planner's."""
        return [*self.parse.warnings, *self.plan.warnings]


class NothingToMoveError(CommandError):
    """The edits were understood but move no point by a pixel or more (a very small face, say)."""


def needs_keypoints(edits: list[EditIntent]) -> bool:
    """Whether any edit names a part, so that keypoints must be found before planning."""
    # Only explicit point drags carry their own handle; every other edit is placed by keypoints.
    return any(e.handle is None for e in edits)


def plan_command(
    parse: ParseResult,
    image: np.ndarray,  # [H, W, 3] uint8: the image the edit applies to
    detector: Detector | None,
    rules: Rules | None = None,
    keypoints: dict[str, Point] | None = None,
) -> PlannedEdit:
    """Turn a parsed command into drag pairs on `image`; raises CommandError with one sentence.

    `keypoints`, when given, are the keypoints of `image` already found (an
    empty dict if a search found none); the detector is then not called.
    """
    from voicedrag.planning.rules import RulesError, plan

    if parse.error:
        # The parser's sentence may already carry its own suggestions.
        offer = parse.suggestions and "did you mean" not in parse.error.lower()
        error = parse.error.rstrip(". ")
        if offer:
            raise CommandError(f"{error}; did you mean: {parse.suggestions[0]}?")
        raise CommandError(error if error.endswith(("?", "!")) else error + ".")
    if parse.control is not None:
        raise CommandError(f"'{parse.control}' is a control word, not an edit; say an edit such as 'open the mouth'.")
    if not parse.edits:
        raise CommandError("no edit was understood; say an edit such as 'open the mouth'.")
    h, w = image.shape[:2]
    if keypoints is None:
        keypoints = {}
        if needs_keypoints(parse.edits):
            if detector is None:
                raise CommandError("this model has no keypoint detector; "
                                   "use explicit points such as 'drag 30,40 to 50,60'.")
            keypoints = detector.detect(image)
    try:
        p = plan(parse.edits, keypoints, (w, h), rules=rules)
    except RulesError as err:
        raise CommandError(str(err)) from err
    if not p.pairs:
        why = f": {p.warnings[0].rstrip('.')}" if p.warnings else ""
        raise NothingToMoveError(f"the command asks for no movement{why}; say how far, or name another part.")
    return PlannedEdit(parse=parse, keypoints=keypoints, plan=p, pairs=list(p.pairs), mask=p.mask_array())
