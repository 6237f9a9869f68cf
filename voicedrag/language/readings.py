"""Words -> the best reading: mishearing correction steered by the grammar.

Each word not in the vocabulary may stay as heard or become one of the
corrector's candidates; every mix of choices is read by the grammar (tokens,
clauses, resolution), and the reading that makes the most complete command
for the least correction wins. The corrector only proposes: "open the mouse"
becomes "mouth", not "nose", because the nose cannot open.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from voicedrag.intents import EditIntent
from voicedrag.language import lexicon as lx
from voicedrag.language.clauses import Clause, build_clauses
from voicedrag.language.correct import HOMOPHONES, syllables
from voicedrag.language.resolve import Failure, resolve
from voicedrag.language.tokens import categorize, merge_phrases
from voicedrag.language.vocabulary import Vocabulary

MAX_CORRECTION_COMBOS = 32
# A clause may hold at most this much correction (a loose fix counts 1, a close one less) beyond its known words.
MAX_FIX_LOAD = 1.5
# A correction that is the only content of a clause (or a control word) must be this close.
CONFIDENT_FIX = 0.3
# Whole words a recogniser writes for a command word; offered as options, never forced.
SOUNDALIKES: dict[str, tuple[str, float]] = {"here": ("ear", 0.2), "hear": ("ear", 0.1), "no": ("nose", 0.2)}
# After "left" or "right" these are the ear: "the left here" is not a place.
SIDE_SOUNDALIKES = frozenset({"here", "hear", "year", "years"})
# Replacing a word that is valid on its own must be worth more than replacing an unknown one.
SECOND_PASS_PENALTY = 0.1

# The ways to take each word: (word, cost of the correction); the word as heard costs nothing.
Slots = list[list[tuple[str, float]]]


@dataclass
class Reading:
    """The grammar's interpretation of one corrected word sequence."""

    words: list[str]
    control: str | None
    edits: list[EditIntent | None]  # None where a clause failed
    clauses: list[Clause]
    failures: list[Failure]
    warnings: list[str]
    cost: float
    corrections: list[tuple[str, str]]
    dropped: list[str] = field(default_factory=list)  # junk clauses read past ("and mid")

    def score(self) -> tuple[int, int, float]:
        # A correction must earn its place by completing the command; when
        # nothing completes it, the words as heard are the best report.
        odd = sum(len(c.odd) for c in self.clauses)
        if self.failures:
            return (len(self.failures) + odd, len(self.corrections), self.cost)
        unknown = sum(len(c.unknown) for c in self.clauses)
        return (odd, unknown, self.cost)


def best_reading(vocab: Vocabulary, words: list[str]) -> Reading:
    """The reading of normalized words that the grammar understands best."""
    # Phrases first, so that filler such as "i want you to" is gone before "i" can become "eye".
    words = merge_phrases(words)
    slots = _slots(vocab, words)
    best = _search(vocab, words, slots)
    odd = {w for c in best.clauses for w in c.odd}
    if odd or best.failures:
        # Second pass: valid words that fit nowhere may be mishearings too ("lift" for "left").
        suspects = odd or {w for c in best.clauses for w in c.words if w in lx.VERBS and c.action_word != w}
        widened = []
        for w, s in zip(words, slots, strict=True):
            if w in suspects and len(s) == 1:
                extra = [
                    (c.word, c.cost + SECOND_PASS_PENALTY) for c in vocab.corrector.candidates(w, 4) if c.word != w
                ][:3]
                widened.append(s + extra)
            else:
                widened.append(s)
        if widened != slots:
            second = _search(vocab, words, widened)
            if second.score() < best.score():
                best = second
    return best


def _slots(vocab: Vocabulary, words: list[str]) -> Slots:
    slots: Slots = []
    for i, w in enumerate(words):
        if w in SIDE_SOUNDALIKES and i > 0 and words[i - 1] in lx.LEFT_RIGHT and "ear" in vocab.part_words:
            # "raise the left here": after a side, a word that sounds like "ear" is the ear.
            slots.append([("ear", 0.0)])
            continue
        if w in HOMOPHONES and HOMOPHONES[w] in vocab.known:
            slots.append([(HOMOPHONES[w], 0.0)])
            continue
        if w in SOUNDALIKES and SOUNDALIKES[w][0] in vocab.known:
            slots.append([(w, 0.0), SOUNDALIKES[w]])
            continue
        if w == "," or w[0].isdigit() or w in vocab.known:
            slots.append([(w, 0.0)])
            continue
        # Keeping the word unread is always an option, so a correction must earn its place.
        options = [(w, 0.0)] + [(c.word, c.cost) for c in vocab.corrector.candidates(w, 3)]
        slots.append(options)
    return slots


