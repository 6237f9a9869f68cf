"""Spoken numbers: "one twenty" = 120, "two hundred and five" = 205, "sixty four" = 64.

A run of number words without commas ("one twenty two hundred") can hold
several numbers; `split_number_words` finds the readings with a given count.
"""

from __future__ import annotations

from voicedrag.language.lexicon import TEENS, TENS, UNITS


def _below_hundred(words: list[str]) -> int | None:
    if len(words) == 1:
        w = words[0]
        for table in (UNITS, TEENS, TENS):
            if w in table:
                return table[w]
        return None
    if len(words) == 2 and words[0] in TENS and words[1] in UNITS and words[1] != "zero":
        return TENS[words[0]] + UNITS[words[1]]
    return None


def _below_thousand(words: list[str]) -> tuple[int, bool] | None:
    """(value, colloquial) for 0..999; colloquial marks "one twenty" style readings."""
    if not words:
        return None
    if "hundred" in words:
        i = words.index("hundred")
        head, rest = words[:i], words[i + 1 :]
        if head in (["a"], ["one"]) or not head:
            mult = 1 if head else None
        else:
            mult = UNITS.get(head[0]) if len(head) == 1 else None
        if mult is None or mult == 0:
            return None
        if not rest:
            return mult * 100, False
        tail = _below_hundred(rest)
        return None if tail is None else (mult * 100 + tail, False)
    value = _below_hundred(words)
    if value is not None:
        return value, False
    # "one twenty" (120), "two fifty five" (255): a digit then a two-digit number.
    if len(words) >= 2 and words[0] in UNITS and words[0] != "zero":
        tail = _below_hundred(words[1:])
        if tail is not None and tail >= 10:
            return UNITS[words[0]] * 100 + tail, True
    return None


def parse_number_words(words: list[str]) -> tuple[int, bool] | None:
    """One number from its words, or None; the flag says a colloquial form was used."""
    if "thousand" in words:
        i = words.index("thousand")
        head, rest = words[:i], words[i + 1 :]
        h = _below_hundred(head) if head else None
        if h is None or h == 0:
            return None
        if not rest:
            return h * 1000, False
        r = _below_thousand(rest)
        return None if r is None else (h * 1000 + r[0], r[1])
    return _below_thousand(words)


def split_number_words(words: list[str], count: int) -> list[int] | None:
    """Read `words` as exactly `count` numbers, preferring standard forms."""
    # People say coordinates with the same rhythm ("one forty, one eighty"), so
    # readings whose numbers take equally many words win, then standard forms.
    best: tuple[tuple[int, int], list[int]] | None = None

    def walk(start: int, left: int, acc: list[int], sizes: list[int], colloquial: int) -> None:
        nonlocal best
        if left == 0:
            if start == len(words):
                rank = (max(sizes) - min(sizes), colloquial)
                if best is None or rank < best[0]:
                    best = (rank, list(acc))
            return
        for end in range(start + 1, len(words) + 1):
            got = parse_number_words(words[start:end])
            if got is not None:
                acc.append(got[0])
                sizes.append(end - start)
                walk(end, left - 1, acc, sizes, colloquial + int(got[1]))
                acc.pop()
                sizes.pop()

    if len(words) <= 12:
        walk(0, count, [], [], 0)
    return None if best is None else best[1]


def number_word_count_options(words: list[str]) -> list[int]:
    """How many numbers `words` can be read as (fewest first)."""
    return [k for k in range(1, len(words) + 1) if split_number_words(words, k) is not None]
