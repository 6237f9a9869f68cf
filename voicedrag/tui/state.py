"""What the editor screen shows, as one typed value: the screen redraws when it changes.

The history itself is the `Session` (undo, redo); `ViewState.revision` counts its changes so
that a change to it is a change of the view too. A new value is made for every change
(`dataclasses.replace`); `eq=False` makes every new value a change, since its arrays have no
plain equality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.types import Point
from voicedrag.events import Mask, Planned

XY = tuple[float, float]


@dataclass(frozen=True, eq=False)
class LiveDrag:
    """The running edit: its plan once made, the handles now and the latest frame."""

    planned: Planned | None = None
    points: tuple[Point, ...] | None = None
    image: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class ViewState:
    revision: int = 0  # the session's history (or the keypoints found on it) changed
    manual: tuple[tuple[XY, XY], ...] = ()  # hand-placed handle/target pairs
    pending_handle: XY | None = None
    mask: Mask | None = None  # the hand-drawn region that may move
    mask_corner: XY | None = None
    show_labels: bool = False
    # A finished drag's handle and target markers sit on exactly the part that was edited, so
    # they are hidden when it ends; ctrl+t brings them back. ctrl+b shows the image before it.
    show_markers: bool = True
    view_before: bool = False
    live: LiveDrag | None = None  # set while an edit runs

    @property
    def busy(self) -> bool:
        return self.live is not None
