"""One edit as a stream of typed events: what a front end is given and what it is told.

`voicedrag.editor.Editor.run` takes an `EditRequest` (what the user gave: typed text, audio
samples or explicit pairs, the image it applies to, a region that may move) and yields these
frozen events in order:

    Heard?  Parsed?  (Control | KeypointsFound? Planned Step* Finished) | Refused

Every policy (what is refused, with which sentence; what a mask means; how a finished drag
becomes a history entry) lives in the editor, so the CLI, the TUI and any other front end only
show the events. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.types import DragPair, Point

if TYPE_CHECKING:
    from voicedrag.language.commands import ParseResult
    from voicedrag.photoedit import PhotoState
    from voicedrag.planning.rules import Plan
    from voicedrag.session import Entry

# The one mask type at the front ends' boundary: rectangles (x0, y0, x1, y1), pixels,
# inclusive-exclusive, that may move; None means the whole image may move. The editor turns it
# into the engine's boolean map.
Rect = tuple[int, int, int, int]
Mask = tuple[Rect, ...]


@dataclass(frozen=True)
class ImageState:
    """The image an edit applies to."""

    ws: np.ndarray  # [1, num_ws, w_dim] float32
    image: np.ndarray  # [H, W, 3] uint8
    entry_id: int | None = None  # the history entry's id: keypoints are found once per entry
    keypoints: dict[str, Point] | None = None  # known already (a photo's own): used instead of a search
    photo: PhotoState | None = None  # the user's photo this image stands for (its crop in the model)
    photo_image: np.ndarray | None = None  # that photo as it stands, edits pasted back (photo-sized)

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.image.shape[:2]
        return w, h


@dataclass(frozen=True)
class DragOptions:
    """How the drag runs; None takes the model's own setting (else the paper's)."""

    max_steps: int = 300
    lr: float | None = None
    space: str | None = None  # "w+" | "w"
    preview_every: int = 0  # a frame every N steps (0: none, unless preview_seconds)
    preview_seconds: float | None = None  # or a frame at most this often
    # Frames drawn at least this wide (a screen's pane, in its pixels) rather than full size, and
    # scaled up to the image's size for the consumer (None: full size; engine.DragConfig).
    preview_size: int | None = None
    # Steps without a new frame are reported at most this often (0: every step). A screen shows a
    # few states a second, and every event costs the consumer's thread time.
    report_seconds: float = 0.0
    # A word edit's result is checked by the keypoint detector, and the drag goes on from where it
    # sees the named parts for at most this many more rounds (Editor._checked_pairs; 0: off).
    check_rounds: int = 2


@dataclass(frozen=True)
class EditRequest:
    """What the user gave for one edit. Exactly one of `text`, `audio` and `pairs`."""

    state: ImageState
    text: str | None = None  # typed, or already transcribed
    audio: np.ndarray | None = None  # 16 kHz mono float32 samples of a spoken command
    pairs: tuple[DragPair, ...] = ()  # explicit handle -> target pairs (typed or hand-placed)
    mask: Mask | None = None  # the user's region that may move; overrides the rules' own
    label: str | None = None  # how the history names the edit (default: the text)
    controls: bool = False  # control words ("undo") come back as Control events, else are refused
    drag: DragOptions = field(default_factory=DragOptions)


@dataclass(frozen=True)
class Heard:
    """Spoken audio as text: Whisper's free transcript, or the grammar's likeliest command."""

    text: str  # what is parsed
    free_text: str  # Whisper's own transcript
    source: str  # "free" | "grammar"
    seconds: float

    @property
    def note(self) -> str | None:
        """What the user should be told when the words parsed are not the words transcribed."""
        if self.source != "grammar":
            return None
        return f"heard {self.free_text or 'too little'!r}; read as {self.text!r}."


@dataclass(frozen=True)
class Parsed:
    result: ParseResult


@dataclass(frozen=True)
class Control:
    """A control word ("undo", "save") for the front end to act on."""

    word: str
    text: str


@dataclass(frozen=True)
class KeypointsFound:
    entry_id: int | None
    points: dict[str, Point]
    notice: str | None = None  # why none were found (no detector, no face), else None


@dataclass(frozen=True)
class Planned:
    """The drag about to run."""

    label: str
    pairs: tuple[DragPair, ...]
    names: tuple[str, ...]  # where each pair came from: a keypoint name or "point N"
    mask: Mask | None
    warnings: tuple[str, ...]  # the parser's notes, then the planner's
    edits: tuple[dict[str, object], ...] = ()  # the parsed intents, as EditIntent.to_json()
    plan: Plan | None = None  # the rules' plan (None for explicit pairs)


@dataclass(frozen=True)
class Step:
    step: int
    max_steps: int
    points: tuple[Point, ...]  # the handles now
    mean_distance: float
    rate: float  # steps per second so far
    image: np.ndarray | None = None  # a preview frame, when one was rendered


@dataclass(frozen=True)
class Finished:
    """The drag's outcome as the history entry it makes (its verdict included)."""

    entry: Entry

    @property
    def summary(self) -> str:
        """One line on how the drag ended: the failure's verdict, or how it stopped."""
        e = self.entry
        steps = f"{e.steps} step" if e.steps == 1 else f"{e.steps} steps"
        if e.verdict:
            return f"after {steps}, {e.verdict}"
        state = (
            "stopped; kept the last frame" if e.cancelled else "converged" if e.converged else "reached the step limit"
        )
        dist = f", {e.mean_distance:.1f} px from the targets" if e.mean_distance is not None else ""
        return f"{state} after {steps}{dist}"


@dataclass(frozen=True)
class Inverting:
    """A step of a photo's inversion into the model (opening a photo)."""

    phase: str  # "start" | "w" | "w+" | "tune"
    step: int  # over all phases
    total: int  # the most steps it may take
    psnr: float  # dB against the photo's crop
    image: np.ndarray | None = None  # a preview of the reconstruction


@dataclass(frozen=True)
class PhotoOpened:
    """The photo is in the model: its crop, latent and keypoints, ready to edit."""

    state: PhotoState


@dataclass(frozen=True)
class Refused:
    """The edit cannot run, in one sentence that says what to do instead."""

    sentence: str
    suggestions: tuple[str, ...] = ()


EditEvent = Heard | Parsed | Control | KeypointsFound | Planned | Step | Finished | Refused | Inverting | PhotoOpened
