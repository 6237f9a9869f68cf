"""Checked number types for the command line: a value out of range or not finite is refused by
argparse (exit 2, one sentence) before any model is loaded, instead of ending in a traceback
deep in torch or in a garbage picture."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from engine.types import DEFAULT_PSI


def _number(kind: type, lo: float, hi: float, what: str) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole ' if kind is int else ''}number; give {what}"
            ) from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {what}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


seed = _number(int, 0, 2**32 - 1, "a seed from 0 to 4294967295")
psi = _number(float, -2.0, 2.0, f"a truncation psi from -2 to 2 ({DEFAULT_PSI} is usual)")
lr = _number(float, 1e-8, 1.0, "a learning rate above 0 and at most 1 (such as 0.002)")
steps = _number(int, 1, 100_000, "a step count from 1 to 100000")
threads = _number(int, 1, 1024, "a thread count from 1 to 1024")
confidence = _number(float, 0.0, 1.0, "a confidence from 0 to 1 (such as 0.5)")
seconds = _number(float, 0.5, 3600.0, "a length in seconds from 0.5 to 3600")
