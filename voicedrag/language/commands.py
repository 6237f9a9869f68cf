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

The stages live in their own modules, each reading one shared `Vocabulary`
(`voicedrag.language.vocabulary`) built once from the rules:

    text --tokens.normalize--> words --readings.best_reading--> Reading
         (tokens.categorize -> clauses.build_clauses -> resolve.resolve, per correction choice)
    Reading --suggest.rescue / suggest.suggest (failed clauses only)--> ParseResult

`CommandParser` wires them and owns the optional sentence model. `parse`
never raises: unknown, empty or half-finished input comes back as a
ParseResult with `error` and `suggestions`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UserError
from voicedrag.intents import EditIntent
from voicedrag.language import lexicon as lx
from voicedrag.language.clauses import Clause
from voicedrag.language.correct import Corrector
from voicedrag.language.readings import Reading, best_reading
from voicedrag.language.resolve import Failure, adj_amount, clamp
from voicedrag.language.suggest import rescuable, rescue, suggest
from voicedrag.language.tokens import (
    collapse_repeats,
    join_words,
    negative_number,
    normalize,
)
from voicedrag.language.vocabulary import Template, Vocabulary
from voicedrag.planning.rules import Rules, default_rules

if TYPE_CHECKING:
    from voicedrag.language.paraphrase import ParaphraseIndex

GENERIC_SUGGESTIONS = ("open the mouth", "smile", "turn the head to the left")
AMOUNT_SUGGESTIONS = ("smile more", "open the mouth a little", "open the mouth wide")

# Words of requests a drag cannot carry out: styles, colours and things to add. Words a
# recogniser makes of command words are left out ("hat" for "head", "green" for "grin", "brown"
# for "brow", "paint" for "point", "mask" is a command of its own): those are corrected instead.
BEYOND_DRAGS = frozenset(
    """
painting painted watercolor watercolour sketch drawing cartoon anime comic style styled pixar
gogh picasso monet rembrandt vermeer photorealistic oil pastel impressionist cubist
blue yellow purple orange black white grey gray blonde colour color colored coloured
glasses sunglasses beard moustache mustache earring earrings makeup lipstick tattoo scarf crown
background sky sunset
""".split()
)  # noqa: SIM905 - a word list reads best as words

# Those words, when nothing in the command could be read as an edit ("paint it red", "give him
# a hat"), are refused in the same words, instead of answered with unrelated suggestions.
BEYOND_UNLESS_READ = frozenset("red green brown pink hat hats cap paint".split())  # noqa: SIM905


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


@dataclass
class _Understood:
    """The edits of a reading so far, and how sure paraphrase matching was of them."""

    edits: list[EditIntent] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    confidence: float = 1.0


