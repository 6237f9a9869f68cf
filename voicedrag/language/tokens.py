"""Text -> words -> typed tokens: the first stage of command parsing.

`normalize` turns typed or transcribed text into lower-case words, digit
numbers and commas; `merge_phrases` folds multi-word phrases ("a little bit",
"to the left") into one lexicon token; `categorize` gives each word its kind
(verb, part, direction, number, ...) against a `Vocabulary`, and folds numbers
and the commas between them into runs that the point stage decodes later.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from voicedrag.language import lexicon as lx
from voicedrag.language.correct import HOMOPHONES
from voicedrag.language.numbers import split_number_words
from voicedrag.language.vocabulary import Vocabulary


@dataclass
class Tok:
    """One word and its kind (VERB, PART, DIR, NUM, RUN, UNK, ...); `value` is what the kind's table says."""

    kind: str
    text: str
    value: object = None


@dataclass
class Run:
    """Consecutive numbers: groups split at commas; each group digits or number words."""

    groups: list[list[str]]
    text: str


_CONTRACTIONS = {
    "don't": "do not",
    "doesn't": "does not",
    "can't": "can not",
    "won't": "will not",
    "didn't": "did not",
    "isn't": "is not",
    "wasn't": "was not",
    "shouldn't": "should not",
    "wouldn't": "would not",
    "couldn't": "could not",
    "mustn't": "must not",
    "let's": "lets",
    "it's": "it is",
    "that's": "that is",
    "i'd": "i'd",
    "he's": "he is",
}

_NUMBER_HOMOPHONES = {"for": "4", "to": "2", "too": "2", "won": "1", "ate": "8", "tree": "3"}


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
    return _spoken_points(words)


def _is_number(word: str) -> bool:
    return word[0].isdigit() or word in lx.NUMBER_WORDS


def _spoken_points(words: list[str]) -> list[str]:
    """Points as they are said: "x 64 y 80" is "64, 80", and a "comma" (or a word a recogniser
    writes for it) between two numbers is a comma."""
    out: list[str] = []
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in ("x", "y") and nxt and _is_number(nxt):
            # "y" after x's number separates the two; "x" only announces the point.
            if w == "y" and out and out[-1] != "," and _is_number(out[-1]):
                out.append(",")
            continue
        if w in lx.COMMA_SOUNDS and nxt and _is_number(nxt) and out and _is_number(out[-1]):
            out.append(",")
            continue
        out.append(w)
    return out


# A minus sign that starts a number: after the start, a space, a comma, ";" or "(", where the last
# thing before it is not a number ("3-4" and "3 - 4" are pairs) and not a letter joined to it.
_NEGATIVE = re.compile(r"(?:^|(?<=[\s,;(\[]))[-\u2212]\s?\d+(?:\.\d+)?")


def negative_number(text: str) -> re.Match[str] | None:
    """The first negative number in the text as typed, before `normalize` drops its minus sign."""
    for m in _NEGATIVE.finditer(text):
        before = text[: m.start()].rstrip()
        if not before or not before[-1].isdigit():
            return m
    return None


