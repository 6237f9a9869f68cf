"""Shared pieces of the drag front-ends: point specs, masks, progress, outputs, JSON reports."""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.types import DragPair, Point
from voicedrag.errors import VoicedragError
from voicedrag.events import Finished, Step


class SpecError(VoicedragError):
    """Malformed points, masks or coordinates typed by the user."""


_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_PAIR_RE = re.compile(rf"^{_NUM},{_NUM}>{_NUM},{_NUM}$")


def parse_points(spec: str, size: tuple[int, int]) -> list[DragPair]:
    """ "x1,y1>x2,y2;x3,y3>x4,y4" -> pairs, each point inside the W x H image."""
    pairs = []
    for part in [p for p in spec.split(";") if p.strip()]:
        m = _PAIR_RE.match(part)
        if not m:
            text = part.strip()  # shown back in full only while it fits the sentence's one line
            shown = repr(text) if len(text) <= 60 else repr(text[:60]) + "..."
            raise SpecError(
                f"cannot read the point pair {shown}; write handle>target as x1,y1>x2,y2, separating pairs with ';'."
            )
        # A number of 400 digits reads as inf: check_inside refuses it with the rest.
        x1, y1, x2, y2 = map(float, m.groups())
        pairs.append(DragPair(Point(x1, y1), Point(x2, y2)))
    if not pairs:
        raise SpecError('no points given; write --points "x1,y1>x2,y2".')
    for pair in pairs:
        for p in (pair.handle, pair.target):
            check_inside(p, size)
    return pairs


def check_inside(p: Point, size: tuple[int, int]) -> None:
    w, h = size
    try:  # float(): a huge int would not format with :g, and a non-number is no point at all
        x, y = float(p.x), float(p.y)
    except (TypeError, ValueError, OverflowError):
        raise SpecError(f"a point must be two pixel numbers; use x in 0..{w - 1} and y in 0..{h - 1}.") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise SpecError(f"point ({x:g}, {y:g}) is not two finite numbers; use x in 0..{w - 1} and y in 0..{h - 1}.")
    if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
        raise SpecError(f"point ({x:g}, {y:g}) is outside the {w}x{h} image; use x in 0..{w - 1} and y in 0..{h - 1}.")


def parse_mask(spec: str, size: tuple[int, int]) -> np.ndarray:
    """ "x0,y0,x1,y1" (inclusive rectangle that may move) -> boolean [H, W] mask."""
    shown = repr(spec) if len(spec) <= 60 else repr(spec[:60]) + "..."  # the sentence stays one short line
    w, h = size
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise SpecError(f"cannot read the mask {shown}; write the movable rectangle as x0,y0,x1,y1.")
    # float() reads "inf", "nan" and 1e309 (inf) too, which no pixel is and int() cannot take.
    if not all(math.isfinite(v) for v in values):
        raise SpecError(
            f"the mask {shown} holds a number that is not finite; write the movable rectangle as "
            f"x0,y0,x1,y1 with 0 <= x0 <= x1 <= {w - 1} and 0 <= y0 <= y1 <= {h - 1}."
        )
    x0, y0, x1, y1 = (int(round(v)) for v in values)
    if not (0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h):
        raise SpecError(
            f"the mask rectangle {shown} does not fit the {w}x{h} image; "
            f"use 0 <= x0 <= x1 <= {w - 1} and 0 <= y0 <= y1 <= {h - 1}."
        )
    mask = np.zeros((h, w), dtype=bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


class DragProgress:
    """Progress on stderr (a drag's steps, an inversion's): a rich bar on a terminal, and for a drag
    one summary line when it ends (the only output where stderr is a file or a pipe)."""

    def __init__(self, total: int, label: str = "drag") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.label = label
        self.start = time.perf_counter()
        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[value]:>6} {task.fields[unit]}  {task.fields[rate]:>5} it/s"),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        self.task = self.bar.add_task(label, total=total, value="", unit="", rate="")
        self.bar.start()

    def advance(self, done: int, value: float, unit: str) -> None:
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.task, completed=done, value=f"{value:.2f}", unit=unit, rate=f"{rate:.1f}")

    def update(self, step: Step) -> None:
        self.advance(step.step + 1, step.mean_distance, "px")

    def stop(self) -> None:
        self.bar.stop()

    def close(self, finished: Finished | None) -> None:
        self.stop()
        if finished is None:
            return
        e = finished.entry
        state = "converged" if e.converged else "stopped"
        print(
            f"{self.label}: {state} after {e.steps} steps, {e.mean_distance or 0.0:.2f} px from targets, "
            f"{time.perf_counter() - self.start:.1f} s",
            file=sys.stderr,
        )


def _write_image(what: str, path: Path, write: Callable[[Path, str], None]) -> Path:
    """Write through a temporary file beside `path`, renamed into place (engine.atomic): an
    interrupted save leaves the previous file whole. The format comes from the name, since the
    temporary file's own name has none."""
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower(), what.upper())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write(tmp, fmt)
    except (OSError, ValueError, KeyError) as err:
        raise VoicedragError(f"cannot write {path} ({err}); choose a writable .{what} path.") from err
    return path


def save_png(image: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    return _write_image("png", Path(path), lambda tmp, fmt: Image.fromarray(image).save(tmp, format=fmt))


def save_gif(frames: list[np.ndarray], path: str | Path, ms_per_frame: int = 80) -> Path:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    return _write_image(
        "gif",
        Path(path),
        lambda tmp, fmt: images[0].save(
            tmp, format=fmt, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0
        ),
    )


NAME_MAX = 255  # bytes in one file name on the usual Linux, macOS and Windows file systems


def check_writable(flag: str, value: str | Path, folder: bool = False) -> None:
    """Refuse, before any work, an output path that cannot be written (a drag that runs for a
    minute and then cannot save is work lost). A missing folder is fine: the save creates it; so the
    test is made in the nearest folder that exists, by making and removing a nameless file there."""
    import tempfile

    text = str(value)
    if not text.strip():
        raise SpecError(f"{flag} needs a {'folder' if folder else 'file'} name.")
    path = Path(text).expanduser().absolute()
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise SpecError(
                f"{flag}: the name {part[:24]}... is longer than the {NAME_MAX} bytes a file name "
                "may have; choose a shorter one."
            )
    if folder and path.exists() and not path.is_dir():
        raise SpecError(f"{flag} {text} is a file, not a folder; give a folder name.")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SpecError(f"{flag} {text} cannot be made: {existing} is a file, not a folder; choose another path.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise SpecError(
            f"{flag} {text} cannot be written: {existing} does not accept new files "
            f"({err.strerror or err}); choose a writable folder."
        ) from None


def save_npy(array: np.ndarray, path: str | Path) -> Path:
    """The array at exactly `path` (np.save(path) would add ".npy" to a name without it), atomically."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    except OSError as err:
        raise VoicedragError(f"cannot write {path} ({err.strerror or err}); choose a writable .npy path.") from err
    return path


def pair_report(pairs: list[DragPair], finals: list[Point]) -> list[dict[str, list[float]]]:
    return [
        {"handle": p.handle.as_list(), "target": p.target.as_list(), "final": f.as_list()}
        for p, f in zip(pairs, finals, strict=True)
    ]


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