class CommandParser:
    """Parses commands against one rules file; holds the optional paraphrase model."""

    def __init__(self, rules: Rules | None = None, use_embeddings: bool = True) -> None:
        self.vocab = Vocabulary.build(rules or default_rules())
        self.use_embeddings = use_embeddings
        self.embedding_error: str | None = None if use_embeddings else "paraphrase matching is switched off"
        self._index: ParaphraseIndex[EditIntent | str] | None = None
        self._load_lock = threading.Lock()

    @property
    def rules(self) -> Rules:
        return self.vocab.rules

    @property
    def corrector(self) -> Corrector:
        return self.vocab.corrector

    @property
    def templates(self) -> list[Template]:
        """Canonical phrasings of every intent the rules can plan, plus control words."""
        return self.vocab.templates

    def vocabulary(self) -> list[str]:
        """Words of the current command language, most specific first (for a recogniser's prompt)."""
        return self.vocab.prompt_words()

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
            return ParseResult(
                text=text, corrected=text, error=f"the command could not be read ({err}); please rephrase it."
            )

    def _parse(self, text: str) -> ParseResult:
        text = text if isinstance(text, str) else str(text)
        # A minus before a number ("drag -5,-5 to 30,30") is not punctuation to drop: the point
        # would silently become (5, 5). Pixels count from the top-left corner, so say so.
        negative = negative_number(text)
        if negative:
            return ParseResult(
                text=text,
                corrected=text,
                error=f"{negative.group(0).strip()!r} is a negative "
                "coordinate; points are pixels from the top-left corner (0,0), so give x and y "
                "inside the image, as in 'drag 30,40 to 50,60'.",
            )
        words = collapse_repeats(normalize(text))
        # A style, a colour or an object is not a drag of a part: refused as it was said, before
        # any correction could turn "van gogh painting" into "frown gogh point".
        rule_words = self.vocab.rule_words  # a model's own rules may name any of these words
        beyond = next((w for w in words if w in BEYOND_DRAGS and w not in rule_words), None)
        if beyond is not None:
            return self._beyond(text, words, beyond)
        result = self._parse_words(text, words)
        soft = next((w for w in words if w in BEYOND_UNLESS_READ and w not in rule_words), None)
        if soft is not None and result.error and not result.edits and result.control is None:
            return self._beyond(text, words, soft)
        return result

    def _beyond(self, text: str, words: list[str], word: str) -> ParseResult:
        return ParseResult(
            text=text,
            corrected=join_words(words),
            error=(
                f"voicedrag moves parts of the picture and cannot change its style, colours or objects "
                f"({word!r}); this model can move: {', '.join(self.rules.parts)}."
            ),
            suggestions=["open the mouth", "close the eyes", "turn the head left"],
        )

    def _parse_words(self, text: str, words: list[str]) -> ParseResult:
        if not [w for w in words if w != ","]:
            return ParseResult(
                text=text,
                corrected="",
                error="nothing was said; try a command such as 'open the mouth' or 'undo'.",
                suggestions=["open the mouth", "smile", "undo"],
            )
        reading = best_reading(self.vocab, words)
        result = ParseResult(
            text=text,
            corrected=join_words(reading.words),
            warnings=list(reading.warnings),
            corrections=reading.corrections,
            ignored=list(reading.dropped),
        )
        if reading.control is not None:
            result.control = reading.control
            return result
        got = _Understood()
        failures = {id(f.clause): f for f in reading.failures}
        for clause, edit in zip(reading.clauses, reading.edits, strict=True):
            if edit is not None:
                got.edits.append(edit)
                if clause.unknown:
                    result.warnings.append(f"ignored {', '.join(repr(u) for u in clause.unknown)}.")
                    result.ignored.extend(clause.unknown)
                continue
            failure = failures.get(id(clause))
            if failure is not None and self._failed_clause(result, reading, failure, got):
                return result
        if not got.edits:
            return _nothing_to_edit(result, text, reading)
        result.edits = got.edits
        result.matched = got.matched
        result.confidence = got.confidence
        return result

    def _failed_clause(self, result: ParseResult, reading: Reading, failure: Failure, got: _Understood) -> bool:
        """Rescue a failed clause into `got`, or write the failure into `result`; True when `result` is final."""
        clause = failure.clause
        motion = next((w for w in reading.words if w in lx.MOTION_HINTS), None)
        if motion is not None and failure.kind in ("incomplete", "noise", "no_rule"):
            # "nod": a movement over time; a still image can only show one pose of it.
            hint = lx.MOTION_HINTS[motion]
            result.error = f"'{motion}' is a motion, not one edit of a still image; did you mean: {hint}?"
            result.suggestions = [hint]
            return True
        rescued = self._rescue(failure, reading)
        if rescued is None:
            self._report(result, reading, failure)
            return True
        edit_or_control, phrase, score = rescued
        if isinstance(edit_or_control, str):
            if len(reading.clauses) > 1:
                return False  # a control word among edits is read past
            result.control = edit_or_control
            result.matched = [phrase]
            result.confidence = score
            result.warnings.append(f"understood {clause.text()!r} as {phrase!r}.")
            return True
        edit = edit_or_control
        edit.amount = clamp(clause.amount * adj_amount(clause))
        got.edits.append(edit)
        got.matched.append(phrase)
        got.confidence = min(got.confidence, score)
        result.warnings.append(f"understood {clause.text()!r} as {phrase!r}.")
        return False

    def _rescue(self, failure: Failure, reading: Reading) -> tuple[EditIntent | str, str, float] | None:
        # The model is loaded only for a clause a paraphrase could complete.
        if not rescuable(failure) or not self.load() or self._index is None:
            return None
        return rescue(self.vocab, self._index, failure, reading)

    def _report(self, result: ParseResult, reading: Reading, failure: Failure) -> None:
        """The failure's sentence, with suggestions of what to say instead."""
        result.error = failure.message
        result.suggestions = (
            list(GENERIC_SUGGESTIONS) if failure.kind == "noise" else self._suggest(failure.clause, reading)
        )
        if result.suggestions:
            result.error = failure.message.rstrip(".") + "; did you mean: " + " or ".join(result.suggestions[:3]) + "?"
        if self.embedding_error is not None and self.use_embeddings and failure.kind in ("incomplete", "no_rule"):
            result.warnings.append(
                f"paraphrase matching is off ({self.embedding_error}); only plain commands are understood."
            )

    def _suggest(self, c: Clause, reading: Reading) -> list[str]:
        return suggest(self.vocab, self._index, c, reading)


def _nothing_to_edit(result: ParseResult, text: str, reading: Reading) -> ParseResult:
    amounts = [w for w in reading.words if w in lx.AMOUNTS or w in lx.PHRASE_AMOUNTS]
    if amounts and all(w in lx.STOPWORDS or w == "," or w in amounts for w in reading.words):
        # "more", "a lot more", "less": an amount with nothing to apply it to.
        said = " ".join(w for w in normalize(text) if w != ",")
        result.error = (
            f"'{said}' needs an edit to apply to; say the whole command, "
            "as in 'smile more' or 'open the mouth a little'."
        )
        result.suggestions = list(AMOUNT_SUGGESTIONS)
        return result
    result.error = "no edit was recognised; try a command such as 'open the mouth'."
    result.suggestions = list(GENERIC_SUGGESTIONS)
    return result


def _cache_path(templates: list[Template]) -> Path | None:
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


__all__ = ["CommandParser", "ParseResult", "collapse_repeats", "default_parser", "normalize", "parse", "vocabulary"]