def collapse_repeats(words: list[str]) -> list[str]:
    """Drop a phrase repeated back to back ("open the mouth open the mouth").

    Runs containing numbers are left alone: "64 64" is a point, not an echo.
    """
    out = list(words)
    changed = True
    while changed:
        changed = False
        for n in range(min(8, len(out) // 2), 0, -1):
            for i in range(len(out) - 2 * n + 1):
                a = out[i : i + n]
                if a != out[i + n : i + 2 * n]:
                    continue
                if any(w[0].isdigit() or w in lx.NUMBER_WORDS for w in a):
                    continue
                del out[i + n : i + 2 * n]
                changed = True
                break
            if changed:
                break
    # Commas left doubled by the removal.
    return [w for i, w in enumerate(out) if not (w == "," and i > 0 and out[i - 1] == ",")]


_MAX_PHRASE_WORDS = max(len(p.split()) for p in lx.PHRASES)


def merge_phrases(words: list[str]) -> list[str]:
    """Multi-word phrases of the lexicon as one token each ("a little bit" -> "a_little"); filler dropped."""
    out: list[str] = []
    i = 0
    while i < len(words):
        for n in range(min(_MAX_PHRASE_WORDS, len(words) - i), 1, -1):
            key = " ".join(words[i : i + n])
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
        if (
            w == "and"
            and cleaned
            and cleaned[-1] in ("hundred", "thousand")
            and i + 1 < len(out)
            and out[i + 1] in lx.NUMBER_WORDS
        ):
            continue
        # "the left one": "one" stands for the part, not a number.
        next_is_number = i + 1 < len(out) and out[i + 1] in lx.NUMBER_WORDS
        if w == "one" and cleaned and cleaned[-1] in lx.LEFT_RIGHT and not next_is_number:
            continue
        cleaned.append(w)
    return cleaned


# How a kind's value is read from its table: not at all, the table's entry, or the word itself.
_NONE, _ENTRY, _WORD = 0, 1, 2


def _kinds(vocab: Vocabulary) -> tuple[tuple[str, Collection[str], int], ...]:
    """Word kinds in the order they are tried: a word takes the first kind whose table holds it."""
    return (
        ("NUMWORD", lx.NUMBER_WORDS, _NONE),
        ("SEP", lx.SEPARATORS, _NONE),
        ("CONTROL", lx.CONTROL_WORDS, _ENTRY),
        ("PART", vocab.part_words, _ENTRY),
        ("FPART", lx.FOREIGN_PARTS, _NONE),
        ("MAKE", lx.MAKE_WORDS, _NONE),
        ("VERB", lx.VERBS, _ENTRY),
        ("RVERB", vocab.rule_verbs, _WORD),
        ("ADJ", lx.ADJECTIVES, _ENTRY),
        ("AMOUNT", lx.AMOUNTS, _ENTRY),
        ("AMOUNT", lx.PHRASE_AMOUNTS, _ENTRY),
        ("DIR", lx.DIRECTION_WORDS, _ENTRY),
        ("SIDE", lx.SIDE_WORDS, _ENTRY),
        ("LR", lx.LEFT_RIGHT, _WORD),
        ("BOTH", lx.BOTH_WORDS, _NONE),
        ("POINTW", lx.POINT_WORDS, _NONE),
        ("PIXELS", lx.PIXEL_WORDS, _NONE),
        ("TO", lx.TO_WORDS, _NONE),
        ("BY", lx.BY_WORDS, _NONE),
        ("AT", lx.AT_WORDS, _NONE),
        ("AT", lx.FROM_WORDS, _NONE),
        ("CORNER", lx.CORNER_WORDS, _NONE),
        ("PRON", lx.PRONOUNS, _NONE),
        ("NEG", lx.NEGATIONS, _NONE),
        ("STOP", lx.STOPWORDS, _NONE),
        ("STOP", lx.CONTROL_OBJECTS, _NONE),
    )


def categorize(vocab: Vocabulary, words: list[str]) -> list[Tok]:
    """Typed tokens of merged words, with numbers folded into RUN tokens."""
    kinds = _kinds(vocab)
    toks: list[Tok] = []
    for w in words:
        if w == "," or w == "comma":
            toks.append(Tok("COMMA", ","))
        elif w[0].isdigit():
            toks.append(Tok("NUM", w, float(w)))
        else:
            toks.append(_word_tok(kinds, w))
    return group_numbers(toks)


def _word_tok(kinds: tuple[tuple[str, Collection[str], int], ...], w: str) -> Tok:
    for kind, table, how in kinds:
        if w in table:
            if how == _ENTRY:
                assert isinstance(table, Mapping)
                return Tok(kind, w, table[w])
            return Tok(kind, w, w if how == _WORD else None)
    return Tok("UNK", w)


def group_numbers(toks: list[Tok]) -> list[Tok]:
    """Fold digits, number words and the commas between them into RUN tokens."""
    out: list[Tok] = []
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
        out.append(Tok("RUN", " ".join(texts), Run([g for g in groups if g], " ".join(texts))))
    return out


def decode_run(run: Run, count: int) -> list[float] | None:
    """Exactly `count` numbers from a run, or None."""
    options: list[list[list[float]]] = []
    for g in run.groups:
        if g[0][0].isdigit():
            options.append(_digit_readings(g, alone=count >= 2 and len(g) == 1 and len(run.groups) == 1))
            continue
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


def _digit_readings(group: list[str], alone: bool) -> list[list[float]]:
    """The ways to read a group of digit numbers; one number alone may be a point a recogniser ran together."""
    vals = [float(x) for x in group]
    if alone and re.fullmatch(r"\d+\.\d+", group[0]):
        # "30.40" from a recogniser that heard a point as a decimal: x=30, y=40.
        a, b = group[0].split(".")
        return [vals, [float(a), float(b)]]
    if alone and re.fullmatch(r"[1-9]\d{3,5}", group[0]):
        # "3040" for "30, 40": the recogniser dropped the comma; split in the middle.
        half = (len(group[0]) + 1) // 2
        return [vals, [float(group[0][:half]), float(group[0][half:])]]
    return [vals]


def join_words(words: list[str]) -> str:
    """Words back as plain text, lexicon tokens spelled out ("left_dir" -> "left")."""
    text = " ".join(w.replace("_dir", "").replace("_side", "").replace("_", " ") for w in words)
    return re.sub(r"\s+,", ",", text).strip(" ,")


__all__ = [
    "Run",
    "Tok",
    "categorize",
    "collapse_repeats",
    "decode_run",
    "group_numbers",
    "join_words",
    "merge_phrases",
    "negative_number",
    "normalize",
]
