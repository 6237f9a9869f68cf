"""Clauses -> edit intents: the slot grammar's last stage.

A clause's slots become one `EditIntent` the rules can plan, or a `Failure`
that says in one sentence what is missing. Slots the clause left empty may
come from the previous edit ("raise the left ear and the right"), from the
lexicon's usual part for an action ("smile" is the mouth), or from the one
part that fits ("close the left side"). Explicit points and pixel distances
("drag 30,40 to 50,60", "move the nose up by 4 pixels") are read here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.types import Point
from voicedrag.intents import DIRECTION_VECTORS, EditIntent
from voicedrag.language import lexicon as lx
from voicedrag.language.clauses import Clause
from voicedrag.language.tokens import Run, decode_run
from voicedrag.language.vocabulary import Vocabulary
from voicedrag.planning.rules import Rule

AMOUNT_RANGE = (0.1, 4.0)


@dataclass
class Failure:
    # incomplete | unknown_part | no_rule | needs_direction | coordinates | negation | mixed | noise | unclear
    kind: str
    message: str
    clause: Clause


def resolve(vocab: Vocabulary, c: Clause, prev: EditIntent | None, warnings: list[str]) -> list[EditIntent] | Failure:
    """The edit one clause asks for, given the edit before it; appends what it assumed to `warnings`.

    May fill the clause's side and direction slots where it reads them differently
    ("... and the right": a side, not a direction).
    """
    early = _refusal_or_points(vocab, c, prev)
    if early is not None:
        return early
    slots = _action_and_part(vocab, c, prev)
    if isinstance(slots, Failure):
        return slots
    found = _find_rule(vocab, c, *slots)
    if isinstance(found, Failure):
        return found
    return _intent(vocab, c, *found, warnings)


def _refusal_or_points(vocab: Vocabulary, c: Clause, prev: EditIntent | None) -> list[EditIntent] | Failure | None:
    """Clauses settled before any slot is inferred: negations, explicit points, parts and words not known."""
    if c.neg:
        return Failure("negation", "say what to do rather than what not to do.", c)
    if any(isinstance(s, Run) for s in c.seq):
        return resolve_points(vocab, c, prev)
    if c.foreign is not None and c.part is None:
        return Failure("unknown_part", vocab.rules.unknown_part_message(c.foreign), c)
    if c.inner:
        return Failure(
            "unclear",
            f"'{c.part_word} {' '.join(c.inner)}' was not understood; say the command again in plain words.",
            c,
        )
    return None


def _action_and_part(vocab: Vocabulary, c: Clause, prev: EditIntent | None) -> tuple[str, str | None, str] | Failure:
    """The action, the word that named it (None when inferred) and the part."""
    action, word = c.action, c.action_word
    adj_action = c.adjs[0][0] if c.adjs else None
    looks = word in ("look", "looks")
    if adj_action is not None and (action is None or looks):
        action, word = adj_action, None
    elif looks and c.direction is None:
        # "look surprised" is a mood, not a head turn: leave it to paraphrase matching.
        action, word = None, None
    part = c.part
    if part is None and (c.pron or c.side or c.both) and prev is not None and prev.part is not None:
        part = prev.part
    if (
        action is None
        and part is None
        and c.side is None
        and c.direction in lx.LEFT_RIGHT
        and prev is not None
        and prev.side is not None
    ):
        # "raise the left ear and the right": a bare left/right after a sided edit is a side.
        c.side, c.direction = c.direction, None
        part = prev.part
    if action is None:
        borrowed = _borrow_action(vocab, c, prev, part, word)
        if isinstance(borrowed, Failure):
            return borrowed
        action, word = borrowed
    return _complete_part(vocab, c, prev, action, word, part)


def _borrow_action(
    vocab: Vocabulary, c: Clause, prev: EditIntent | None, part: str | None, word: str | None
) -> tuple[str, str | None] | Failure:
    """An action for a clause that named none: the previous edit's, or a move in the direction said."""
    # Only a clause without a verb of its own takes the previous one's ("... and the right ear");
    # "... and look on the right ear" said something else that was not understood.
    if (
        prev is not None
        and prev.part is not None
        and (part is not None or c.side or c.both)
        and c.action is None
        and not c.verb_unknown
    ):
        if c.direction is not None and prev.action not in ("move", "turn", "tilt"):
            return "move", word
        return prev.action, None
    if c.direction is not None and part is not None:
        ways = vocab.ways(part, c.direction)
        if c.verb_unknown and len(ways) > 1:
            # "deal to the head right": the verb was lost, and the head can go right in several ways.
            return Failure(
                "unclear",
                f"{c.unknown[0]!r} was not understood; say how the {part} should "
                f"go {_dir_words(c.direction)}: {' or '.join(ways)}.",
                c,
            )
        return "move", word
    what = f"the {part}" if part else "it"
    return Failure("incomplete", f"what should happen to {what}?" if part else "that is not a complete command.", c)


