"""Widgets of the voicedrag TUI: the image pane, the command bar and the level meter."""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image as PILImage
from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.containers import Container
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from voicedrag.tui.colors import dither_256
from voicedrag.tui.guard import Guarded
from voicedrag.tui.overlay import Overlay, compose, short_name

XY = tuple[float, float]

# A typical cell (VT340's, textual-image's own guess): 1:2, so that half-block pixels are square.
DEFAULT_CELL = (10, 20)


class _QueryLog(logging.Handler):
    """textual-image's log: kept off the screen, noting whether a terminal query failed.

    Its failed queries are logged as warnings with the exception's traceback; with no handler of
    its own, Python's last-resort handler printed them on stderr above the app."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.failed = True


def probe_terminal() -> tuple[ModuleType | None, bool]:
    """Ask the terminal for its cell size and graphics, once, before Textual takes it over (the
    answers come on stdin, which Textual then reads): (textual_image.widget, or None where it
    cannot be loaded; whether the cell size was measured).

    A terminal that reports no pixel size and does not answer the size query (SSH, the Linux
    console) times the query out; one with no size at all divides by zero in it; a stdin that is
    not a terminal fails in termios. Each of these means a typical cell and the app's own half
    blocks, silently."""
    from textual_image import _terminal

    log = logging.getLogger("textual_image")
    quiet = next((h for h in log.handlers if isinstance(h, _QueryLog)), None)
    if quiet is None:
        quiet = _QueryLog()
        log.addHandler(quiet)
    quiet.failed = False
    try:
        _terminal.get_cell_size()
        measured = not quiet.failed
    except Exception:  # noqa: BLE001 - any failure of the query is a terminal that cannot tell
        measured = False
    stdout = sys.__stdout__
    if stdout is None or stdout.closed or not stdout.isatty():
        measured = False  # nothing was asked: the guess made for a pipe or a test
    if not measured and not (os.environ.get("TEXTUAL_CELL_WIDTH") and os.environ.get("TEXTUAL_CELL_HEIGHT")):
        # Cached where textual-image's widgets read it, so that none of them asks again.
        _terminal.get_cell_size._result = _terminal.CellSize(*DEFAULT_CELL)  # type: ignore[attr-defined]
    try:
        import textual_image.widget as module  # its import asks for Sixel and Kitty graphics
    except Exception:  # noqa: BLE001 - a terminal that fails those queries gets half blocks
        return None, measured
    return module, measured


tiw, CELL_MEASURED = probe_terminal()


class HalfBlockPicture(Widget):
    """An RGB picture drawn with the upper half block: each cell shows two pixels, the upper one
    as the character's colour and the lower one as its background.

    The picture must already be cols x 2*rows pixels (ImagePane composes it at that size). A new
    frame repaints this widget only: textual-image's half-cell widget asks for a layout of the
    whole screen with every frame (about 45 ms in this app, several drag steps of the embedded
    model, taken from the drag's own thread by the interpreter lock). In a 256-colour terminal
    the frame is dithered onto the colours the output keeps (voicedrag.tui.colors).
    """

    DEFAULT_CSS = "HalfBlockPicture { width: auto; height: auto; }"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._image: PILImage.Image | None = None
        self._rows: list[Strip] = []
        self._keys: list[bytes] = []  # each row's pixels, to find the rows a new frame changes
        self._stale = True  # _rows must be rebuilt before the next paint
        self._styles: dict[tuple[int, int], Style] = {}
        self._colours: dict[int, Color] = {}

    @property
    def image(self) -> PILImage.Image | None:
        return self._image

    @image.setter
    def image(self, value: PILImage.Image | None) -> None:
        self._image = value
        self._stale = True
        if value is None or not self.is_mounted or not self._rows:
            self.refresh()
            return
        # Only the rows that changed are repainted: when just a marker moved (or a drag changed
        # the mouth), most of the picture is what the screen already shows.
        changed = self._rebuild()
        if changed is None:
            self.refresh()
            return
        for y0, y1 in changed:
            self.refresh(Region(0, y0, self.size.width, y1 - y0))

    def _cells(self) -> np.ndarray:
        """[rows, cols, 6] uint8: each cell's upper and lower pixel."""
        assert self._image is not None
        picture = self._image.convert("RGB")
        if self.app.console.color_system == "256":
            picture = dither_256(picture)
        arr = np.asarray(picture)
        if arr.shape[0] % 2:
            arr = np.concatenate([arr, arr[-1:]], axis=0)
        return np.concatenate([arr[0::2], arr[1::2]], axis=2)

    def _colour(self, rgb: int) -> Color:
        colour = self._colours.get(rgb)
        if colour is None:
            # As Color.from_rgb builds it, without its cost (a frame holds thousands of colours).
            triplet = ColorTriplet(rgb >> 16, (rgb >> 8) & 255, rgb & 255)
            colour = self._colours[rgb] = Color(triplet.hex, ColorType.TRUECOLOR, triplet=triplet)
        return colour

    def _row_strip(self, upper: list[int], lower: list[int]) -> Strip:
        """One row of cells from its upper and lower pixels, each as 0xRRGGBB."""
        styles = self._styles
        segments = []
        for key in zip(upper, lower, strict=True):
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(color=self._colour(key[0]), bgcolor=self._colour(key[1]))
            segments.append(Segment("▀", style))
        return Strip(segments, len(segments))

    def _rebuild(self) -> list[tuple[int, int]] | None:
        """Bring _rows up to date; the spans [y0, y1) of rows that changed, or None when all did
        (a new size)."""
        cells = self._cells()
        keys = [row.tobytes() for row in cells]
        packed = cells.astype(np.int32)
        upper = (packed[..., 0] << 16) | (packed[..., 1] << 8) | packed[..., 2]
        lower = (packed[..., 3] << 16) | (packed[..., 4] << 8) | packed[..., 5]
        if len(self._styles) > 65536:  # caches of this size hold several frames' colours; start afresh
            self._styles.clear()
            self._colours.clear()
        same_size = (
            len(keys) == len(self._keys)
            and len(self._rows) == len(keys)
            and bool(keys)
            and len(keys[0]) == len(self._keys[0])
        )
        spans: list[tuple[int, int]] = []
        rows = self._rows if same_size else [Strip.blank(0)] * len(keys)
        for y, key in enumerate(keys):
            if same_size and key == self._keys[y]:
                continue
            rows[y] = self._row_strip(upper[y].tolist(), lower[y].tolist())
            if spans and spans[-1][1] == y:
                spans[-1] = (spans[-1][0], y + 1)
            else:
                spans.append((y, y + 1))
        self._rows, self._keys, self._stale = rows, keys, False
        return spans if same_size else None

    def render_line(self, y: int) -> Strip:
        if self._image is None:
            return Strip.blank(self.size.width)
        if self._stale:
            self._rebuild()
        return self._rows[y] if 0 <= y < len(self._rows) else Strip.blank(self.size.width)


def renderer_class(name: str) -> type[Any]:
    """The picture widget for `name`: auto (Kitty/Sixel when the terminal has them, else half blocks),
    halfcell, unicode, sixel, tgp."""
    names = ("auto", "halfcell", "unicode", "sixel", "tgp")
    if name not in names:
        raise ValueError(f"unknown image renderer {name!r}; use one of {', '.join(names)}")
    if tiw is None:  # textual-image could not be loaded in this terminal (probe_terminal)
        return HalfBlockPicture
    table = {
        "auto": tiw.Image,
        "halfcell": HalfBlockPicture,
        "unicode": tiw.UnicodeImage,
        "sixel": tiw.SixelImage,
        "tgp": tiw.TGPImage,
    }
    if table[name] is tiw.HalfcellImage:
        return HalfBlockPicture
    if name == "auto" and not CELL_MEASURED:
        # Graphics are drawn to the cell's size in pixels; a guessed size would crop or shrink them.
        return HalfBlockPicture
    if name == "auto" and renderer_kind(table[name]) == "cells":
        # A terminal without graphics: textual-image's choice would be its half-cell or its
        # unicode picture, which lay the whole screen out for every frame and are not dithered
        # for 256 colours; this app's own half-block picture is both.
        return HalfBlockPicture
    return table[name]


def renderer_kind(cls: type[Any]) -> str:
    """'cells' when a terminal cell shows 1x2 image pixels, 'pixels' for real graphics (Sixel, Kitty)."""
    from textual_image.renderable.sixel import Image as SixelRenderable
    from textual_image.renderable.tgp import Image as TGPRenderable

    if cls is HalfBlockPicture:
        return "cells"
    renderable = getattr(cls, "_Renderable", None)
    return "pixels" if renderable in (SixelRenderable, TGPRenderable) or cls.__name__ == "SixelImage" else "cells"


def cell_size() -> tuple[int, int]:
    """A terminal cell's size in pixels: as the terminal told it (probe_terminal), else DEFAULT_CELL."""
    try:
        from textual_image._terminal import get_cell_size

        size = get_cell_size()  # cached by probe_terminal: never asks the terminal again
        return max(size.width, 1), max(size.height, 1)
    except Exception:  # noqa: BLE001 - no terminal to ask (stdout closed): a typical cell
        return DEFAULT_CELL


class ImagePane(Guarded, Container, can_focus=True):
    """The current image with points, arrows, keypoints, the cursor and the mask drawn on it.

    Arrow keys move a cursor over the image; Enter (or a click) places a
    handle, then its target; `m` at two corners (or a mouse drag) draws the
    region that may move.
    """

    BINDINGS = [
        Binding("left", "move(-1,0)", "←", show=False),
        Binding("right", "move(1,0)", "→", show=False),
        Binding("up", "move(0,-1)", "↑", show=False),
        Binding("down", "move(0,1)", "↓", show=False),
        Binding("shift+left", "move(-8,0)", show=False),
        Binding("shift+right", "move(8,0)", show=False),
        Binding("shift+up", "move(0,-8)", show=False),
        Binding("shift+down", "move(0,8)", show=False),
        Binding("enter,space", "place", "Place point"),
        Binding("m", "mask_corner", "Mask corner"),
        Binding("c", "clear", "Clear points"),
        Binding("g", "go", "Drag points"),
    ]

    class PointChosen(Message):
        def __init__(self, x: float, y: float) -> None:
            super().__init__()
            self.x = x
            self.y = y

    class MaskCorner(Message):
        def __init__(self, x: float, y: float) -> None:
            super().__init__()
            self.x = x
            self.y = y

    class MaskDrawn(Message):
        def __init__(self, a: XY, b: XY) -> None:
            super().__init__()
            self.a = a
            self.b = b

    class CursorMoved(Message):
        def __init__(self, x: int, y: int) -> None:
            super().__init__()
            self.x = x
            self.y = y

    class ClearRequested(Message):
        pass

    class GoRequested(Message):
        pass

    def __init__(self, renderer: str = "auto", id: str | None = None) -> None:
        super().__init__(id=id)
        self._renderer_cls = renderer_class(renderer)
        self.kind = renderer_kind(self._renderer_cls)
        self.image: np.ndarray | None = None
        self.overlay = Overlay()
        self.labels: dict[str, XY] = {}
        self.cursor: tuple[int, int] = (0, 0)
        self.placeholder = "loading the model…"
        self.grid: tuple[int, int] = (0, 0)  # (cols, rows) the picture occupies
        self._press: XY | None = None
        self._label_key: object = None

    def compose(self) -> Any:
        yield Static(self.placeholder, id="placeholder")
        yield self._renderer_cls(id="picture")

    @property
    def picture(self) -> Any:
        return self.query_one("#picture")

    # ------------------------------------------------------------ drawing

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        if self.is_mounted:
            self.query_one("#placeholder", Static).update(text)

    def show(
        self, image: np.ndarray | None, overlay: Overlay | None = None, labels: dict[str, XY] | None = None
    ) -> None:
        if image is not None and (self.image is None or image.shape != self.image.shape):
            h, w = image.shape[:2]
            self.cursor = (w // 2, h // 2)
        self.image = image
        self.overlay = overlay or Overlay()
        self.labels = labels or {}
        self.redraw()

    def fit(self, cols: int, rows: int) -> tuple[int, int]:
        """Largest square picture, in cells, inside cols x rows."""
        cw, ch = cell_size()
        if self.image is None:
            return cols, rows
        h, w = self.image.shape[:2]
        # A cell is cw x ch pixels on screen; keep the image's aspect ratio.
        c = min(cols, int(rows * ch * w / (cw * h)))
        r = min(rows, max(int(round(c * cw * h / (ch * w))), 1))
        return max(c, 1), r

    def shown_pixels(self) -> int | None:
        """How many pixels wide the picture is drawn now (None: not drawn yet): a drag's preview
        frames need no more (DragOptions.preview_size)."""
        if self.image is None or not self.is_mounted or self.size.width == 0:
            return None
        return max(self.canvas_size(*self.fit(self.size.width, self.size.height)))

    def canvas_size(self, cols: int, rows: int) -> tuple[int, int]:
        if self.kind == "pixels":
            cw, ch = cell_size()
            return cols * cw, rows * ch
        return cols, rows * 2

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        placeholder = self.query_one("#placeholder", Static)
        picture = self.picture
        if self.image is None or self.size.width == 0:
            placeholder.display = True
            picture.display = False
            return
        placeholder.display = False
        picture.display = True
        cols, rows = self.fit(self.size.width, self.size.height)
        self.grid = (cols, rows)
        picture.styles.width = cols
        picture.styles.height = rows
        overlay = self.overlay
        if self.has_focus:
            overlay = Overlay(**{**overlay.__dict__, "cursor": self.cursor})
        picture.image = compose(self.image, self.canvas_size(cols, rows), overlay)
        self._place_labels(cols, rows)

    def _place_labels(self, cols: int, rows: int) -> None:
        key = (tuple(sorted(self.labels.items())), cols, rows)
        if key == self._label_key:
            return
        self._label_key = key
        self.query(".kp-label").remove()
        if not self.labels or self.image is None:
            return
        h, w = self.image.shape[:2]
        widgets = []
        cells = {
            name: (min(int((x + 0.5) / w * cols), cols - 1), min(int((y + 0.5) / h * rows), rows - 1))
            for name, (x, y) in self.labels.items()
        }
        # Every keypoint's dot is taken from the start: a label never covers another point's dot.
        taken: dict[int, list[tuple[int, int]]] = {}  # row -> occupied [start, end) columns
        for cx, cy in cells.values():
            taken.setdefault(cy, []).append((cx, cx + 1))
        for name, (cx, cy) in cells.items():
            text = short_name(name)
            # Right of the point, else left of it, else a row above or below; a label that
            # fits nowhere is left out (its dot stays) rather than printed over another.
            spot = None
            for row in (cy, cy - 1, cy + 1):
                for left in (cx + 1, cx - len(text)):
                    span = (left, left + len(text))
                    if (
                        0 <= row < rows
                        and left >= 0
                        and span[1] <= cols
                        and not any(a < span[1] and span[0] < b for a, b in taken.get(row, []))
                    ):
                        spot = (left, row)
                        break
                if spot:
                    break
            if spot is None:
                continue
            # A blank column either side keeps two labels on a row apart.
            taken.setdefault(spot[1], []).append((spot[0] - 1, spot[0] + len(text) + 1))
            label = Label(text, classes="kp-label")
            label.styles.offset = spot
            widgets.append(label)
        self.mount_all(widgets)

    def on_resize(self, event: events.Resize) -> None:
        self.redraw()

    def on_focus(self, event: events.Focus) -> None:
        self.redraw()

    def on_blur(self, event: events.Blur) -> None:
        self.redraw()

    # ------------------------------------------------------------ input

    def _image_xy(self, event: events.MouseEvent) -> XY | None:
        if self.image is None or self.grid[0] == 0:
            return None
        offset = event.get_content_offset(self.picture)
        if offset is None:
            return None
        cols, rows = self.grid
        h, w = self.image.shape[:2]
        x = min(max((offset.x + 0.5) / cols * w - 0.5, 0.0), w - 1.0)
        y = min(max((offset.y + 0.5) / rows * h - 0.5, 0.0), h - 1.0)
        return round(x), round(y)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self._press = self._image_xy(event)
        if self._press is not None:
            self.capture_mouse()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        start, self._press = self._press, None
        self.release_mouse()
        end = self._image_xy(event)
        if start is None:
            return
        if end is None:
            end = start
        self.focus()
        self.cursor = (int(end[0]), int(end[1]))
        self.post_message(self.CursorMoved(*self.cursor))
        if abs(end[0] - start[0]) >= 2 and abs(end[1] - start[1]) >= 2:
            self.post_message(self.MaskDrawn(start, end))
        else:
            self.post_message(self.PointChosen(*end))
        event.stop()

    def action_move(self, dx: int, dy: int) -> None:
        if self.image is None:
            return
        h, w = self.image.shape[:2]
        x = min(max(self.cursor[0] + dx, 0), w - 1)
        y = min(max(self.cursor[1] + dy, 0), h - 1)
        self.cursor = (x, y)
        self.post_message(self.CursorMoved(x, y))
        self.redraw()

    def action_place(self) -> None:
        if self.image is not None:
            self.post_message(self.PointChosen(*self.cursor))

    def action_mask_corner(self) -> None:
        if self.image is not None:
            self.post_message(self.MaskCorner(*self.cursor))

    def action_clear(self) -> None:
        self.post_message(self.ClearRequested())

    def action_go(self) -> None:
        self.post_message(self.GoRequested())


class CommandBar(Guarded, Input):
    """The command line: Enter runs, up/down walk the history, space on an empty bar starts listening."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous", show=False),
        Binding("down", "history(1)", "Next", show=False),
    ]

    class VoiceKey(Message):
        pass

    def __init__(self, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self.history: list[str] = []
        self._pos = 0
        self._draft = ""

    def replace(self, text: str, start: int, end: int) -> None:
        # Every edit of the line (keys, a paste) comes through here: control characters in a paste
        # (escape sequences) would be drawn into the terminal as they are.
        from voicedrag.tui.base import printable

        super().replace(printable(text), start, end)

    def recall(self, lines: list[str]) -> None:
        """Lines typed before (a resumed session's), in order, before those of this session."""
        self.history[:0] = lines
        self._pos = len(self.history)

    def remember(self, text: str) -> None:
        if text and (not self.history or self.history[-1] != text):
            self.history.append(text)
        self._pos = len(self.history)
        self._draft = ""

    def action_history(self, delta: int) -> None:
        if not self.history:
            return
        if self._pos == len(self.history):
            self._draft = self.value
        self._pos = min(max(self._pos + delta, 0), len(self.history))
        self.value = self.history[self._pos] if self._pos < len(self.history) else self._draft
        self.cursor_position = len(self.value)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "space" and not self.value:
            event.stop()
            event.prevent_default()
            self.post_message(self.VoiceKey())
            return
        await super()._on_key(event)


class LevelMeter(Static):
    """Microphone state and input level while recording."""

    def set_state(self, state: str, level: float = 0.0, note: str = "") -> None:
        if state == "recording":
            n = 20
            filled = int(round(min(max(level, 0.0), 1.0) * n))
            bar = "█" * filled + "░" * (n - filled)
            self.update(f"[b red]● REC[/] [green]{bar}[/]  ctrl+r to stop")
        elif state == "loading":
            self.update("[yellow]loading the speech model…[/]")
        elif state == "transcribing":
            self.update("[yellow]transcribing…[/]")
        else:
            self.update(note or "[dim]voice: ctrl+r, or space in an empty command bar[/]")
