"""Parsed words + keypoints -> drag pairs (and the rules' mask), or one sentence saying why not.

`voicedrag.editor.Editor.run` calls these for every front end: `refusal` says why parsed words
make no edit, `needs_keypoints` whether the image's keypoints must be found first, and
`plan_command` turns the intents into handle/target pairs with the model's rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.types import DragPair, Point
from voicedrag.errors import VoicedragError

if TYPE_CHECKING:
    from voicedrag.intents import EditIntent
    from voicedrag.language.commands import ParseResult
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


def refusal(parse: ParseResult) -> str | None:
    """Why parsed words make no edit, in one sentence (the parser's own, with its best
    suggestion); None when they hold edits."""
    if parse.error:
        # The parser's sentence may already carry its own suggestions.
        offer = parse.suggestions and "did you mean" not in parse.error.lower()
        error = parse.error.rstrip(". ")
        if offer:
            return f"{error}; did you mean: {parse.suggestions[0]}?"
        return error if error.endswith(("?", "!")) else error + "."
    if parse.control is not None:
        return f"'{parse.control}' is a control word, not an edit; say an edit such as 'open the mouth'."
    if not parse.edits:
        return "no edit was understood; say an edit such as 'open the mouth'."
    return None


def plan_command(
    parse: ParseResult,
    size: tuple[int, int],  # (W, H) of the image the edit applies to
    keypoints: dict[str, Point],  # the image's named keypoints (empty where none were found)
    rules: Rules | None = None,
) -> PlannedEdit:
    """Turn a parsed command into drag pairs; raises CommandError with one sentence."""
    from voicedrag.planning.rules import RulesError, plan

    why = refusal(parse)
    if why is not None:
        raise CommandError(why)
    try:
        p = plan(parse.edits, keypoints, size, rules=rules)
    except RulesError as err:
        raise CommandError(str(err)) from err
    if not p.pairs:
        why = f": {p.warnings[0].rstrip('.')}" if p.warnings else ""
        raise NothingToMoveError(f"the command asks for no movement{why}; say how far, or name another part.")
    return PlannedEdit(parse=parse, keypoints=keypoints, plan=p, pairs=list(p.pairs), mask=p.mask_array())