def _complete_part(
    vocab: Vocabulary, c: Clause, prev: EditIntent | None, action: str, word: str | None, part: str | None
) -> tuple[str, str | None, str] | Failure:
    """The part for an action, where the clause named none or named it in passing."""
    rules = vocab.rules
    if (
        c.corners
        and part in (None, "mouth")
        and c.direction in ("up", "down")
        and action in ("move", "raise", "lower")
        and "mouth" in rules.parts
    ):
        # "pull the mouth corners up" is a smile, "corners down" a frown.
        action, word, part = ("smile" if c.direction == "up" else "frown"), None, "mouth"
        c.direction = None
    if (
        part is None
        and c.side is None
        and c.direction in lx.LEFT_RIGHT
        and prev is not None
        and prev.side is not None
        and prev.part is not None
        and rules.resolve(action, prev.part, None) is not None
    ):
        # "raise the left ear and lower the right": the other side of the same part.
        c.side, c.direction, part = c.direction, None, prev.part
    if part is None and c.side is not None:
        # "close the left side": the one sided part that can do this.
        fits = [
            p for p, spec in rules.parts.items() if spec.sided and rules.resolve(action, p, c.direction) is not None
        ]
        if len(fits) == 1:
            part = fits[0]
    if part is None:
        if word is not None and word not in lx.VERBS and word in vocab.rule_verbs and len(vocab.rule_verbs[word]) == 1:
            part = next(iter(vocab.rule_verbs[word]))
        elif action in lx.DEFAULT_PART and lx.DEFAULT_PART[action] in rules.parts:
            part = lx.DEFAULT_PART[action]
        else:
            return Failure("incomplete", f"{action} what?", c)
    return action, word, part


def _find_rule(
    vocab: Vocabulary, c: Clause, action: str, word: str | None, part: str
) -> tuple[Rule, str | None, str] | Failure:
    """The rule, the direction it implies, and the part it acts on."""
    rules = vocab.rules
    resolved = rules.resolve(action, part, c.direction) if action in lx.VERBS.values() else None
    if resolved is None and word is not None:
        resolved = rules.resolve(word, part, c.direction)
    if (
        resolved is None
        and action in lx.DEFAULT_PART
        and rules.parts.get(part) is not None
        and part == lx.DEFAULT_PART.get("turn")
        and lx.DEFAULT_PART[action] in rules.parts
    ):
        # "a sad face", "a smile on his face": the face holds the part that smiles.
        part = lx.DEFAULT_PART[action]
        resolved = rules.resolve(action, part, c.direction)
    if resolved is None:
        return Failure(
            "no_rule",
            f"this model has no rule to {action} the {part}; for the {part} say: {rules.describe_part(part)}.",
            c,
        )
    rule, direction = resolved
    return rule, direction, part


def _intent(
    vocab: Vocabulary, c: Clause, rule: Rule, direction: str | None, part: str, warnings: list[str]
) -> list[EditIntent] | Failure:
    if rule.directions and direction is None and rule.default_direction is not None:
        # "tilt the head": a motion with a usual way, named so the user can ask for the other.
        direction = rule.default_direction
        others = [d for d in rule.directions if d != direction]
        warnings.append(
            f"no direction was said; {_gerund(rule.action)} the {part} {_dir_words(direction)}"
            + (f" (say '{_dir_words(others[0])}' for the other way)." if len(others) == 1 else ".")
        )
    if rule.directions and direction is None:
        return Failure(
            "needs_direction", f"say which way to {rule.action} the {part}: {' or '.join(rule.directions)}.", c
        )
    if rule.directions and direction not in rule.directions:
        return Failure(
            "no_rule", f"the {part} cannot {rule.action} {direction}; say {' or '.join(rule.directions)}.", c
        )
    side = None if c.both else c.side
    if side is not None and not vocab.rules.parts[part].sided:
        warnings.append(f"the {part} has no left or right; '{side}' was ignored.")
        side = None
    looks = c.action_word in ("look", "looks")
    amount = c.amount * adj_amount(c, explicit_verb=c.action is not None and not looks)
    return [
        EditIntent(
            action=rule.action,
            part=part,
            side=side,
            direction=direction if rule.directions else None,
            amount=clamp(amount),
        )
    ]


