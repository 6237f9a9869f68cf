"""Plain value types shared by every layer (engine, keypoints and the application).

Coordinates follow one contract (DESIGN.md): pixels of the generator's output
image, origin top-left, x to the right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass

# DragGAN samples its faces at truncation psi 0.7: the one default every front end shares.
DEFAULT_PSI = 0.7


@dataclass(frozen=True)
class Point:
    x: float
    y: float

    def as_list(self) -> list[float]:
        return [float(self.x), float(self.y)]

    def distance(self, other: Point) -> float:
        return ((self.x - other.x) ** 2 + (self.y - other.y) ** 2) ** 0.5


@dataclass(frozen=True)
class DragPair:
    """One handle point that the drag should move onto its target."""

    handle: Point
    target: Point
