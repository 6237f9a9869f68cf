"""Points and masks placed by hand (on the image, or typed as coordinates), and keypoints taught
by name on a model without a detector."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from pathlib import Path

from engine.types import DragPair, Point
from voicedrag.tui import messages as m
from voicedrag.tui import workers
from voicedrag.tui.base import XY, escape, example_drag
from voicedrag.tui.history import HistoryActions
from voicedrag.tui.widgets import ImagePane

# More handles than this is not a drag anyone means (DragGAN's examples use one to five), and each
# costs every step of the drag a feature search.
MAX_PAIRS = 32
MAX_NAME = 40  # characters of a taught keypoint's name


def pairs_text(pairs: tuple[tuple[XY, XY], ...]) -> str:
    return "; ".join(f"{a[0]:g},{a[1]:g}>{b[0]:g},{b[1]:g}" for a, b in pairs)


class PointerInput(HistoryActions):
    # ------------------------------------------------------------ typed

    def set_mask_inclusive(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Only the rectangle with corners (x0, y0) and (x1, y1), both inside it, may move."""
        size = self.image_size
        if size is None:
            self.set_hint("the model is still loading; draw the mask when the image is shown.", error=True)
            return
        w, h = size
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            self.set_hint(f"a mask needs finite numbers; use x in 0..{w - 1} and y in 0..{h - 1}.", error=True)
            return
        xa, xb = sorted((int(round(x0)), int(round(x1))))
        ya, yb = sorted((int(round(y0)), int(round(y1))))
        if not (0 <= xa and xb < w and 0 <= ya and yb < h):
            self.set_hint(
                f"the mask {xa},{ya},{xb},{yb} does not fit the {w}x{h} image; "
                f"use x in 0..{w - 1} and y in 0..{h - 1}.",
                error=True,
            )
            return
        self.log_line(f"mask: only {xa},{ya} .. {xb},{yb} may move")
        self.view = replace(self.view, mask=((xa, ya, xb + 1, yb + 1),), mask_corner=None)

    def clear_mask(self) -> None:
        self.log_line("mask off: the whole image may move")
        self.view = replace(self.view, mask=None, mask_corner=None)

    def set_points(self, spec: str) -> None:
        size = self.image_size
        if size is None:
            self.set_hint("the model is still loading; give points when the image is shown.", error=True)
            return
        from voicedrag.dragio import SpecError, parse_points

        if spec.count(">") > MAX_PAIRS:
            self.set_hint(f"at most {MAX_PAIRS} handle>target pairs can be dragged at once; give fewer.", error=True)
            return
        try:
            pairs = parse_points(spec, size)
        except SpecError as err:
            self.set_hint(str(err), error=True)
            return
        manual = tuple(((p.handle.x, p.handle.y), (p.target.x, p.target.y)) for p in pairs)
        self.log_line(f"points: {pairs_text(manual)}")
        self.set_hint("points placed; 'go' (or ctrl+g) drags them.")
        self.view = replace(self.view, manual=manual, pending_handle=None)

    def action_go(self) -> None:
        """Drag the hand-placed points."""
        manual = self.view.manual
        if not manual:
            self.set_hint(
                "no points placed; click the image (or tab, arrows, Enter) to place a handle "
                f"and its target, or type '{example_drag(self.image_size)}'.",
                error=True,
            )
            return
        if self.idle_session("drag") is None:
            return
        label = "drag " + "; ".join(f"{a[0]:.0f},{a[1]:.0f} to {b[0]:.0f},{b[1]:.0f}" for a, b in manual)
        self.log_line(f"[b]>[/b] {label}")
        self.start_edit(label, pairs=tuple(DragPair(Point(*a), Point(*b)) for a, b in manual))

    def action_clear_points(self) -> None:
        """Remove the hand-placed points and the mask corner."""
        self.log_line("points cleared")
        self.view = replace(self.view, manual=(), pending_handle=None, mask_corner=None)

    def action_clear_mask(self) -> None:
        """Let the whole image move again."""
        self.clear_mask()

    # ------------------------------------------------------------ on the image

    def on_image_pane_point_chosen(self, message: ImagePane.PointChosen) -> None:
        p = (float(message.x), float(message.y))
        v = self.view
        if v.pending_handle is None and len(v.manual) >= MAX_PAIRS:
            self.set_hint(
                f"{MAX_PAIRS} pairs are placed, the most one drag takes; g drags them, c clears them.", error=True
            )
            return
        if v.pending_handle is None:
            self.set_hint(f"handle at {p[0]:.0f},{p[1]:.0f}; now place its target.")
            self.view = replace(v, pending_handle=p)
        else:
            manual = (*v.manual, (v.pending_handle, p))
            self.set_hint(f"{len(manual)} pair(s) placed; g / ctrl+g / 'go' drags them.")
            self.view = replace(v, manual=manual, pending_handle=None)

    def on_image_pane_mask_corner(self, message: ImagePane.MaskCorner) -> None:
        corner = self.view.mask_corner
        if corner is None:
            self.set_hint("mask corner set; move to the opposite corner and press m.")
            self.view = replace(self.view, mask_corner=(float(message.x), float(message.y)))
        else:
            self.view = replace(self.view, mask_corner=None)
            self.set_mask_inclusive(corner[0], corner[1], message.x, message.y)

    def on_image_pane_mask_drawn(self, message: ImagePane.MaskDrawn) -> None:
        self.set_mask_inclusive(message.a[0], message.a[1], message.b[0], message.b[1])

    def on_image_pane_cursor_moved(self, message: ImagePane.CursorMoved) -> None:
        self.refresh_status()

    def on_image_pane_clear_requested(self) -> None:
        self.action_clear_points()

    def on_image_pane_go_requested(self) -> None:
        self.action_go()

    # ------------------------------------------------------------ keypoints by name

    def teach_point(self, name: str, xy: tuple[float, ...]) -> None:
        """Teach the session's keypoint template `name` at xy (or at the cursor) on the current image."""
        size = self.image_size
        if size is None or self.session is None or self.backend.editor is None:
            self.set_hint("the model is still loading; name points when the image is shown.", error=True)
            return
        if len(name) > MAX_NAME:
            self.set_hint(f"a keypoint's name is at most {MAX_NAME} characters, such as nose or left_eye.", error=True)
            return
        if self.backend.editor.kit.has_detector:
            self.set_hint(
                "this model has its own keypoint detector; naming points is for models without one.", error=True
            )
            return
        x, y = (xy[0], xy[1]) if xy else self.query_one(ImagePane).cursor
        w, h = size
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            self.set_hint(
                f"{x:g},{y:g} is outside the {w}x{h} image; use x in 0..{w - 1} and y in 0..{h - 1}.", error=True
            )
            return
        path = Path(self.options.out_dir) / "template.json"
        self.run_worker(
            partial(
                workers.teach_point,
                self.backend,
                self.session.current.ws,
                name,
                (float(x), float(y)),
                path,
                self.post_message,
            ),
            thread=True,
            group="teach",
            name="teach",
            exit_on_error=False,
        )

    def on_point_taught(self, message: m.PointTaught) -> None:
        x, y = message.xy
        if self.journal is not None:
            self.journal.use_template(message.path)
        self.log_line(
            f"taught {message.name} at {x:g},{y:g}: the template knows {message.names} point(s) "
            f"and is saved in {escape(message.path)} (--template it next time)"
        )
        self.history_changed()
        self.labels_need_keypoints()
