"""Typed or transcribed text -> a control word or a list of edit intents.

Three layers, each covering for the others' mistakes:

1. Misheard words are corrected toward the vocabulary by sound and spelling
   (`voicedrag.language.correct`); the corrector only proposes, and the grammar keeps
   the reading that makes a complete, plannable command ("open the mouse" ->
   mouth, not nose, because the nose cannot open).
2. A slot grammar fills action, part, side, direction, amount and points.
3. Only what the grammar could not fill goes to sentence embeddings
   (`voicedrag.language.paraphrase`), and only among canonical phrasings that agree
   with every slot the grammar did fill, with a confidence threshold and a
   margin over the runner-up. Nearest-phrase matching alone sends "open the
   mouse" to "open the eyes" and "widen his jaw" to "close the mouth".

`parse` never raises: unknown, empty or half-finished input comes back as a
ParseResult with `error` and `suggestions`.
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError
from engine.types import Point
from voicedrag.language import lexicon as lx
from voicedrag.language.correct import HOMOPHONES, Corrector, syllables
from voicedrag.intents import CONTROL_PHRASES, CONTROLS, DIRECTION_VECTORS, PROMPT_VERBS, EditIntent
from voicedrag.language.numbers import split_number_words
from voicedrag.planning.rules import Rules, default_rules

# Paraphrase matching: accept the nearest canonical phrasing when it is at
# least this similar and this far ahead of the best different intent.
ACCEPT_SCORE = 0.5
ACCEPT_MARGIN = 0.04
# With no slot filled by the grammar, the sentence must match more closely.
ACCEPT_SCORE_OPEN = 0.62
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
AMOUNT_RANGE = (0.1, 4.0)

GENERIC_SUGGESTIONS = ("open the mouth", "smile", "turn the head to the left")
AMOUNT_SUGGESTIONS = ("smile more", "open the mouth a little", "open the mouth wide")



@dataclass
class ParseResult:
    """What a line of text asks for: a control word, edits, or an error."""

    text: str
    corrected: str = ""
    control: str | None = None
    edits: list[EditIntent] = field(default_factory=list)
    error: str | None = None
    suggestions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    corrections: list[tuple[str, str]] = field(default_factory=list)  # (heard, used)
    matched: list[str] = field(default_factory=list)  # canonical phrasings chosen by paraphrase matching
    confidence: float = 1.0
    # Words read past: unknown words inside an understood clause, and junk clauses after a command.
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "corrected": self.corrected,
            "control": self.control,
            "edits": [e.to_json() for e in self.edits],
            "error": self.error,
            "suggestions": list(self.suggestions),
            "warnings": list(self.warnings),
            "corrections": [list(c) for c in self.corrections],
            "matched": list(self.matched),
            "confidence": round(float(self.confidence), 4),
        }


# ---------------------------------------------------------------- tokens

@dataclass
class _Tok:
    kind: str
    text: str
    value: object = None


@dataclass
class _Run:
    """Consecutive numbers: groups split at commas; each group digits or number words."""

    groups: list[list[str]]
    text: str


@dataclass
class _Clause:
    action: str | None = None
    action_word: str | None = None
    make: bool = False
    adjs: list[tuple[str, float]] = field(default_factory=list)
    part: str | None = None
    part_word: str | None = None
    foreign: str | None = None
    side: str | None = None
    both: bool = False
    direction: str | None = None
    amount: float = 1.0
    seq: list[object] = field(default_factory=list)  # number runs and the markers around them
    unknown: list[str] = field(default_factory=list)
    pron: bool = False
    neg: bool = False
    control: str | None = None
    words: list[str] = field(default_factory=list)
    odd: list[str] = field(default_factory=list)  # valid words in a slot where they make no sense
    after_comma: bool = False  # separated from the previous clause by a comma alone
    corners: bool = False  # "the mouth corners up" is a smile
    inner: list[str] = field(default_factory=list)  # unknown words between the part and its direction
    verb_unknown: bool = False  # the first content word, where the verb goes, was not understood

    def has_edit_content(self) -> bool:
        return bool(self.action or self.adjs or self.part or self.foreign or self.direction
                    or any(isinstance(s, _Run) for s in self.seq))

    def empty(self) -> bool:
        return not (self.has_edit_content() or self.unknown or self.control or self.side or self.both
                    or self.pron or self.neg)


@dataclass
class _Failure:
    kind: str  # incomplete | unknown_part | no_rule | needs_direction | coordinates | negation | mixed
    message: str
    clause: _Clause


@dataclass
class _Reading:
    """The grammar's interpretation of one corrected word sequence."""

    words: list[str]
    control: str | None
    edits: list[EditIntent | None]  # None where a clause failed
    clauses: list[_Clause]
    failures: list[_Failure]
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


_CONTRACTIONS = {"don't": "do not", "doesn't": "does not", "can't": "can not", "won't": "will not",
                 "didn't": "did not", "isn't": "is not", "wasn't": "was not", "shouldn't": "should not",
                 "wouldn't": "would not", "couldn't": "could not", "mustn't": "must not",
                 "let's": "lets", "it's": "it is", "that's": "that is", "i'd": "i'd", "he's": "he is"}


def normalize(text: str) -> list[str]:
    """Lower-cased words, digit numbers and commas; sentence punctuation becomes commas."""
    t = text.lower()
    t = t.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", " ").replace("\u201d", " ")
    t = t.replace("&", " and ")
    t = re.sub(r"(\d)\s*[x×]\s*(\d)", r"\1 , \2", t)
    t = re.sub(r"(\d)\s*[-/]\s*(?=\d)", r"\1 , ", t)
    t = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", t)
    t = re.sub(r"[()\[\]{}\"]", " ", t)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", ",", t)
    # ";" separates drag pairs, as in `--points` ("drag 1,2 to 3,4; 5,6 to 7,8"): a new clause.
    t = t.replace(";", " and ")
    t = re.sub(r"[:!?]", ",", t)
    words: list[str] = []
    for m in re.finditer(r"\d+(?:\.\d+)?|[a-z][a-z']*|,", t):
        w = m.group(0)
        if w in _CONTRACTIONS:
            words.extend(_CONTRACTIONS[w].split())
            continue
        if w.endswith("'s") and w not in HOMOPHONES and w not in lx.CONTROL_WORDS:
            w = w[:-2]
        w = w.strip("'")
        if w:
            words.append(w)
    # "by for pixels": number words a recogniser spelled as their homophones.
    for i in range(len(words) - 1):
        nxt = words[i + 1] if words[i + 1] != "," or i + 2 >= len(words) else words[i + 2]
        if words[i] in _NUMBER_HOMOPHONES and nxt in lx.PIXEL_WORDS:
            words[i] = _NUMBER_HOMOPHONES[words[i]]
    return words


