"""One edit, end to end: words -> edit intents -> keypoints -> drag pairs (and mask).

`plan_command` is shared by the headless `voicedrag edit` and the TUI: it
parses the words, finds the named keypoints on the current image and turns
the intents into handle/target pairs with the model's rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import VoicedragError
from engine.types import DragPair, Point

if TYPE_CHECKING:
    from keypoints.detector import Detector
    from voicedrag.commands import ParseResult
    from voicedrag.rules import Plan, Rules


class CommandError(VoicedragError):
    """Words that do not make an edit (unknown, half-finished, or a control word where an edit is needed)."""


@dataclass
class PlannedEdit:
    parse: ParseResult
    keypoints: dict[str, Point]
    plan: Plan
    pairs: list[DragPair] = field(default_factory=list)
    mask: np.ndarray | None = None  # [H, W] bool, True = may move


def _needs_keypoints(parse: ParseResult) -> bool:
    return any(e.action != "drag" for e in parse.edits)


def plan_command(
    parse: ParseResult,
    image: np.ndarray,  # [H, W, 3] uint8: the image the edit applies to
    detector: Detector | None,
    rules: Rules | None = None,
) -> PlannedEdit:
    """Turn a parsed command into drag pairs on `image`; raises CommandError with one sentence."""
    from voicedrag.rules import RulesError, plan

    if parse.error:
        hint = f" Did you mean: {parse.suggestions[0]}?" if parse.suggestions else ""
        raise CommandError(parse.error.rstrip(".") + "." + hint)
    if parse.control is not None:
        raise CommandError(f"'{parse.control}' is a control word, not an edit; say an edit such as 'open the mouth'.")
    if not parse.edits:
        raise CommandError("no edit was understood; say an edit such as 'open the mouth'.")
    h, w = image.shape[:2]
    keypoints: dict[str, Point] = {}
    if _needs_keypoints(parse):
        if detector is None:
            raise CommandError("this model has no keypoint detector; use explicit points such as 'drag 30,40 to 50,60'.")
        keypoints = detector.detect(image)
    try:
        p = plan(parse.edits, keypoints, (w, h), rules=rules)
    except RulesError as err:
        raise CommandError(str(err)) from err
    if not p.pairs:
        raise CommandError("the command asks for no movement; say how far, or name a part.")
    return PlannedEdit(parse=parse, keypoints=keypoints, plan=p, pairs=list(p.pairs), mask=p.mask_array())
