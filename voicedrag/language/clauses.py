"""Tokens -> clauses: the slot grammar's second stage.

A clause is one command's worth of slots (action, part, side, direction,
amount, points); separators and a new verb after a complete clause start the
next one. Words that are valid but sit where they make no sense are kept in
`odd`, so that the correction search can prefer a reading without them; a
comma-separated piece that only finishes the previous clause ("turn, the head,
left") is merged back into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voicedrag.language import lexicon as lx
from voicedrag.language.tokens import Run, Tok, join_words
from voicedrag.language.vocabulary import Vocabulary


@dataclass
class Clause:
    """The slots one command filled, and the words that did not fit them."""

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
        return bool(
            self.action
            or self.adjs
            or self.part
            or self.foreign
            or self.direction
            or any(isinstance(s, Run) for s in self.seq)
        )

    def empty(self) -> bool:
        return not (
            self.has_edit_content() or self.unknown or self.control or self.side or self.both or self.pron or self.neg
        )

    def text(self) -> str:
        return join_words(self.words)


def build_clauses(vocab: Vocabulary, toks: list[Tok]) -> list[Clause]:
    """Split tokens into clauses and fill each clause's slots; never empty."""
    clauses: list[Clause] = [Clause()]
    for i, tok in enumerate(toks):
        cur = clauses[-1]
        if tok.kind in ("SEP", "COMMA"):
            if not cur.empty():
                clauses.append(Clause(after_comma=tok.kind == "COMMA"))
            elif tok.kind == "SEP":
                cur.after_comma = False
            continue
        if _starts_new_command(cur, tok):
            cur = Clause()
            clauses.append(cur)
        cur.words.append(tok.text)
        _note_misheard(cur, toks, i)
        _note_odd(cur, toks, i)
        _fill(vocab, cur, toks, i)
    return _merge_comma_pieces(clauses)


def _starts_new_command(cur: Clause, tok: Tok) -> bool:
    """Whether a verb begins the next command ("open the mouth close the eyes")."""
    if tok.kind not in ("VERB", "RVERB") or cur.action is None or not (cur.part or cur.seq):
        return False
    # "move the nose lower": a raise-verb with no direction yet is the direction.
    return not (tok.kind == "VERB" and tok.value in ("raise", "lower") and cur.direction is None)


def _note_misheard(cur: Clause, toks: list[Tok], i: int) -> None:
    tok = toks[i]
    # Words of no known kind, other than requests the lexicon knows it cannot do ("stand"): likely misheard.
    misheard = tok.kind == "UNK" and tok.text not in lx.UNSUPPORTED
    if misheard and not cur.has_edit_content() and not cur.unknown and not cur.make:
        cur.verb_unknown = True
    if misheard and cur.part is not None and cur.direction is None and direction_follows(toks, i):
        # "pull the mouth cord up": a word naming what moves was not understood.
        cur.inner.append(tok.text)


def _note_odd(cur: Clause, toks: list[Tok], i: int) -> None:
    """Valid words where they make no sense: the correction search may find a reading without them."""
    tok, k = toks[i], toks[i].kind
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    if k == "PART" and cur.part is not None and str(tok.value) != cur.part:
        # "open the right eye mouth": one clause names one part.
        cur.odd.append(tok.text)
    if k == "DIR" and len(cur.words) >= 2 and cur.words[-2] == "the":
        # "look at the down": up and down are not things.
        cur.odd.append(tok.text)
    if k == "AMOUNT" and tok.text == "very" and not (nxt is not None and nxt.kind in ("ADJ", "AMOUNT")):
        # "very" modifies the next word ("very wide"); "the mouth very up" is a misheard word.
        cur.odd.append(tok.text)
    if k in ("VERB", "RVERB", "ADJ") and cur.action is not None and nxt is not None and nxt.kind == "PART":
        # "close the lift eye": a second verb where a side belongs is a misheard word.
        cur.odd.append(tok.text)
    if (
        k == "VERB"
        and cur.action is not None
        and tok.value in ("raise", "lower")
        and tok.text not in ("raise", "lower")
        and cur.direction is None
    ):
        # "turn the head, lift": a raise-verb where a direction belongs is likely "left".
        cur.odd.append(tok.text)


def _fill(vocab: Vocabulary, cur: Clause, toks: list[Tok], i: int) -> None:
    """Put token i into its slot of the current clause."""
    tok, k = toks[i], toks[i].kind
    if k in ("VERB", "RVERB"):
        _fill_verb(cur, tok)
    elif k == "ADJ":
        _fill_adjective(cur, toks, i)
    elif k == "PART":
        _fill_part(vocab, cur, toks, i)
    elif k == "LR":
        nxt = next((t for t in toks[i + 1 :] if t.kind not in ("STOP", "AMOUNT")), None)
        if nxt is not None and nxt.kind in ("PART", "FPART"):
            cur.side = str(tok.value)
        else:
            cur.direction = str(tok.value)
    elif k == "AMOUNT":
        if not (i + 1 < len(toks) and toks[i + 1].kind == "PART"):
            # Before a part an amount word is a determiner ("lower more ears"), not a degree.
            cur.amount *= float(tok.value)  # type: ignore[arg-type]
    elif k in ("RUN", "TO", "BY", "PIXELS", "POINTW", "AT"):
        cur.seq.append(tok.value if k == "RUN" else k)
    else:
        _fill_flag(cur, tok)


