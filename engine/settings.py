"""Checks of settings that come from files a user gives (a model's JSON config, an inversion's):
each refusal is a ValueError naming the setting and the range it must be in."""

from __future__ import annotations

import math


def check_number(
    what: str, name: str, value: object, lo: float, hi: float, whole: bool = False, optional: bool = False
) -> None:
    """`value` must be a number (a whole one if `whole`) from `lo` to `hi`, or None if `optional`;
    `what` names the kind of setting in the sentence ("drag", "inversion")."""
    if value is None and optional:
        return
    kinds = (int,) if whole else (int, float)
    # bool is an int to Python, but true is no step count.
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(
            f"the {what} setting {name} must be a {'whole ' if whole else ''}number from "
            f"{lo:g} to {hi:g}, not {value!r}"
        )
