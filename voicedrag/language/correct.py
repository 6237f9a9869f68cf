"""Correcting misheard words toward the current vocabulary, by sound and spelling.

Speech recognisers replace a word with one that sounds alike ("mouse" for
"mouth", "ice" for "eyes", "year" for "ear"). A word that is not in the
vocabulary is compared with every vocabulary word twice: by a phonetic key
(a small Metaphone-like code, so "hat" and "head" share the key HT) and by
spelling. The corrector only proposes candidates; the command grammar picks
the one that makes a complete command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

VOWELS = frozenset("aeiou")

# Sounds that recognisers confuse with each other: substituting one for the
# other costs half an edit in the phonetic key ("0" is the "th" sound).
_NEAR = {
    frozenset(p)
    for p in (
        ("0", "S"),
        ("0", "F"),
        ("0", "T"),
        ("S", "X"),
        ("J", "X"),
        ("M", "N"),
        ("A", "Y"),
        ("A", "W"),
        ("A", "H"),
        ("P", "F"),
        ("K", "J"),
        ("L", "R"),
        ("P", "M"),
    )
}
# Letters that are nearly silent at the ends of words or in clusters.
_WEAK = frozenset("AHWY")

# Whole-word homophones the key cannot reach: a single letter, possessives.
HOMOPHONES: dict[str, str] = {
    "i": "eye",
    "i's": "eyes",
    "eye's": "eyes",
    "ayes": "eyes",
    "aye": "eye",
    "knows": "nose",
    "noes": "nose",
    "no's": "nose",
    "nos": "nose",
    "ear's": "ears",
    "year's": "ears",
}

WEIGHT_KEY = 0.45
WEIGHT_SPELLING = 0.35
WEIGHT_SYLLABLES = 0.2
MAX_COST = 0.45
ONSET_PENALTY = 0.04


# Letter pairs with one sound ("gh" is silent), and letters coded alike whatever follows them.
_DIGRAPHS = {"th": "0", "sh": "X", "ch": "X", "ph": "F", "gh": "", "ck": "K", "ng": "N"}
_LETTERS = {"q": "K", "x": "KS", "z": "S", "d": "T", "v": "F", "b": "P"}


def phonetic_key(word: str) -> str:
    """A coarse code of how a word sounds: consonant classes plus a leading vowel mark."""
    w = "".join(c for c in word.lower() if c.isalpha())
    if not w:
        return ""
    for prefix, rep in (("kn", "n"), ("gn", "n"), ("pn", "n"), ("wr", "r"), ("ps", "s"), ("wh", "w"), ("x", "s")):
        if w.startswith(prefix):
            w = rep + w[len(prefix) :]
            break
    out: list[str] = []
    i = 0
    while i < len(w):
        two = w[i : i + 2]
        if w[i] in VOWELS:
            codes, step = ("A" if i == 0 else ""), 1
        elif two in _DIGRAPHS:
            codes, step = _DIGRAPHS[two], 2
        else:
            codes, step = _consonant(w, i), 1
        for code in codes:
            # A sound said twice in a row is heard once.
            if not out or out[-1] != code:
                out.append(code)
        i += step
    return "".join(out)


def _consonant(w: str, i: int) -> str:
    """The code of the single consonant w[i] (empty where it is silent)."""
    c = w[i]
    nxt = w[i + 1] if i + 1 < len(w) else ""
    if c == "c":
        return "S" if nxt in ("e", "i", "y") else "K"
    if c == "g":
        return "J" if nxt in ("e", "i", "y") and i > 0 else "K"
    if c in _LETTERS:
        return _LETTERS[c]
    if c == "y":
        # Only a consonant before a vowel at the start ("year"); otherwise a vowel ("eyes").
        if i == 0 and nxt in VOWELS:
            return "Y"
        return "A" if i == 0 else ""
    if c == "w":
        if nxt in VOWELS:
            return "W"
        return "A" if i == 0 else ""
    if c == "h":
        return "H" if i == 0 and nxt in VOWELS else ""
    return c.upper()


def edit_distance(a: str, b: str, near: bool = False) -> float:
    """Optimal-string-alignment distance (adjacent swaps cost one).

    With `near`, substitutions between confusable sounds and dropping a weak
    sound cost half, which suits phonetic keys.
    """
    if a == b:
        return 0.0
    la, lb = len(a), len(b)
    prev2: list[float] = []
    prev = [float(j) for j in range(lb + 1)]
    for i in range(1, la + 1):
        cur = [float(i)] + [0.0] * lb
        ca = a[i - 1]
        for j in range(1, lb + 1):
            cb = b[j - 1]
            if ca == cb:
                sub = 0.0
            elif near and frozenset((ca, cb)) in _NEAR:
                sub = 0.5
            else:
                sub = 1.0
            dele = 0.5 if near and ca in _WEAK else 1.0
            ins = 0.5 if near and cb in _WEAK else 1.0
            best = min(prev[j] + dele, cur[j - 1] + ins, prev[j - 1] + sub)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, prev2[j - 2] + 1.0)
            cur[j] = best
        prev2, prev = prev, cur
    return prev[lb]


@dataclass(frozen=True)
class Candidate:
    word: str
    cost: float  # 0 = same sound and spelling; MAX_COST is the most a candidate may cost


def syllables(word: str) -> int:
    """Rough syllable count: groups of vowels (y included), a silent final e dropped."""
    w = "".join(c for c in word.lower() if c.isalpha())
    if len(w) > 2 and w.endswith("e") and w[-2] not in "aeiouyl":
        w = w[:-1]
    elif len(w) > 3 and w.endswith("es") and w[-3] not in "aeiouysxz":
        w = w[:-2]
    groups = 0
    prev = False
    for c in w:
        v = c in "aeiouy"
        if v and not prev:
            groups += 1
        prev = v
    return max(groups, 1)


def word_cost(heard: str, word: str) -> float:
    """How unlikely `word` is as what was said when `heard` was transcribed (0..1)."""
    ka, kb = phonetic_key(heard), phonetic_key(word)
    key = edit_distance(ka, kb, near=True) / max(len(ka), len(kb), 1)
    spelling = edit_distance(heard, word) / max(len(heard), len(word), 1)
    # Recognisers rarely get the first sound wrong, so a different onset breaks ties.
    onset = 0.0 if ka[:1] == kb[:1] else ONSET_PENALTY
    sa, sb = syllables(heard), syllables(word)
    rhythm = abs(sa - sb) / max(sa, sb)
    return WEIGHT_KEY * key + WEIGHT_SPELLING * spelling + WEIGHT_SYLLABLES * rhythm + onset


class Corrector:
    """Proposes vocabulary words for a word that is not in the vocabulary."""

    def __init__(self, vocabulary: Iterable[str], max_cost: float = MAX_COST) -> None:
        self.vocabulary = sorted({w.lower() for w in vocabulary if w})
        self.max_cost = max_cost
        self._keys = {w: phonetic_key(w) for w in self.vocabulary}
        self._syllables = {w: syllables(w) for w in self.vocabulary}
        self._lookup = lru_cache(maxsize=4096)(self._candidates)

    def candidates(self, word: str, limit: int = 3) -> list[Candidate]:
        """Best vocabulary words for `word`, cheapest first; empty when none is close enough."""
        return list(self._lookup(word.lower()))[:limit]

    def _candidates(self, word: str) -> tuple[Candidate, ...]:
        if word in HOMOPHONES and HOMOPHONES[word] in self._keys:
            return (Candidate(HOMOPHONES[word], 0.0),)
        if len(word) < 2:
            return ()
        found = []
        key = phonetic_key(word)
        syl = syllables(word)
        for v in self.vocabulary:
            # Words of very different length are never confused; skipping them keeps this fast.
            if abs(len(v) - len(word)) > max(3, len(word) // 2):
                continue
            kv = self._keys[v]
            onset = 0.0 if key[:1] == kv[:1] else ONSET_PENALTY
            partial = WEIGHT_KEY * edit_distance(key, kv, near=True) / max(len(key), len(kv), 1) + onset
            if partial > self.max_cost:
                continue  # the sound alone rules it out; spare the spelling comparison
            sv = self._syllables[v]
            cost = (
                partial
                + WEIGHT_SPELLING * edit_distance(word, v) / max(len(word), len(v), 1)
                + WEIGHT_SYLLABLES * abs(syl - sv) / max(syl, sv)
            )
            if cost <= self.max_cost:
                found.append(Candidate(v, round(cost, 4)))
        found.sort(key=lambda c: (c.cost, c.word))
        return tuple(found[:5])
