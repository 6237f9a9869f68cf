"""Spoken points: explicit drags ("drag 64, 80 to 70, 90") decoded in a grammar of points.

Free decoding writes spoken coordinates badly: "drag sixty four comma eighty to seventy comma
ninety" comes out as "drag 64 come 80 to 70 common high", "drag 6 for 80 to 7 0 90" or "move the
point at 34040 up by 5", which the parser refuses or misreads. The commands of the grammar
(voicedrag.speech.grammar) hold no numbers, so scoring them cannot help. Here a small grammar of
explicit drags, with every number that fits the image in each slot, is searched on the audio
(`decode_in_graph`): a point is always two numbers, "comma" is a comma, and a number the image
cannot hold is never written, so the audio picks the numbers that were said.

    [drag | move] [the point at | from] POINT (to POINT | DIRECTION [by N [pixels]])
    POINT = N [, | comma] N  |  x N [, | comma] y N

Measured on 150 spoken point commands (30 phrasings, short and long drags, each in espeak-ng's
default voice and the Flite voices awb, slt, rms and kal16) for a 256-pixel image: 119 placed
right, against 29 by free decoding and the parser alone (116 where the image size is not known).
Most misses are numbers tiny.en itself confuses ("twelve" and "one", "seventy ninety" and "79").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from voicedrag.speech.grammar import GrammarChoice, GrammarSettings, Scored, WordGraph

# Without an image size, numbers up to this many pixels are allowed (the largest models draw 1024).
DEFAULT_LIMIT = 1024
VERBS = (" drag", " move")
LEADS = (" the point at", " the point", " point", " from", " the point from")
SEPARATORS = (",", " comma")
DIRECTIONS = (" up", " down", " left", " right", " to the left", " to the right")
PIXELS = (" pixels", " pixel")

# The search's own prompt: drags with points, in the digits Whisper writes (its numbers are none
# of the tests'). Measured on 50 spoken point commands (10 commands, espeak-ng and four Flite
# voices, numbers up to 1024): under the command prompt (PROMPT_EXAMPLES and the vocabulary) the
# search placed 15 of 30 right (three Flite voices); under this one 41 of 50; with commas between
# the numbers 38, with "x ... y ..." and "comma" examples as well 39.
POINTS_PROMPT = "Drag 35 120 to 48 96. Move the point at 210 57 up by 6 pixels. From 13 88 to 140 75."


@dataclass(frozen=True)
class Limits:
    """The largest x, y and distance the grammar writes (pixels of the image the command edits)."""

    x: int = DEFAULT_LIMIT
    y: int = DEFAULT_LIMIT

    @classmethod
    def of(cls, size: tuple[int, int] | None) -> Limits:
        """The limits of an image of `size` (width, height): a point lies on it, 0 .. size - 1."""
        return cls() if size is None else cls(max(int(size[0]) - 1, 0), max(int(size[1]) - 1, 0))


class _Builder:
    def __init__(self) -> None:
        self.arcs: dict[int, list[tuple[str, int]]] = {}
        self.count = 0

    def state(self) -> int:
        self.count += 1
        return self.count

    def add(self, source: int, words: Sequence[str], target: int) -> None:
        self.arcs.setdefault(source, []).extend((w, target) for w in words)

    def same_as(self, source: int, other: int) -> None:
        """`source` says whatever `other` says (an optional word before `other`)."""
        self.arcs.setdefault(source, []).extend(self.arcs.get(other, []))


def _numbers(limit: int, start: int = 0) -> list[str]:
    # Digits, as Whisper writes numbers: with number words instead (on the same 30 commands, under
    # the command prompt) the search placed 12 right against 15, choosing "six four eighty" (6, 480)
    # for "sixty four eighty".
    return [f" {n}" for n in range(start, limit + 1)]


def _point(b: _Builder, source: int, target: int, limits: Limits) -> None:
    """POINT from `source` to `target`: "64 80", "64, 80", "64 comma 80", "x 64 y 80"."""
    after_x, before_y = b.state(), b.state()
    b.add(before_y, _numbers(limits.y), target)
    b.add(after_x, SEPARATORS, before_y)
    b.same_as(after_x, before_y)
    b.add(source, _numbers(limits.x), after_x)
    said_x, x_value, said_y = b.state(), b.state(), b.state()
    b.add(source, (" x",), said_x)
    b.add(said_x, _numbers(limits.x), x_value)
    b.add(said_y, _numbers(limits.y), target)
    b.add(x_value, (" y",), said_y)
    comma = b.state()
    b.add(x_value, SEPARATORS, comma)
    b.add(comma, (" y",), said_y)


def point_graph(limits: Limits = Limits()) -> WordGraph:
    """The grammar of explicit drags (module docstring) with numbers within `limits`."""
    b = _Builder()
    start = 0
    verb, first, after_first, done = b.state(), b.state(), b.state(), b.state()
    second, direction, by, distance = b.state(), b.state(), b.state(), b.state()
    _point(b, first, after_first, limits)
    b.add(start, VERBS, verb)
    b.add(start, (" from",), first)
    b.same_as(start, first)  # "64 80 to 70 90", "x 64 y 80 to x 70 y 90"
    b.add(verb, LEADS, first)
    b.same_as(verb, first)
    b.add(after_first, (" to",), second)
    _point(b, second, done, limits)
    b.add(after_first, DIRECTIONS, direction)
    b.add(direction, (" by",), by)
    b.add(by, _numbers(max(limits.x, limits.y), start=1), distance)
    b.add(distance, PIXELS, done)
    return WordGraph({k: tuple(v) for k, v in b.arcs.items()}, frozenset({done, direction, distance}), start)


_NUMBER = re.compile(r"\d")


def sounds_like_points(text: str) -> bool:
    """Whether a transcript the parser could not read sounds like explicit points: two numbers or
    more, a number too long for one coordinate, or a number and a word of points ("point",
    "comma" or what a recogniser makes of it)."""
    from voicedrag.language import lexicon as lx

    words = re.findall(r"\d+|[a-z]+", text.lower())
    numbers = sum(
        1
        for i, w in enumerate(words)
        if _NUMBER.match(w) or (w in lx.NUMBER_WORDS and (i == 0 or words[i - 1] not in lx.NUMBER_WORDS))
    )
    cues = {"point", "points", "drag", "from", "x", "y"} | lx.COMMA_SOUNDS
    # "6488709": the numbers of a point or two run together, longer than any pixel coordinate.
    run_together = any(len(w) > 4 and w.isdigit() for w in words)
    return numbers >= 2 or run_together or (numbers >= 1 and any(w in cues for w in words))


def plain_text(text: str) -> str:
    """A free transcript as the grammar spells it: lower case, without the sentence's end."""
    return text.strip().rstrip(".!?").strip().lower()


def choose_points(
    free_text: str,
    scored: Sequence[Scored],
    settings: GrammarSettings,
    heard_unsure: bool = False,
) -> GrammarChoice | None:
    """The likeliest of the point grammar's texts on the audio (`scored`: decode_in_graph's, and the
    free transcript's own where the grammar says it), or None where none is likely enough (the
    floors of `choose`). Texts of one grammar are compared by their log-probability alone: the length
    bonus of `choose` evens out commands of different lengths, and here it would only favour a
    spoken "comma" or "the point at" that was not said."""
    if not scored:
        return None
    # A prior for short drags (a drag of a quarter of the image costing one nat) was tried on 150
    # spoken point commands (image 256 px): 8 more of 100 short drags placed right, 11 fewer of 50 long ones.
    best = max(scored, key=lambda s: s.total)
    floor = min(settings.min_avg_logprob, settings.unsure_min_avg_logprob) if heard_unsure else settings.min_avg_logprob
    if best.average < floor:
        return None
    if best.text == plain_text(free_text):
        return GrammarChoice(free_text, "free", free_text, list(scored))
    return GrammarChoice(best.text, "grammar", free_text, list(scored))