def _search(vocab: Vocabulary, words: list[str], slots: Slots) -> Reading:
    combos = 1
    for s in slots:
        combos *= len(s)
    if combos > MAX_CORRECTION_COMBOS:
        # Too many unknown words to try every mix: take the cheapest correction for the extras.
        budget = MAX_CORRECTION_COMBOS
        trimmed = []
        for s in slots:
            if len(s) > 1 and budget >= len(s):
                budget //= len(s)
                trimmed.append(s)
            elif len(s) > 1:
                trimmed.append([min(s[1:], key=lambda o: o[1])])
            else:
                trimmed.append(s)
        slots = trimmed
    best: Reading | None = None
    for choice in itertools.product(*slots):
        chosen = [c[0] for c in choice]
        corrections = [(w, c[0]) for w, c in zip(words, choice, strict=True) if c[0] != w]
        costs = {c[0]: c[1] for w, c in zip(words, choice, strict=True) if c[0] != w}
        reading = read(vocab, chosen, sum(c[1] for c in choice), corrections, costs)
        if best is None or reading.score() < best.score():
            best = reading
    assert best is not None
    return best


def read(
    vocab: Vocabulary,
    words: list[str],
    cost: float,
    corrections: list[tuple[str, str]],
    costs: dict[str, float] | None = None,
) -> Reading:
    """The grammar's reading of one choice of words; `costs` prices each corrected word."""
    costs = costs or {}
    merged = merge_phrases(words)
    clauses = build_clauses(vocab, categorize(vocab, merged))
    controls = [c.control for c in clauses if c.control]
    content = [c for c in clauses if c.has_edit_content()]
    if controls and not content:
        return _control_reading(merged, clauses, controls[0], cost, corrections, costs)
    clauses = [c for c in clauses if not c.empty()]
    return _edit_reading(vocab, merged, clauses, cost, corrections, costs)


def _control_reading(
    words: list[str],
    clauses: list[Clause],
    control: str,
    cost: float,
    corrections: list[tuple[str, str]],
    costs: dict[str, float],
) -> Reading:
    # A control word must be the whole message: "low air control" is not "cancel".
    # A recogniser keeps the beats of a command word: "rest" (one) is not "reset" (two).
    same_beat = all(syllables(h) >= syllables(u) for h, u in corrections if u in lx.CONTROL_WORDS)
    if not any(c.unknown or c.neg for c in clauses) and max(costs.values(), default=0.0) <= CONFIDENT_FIX and same_beat:
        return Reading(words, control, [], clauses, [], [], cost, corrections)
    failure = Failure("noise", "that does not sound like a command.", clauses[0])
    return Reading(words, None, [None], clauses[:1], [failure], [], cost, corrections)


def _edit_reading(
    vocab: Vocabulary,
    words: list[str],
    clauses: list[Clause],
    cost: float,
    corrections: list[tuple[str, str]],
    costs: dict[str, float],
) -> Reading:
    dropped: list[str] = []
    warnings: list[str] = []
    edits: list[EditIntent | None] = []
    failures: list[Failure] = []
    prev: EditIntent | None = None
    for i, clause in enumerate(clauses):
        if _mostly_guessed(vocab, clause, costs):
            # Mostly words that are not commands ("the quick brown fox..."), or nothing
            # but a loose guess: corrections would only invent an edit.
            edits.append(None)
            if i > 0 and prev is not None:
                # Recognisers add junk after a command ("open the eyes and mid"): drop it.
                warnings.append(f"ignored {clause.text()!r}.")
                dropped.append(clause.text())
            else:
                failures.append(Failure("noise", "that does not sound like an edit command.", clause))
            continue
        if clause.control and clause.control != "redo":
            failures.append(Failure("mixed", f"say '{clause.control}' on its own, then the edit.", clause))
            edits.append(None)
            continue
        got = resolve(vocab, clause, prev, warnings)
        if isinstance(got, Failure):
            failures.append(got)
            edits.append(None)
        else:
            edits.append(got[0])
            prev = got[0]
    return Reading(words, None, edits, clauses, failures, warnings, cost, corrections, dropped)


def _mostly_guessed(vocab: Vocabulary, clause: Clause, costs: dict[str, float]) -> bool:
    """Whether a clause holds more unknown or corrected words than command words to anchor them."""
    fixed = [costs[w] for w in clause.words if w in costs]
    unknown = len(clause.unknown)
    known = sum(vocab.is_core(w) and w not in costs for w in clause.words)
    # A close correction ("mouse" -> "mouth") counts less than a loose one.
    load = sum(min(1.0, c / CONFIDENT_FIX) for c in fixed)
    return (
        load > max(MAX_FIX_LOAD, known)
        or unknown + len(fixed) > max(2, known + 1)
        or (known == 0 and max(fixed, default=0.0) > CONFIDENT_FIX)
    )


__all__ = [
    "CONFIDENT_FIX",
    "MAX_CORRECTION_COMBOS",
    "MAX_FIX_LOAD",
    "SECOND_PASS_PENALTY",
    "SIDE_SOUNDALIKES",
    "SOUNDALIKES",
    "Reading",
    "Slots",
    "best_reading",
    "read",
]
