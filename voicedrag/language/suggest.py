"""What the grammar could not fill: paraphrase rescue and suggestions.

A failed clause goes to sentence embeddings (`voicedrag.language.paraphrase`)
only among canonical phrasings that agree with every slot the grammar did
fill, with a confidence threshold and a margin over the runner-up: nearest-
phrase matching alone sends "open the mouse" to "open the eyes" and "widen his
jaw" to "close the mouth". When nothing is accepted, the same agreement picks
the phrasings offered as suggestions.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from voicedrag.intents import EditIntent
from voicedrag.language import lexicon as lx
from voicedrag.language.clauses import Clause
from voicedrag.language.readings import Reading
from voicedrag.language.resolve import Failure
from voicedrag.language.tokens import join_words
from voicedrag.language.vocabulary import Template, Vocabulary

if TYPE_CHECKING:
    from voicedrag.language.paraphrase import ParaphraseIndex

    Index = ParaphraseIndex[EditIntent | str]

# Paraphrase matching: accept the nearest canonical phrasing when it is at
# least this similar and this far ahead of the best different intent.
ACCEPT_SCORE = 0.5
ACCEPT_MARGIN = 0.04
# With no slot filled by the grammar, the sentence must match more closely.
ACCEPT_SCORE_OPEN = 0.62


def allowed(vocab: Vocabulary, c: Clause, level: int = 0) -> list[bool]:
    """Which templates agree with the slots the grammar filled.

    Level 0 keeps every filled slot; level 1 drops the action (it may be
    the word that did not fit); level 2 keeps only the part (or the action
    when no part was named).
    """
    action_known = c.action is not None and c.action_word not in ("look", "looks")
    out = []
    for _, item in vocab.templates:
        if isinstance(item, str):
            out.append(not c.has_edit_content() and level == 0)
            continue
        ok = c.part is None or item.part == c.part
        if level <= 1:
            ok = ok and _agrees_on_side_and_direction(vocab, c, item)
        if action_known and (level == 0 or (level == 2 and c.part is None)):
            ok = ok and (item.action == c.action or (c.action_word or "") in vocab.verbs_of(item))
        out.append(ok)
    return out


def _agrees_on_side_and_direction(vocab: Vocabulary, c: Clause, item: EditIntent) -> bool:
    ok = True
    sided = item.part is not None and vocab.rules.parts[item.part].sided
    if c.side is not None and sided:
        ok = item.side == c.side
    elif item.side is not None:
        ok = False
    if c.direction is not None:
        implied = {"raise": "up", "lower": "down"}.get(item.action)
        ok = ok and (item.direction == c.direction or implied == c.direction)
    return ok


def rescuable(failure: Failure) -> bool:
    """Whether a paraphrase could complete the failed clause (checked before the model is loaded)."""
    if failure.kind not in ("incomplete", "no_rule"):
        return False
    # Every word was understood and the command is still half-finished ("open the",
    # "move it"): there is nothing for a paraphrase to add, so ask instead of guessing.
    return not (failure.kind == "incomplete" and not failure.clause.unknown)


def rescue(
    vocab: Vocabulary, index: Index, failure: Failure, reading: Reading
) -> tuple[EditIntent | str, str, float] | None:
    """The canonical phrasing a failed clause most likely meant: (edit or control, phrasing, score)."""
    c = failure.clause
    ok = allowed(vocab, c)
    if not any(ok):
        ok = allowed(vocab, c, 1)
    # Without a part the unknown words usually stood for it ("raise the tune"): a guess at the part
    # needs the same confidence as a guess at the whole command.
    slots_filled = c.part is not None
    query = c.text() if len(reading.clauses) > 1 else join_words(reading.words)
    matches = index.search(query, ok, limit=12)
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


def suggest(vocab: Vocabulary, index: Index | None, c: Clause, reading: Reading) -> list[str]:
    """Up to three canonical phrasings close to what a failed clause said."""
    if c.part is None and c.side is None and c.direction in lx.LEFT_RIGHT:
        # "close the left": the left/right was most likely a side whose part went unsaid.
        as_side = Clause(**{**c.__dict__, "side": c.direction, "direction": None})
        if sum(allowed(vocab, as_side)) >= 1:
            c = as_side
    ok = allowed(vocab, c)
    for level in (1, 2):
        if sum(ok) >= 2:
            break
        ok = allowed(vocab, c, level)
    # Suggest what the user can say verbatim: canonical phrasings, not the rules' examples.
    ok = [good and i not in vocab.examples for i, good in enumerate(ok)]
    query = c.text() or join_words(reading.words)
    if index is not None:
        phrases = [m.phrase for m in index.search(query, ok, limit=6)]
    else:
        phrases = _closest_spelled(vocab.templates, ok, query)
    return list(dict.fromkeys(phrases))[:3]


def _closest_spelled(templates: list[Template], ok: list[bool], query: str) -> list[str]:
    """Without the sentence model: the allowed phrasings most alike in spelling."""
    scored = []
    for (phrase, _), good in zip(templates, ok, strict=True):
        if good:
            scored.append((difflib.SequenceMatcher(None, query, phrase).ratio(), phrase))
    scored.sort(key=lambda t: -t[0])
    return [p for _, p in scored[:6]]


def _intent_key(item: object) -> object:
    if isinstance(item, EditIntent):
        return (item.action, item.part, item.side, item.direction)
    return item


__all__ = ["ACCEPT_MARGIN", "ACCEPT_SCORE", "ACCEPT_SCORE_OPEN", "allowed", "rescuable", "rescue", "suggest"]