def _fill_verb(cur: Clause, tok: Tok) -> None:
    if cur.action is None:
        cur.action, cur.action_word = str(tok.value), tok.text
    elif tok.value in ("raise", "lower") and cur.direction is None:
        # "move the nose lower": the second verb is a direction.
        cur.direction = "up" if tok.value == "raise" else "down"
    elif cur.make or cur.action_word in ("look", "looks", "put", "wear"):
        cur.action, cur.action_word = str(tok.value), tok.text


def _fill_adjective(cur: Clause, toks: list[Tok], i: int) -> None:
    if cur.make and i + 1 < len(toks) and toks[i + 1].kind == "PART" and any(t.kind == "ADJ" for t in toks[i + 2 :]):
        # "make wide eyes bigger": the adjective before the part describes it; the last one is the edit.
        cur.odd.append(toks[i].text)
    else:
        cur.adjs.append(toks[i].value)  # type: ignore[arg-type]


def _fill_part(vocab: Vocabulary, cur: Clause, toks: list[Tok], i: int) -> None:
    tok = toks[i]
    if (
        tok.text in vocab.rule_verbs
        and cur.action is None
        and cur.part is None
        and not cur.make
        and all(w in lx.STOPWORDS for w in cur.words[:-1])
        and not any(t.kind in ("PART", "ADJ", "VERB") for t in toks[i + 1 :])
    ):
        # "face the left": a part word first in a clause with no other part is the verb.
        cur.action, cur.action_word = tok.text, tok.text
    else:
        cur.part, cur.part_word = str(tok.value), tok.text


def _fill_flag(cur: Clause, tok: Tok) -> None:
    """Slots one word sets on its own."""
    k = tok.kind
    if k == "MAKE":
        cur.make = True
    elif k == "FPART":
        cur.foreign = tok.text
    elif k == "SIDE":
        cur.side = str(tok.value)
    elif k == "BOTH":
        cur.both = True
    elif k == "DIR":
        cur.direction = str(tok.value)
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


def _merge_comma_pieces(clauses: list[Clause]) -> list[Clause]:
    merged: list[Clause] = []
    for c in clauses:
        if merged and c.after_comma and _fits_into(merged[-1], c):
            # "turn, the head, left" / "open the mouth, a little": a recogniser's commas, not new commands.
            _absorb(merged[-1], c)
            continue
        merged.append(c)
    return [c for c in merged if not c.empty()] or [Clause()]


def direction_follows(toks: list[Tok], i: int) -> bool:
    """Whether a direction comes later in the same clause as token i."""
    for j in range(i + 1, len(toks)):
        t = toks[j]
        if t.kind in ("SEP", "VERB", "RVERB", "CONTROL"):
            return False
        if t.kind == "DIR":
            return True
        if t.kind == "LR":
            nxt = next((u for u in toks[j + 1 :] if u.kind not in ("STOP", "AMOUNT")), None)
            return not (nxt is not None and nxt.kind in ("PART", "FPART"))
    return False


def _modifier_only(c: Clause) -> bool:
    """A clause that only says how (direction, side, amount), with no action or part of its own."""
    return (
        c.action is None
        and c.part is None
        and c.foreign is None
        and not c.seq
        and c.control is None
        and not c.pron
        and not c.unknown
        and not c.make
        and not c.adjs
        and (c.direction is not None or c.side is not None or c.both or c.amount != 1.0)
    )


def _fits_into(prev: Clause, c: Clause) -> bool:
    """Whether a comma-separated clause is a piece of the previous one rather than a command of its own."""
    if c.control or prev.control:
        return False
    if _modifier_only(c) and c.direction in lx.LEFT_RIGHT and prev.side is not None and c.side is None:
        return False  # "raise the left ear, the right": the other side, not a direction
    if (
        c.action is not None
        and prev.action is not None
        and lx.VERBS.get(c.action_word or "", c.action) != lx.VERBS.get(prev.action_word or "", prev.action)
    ):
        return False
    if c.part is not None and prev.part is not None and c.part != prev.part:
        return False
    if c.action is not None and prev.action is not None and c.part is not None and prev.part is not None:
        return False  # a whole command again, e.g. a repeat with a change
    if any(isinstance(x, Run) for x in c.seq) and any(isinstance(x, Run) for x in prev.seq):
        return False
    for a, b in ((c.direction, prev.direction), (c.side, prev.side)):
        if a is not None and b is not None and a != b:
            return False
    return True


def _absorb(prev: Clause, c: Clause) -> None:
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


__all__ = ["Clause", "build_clauses", "direction_follows"]