# ---------------------------------------------------------------- points and distances


def resolve_points(vocab: Vocabulary, c: Clause, prev: EditIntent | None) -> list[EditIntent] | Failure:
    """Explicit points: "drag 1,2 to 3,4", "move the point at 10, 20 up by 5 pixels"."""
    if c.part is not None and c.action is not None and not any(s == "POINTW" for s in c.seq):
        return _resolve_distance(vocab, c, prev)
    points = _drag_points(c)
    if isinstance(points, Failure):
        return points
    handle, target, pixels = points
    if handle is None:
        return Failure("coordinates", "say where to start, as in 'drag 30,40 to 50,60'.", c)
    direction = c.direction
    if target is None and direction is None:
        return Failure(
            "coordinates",
            f"drag {handle.x:g},{handle.y:g} to where? say 'drag "
            f"{handle.x:g},{handle.y:g} to 50,60' or add a direction.",
            c,
        )
    if target is None and pixels is not None and direction is not None:
        ux, uy = DIRECTION_VECTORS[direction]
        target = Point(handle.x + ux * pixels, handle.y + uy * pixels)
    return [
        EditIntent(
            action="drag",
            direction=direction if target is None or pixels is not None else None,
            amount=clamp(c.amount),
            pixels=pixels,
            handle=handle,
            target=target,
        )
    ]


def _resolve_distance(vocab: Vocabulary, c: Clause, prev: EditIntent | None) -> list[EditIntent] | Failure:
    """A distance, not a point: "move the nose up by 4 pixels" / "move the nose up 4"."""
    runs = [s for s in c.seq if isinstance(s, Run)]
    nums = decode_run(runs[0], 1) if len(runs) == 1 else None
    if nums is None:
        return Failure("coordinates", "give one distance, as in 'move the nose up by 4 pixels'.", c)
    c2 = Clause(**{**c.__dict__, "seq": []})
    got = resolve(vocab, c2, prev, [])
    if isinstance(got, Failure):
        return Failure(got.kind, got.message, c)
    got[0].pixels = float(nums[0])
    got[0].amount = 1.0  # a distance in pixels replaces the amount
    return got


def _drag_points(c: Clause) -> tuple[Point | None, Point | None, float | None] | Failure:
    """The start point, end point and pixel distance the clause's number runs give."""
    handle: Point | None = None
    target: Point | None = None
    pixels: float | None = None
    seq = c.seq
    for i, s in enumerate(seq):
        if not isinstance(s, Run):
            continue
        before = seq[i - 1] if i > 0 else None
        after = seq[i + 1] if i + 1 < len(seq) else None
        if before == "BY" or after == "PIXELS":
            nums = decode_run(s, 1)
            if nums is None:
                return Failure("coordinates", f"'{s.text}' is not one distance; say it as 'by 12 pixels'.", c)
            pixels = float(nums[0])
            continue
        pair = decode_run(s, 2)
        if pair is not None:
            pt = Point(float(pair[0]), float(pair[1]))
            if before == "TO" or handle is not None:
                if target is not None:
                    return Failure(
                        "coordinates", "one drag takes one start and one end point; join more drags with 'and'.", c
                    )
                target = pt
            else:
                handle = pt
            continue
        quad = decode_run(s, 4) if handle is None and before != "TO" else None
        if quad is not None:
            handle, target = Point(float(quad[0]), float(quad[1])), Point(float(quad[2]), float(quad[3]))
            continue
        return Failure("coordinates", f"'{s.text}' is not a point; give x and y, as in 'drag 30,40 to 50,60'.", c)
    return handle, target, pixels


# ---------------------------------------------------------------- amounts and wording


def adj_amount(c: Clause, explicit_verb: bool = True) -> float:
    """Adjectives next to a verb that already names the action are amounts ("open it wide")."""
    if not explicit_verb or not c.adjs:
        return 1.0
    used_as_action = c.action is None or c.action_word in ("look", "looks")
    out = 1.0
    for i, (_, amt) in enumerate(c.adjs):
        if used_as_action and i == 0:
            continue
        out *= amt
    return out


def clamp(amount: float) -> float:
    return float(min(max(amount, AMOUNT_RANGE[0]), AMOUNT_RANGE[1]))


def _gerund(verb: str) -> str:
    return verb.removesuffix("e") + "ing"


def _dir_words(direction: str) -> str:
    return f"to the {direction}" if direction in lx.LEFT_RIGHT else direction


__all__ = ["AMOUNT_RANGE", "Failure", "adj_amount", "clamp", "resolve", "resolve_points"]
