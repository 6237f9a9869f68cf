"""Commands the app answers itself, before the edit grammar sees the text.

These are about the screen and the session rather than the face: placing
points and masks by coordinates, seeds, labels. Control words (undo, redo,
reset, save, stop, help) are read here too, so they work before the command
parser has loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from voicedrag.intents import CONTROL_TABLE

_NUM = r"(-?\d+(?:\.\d+)?)"
_SEP = r"\s*[,\s]\s*"
_MASK_RE = re.compile(rf"^(?:/)?mask\s+{_NUM}{_SEP}{_NUM}{_SEP}{_NUM}{_SEP}{_NUM}$")
_MASK_OFF_RE = re.compile(r"^(?:/)?(?:mask\s+(?:off|none|clear)|no\s+mask|clear\s+(?:the\s+)?mask|unmask)$")
_POINTS_RE = re.compile(r"^(?:/)?(?:points?\s+)?(-?\d[\d.,\s>;-]*>[\d.,\s>;-]*)$")
# Any number is read as the command it is meant to be, so that one out of range is told its range.
_SEED_RE = re.compile(rf"^(?:/)?seed\s+{_NUM}$")
_NEW_SEED_RE = re.compile(r"^(?:/)?(?:new|next|another|random)\s+(?:seed|image|face)$")
_STEPS_RE = re.compile(rf"^(?:/)?steps\s+{_NUM}$")
_CLEAR_RE = re.compile(r"^(?:/)?clear(?:\s+(?:the\s+)?points?)?$")
_GO_RE = re.compile(r"^(?:/)?(?:go|run|drag|start)$")
# "name nose" (at the cursor) or "name nose 30,40": teach a keypoint template the point.
_NAME_RE = re.compile(rf"^(?:/)?(?:name|teach)\s+([a-z][a-z0-9_]*)(?:\s+(?:at\s+)?{_NUM}{_SEP}{_NUM})?$")
_LABELS_RE = re.compile(
    r"^(?:/)?(?:labels|keypoints|show\s+(?:the\s+)?(?:labels|keypoints)|hide\s+(?:the\s+)?(?:labels|keypoints))$"
)
_BEFORE_RE = re.compile(r"^(?:/)?(?:show\s+)?(?:the\s+)?(before|after)(?:\s+(?:the\s+)?(?:edit|drag|image))?$")
_MARKERS_RE = re.compile(r"^(?:/)?(show|hide)\s+(?:the\s+)?(?:drag\s+)?(?:points|markers|handles)$")
# The control words and their keys, from the one table (intents.CONTROL_TABLE); quitting is the app's own.
_CONTROLS = {
    **{c.word: c.word for c in CONTROL_TABLE},
    **{k: c.word for c in CONTROL_TABLE for k in c.keys.split()},
    "quit": "quit",
    "exit": "quit",
}


LocalKind = Literal[
    "mask",
    "mask_off",
    "points",
    "seed",
    "new_seed",
    "steps",
    "clear",
    "go",
    "labels",
    "before",
    "markers",
    "name",
    "control",
    "open",
]


@dataclass(frozen=True)
class LocalCommand:
    kind: LocalKind
    text: str
    numbers: tuple[float, ...] = ()
    spec: str = ""  # point pairs as "x1,y1>x2,y2;..." for dragio.parse_points
    word: str = ""  # control word, or the keypoint name of "name"


# "open me.jpg": a photo to edit. Only a name with an image's ending, or a file that exists, is a
# photo: "open the mouth" is an edit.
_OPEN_RE = re.compile(r"^/?open\s+(.+?)\s*$", re.IGNORECASE)
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def _photo_path(text: str) -> str | None:
    m = _OPEN_RE.match(text.strip())
    if m is None:
        return None
    name = m.group(1).strip().strip("'\"")
    if name.lower().endswith(PHOTO_SUFFIXES) or Path(name).expanduser().is_file():
        return str(Path(name).expanduser())
    return None


def read_local(text: str) -> LocalCommand | None:
    """The app command in `text`, or None when the edit grammar should read it."""
    t = " ".join(text.strip().lower().split()).rstrip(".!")
    if not t:
        return None
    photo = _photo_path(text)  # before lower-casing: a file's name keeps its case
    if photo is not None:
        return LocalCommand("open", text, spec=photo)
    word = t.lstrip("/")
    if word in _CONTROLS:
        return LocalCommand("control", text, word=_CONTROLS[word])
    if m := _MASK_RE.match(t):
        return LocalCommand("mask", text, numbers=tuple(float(v) for v in m.groups()))
    if _MASK_OFF_RE.match(t):
        return LocalCommand("mask_off", text)
    if m := _SEED_RE.match(t):
        return LocalCommand("seed", text, numbers=(float(m.group(1)),))
    if _NEW_SEED_RE.match(t):
        return LocalCommand("new_seed", text)
    if m := _STEPS_RE.match(t):
        return LocalCommand("steps", text, numbers=(float(m.group(1)),))
    if _CLEAR_RE.match(t):
        return LocalCommand("clear", text)
    if _GO_RE.match(t):
        return LocalCommand("go", text)
    if _LABELS_RE.match(t):
        return LocalCommand("labels", text)
    if m := _BEFORE_RE.match(t):
        return LocalCommand("before", text, word=m.group(1))
    if m := _MARKERS_RE.match(t):
        return LocalCommand("markers", text, word=m.group(1))
    if m := _NAME_RE.match(t):
        xy = () if m.group(2) is None else (float(m.group(2)), float(m.group(3)))
        return LocalCommand("name", text, numbers=xy, word=m.group(1))
    if m := _POINTS_RE.match(t):
        spec = re.sub(r"\s*([,>;])\s*", r"\1", m.group(1).strip())
        return LocalCommand("points", text, spec=re.sub(r"\s+", ",", spec))
    return None