# A minus sign that starts a number: after the start, a space, a comma, ";" or "(", where the last
# thing before it is not a number ("3-4" and "3 - 4" are pairs) and not a letter joined to it.
_NEGATIVE = re.compile(r"(?:^|(?<=[\s,;(\[]))[-\u2212]\s?\d+(?:\.\d+)?")


def _negative_number(text: str) -> re.Match[str] | None:
    for m in _NEGATIVE.finditer(text):
        before = text[: m.start()].rstrip()
        if not before or not before[-1].isdigit():
            return m
    return None

# Words of requests a drag cannot carry out: styles, colours and things to add. Words a
# recogniser makes of command words are left out ("hat" for "head", "green" for "grin", "brown"
# for "brow", "paint" for "point", "mask" is a command of its own): those are corrected instead.
BEYOND_DRAGS = frozenset("""
painting painted watercolor watercolour sketch drawing cartoon anime comic style styled pixar
gogh picasso monet rembrandt vermeer photorealistic oil pastel impressionist cubist
blue yellow purple orange black white grey gray blonde colour color colored coloured
glasses sunglasses beard moustache mustache earring earrings makeup lipstick tattoo scarf crown
background sky sunset
""".split())

# Those words, when nothing in the command could be read as an edit ("paint it red", "give him
# a hat"), are refused in the same words, instead of answered with unrelated suggestions.
BEYOND_UNLESS_READ = frozenset("red green brown pink hat hats cap paint".split())

_NUMBER_HOMOPHONES = {"for": "4", "to": "2", "too": "2", "won": "1", "ate": "8", "tree": "3"}


