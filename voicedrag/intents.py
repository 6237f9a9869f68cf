"""What a command means, before any image is involved: the edit intent."""
from __future__ import annotations

from dataclasses import dataclass

from engine.types import Point

ACTIONS: tuple[str, ...] = (
    "open", "close", "raise", "lower", "move", "turn", "tilt", "widen", "narrow",
    "lengthen", "shorten", "enlarge", "shrink", "smile", "frown", "drag",
)
CONTROLS: tuple[str, ...] = ("undo", "redo", "reset", "save", "stop", "help")
SIDES: tuple[str, ...] = ("left", "right")
DIRECTIONS: tuple[str, ...] = ("up", "down", "left", "right")

# Unit vectors in image coordinates (y grows downwards).
DIRECTION_VECTORS: dict[str, tuple[float, float]] = {
    "up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0),
}


@dataclass
class EditIntent:
    """One edit. `part` is None only for explicit point drags (`handle` set).

    `amount` multiplies the rule's default displacement; `pixels`, when the
    command named a distance, replaces it. `side` and "left"/"right"
    directions are the viewer's.
    """

    action: str
    part: str | None = None
    side: str | None = None
    direction: str | None = None
    amount: float = 1.0
    pixels: float | None = None
    handle: Point | None = None
    target: Point | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "part": self.part,
            "side": self.side,
            "direction": self.direction,
            "amount": round(float(self.amount), 4),
            "pixels": None if self.pixels is None else float(self.pixels),
            "handle": None if self.handle is None else self.handle.as_list(),
            "target": None if self.target is None else self.target.as_list(),
        }

    def phrase(self) -> str:
        """A plain English rendering, used in suggestions and warnings."""
        if self.handle is not None:
            h = f"{self.handle.x:g},{self.handle.y:g}"
            if self.target is not None:
                return f"drag {h} to {self.target.x:g},{self.target.y:g}"
            return f"move the point at {h} {self.direction or ''}".strip()
        if self.action in ("smile", "frown") and self.part in (None, "mouth"):
            return self.action
        part = self.part or "?"
        if self.side is not None and part.endswith("s"):
            part = f"{self.side} {part[:-1]}"
        words = [self.action, "the", part]
        if self.direction is not None:
            words += ["to the", self.direction] if self.direction in ("left", "right") else [self.direction]
        return " ".join(words)


# Shorter name used across the app.
Edit = EditIntent
