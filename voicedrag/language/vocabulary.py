"""The command language of one rules file, computed once and shared by every parsing stage.

The lexicon (`voicedrag.language.lexicon`) holds the words every model shares; a
rules file adds its parts, their synonyms and part-specific verbs. `Vocabulary`
joins the two into the tables the stages read: which words are known, which a
misheard word may be corrected to, and the canonical phrasings that paraphrase
matching and suggestions choose among.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicedrag.intents import CONTROL_PHRASES, CONTROLS, PROMPT_VERBS, EditIntent
from voicedrag.language import lexicon as lx
from voicedrag.language.correct import Corrector
from voicedrag.planning.rules import Rules

# A canonical phrasing and what it means: an edit, or a control word.
Template = tuple[str, EditIntent | str]


# Frozen so no stage can change what the others read; compared by identity (its tables are not hashable).
@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Everything the stages share about one rules file; build it with `Vocabulary.build`."""

    rules: Rules
    part_words: dict[str, str]  # word naming a part -> the part
    rule_verbs: dict[str, frozenset[str]]  # a rule's own verb -> the parts it acts on
    known: frozenset[str]  # every word the grammar reads (others are unknown or misheard)
    content: tuple[str, ...]  # words a misheard word may be corrected to
    corrector: Corrector
    templates: list[Template]  # canonical phrasings, then the rules' example phrasings, then controls
    examples: frozenset[int]  # indices in `templates` of example phrasings, which are not said back as suggestions
    rule_words: frozenset[str]  # the rules' own words, which the style and colour refusals must not catch

    @classmethod
    def build(cls, rules: Rules) -> Vocabulary:
        part_words = rules.part_words()
        verbs: dict[str, set[str]] = {}
        for rule in rules.rules:
            for v in rule.verbs:
                verbs.setdefault(v, set()).add(rule.part)
        rule_verbs = {v: frozenset(parts) for v, parts in verbs.items()}
        content = _content_words(part_words)
        templates, examples = _templates(rules)
        return cls(
            rules=rules,
            part_words=part_words,
            rule_verbs=rule_verbs,
            known=_known_words(part_words, rule_verbs),
            content=content,
            corrector=Corrector(list(content)),
            templates=templates,
            examples=examples,
            rule_words=frozenset(rules.words()),
        )

    def prompt_words(self) -> list[str]:
        """Words of the command language, most specific first (for a recogniser's prompt)."""
        first = list(self.rules.words())
        return list(dict.fromkeys(first + list(PROMPT_VERBS) + list(lx.PROMPT_WORDS) + list(CONTROLS)))

    def is_core(self, word: str) -> bool:
        """Words that carry a command by themselves (not modifiers such as "both" or "a bit")."""
        return (
            word in lx.VERBS
            or word in self.rule_verbs
            or word in self.part_words
            or word in lx.ADJECTIVES
            or word in lx.DIRECTION_WORDS
            or word in lx.LEFT_RIGHT
            or word in lx.CONTROL_WORDS
            or word in lx.MAKE_WORDS
            or word in lx.FOREIGN_PARTS
            or word in lx.NUMBER_WORDS
            or word[:1].isdigit()
            or word in lx.POINT_WORDS
        )

    def ways(self, part: str, direction: str) -> list[str]:
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

    def verbs_of(self, item: EditIntent) -> tuple[str, ...]:
        """The rule's own verbs for an edit ("drop" for opening the mouth)."""
        rule = self.rules.find(item.action, item.part or "")
        return rule.verbs if rule is not None else ()


def _known_words(part_words: dict[str, str], rule_verbs: dict[str, frozenset[str]]) -> frozenset[str]:
    known: set[str] = set()
    for table in (lx.VERBS, lx.ADJECTIVES, lx.AMOUNTS, lx.DIRECTION_WORDS, lx.CONTROL_WORDS):
        known.update(table)
    for phrase in lx.PHRASES:
        known.update(phrase.split())
    known.update(
        lx.MAKE_WORDS
        | lx.LEFT_RIGHT
        | lx.BOTH_WORDS
        | lx.CONTROL_OBJECTS
        | lx.FOREIGN_PARTS
        | lx.PRONOUNS
        | lx.NEGATIONS
        | lx.CORNER_WORDS
        | lx.SEPARATORS
        | lx.POINT_WORDS
        | lx.PIXEL_WORDS
        | lx.TO_WORDS
        | lx.FROM_WORDS
        | lx.BY_WORDS
        | lx.AT_WORDS
        | lx.STOPWORDS
        | lx.NUMBER_WORDS
        | lx.UNSUPPORTED
        | {"comma", "and", "point"}
    )
    known.update(part_words)
    known.update(rule_verbs)
    return frozenset(known)


def _content_words(part_words: dict[str, str]) -> tuple[str, ...]:
    """Words a misheard word may be corrected to: the core of the language, not every synonym.

    Rare synonyms as targets do more harm than good: "bare the teeth" would
    become "purse the teeth" and "have him smile" "huge him smile".
    """
    return tuple(sorted(set(lx.CORRECTION_TARGETS) | set(part_words)))


def _templates(rules: Rules) -> tuple[list[Template], frozenset[int]]:
    """Canonical phrasings of every intent the rules can plan, plus control words.

    Also returns which of them are the rules' example phrasings rather than canonical ones.
    """
    out: list[Template] = []
    examples: set[int] = set()
    for rule in rules.rules:
        sided = rules.parts[rule.part].sided
        sides: list[str | None] = [None, "left", "right"] if sided else [None]
        directions: list[str | None] = list(rule.directions) or [None]
        for side in sides:
            for d in directions:
                e = EditIntent(action=rule.action, part=rule.part, side=side, direction=d)
                out.append((e.phrase(), e))
        if not rule.directions:
            for p in rule.phrases:
                examples.add(len(out))
                out.append((p, EditIntent(action=rule.action, part=rule.part)))
    for name, phrase in CONTROL_PHRASES.items():
        out.append((phrase, name))
    return out, frozenset(examples)


__all__ = ["Template", "Vocabulary"]