def collapse_repeats(words: list[str]) -> list[str]:
    """Drop a phrase repeated back to back ("open the mouth open the mouth").

    Runs containing numbers are left alone: "64 64" is a point, not an echo.
    """
    out = list(words)
    changed = True
    while changed:
        changed = False
        for n in range(min(8, len(out) // 2), 0, -1):
            for i in range(0, len(out) - 2 * n + 1):
                a = out[i:i + n]
                if a != out[i + n:i + 2 * n]:
                    continue
                if any(w[0].isdigit() or w in lx.NUMBER_WORDS for w in a):
                    continue
                del out[i + n:i + 2 * n]
                changed = True
                break
            if changed:
                break
    # Commas left doubled by the removal.
    return [w for i, w in enumerate(out) if not (w == "," and i > 0 and out[i - 1] == ",")]


_MAX_PHRASE_WORDS = max(len(p.split()) for p in lx.PHRASES)


def _merge_phrases(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        for n in range(min(_MAX_PHRASE_WORDS, len(words) - i), 1, -1):
            key = " ".join(words[i:i + n])
            if key in lx.PHRASES:
                rep = lx.PHRASES[key]
                if rep:
                    out.append(rep)
                i += n
                break
        else:
            out.append(words[i])
            i += 1
    # "one hundred and twenty": the "and" belongs to the number.
    cleaned: list[str] = []
    for i, w in enumerate(out):
        if (w == "and" and cleaned and cleaned[-1] in ("hundred", "thousand")
                and i + 1 < len(out) and out[i + 1] in lx.NUMBER_WORDS):
            continue
        # "the left one": "one" stands for the part, not a number.
        next_is_number = i + 1 < len(out) and out[i + 1] in lx.NUMBER_WORDS
        if w == "one" and cleaned and cleaned[-1] in lx.LEFT_RIGHT and not next_is_number:
            continue
        cleaned.append(w)
    return cleaned


class CommandParser:
    """Parses commands against one rules file; holds the optional paraphrase model."""

    def __init__(self, rules: Rules | None = None, use_embeddings: bool = True) -> None:
        self.rules = rules or default_rules()
        self.use_embeddings = use_embeddings
        self.embedding_error: str | None = None if use_embeddings else "paraphrase matching is switched off"
        self._index: object | None = None
        self._load_lock = threading.Lock()
        self._part_words = self.rules.part_words()
        self._singular = {w for spec in self.rules.parts.values() for w in spec.words
                          if not w.endswith("s") or w in ("lips",)} - {"lips"}
        self._rule_verbs: dict[str, set[str]] = {}
        for rule in self.rules.rules:
            for v in rule.verbs:
                self._rule_verbs.setdefault(v, set()).add(rule.part)
        self._known = self._known_words()
        self._content = self._content_words()
        self.corrector = Corrector(self._content)
        self._examples: set[int] = set()  # template indices that are example phrasings, not canonical ones
        self.templates = self._templates()

    # ------------------------------------------------------------ vocabulary

    def _known_words(self) -> set[str]:
        known: set[str] = set()
        for table in (lx.VERBS, lx.ADJECTIVES, lx.AMOUNTS, lx.DIRECTION_WORDS, lx.CONTROL_WORDS):
            known.update(table)
        for phrase in lx.PHRASES:
            known.update(phrase.split())
        known.update(lx.MAKE_WORDS | lx.LEFT_RIGHT | lx.BOTH_WORDS | lx.CONTROL_OBJECTS | lx.FOREIGN_PARTS
                     | lx.PRONOUNS | lx.NEGATIONS | lx.CORNER_WORDS | lx.SEPARATORS | lx.POINT_WORDS | lx.PIXEL_WORDS
                     | lx.TO_WORDS | lx.FROM_WORDS | lx.BY_WORDS | lx.AT_WORDS | lx.STOPWORDS
                     | lx.NUMBER_WORDS | lx.UNSUPPORTED | {"comma", "and", "point"})
        known.update(self._part_words)
        known.update(self._rule_verbs)
        return known

    def _content_words(self) -> list[str]:
        """Words a misheard word may be corrected to: the core of the language, not every synonym.

        Rare synonyms as targets do more harm than good: "bare the teeth" would
        become "purse the teeth" and "have him smile" "huge him smile".
        """
        words = set(lx.CORRECTION_TARGETS) | set(self._part_words)
        return sorted(words)

    def vocabulary(self) -> list[str]:
        """Words of the current command language, most specific first (for a recogniser's prompt)."""
        first = list(self.rules.words())
        return list(dict.fromkeys(first + list(PROMPT_VERBS) + list(lx.PROMPT_WORDS) + list(CONTROLS)))

    def _templates(self) -> list[tuple[str, EditIntent | str]]:
        """Canonical phrasings of every intent the rules can plan, plus control words."""
        out: list[tuple[str, EditIntent | str]] = []
        for rule in self.rules.rules:
            sided = self.rules.parts[rule.part].sided
            sides: list[str | None] = [None, "left", "right"] if sided else [None]
            directions: list[str | None] = list(rule.directions) or [None]
            for side in sides:
                for d in directions:
                    e = EditIntent(action=rule.action, part=rule.part, side=side, direction=d)
                    out.append((e.phrase(), e))
            if not rule.directions:
                for p in rule.phrases:
                    self._examples.add(len(out))
                    out.append((p, EditIntent(action=rule.action, part=rule.part)))
        for name, phrase in CONTROL_PHRASES.items():
            out.append((phrase, name))
        return out

    # ------------------------------------------------------------ model

    def load(self) -> bool:
        """Load the sentence model and embed the canonical phrasings; False (with a reason) if it cannot."""
        if not self.use_embeddings:
            return False
        with self._load_lock:
            if self._index is not None:
                return True
            if self.embedding_error is not None:
                return False
            try:
                from voicedrag.language.paraphrase import MiniLMEncoder, ParaphraseIndex

                encoder = MiniLMEncoder()
                self._index = ParaphraseIndex(encoder, self.templates, cache=_cache_path(self.templates))
            except UserError as err:
                self.embedding_error = str(err)
                return False
            except Exception as err:  # noqa: BLE001 - parsing must work without the model, whatever broke it
                self.embedding_error = f"the sentence model could not be loaded ({type(err).__name__}: {err})"
                return False
            return True

    @property
    def loaded(self) -> bool:
        return self._index is not None

    # ------------------------------------------------------------ parsing

    def parse(self, text: str) -> ParseResult:
        try:
            return self._parse(text)
        except Exception as err:  # noqa: BLE001 - parse must never raise; a bug becomes a readable error
            return ParseResult(text=text, corrected=text, error=f"the command could not be read ({err}); "
                               "please rephrase it.")

    def _parse(self, text: str) -> ParseResult:
        text = text if isinstance(text, str) else str(text)
        # A minus before a number ("drag -5,-5 to 30,30") is not punctuation to drop: the point
        # would silently become (5, 5). Pixels count from the top-left corner, so say so.
        negative = _negative_number(text)
        if negative:
            return ParseResult(text=text, corrected=text, error=f"{negative.group(0).strip()!r} is a negative "
                               "coordinate; points are pixels from the top-left corner (0,0), so give x and y "
                               "inside the image, as in 'drag 30,40 to 50,60'.")
        words = collapse_repeats(normalize(text))
        # A style, a colour or an object is not a drag of a part: refused as it was said, before
        # any correction could turn "van gogh painting" into "frown gogh point".
        rule_words = set(self.rules.words())  # a model's own rules may name any of these words
        beyond = next((w for w in words if w in BEYOND_DRAGS and w not in rule_words), None)
        if beyond is not None:
            return self._beyond(text, words, beyond)
        result = self._parse_words(text, words)
        soft = next((w for w in words if w in BEYOND_UNLESS_READ and w not in rule_words), None)
        if soft is not None and result.error and not result.edits and result.control is None:
            return self._beyond(text, words, soft)
        return result

    def _beyond(self, text: str, words: list[str], word: str) -> ParseResult:
        return ParseResult(text=text, corrected=_join(words), error=(
            f"voicedrag moves parts of the picture and cannot change its style, colours or objects "
            f"({word!r}); this model can move: {', '.join(self.rules.parts)}."),
            suggestions=["open the mouth", "close the eyes", "turn the head left"])

    def _parse_words(self, text: str, words: list[str]) -> ParseResult:
        if not [w for w in words if w != ","]:
            return ParseResult(text=text, corrected="", error="nothing was said; try a command such as "
                               "'open the mouth' or 'undo'.", suggestions=["open the mouth", "smile", "undo"])
        reading = self._best_reading(words)
        corrected = _join(reading.words)
        result = ParseResult(text=text, corrected=corrected, warnings=list(reading.warnings),
                             corrections=reading.corrections, ignored=list(reading.dropped))
        if reading.control is not None:
            result.control = reading.control
            return result
        edits: list[EditIntent] = []
        matched: list[str] = []
        confidence = 1.0
        failures = {id(f.clause): f for f in reading.failures}
        for clause, edit in zip(reading.clauses, reading.edits):
            if edit is not None:
                edits.append(edit)
                if clause.unknown:
                    result.warnings.append(f"ignored {', '.join(repr(u) for u in clause.unknown)}.")
                    result.ignored.extend(clause.unknown)
                continue
            failure = failures.get(id(clause))
            if failure is None:
                continue
            motion = next((w for w in reading.words if w in lx.MOTION_HINTS), None)
            if motion is not None and failure.kind in ("incomplete", "noise", "no_rule"):
                # "nod": a movement over time; a still image can only show one pose of it.
                hint = lx.MOTION_HINTS[motion]
                result.error = f"'{motion}' is a motion, not one edit of a still image; did you mean: {hint}?"
                result.suggestions = [hint]
                return result
            rescued = self._rescue(failure, reading)
            if rescued is None:
                result.error = failure.message
                result.suggestions = (list(GENERIC_SUGGESTIONS) if failure.kind == "noise"
                                      else self._suggest(failure.clause, reading))
                if result.suggestions:
                    result.error = failure.message.rstrip(".") + "; did you mean: " + \
                        " or ".join(result.suggestions[:3]) + "?"
                if self.embedding_error is not None and self.use_embeddings and failure.kind in (
                        "incomplete", "no_rule"):
                    result.warnings.append(f"paraphrase matching is off ({self.embedding_error}); "
                                           "only plain commands are understood.")
                return result
            edit_or_control, phrase, score = rescued
            if isinstance(edit_or_control, str):
                if len(reading.clauses) == 1:
                    result.control = edit_or_control
                    result.matched = [phrase]
                    result.confidence = score
                    result.warnings.append(f"understood {_clause_text(clause)!r} as {phrase!r}.")
                    return result
                continue
            edit = edit_or_control
            edit.amount = _clamp(clause.amount * _adj_amount(clause))
            edits.append(edit)
            matched.append(phrase)
            confidence = min(confidence, score)
            result.warnings.append(f"understood {_clause_text(clause)!r} as {phrase!r}.")
        if not edits:
            amounts = [w for w in reading.words if w in lx.AMOUNTS or w in lx.PHRASE_AMOUNTS]
            if amounts and all(w in lx.STOPWORDS or w == "," or w in amounts for w in reading.words):
                # "more", "a lot more", "less": an amount with nothing to apply it to.
                said = " ".join(w for w in normalize(text) if w != ",")
                result.error = (f"'{said}' needs an edit to apply to; say the whole command, "
                                "as in 'smile more' or 'open the mouth a little'.")
                result.suggestions = list(AMOUNT_SUGGESTIONS)
                return result
            result.error = "no edit was recognised; try a command such as 'open the mouth'."
            result.suggestions = list(GENERIC_SUGGESTIONS)
            return result
        result.edits = edits
        result.matched = matched
        result.confidence = confidence
        return result

    def _best_reading(self, words: list[str]) -> _Reading:
        # Phrases first, so that filler such as "i want you to" is gone before "i" can become "eye".
        words = _merge_phrases(words)
        slots: list[list[tuple[str, float]]] = []
        for i, w in enumerate(words):
            if w in SIDE_SOUNDALIKES and i > 0 and words[i - 1] in lx.LEFT_RIGHT and "ear" in self._part_words:
                # "raise the left here": after a side, a word that sounds like "ear" is the ear.
                slots.append([("ear", 0.0)])
                continue
            if w in HOMOPHONES and HOMOPHONES[w] in self._known:
                slots.append([(HOMOPHONES[w], 0.0)])
                continue
            if w in SOUNDALIKES and SOUNDALIKES[w][0] in self._known:
                slots.append([(w, 0.0), SOUNDALIKES[w]])
                continue
            if w == "," or w[0].isdigit() or w in self._known:
                slots.append([(w, 0.0)])
                continue
            # Keeping the word unread is always an option, so a correction must earn its place.
            options = [(w, 0.0)] + [(c.word, c.cost) for c in self.corrector.candidates(w, 3)]
            slots.append(options)
        best = self._search(words, slots)
        odd = {w for c in best.clauses for w in c.odd}
        if odd or best.failures:
            # Second pass: valid words that fit nowhere may be mishearings too ("lift" for "left").
            suspects = odd or {w for c in best.clauses for w in c.words if w in lx.VERBS and c.action_word != w}
            widened = []
            for w, s in zip(words, slots):
                if w in suspects and len(s) == 1:
                    extra = [(c.word, c.cost + SECOND_PASS_PENALTY) for c in self.corrector.candidates(w, 4)
                             if c.word != w][:3]
                    widened.append(s + extra)
                else:
                    widened.append(s)
            if widened != slots:
                second = self._search(words, widened)
                if second.score() < best.score():
                    best = second
        return best

    def _search(self, words: list[str], slots: list[list[tuple[str, float]]]) -> _Reading:
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
        best: _Reading | None = None
        for choice in itertools.product(*slots):
            chosen = [c[0] for c in choice]
            corrections = [(w, c[0]) for w, c in zip(words, choice) if c[0] != w]
            costs = {c[0]: c[1] for w, c in zip(words, choice) if c[0] != w}
            reading = self._read(chosen, sum(c[1] for c in choice), corrections, costs)
            if best is None or reading.score() < best.score():
                best = reading
        assert best is not None
        return best

    # ------------------------------------------------------------ grammar

    def _categorize(self, words: list[str]) -> list[_Tok]:
        toks: list[_Tok] = []
        for w in words:
            if w == "," or w == "comma":
                toks.append(_Tok("COMMA", ","))
            elif w[0].isdigit():
                toks.append(_Tok("NUM", w, float(w)))
            elif w in lx.NUMBER_WORDS:
                toks.append(_Tok("NUMWORD", w))
            elif w in lx.SEPARATORS:
                toks.append(_Tok("SEP", w))
            elif w in lx.CONTROL_WORDS:
                toks.append(_Tok("CONTROL", w, lx.CONTROL_WORDS[w]))
            elif w in self._part_words:
                toks.append(_Tok("PART", w, self._part_words[w]))
            elif w in lx.FOREIGN_PARTS:
                toks.append(_Tok("FPART", w))
            elif w in lx.MAKE_WORDS:
                toks.append(_Tok("MAKE", w))
            elif w in lx.VERBS:
                toks.append(_Tok("VERB", w, lx.VERBS[w]))
            elif w in self._rule_verbs:
                toks.append(_Tok("RVERB", w, w))
            elif w in lx.ADJECTIVES:
                toks.append(_Tok("ADJ", w, lx.ADJECTIVES[w]))
            elif w in lx.AMOUNTS:
                toks.append(_Tok("AMOUNT", w, lx.AMOUNTS[w]))
            elif w in lx.PHRASE_AMOUNTS:
                toks.append(_Tok("AMOUNT", w, lx.PHRASE_AMOUNTS[w]))
            elif w in lx.DIRECTION_WORDS:
                toks.append(_Tok("DIR", w, lx.DIRECTION_WORDS[w]))
            elif w in lx.SIDE_WORDS:
                toks.append(_Tok("SIDE", w, lx.SIDE_WORDS[w]))
            elif w in lx.LEFT_RIGHT:
                toks.append(_Tok("LR", w, w))
            elif w in lx.BOTH_WORDS:
                toks.append(_Tok("BOTH", w))
            elif w in lx.POINT_WORDS:
                toks.append(_Tok("POINTW", w))
            elif w in lx.PIXEL_WORDS:
                toks.append(_Tok("PIXELS", w))
            elif w in lx.TO_WORDS:
                toks.append(_Tok("TO", w))
            elif w in lx.BY_WORDS:
                toks.append(_Tok("BY", w))
            elif w in lx.AT_WORDS or w in lx.FROM_WORDS:
                toks.append(_Tok("AT", w))
            elif w in lx.CORNER_WORDS:
                toks.append(_Tok("CORNER", w))
            elif w in lx.PRONOUNS:
                toks.append(_Tok("PRON", w))
            elif w in lx.NEGATIONS:
                toks.append(_Tok("NEG", w))
            elif w in lx.STOPWORDS or w in lx.CONTROL_OBJECTS:
                toks.append(_Tok("STOP", w))
            else:
                toks.append(_Tok("UNK", w))
        return _group_numbers(toks)

    def _is_core(self, word: str) -> bool:
        """Words that carry a command by themselves (not modifiers such as "both" or "a bit")."""
        return (word in lx.VERBS or word in self._rule_verbs or word in self._part_words or word in lx.ADJECTIVES
                or word in lx.DIRECTION_WORDS or word in lx.LEFT_RIGHT or word in lx.CONTROL_WORDS
                or word in lx.MAKE_WORDS or word in lx.FOREIGN_PARTS or word in lx.NUMBER_WORDS
                or word[:1].isdigit() or word in lx.POINT_WORDS)

    def _read(self, words: list[str], cost: float, corrections: list[tuple[str, str]],
              costs: dict[str, float] | None = None) -> _Reading:
        costs = costs or {}
        merged = _merge_phrases(words)
        toks = self._categorize(merged)
        clauses = self._clauses(toks)
        warnings: list[str] = []
        controls = [c.control for c in clauses if c.control]
        content = [c for c in clauses if c.has_edit_content()]
        if controls and not content:
            # A control word must be the whole message: "low air control" is not "cancel".
            # A recogniser keeps the beats of a command word: "rest" (one) is not "reset" (two).
            same_beat = all(syllables(h) >= syllables(u) for h, u in corrections if u in lx.CONTROL_WORDS)
            if (not any(c.unknown or c.neg for c in clauses) and max(costs.values(), default=0.0) <= CONFIDENT_FIX
                    and same_beat):
                return _Reading(merged, controls[0], [], clauses, [], warnings, cost, corrections)
            failure = _Failure("noise", "that does not sound like a command.", clauses[0])
            return _Reading(merged, None, [None], clauses[:1], [failure], warnings, cost, corrections)
        clauses = [c for c in clauses if not c.empty()]
        dropped: list[str] = []
        edits: list[EditIntent | None] = []
        failures: list[_Failure] = []
        prev: EditIntent | None = None
        for i, clause in enumerate(clauses):
            fixed = [costs[w] for w in clause.words if w in costs]
            unknown = len(clause.unknown)
            known = sum(self._is_core(w) and w not in costs for w in clause.words)
            # A close correction ("mouse" -> "mouth") counts less than a loose one.
            load = sum(min(1.0, c / CONFIDENT_FIX) for c in fixed)
            if (load > max(MAX_FIX_LOAD, known) or unknown + len(fixed) > max(2, known + 1)
                    or (known == 0 and max(fixed, default=0.0) > CONFIDENT_FIX)):
                # Mostly words that are not commands ("the quick brown fox..."), or nothing
                # but a loose guess: corrections would only invent an edit.
                edits.append(None)
                if i > 0 and prev is not None:
                    # Recognisers add junk after a command ("open the eyes and mid"): drop it.
                    warnings.append(f"ignored {_clause_text(clause)!r}.")
                    dropped.append(_clause_text(clause))
                else:
                    failures.append(_Failure("noise", "that does not sound like an edit command.", clause))
                continue
            if clause.control and clause.control != "redo":
                failures.append(_Failure("mixed", f"say '{clause.control}' on its own, then the edit.", clause))
                edits.append(None)
                continue
            got = self._resolve(clause, prev, warnings)
            if isinstance(got, _Failure):
                failures.append(got)
                edits.append(None)
            else:
                edits.append(got[0])
                prev = got[0]
        return _Reading(merged, None, edits, clauses, failures, warnings, cost, corrections, dropped)

    def _clauses(self, toks: list[_Tok]) -> list[_Clause]:
        clauses: list[_Clause] = [_Clause()]
        for i, tok in enumerate(toks):
            cur = clauses[-1]
            k = tok.kind
            if k in ("SEP", "COMMA"):
                if not cur.empty():
                    clauses.append(_Clause(after_comma=k == "COMMA"))
                elif k == "SEP":
                    cur.after_comma = False
                continue
            if k in ("VERB", "RVERB") and cur.action is not None and (cur.part or cur.seq):
                # "open the mouth close the eyes": a new verb after a complete clause starts another.
                if not (k == "VERB" and tok.value in ("raise", "lower") and cur.direction is None):
                    cur = _Clause()
                    clauses.append(cur)
            cur.words.append(tok.text)
            # Words of no known kind, other than requests the lexicon knows it cannot do ("stand"): likely misheard.
            misheard = k == "UNK" and tok.text not in lx.UNSUPPORTED
            if misheard and not cur.has_edit_content() and not cur.unknown and not cur.make:
                cur.verb_unknown = True
            if misheard and cur.part is not None and cur.direction is None and _direction_follows(toks, i):
                # "pull the mouth cord up": a word naming what moves was not understood.
                cur.inner.append(tok.text)
            if k == "PART" and cur.part is not None and str(tok.value) != cur.part:
                # "open the right eye mouth": one clause names one part.
                cur.odd.append(tok.text)
            if k == "DIR" and len(cur.words) >= 2 and cur.words[-2] == "the":
                # "look at the down": up and down are not things.
                cur.odd.append(tok.text)
            if k == "AMOUNT" and tok.text == "very" and not (
                    i + 1 < len(toks) and toks[i + 1].kind in ("ADJ", "AMOUNT")):
                # "very" modifies the next word ("very wide"); "the mouth very up" is a misheard word.
                cur.odd.append(tok.text)
            if (k in ("VERB", "RVERB", "ADJ") and cur.action is not None and i + 1 < len(toks)
                    and toks[i + 1].kind == "PART"):
                # "close the lift eye": a second verb where a side belongs is a misheard word.
                cur.odd.append(tok.text)
            if (k == "VERB" and cur.action is not None and tok.value in ("raise", "lower")
                    and tok.text not in ("raise", "lower") and cur.direction is None):
                # "turn the head, lift": a raise-verb where a direction belongs is likely "left".
                cur.odd.append(tok.text)
            if k in ("VERB", "RVERB"):
                if cur.action is None:
                    cur.action, cur.action_word = str(tok.value), tok.text
                elif tok.value in ("raise", "lower") and cur.direction is None:
                    # "move the nose lower": the second verb is a direction.
                    cur.direction = "up" if tok.value == "raise" else "down"
                elif cur.make or cur.action_word in ("look", "looks", "put", "wear"):
                    cur.action, cur.action_word = str(tok.value), tok.text
            elif k == "MAKE":
                cur.make = True
            elif k == "ADJ" and cur.make and i + 1 < len(toks) and toks[i + 1].kind == "PART" and any(
                    t.kind == "ADJ" for t in toks[i + 2:]):
                # "make wide eyes bigger": the adjective before the part describes it; the last one is the edit.
                cur.odd.append(tok.text)
            elif k == "ADJ":
                cur.adjs.append(tok.value)  # type: ignore[arg-type]
            elif (k == "PART" and tok.text in self._rule_verbs and cur.action is None and cur.part is None
                  and not cur.make and all(w in lx.STOPWORDS for w in cur.words[:-1])
                  and not any(t.kind in ("PART", "ADJ", "VERB") for t in toks[i + 1:])):
                # "face the left": a part word first in a clause with no other part is the verb.
                cur.action, cur.action_word = tok.text, tok.text
            elif k == "PART":
                cur.part, cur.part_word = str(tok.value), tok.text
            elif k == "FPART":
                cur.foreign = tok.text
            elif k == "LR":
                nxt = next((t for t in toks[i + 1:] if t.kind not in ("STOP", "AMOUNT")), None)
                if nxt is not None and nxt.kind in ("PART", "FPART"):
                    cur.side = str(tok.value)
                else:
                    cur.direction = str(tok.value)
            elif k == "SIDE":
                cur.side = str(tok.value)
            elif k == "BOTH":
                cur.both = True
            elif k == "DIR":
                cur.direction = str(tok.value)
            elif k == "AMOUNT":
                if not (i + 1 < len(toks) and toks[i + 1].kind == "PART"):
                    # Before a part an amount word is a determiner ("lower more ears"), not a degree.
                    cur.amount *= float(tok.value)  # type: ignore[arg-type]
            elif k in ("RUN", "TO", "BY", "PIXELS", "POINTW", "AT"):
                cur.seq.append(tok.value if k == "RUN" else k)
            elif k == "PRON":
                cur.pron = True
            elif k == "NEG":
                cur.neg = True
            elif k == "CONTROL":
                cur.control = str(tok.value)
            elif k == "CORNER":
                cur.corners = True
            elif k == "UNK":
                cur.unknown.append(tok.text)
        merged: list[_Clause] = []
        for c in clauses:
            if merged and c.after_comma and _fits_into(merged[-1], c):
                # "turn, the head, left" / "open the mouth, a little": a recogniser's commas, not new commands.
                _absorb(merged[-1], c)
                continue
            merged.append(c)
        return [c for c in merged if not c.empty()] or [_Clause()]

    def _resolve(self, c: _Clause, prev: EditIntent | None, warnings: list[str]) -> list[EditIntent] | _Failure:
        if c.neg:
            return _Failure("negation", "say what to do rather than what not to do.", c)
        if any(isinstance(s, _Run) for s in c.seq):
            return self._resolve_points(c, prev)
        if c.foreign is not None and c.part is None:
            return _Failure("unknown_part", self.rules.unknown_part_message(c.foreign), c)
        if c.inner:
            return _Failure("unclear", f"'{c.part_word} {' '.join(c.inner)}' was not understood; "
                            "say the command again in plain words.", c)
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
        if (action is None and part is None and c.side is None and c.direction in lx.LEFT_RIGHT
                and prev is not None and prev.side is not None):
            # "raise the left ear and the right": a bare left/right after a sided edit is a side.
            c.side, c.direction = c.direction, None
            part = prev.part
        if action is None:
            # Only a clause without a verb of its own takes the previous one's ("... and the right ear");
            # "... and look on the right ear" said something else that was not understood.
            if (prev is not None and prev.part is not None and (part is not None or c.side or c.both)
                    and c.action is None and not c.verb_unknown):
                if c.direction is not None and prev.action not in ("move", "turn", "tilt"):
                    action = "move"
                else:
                    action, word = prev.action, None
            elif c.direction is not None and part is not None:
                ways = self._ways(part, c.direction)
                if c.verb_unknown and len(ways) > 1:
                    # "deal to the head right": the verb was lost, and the head can go right in several ways.
                    return _Failure("unclear", f"{c.unknown[0]!r} was not understood; say how the {part} should "
                                    f"go {_dir_words(c.direction)}: {' or '.join(ways)}.", c)
                action = "move"
            else:
                what = f"the {part}" if part else "it"
                return _Failure("incomplete", f"what should happen to {what}?" if part else
                                "that is not a complete command.", c)
        if c.corners and part in (None, "mouth") and c.direction in ("up", "down") and action in (
                "move", "raise", "lower", None) and "mouth" in self.rules.parts:
            # "pull the mouth corners up" is a smile, "corners down" a frown.
            action, word, part = ("smile" if c.direction == "up" else "frown"), None, "mouth"
            c.direction = None
        if (part is None and c.side is None and c.direction in lx.LEFT_RIGHT and action is not None
                and prev is not None and prev.side is not None and prev.part is not None
                and self.rules.resolve(action, prev.part, None) is not None):
            # "raise the left ear and lower the right": the other side of the same part.
            c.side, c.direction, part = c.direction, None, prev.part
        if part is None and c.side is not None and action is not None:
            # "close the left side": the one sided part that can do this.
            fits = [p for p, spec in self.rules.parts.items() if spec.sided
                    and self.rules.resolve(action, p, c.direction) is not None]
            if len(fits) == 1:
                part = fits[0]
        if part is None:
            if (word is not None and word not in lx.VERBS and word in self._rule_verbs
                    and len(self._rule_verbs[word]) == 1):
                part = next(iter(self._rule_verbs[word]))
            elif action in lx.DEFAULT_PART and lx.DEFAULT_PART[action] in self.rules.parts:
                part = lx.DEFAULT_PART[action]
            else:
                return _Failure("incomplete", f"{action} what?", c)
        resolved = self.rules.resolve(action, part, c.direction) if action in lx.VERBS.values() else None
        if resolved is None and word is not None:
            resolved = self.rules.resolve(word, part, c.direction)
        if resolved is None and action in lx.DEFAULT_PART and self.rules.parts.get(part) is not None \
                and part == lx.DEFAULT_PART.get("turn") and lx.DEFAULT_PART[action] in self.rules.parts:
            # "a sad face", "a smile on his face": the face holds the part that smiles.
            part = lx.DEFAULT_PART[action]
            resolved = self.rules.resolve(action, part, c.direction)
        if resolved is None:
            return _Failure("no_rule", f"this model has no rule to {action} the {part}; for the {part} say: "
                            f"{self.rules.describe_part(part)}.", c)
        rule, direction = resolved
        if rule.directions and direction is None and rule.default_direction is not None:
            # "tilt the head": a motion with a usual way, named so the user can ask for the other.
            direction = rule.default_direction
            others = [d for d in rule.directions if d != direction]
            warnings.append(f"no direction was said; {_gerund(rule.action)} the {part} {_dir_words(direction)}"
                            + (f" (say '{_dir_words(others[0])}' for the other way)." if len(others) == 1 else "."))
        if rule.directions and direction is None:
            return _Failure("needs_direction", f"say which way to {rule.action} the {part}: "
                            f"{' or '.join(rule.directions)}.", c)
        if rule.directions and direction not in rule.directions:
            return _Failure("no_rule", f"the {part} cannot {rule.action} {direction}; say "
                            f"{' or '.join(rule.directions)}.", c)
        side = None if c.both else c.side
        if side is not None and not self.rules.parts[part].sided:
            warnings.append(f"the {part} has no left or right; '{side}' was ignored.")
            side = None
        amount = c.amount * _adj_amount(c, explicit_verb=c.action is not None and not looks)
        return [EditIntent(action=rule.action, part=part, side=side,
                           direction=direction if rule.directions else None, amount=_clamp(amount))]

    def _resolve_points(self, c: _Clause, prev: EditIntent | None) -> list[EditIntent] | _Failure:
        """Explicit points: "drag 1,2 to 3,4", "move the point at 10, 20 up by 5 pixels"."""
        if c.part is not None and c.action is not None and not any(s == "POINTW" for s in c.seq):
            # "move the nose up by 4 pixels" / "move the nose up 4": a distance, not a point.
            runs = [s for s in c.seq if isinstance(s, _Run)]
            nums = _decode(runs[0], 1) if len(runs) == 1 else None
            if nums is None:
                return _Failure("coordinates", "give one distance, as in 'move the nose up by 4 pixels'.", c)
            c2 = _Clause(**{**c.__dict__, "seq": []})
            got = self._resolve(c2, prev, [])
            if isinstance(got, _Failure):
                return _Failure(got.kind, got.message, c)
            got[0].pixels = float(nums[0])
            got[0].amount = 1.0  # a distance in pixels replaces the amount
            return got
        handle: Point | None = None
        target: Point | None = None
        pixels: float | None = None
        seq = c.seq
        for i, s in enumerate(seq):
            if not isinstance(s, _Run):
                continue
            before = seq[i - 1] if i > 0 else None
            after = seq[i + 1] if i + 1 < len(seq) else None
            if before == "BY" or after == "PIXELS":
                nums = _decode(s, 1)
                if nums is None:
                    return _Failure("coordinates", f"'{s.text}' is not one distance; say it as 'by 12 pixels'.", c)
                pixels = float(nums[0])
                continue
            pair = _decode(s, 2)
            if pair is not None:
                pt = Point(float(pair[0]), float(pair[1]))
                if before == "TO" or handle is not None:
                    if target is not None:
                        return _Failure("coordinates", "one drag takes one start and one end point; "
                                        "join more drags with 'and'.", c)
                    target = pt
                else:
                    handle = pt
                continue
            quad = _decode(s, 4) if handle is None and before != "TO" else None
            if quad is not None:
                handle, target = Point(float(quad[0]), float(quad[1])), Point(float(quad[2]), float(quad[3]))
                continue
            return _Failure("coordinates", f"'{s.text}' is not a point; give x and y, as in 'drag 30,40 to 50,60'.", c)
        if handle is None:
            return _Failure("coordinates", "say where to start, as in 'drag 30,40 to 50,60'.", c)
        direction = c.direction
        if target is None and direction is None:
            return _Failure("coordinates", f"drag {handle.x:g},{handle.y:g} to where? say 'drag "
                            f"{handle.x:g},{handle.y:g} to 50,60' or add a direction.", c)
        if target is None and pixels is not None and direction is not None:
            ux, uy = DIRECTION_VECTORS[direction]
            target = Point(handle.x + ux * pixels, handle.y + uy * pixels)
        return [EditIntent(action="drag", direction=direction if target is None or pixels is not None else None,
                           amount=_clamp(c.amount), pixels=pixels, handle=handle, target=target)]

    # ------------------------------------------------------------ paraphrases and suggestions

    def _allowed(self, c: _Clause, level: int = 0) -> list[bool]:
        """Which templates agree with the slots the grammar filled.

        Level 0 keeps every filled slot; level 1 drops the action (it may be
        the word that did not fit); level 2 keeps only the part (or the action
        when no part was named).
        """
        part = c.part
        action_known = c.action is not None and c.action_word not in ("look", "looks")
        allowed = []
        for _, item in self.templates:
            if isinstance(item, str):
                allowed.append(not c.has_edit_content() and level == 0)
                continue
            ok = part is None or item.part == part
            if level <= 1:
                sided = self.rules.parts[item.part].sided
                if c.side is not None and sided:
                    ok = ok and item.side == c.side
                elif item.side is not None:
                    ok = False
                if c.direction is not None:
                    implied = {"raise": "up", "lower": "down"}.get(item.action)
                    ok = ok and (item.direction == c.direction or implied == c.direction)
            if action_known and (level == 0 or (level == 2 and part is None)):
                ok = ok and (item.action == c.action or (c.action_word or "") in self._verbs_of(item))
            allowed.append(ok)
        return allowed

    def _ways(self, part: str, direction: str) -> list[str]:
        """Actions that take `part` in `direction`; raise and lower are moves up and down."""
        ways: list[str] = []
        for rule in self.rules.rules:
            if rule.part != part:
                continue
            if direction in rule.directions:
                ways.append(rule.action)
            elif {"raise": "up", "lower": "down"}.get(rule.action) == direction:
                ways.append("move")
        return list(dict.fromkeys(ways))

    def _verbs_of(self, item: EditIntent) -> tuple[str, ...]:
        rule = self.rules.find(item.action, item.part or "")
        return rule.verbs if rule is not None else ()

    def _rescue(self, failure: _Failure, reading: _Reading) -> tuple[EditIntent | str, str, float] | None:
        if failure.kind not in ("incomplete", "no_rule"):
            return None
        c = failure.clause
        if failure.kind == "incomplete" and not c.unknown:
            # Every word was understood and the command is still half-finished ("open the",
            # "move it"): there is nothing for a paraphrase to add, so ask instead of guessing.
            return None
        if not self.load() or self._index is None:
            return None
        from voicedrag.language.paraphrase import ParaphraseIndex

        index: ParaphraseIndex = self._index  # type: ignore[assignment]
        allowed = self._allowed(c)
        if not any(allowed):
            allowed = self._allowed(c, 1)
        # Without a part the unknown words usually stood for it ("raise the tune"): a guess at the part
        # needs the same confidence as a guess at the whole command.
        slots_filled = c.part is not None
        query = _clause_text(c) if len(reading.clauses) > 1 else _join(reading.words)
        matches = index.search(query, allowed, limit=12)
        if not matches:
            return None
        best = matches[0]
        runner = next((m for m in matches[1:] if _intent_key(m.item) != _intent_key(best.item)), None)
        margin = best.score - (runner.score if runner is not None else -1.0)
        need = ACCEPT_SCORE if slots_filled else ACCEPT_SCORE_OPEN
        if best.score < need or margin < ACCEPT_MARGIN:
            return None
        item = best.item
        if isinstance(item, EditIntent):
            item = EditIntent(action=item.action, part=item.part, side=item.side, direction=item.direction)
        return item, best.phrase, best.score

    def _suggest(self, c: _Clause, reading: _Reading) -> list[str]:
        if c.part is None and c.side is None and c.direction in lx.LEFT_RIGHT:
            # "close the left": the left/right was most likely a side whose part went unsaid.
            as_side = _Clause(**{**c.__dict__, "side": c.direction, "direction": None})
            if sum(self._allowed(as_side)) >= 1:
                c = as_side
        allowed = self._allowed(c)
        for level in (1, 2):
            if sum(allowed) >= 2:
                break
            allowed = self._allowed(c, level)
        # Suggest what the user can say verbatim: canonical phrasings, not the rules' examples.
        allowed = [ok and i not in self._examples for i, ok in enumerate(allowed)]
        query = _clause_text(c) or _join(reading.words)
        phrases: list[str] = []
        if self._index is not None:
            from voicedrag.language.paraphrase import ParaphraseIndex

            index: ParaphraseIndex = self._index  # type: ignore[assignment]
            phrases = [m.phrase for m in index.search(query, allowed, limit=6)]
        else:
            scored = []
            for (phrase, _), ok in zip(self.templates, allowed):
                if ok:
                    scored.append((difflib.SequenceMatcher(None, query, phrase).ratio(), phrase))
            scored.sort(key=lambda t: -t[0])
            phrases = [p for _, p in scored[:6]]
        return list(dict.fromkeys(phrases))[:3]


# ---------------------------------------------------------------- helpers

def _group_numbers(toks: list[_Tok]) -> list[_Tok]:
    """Fold digits, number words and the commas between them into RUN tokens."""
    out: list[_Tok] = []
    i = 0
    while i < len(toks):
        if toks[i].kind not in ("NUM", "NUMWORD"):
            out.append(toks[i])
            i += 1
            continue
        groups: list[list[str]] = [[]]
        texts: list[str] = []
        while i < len(toks):
            t = toks[i]
            if t.kind == "NUM":
                if groups[-1] and not groups[-1][-1][0].isdigit():
                    groups.append([])
                groups[-1].append(t.text)
            elif t.kind == "NUMWORD":
                if groups[-1] and groups[-1][-1][0].isdigit():
                    groups.append([])
                groups[-1].append(t.text)
            elif t.kind == "COMMA" and i + 1 < len(toks) and toks[i + 1].kind in ("NUM", "NUMWORD") and groups[-1]:
                groups.append([])
            else:
                break
            texts.append(t.text)
            i += 1
        out.append(_Tok("RUN", " ".join(texts), _Run([g for g in groups if g], " ".join(texts))))
    return out


def _decode(run: _Run, count: int) -> list[float] | None:
    """Exactly `count` numbers from a run, or None."""
    options: list[list[list[float]]] = []
    for g in run.groups:
        if g[0][0].isdigit():
            vals = [float(x) for x in g]
            alone = count >= 2 and len(g) == 1 and len(run.groups) == 1
            if alone and re.fullmatch(r"\d+\.\d+", g[0]):
                # "30.40" from a recogniser that heard a point as a decimal: x=30, y=40.
                a, b = g[0].split(".")
                options.append([vals, [float(a), float(b)]])
            elif alone and re.fullmatch(r"[1-9]\d{3,5}", g[0]):
                # "3040" for "30, 40": the recogniser dropped the comma; split in the middle.
                half = (len(g[0]) + 1) // 2
                options.append([vals, [float(g[0][:half]), float(g[0][half:])]])
            else:
                options.append([vals])
        else:
            readings = []
            for k in range(1, len(g) + 1):
                got = split_number_words(g, k)
                if got is not None:
                    readings.append([float(v) for v in got])
            if not readings:
                return None
            options.append(readings)
    for choice in itertools.product(*options):
        flat = [v for part in choice for v in part]
        if len(flat) == count:
            return flat
    return None


def _direction_follows(toks: list[_Tok], i: int) -> bool:
    """Whether a direction comes later in the same clause as token i."""
    for j in range(i + 1, len(toks)):
        t = toks[j]
        if t.kind in ("SEP", "VERB", "RVERB", "CONTROL"):
            return False
        if t.kind == "DIR":
            return True
        if t.kind == "LR":
            nxt = next((u for u in toks[j + 1:] if u.kind not in ("STOP", "AMOUNT")), None)
            return not (nxt is not None and nxt.kind in ("PART", "FPART"))
    return False


def _gerund(verb: str) -> str:
    return (verb[:-1] if verb.endswith("e") else verb) + "ing"


def _dir_words(direction: str) -> str:
    return f"to the {direction}" if direction in lx.LEFT_RIGHT else direction


def _modifier_only(c: _Clause) -> bool:
    """A clause that only says how (direction, side, amount), with no action or part of its own."""
    return (c.action is None and c.part is None and c.foreign is None and not c.seq and c.control is None
            and not c.pron and not c.unknown and not c.make and not c.adjs
            and (c.direction is not None or c.side is not None or c.both or c.amount != 1.0))


def _fits_into(prev: _Clause, c: _Clause) -> bool:
    """Whether a comma-separated clause is a piece of the previous one rather than a command of its own."""
    if c.control or prev.control:
        return False
    if _modifier_only(c) and c.direction in lx.LEFT_RIGHT and prev.side is not None and c.side is None:
        return False  # "raise the left ear, the right": the other side, not a direction
    if c.action is not None and prev.action is not None and lx.VERBS.get(c.action_word or "", c.action) != \
            lx.VERBS.get(prev.action_word or "", prev.action):
        return False
    if c.part is not None and prev.part is not None and c.part != prev.part:
        return False
    if c.action is not None and prev.action is not None and c.part is not None and prev.part is not None:
        return False  # a whole command again, e.g. a repeat with a change
    if any(isinstance(x, _Run) for x in c.seq) and any(isinstance(x, _Run) for x in prev.seq):
        return False
    for a, b in ((c.direction, prev.direction), (c.side, prev.side)):
        if a is not None and b is not None and a != b:
            return False
    return True


def _absorb(prev: _Clause, c: _Clause) -> None:
    """Merge clause `c` into `prev` (slots `prev` lacks; lists appended)."""
    if prev.action is None:
        prev.action, prev.action_word = c.action, c.action_word
    if prev.part is None:
        prev.part, prev.part_word = c.part, c.part_word
    prev.foreign = prev.foreign or c.foreign
    prev.direction = prev.direction or c.direction
    prev.side = prev.side or c.side
    prev.both = prev.both or c.both
    prev.make = prev.make or c.make
    prev.pron = prev.pron or c.pron
    prev.neg = prev.neg or c.neg
    prev.corners = prev.corners or c.corners
    prev.amount *= c.amount
    for name in ("adjs", "seq", "unknown", "words", "odd", "inner"):
        getattr(prev, name).extend(getattr(c, name))


def _adj_amount(c: _Clause, explicit_verb: bool = True) -> float:
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


def _clamp(amount: float) -> float:
    return float(min(max(amount, AMOUNT_RANGE[0]), AMOUNT_RANGE[1]))


def _intent_key(item: object) -> object:
    if isinstance(item, EditIntent):
        return (item.action, item.part, item.side, item.direction)
    return item


def _join(words: list[str]) -> str:
    text = " ".join(w.replace("_dir", "").replace("_side", "").replace("_", " ") for w in words)
    return re.sub(r"\s+,", ",", text).strip(" ,")


def _clause_text(c: _Clause) -> str:
    return _join(c.words)


def _cache_path(templates: list[tuple[str, object]]) -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256("\n".join(p for p, _ in templates).encode()).hexdigest()[:16]
    return Path(base) / "voicedrag" / f"phrases-{digest}.npy"


_DEFAULT: CommandParser | None = None
_DEFAULT_LOCK = threading.Lock()


def default_parser() -> CommandParser:
    """The parser for the embedded model's rules, built once per process."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = CommandParser()
        return _DEFAULT


def parse(text: str, rules: Rules | None = None) -> ParseResult:
    """Parse one command; never raises."""
    try:
        parser = default_parser() if rules is None else CommandParser(rules)
    except Exception as err:  # noqa: BLE001 - a broken rules file still must not raise out of parse
        return ParseResult(text=text, corrected=text, error=f"the command rules could not be loaded ({err}).")
    return parser.parse(text)


def vocabulary(rules: Rules | None = None) -> list[str]:
    """Words of the current rules and command language, for a speech recogniser's initial prompt."""
    parser = default_parser() if rules is None else CommandParser(rules, use_embeddings=False)
    return parser.vocabulary()


__all__ = ["CommandParser", "ParseResult", "default_parser", "normalize", "parse", "vocabulary"]
