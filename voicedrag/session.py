"""The edit history of one image: undo, redo, reset, new seed and save.

The session holds plain numpy arrays (the w+ latent and the image), so it
needs neither torch nor a generator and can be tested alone. A front-end
turns `Entry.ws` back into a tensor when it starts the next drag.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    # engine's package import pulls in torch; the TUI imports this module before torch is needed.
    from engine.types import DragPair, Point
    from voicedrag.photoedit import PhotoState

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1: inclusive-exclusive pixels


@dataclass
class Entry:
    """One state of the image and how it was reached from the previous one."""

    label: str  # what the user asked for: "seed 3", "open the mouth", "drag 30,40 to 50,60", "reset"
    kind: str  # "seed" | "photo" | "drag" | "reset"
    ws: np.ndarray  # [1, num_ws, w_dim] float32
    image: np.ndarray  # [H, W, 3] uint8
    pairs: list[DragPair] = field(default_factory=list)
    final_points: list[Point] = field(default_factory=list)
    mask: list[Rect] | None = None
    steps: int = 0
    converged: bool = False
    verdict: str | None = None  # the engine's sentence for a drag that failed, else None
    cancelled: bool = False
    mean_distance: float | None = None
    seconds: float = 0.0
    frames: list[np.ndarray] = field(default_factory=list)
    edits: list[dict[str, object]] = field(default_factory=list)  # parsed intents, as EditIntent.to_json()
    warnings: list[str] = field(default_factory=list)
    seed: int | None = None  # for a "seed" entry: the seed its image was drawn from
    photo: PhotoState | None = None  # the user's photo this state stands for (a "photo" entry and its edits)
    photo_image: np.ndarray | None = None  # that photo with the edits so far pasted back (photo-sized)
    # A process-wide serial number: caches keyed by it (keypoints per image) stay right when undo
    # history is cut and entries are freed, where id() would be reused.
    id: int = field(default_factory=itertools.count(1).__next__)

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "kind": self.kind,
            "pairs": [{"handle": p.handle.as_list(), "target": p.target.as_list()} for p in self.pairs],
            "final_points": [p.as_list() for p in self.final_points],
            "mask": None if self.mask is None else [list(r) for r in self.mask],
            "steps": self.steps,
            "converged": self.converged,
            "verdict": self.verdict,
            "cancelled": self.cancelled,
            "mean_distance": self.mean_distance,
            "seconds": round(self.seconds, 3),
            "edits": self.edits,
            "warnings": list(self.warnings),
        }


@dataclass
class SaveResult:
    folder: Path
    files: list[Path]


class Session:
    """A linear history with a cursor: undo moves back, redo forward, a new edit drops the redo branch."""

    def __init__(self, seed: int, ws: np.ndarray, image: np.ndarray, model: str = "") -> None:
        self.model = model
        self.entries: list[Entry] = []
        self.index = -1
        self.new_seed(seed, ws, image)

    @classmethod
    def restored(cls, entries: list[Entry], index: int, model: str = "") -> Session:
        """A session with this history and cursor (read back from a journal, voicedrag.journal)."""
        if not entries or not 0 <= index < len(entries):
            raise ValueError(f"a history of {len(entries)} entries has no position {index}")
        session = cls.__new__(cls)
        session.model = model
        session.entries = list(entries)
        session.index = index
        return session

    # ------------------------------------------------------------ state

    @property
    def current(self) -> Entry:
        return self.entries[self.index]

    @property
    def original(self) -> Entry:
        """The seed image the current state was edited from."""
        for entry in reversed(self.entries[: self.index + 1]):
            if entry.kind in ("seed", "photo"):
                return entry
        return self.entries[0]

    @property
    def seed(self) -> int:
        """The seed of the image being edited."""
        return int(self.original.seed or 0)

    @property
    def can_undo(self) -> bool:
        return self.index > 0

    @property
    def can_redo(self) -> bool:
        return self.index < len(self.entries) - 1

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.current.image.shape[:2]
        return w, h

    def last_drag(self) -> Entry | None:
        """The most recent drag at or before the cursor (what "the last drag" means after an undo too)."""
        for entry in reversed(self.entries[: self.index + 1]):
            if entry.kind == "drag":
                return entry
        return None

    # ------------------------------------------------------------ changes

    def new_seed(self, seed: int, ws: np.ndarray, image: np.ndarray) -> Entry:
        """Another image, as a step of the history: undo goes back to the previous image and its edits."""
        return self.push(
            Entry(label=f"seed {seed}", kind="seed", ws=np.asarray(ws, np.float32), image=image, seed=seed)
        )

    def push(self, entry: Entry) -> Entry:
        del self.entries[self.index + 1 :]
        self.entries.append(entry)
        self.index = len(self.entries) - 1
        return entry

    def undo(self) -> Entry | None:
        if not self.can_undo:
            return None
        self.index -= 1
        return self.current

    def redo(self) -> Entry | None:
        if not self.can_redo:
            return None
        self.index += 1
        return self.current

    def reset(self) -> Entry | None:
        """Back to the seed's image, as a new step, so that an undo brings the edits back."""
        if self.current is self.original:
            return None
        first = self.original
        return self.push(Entry(label="reset", kind="reset", ws=first.ws.copy(), image=first.image.copy()))

    # ------------------------------------------------------------ output

    def history_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "seed": self.seed,
            "index": self.index,
            "entries": [e.to_json() for e in self.entries],
        }

    def default_folder(self, root: str | Path = "voicedrag-out") -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Path(root) / f"seed{self.seed}-{stamp}"

    def save(self, folder: str | Path) -> SaveResult:
        """image.png, latent.npy (w+), history.json and, if there was one, last_drag.gif."""
        from engine.atomic import write_text_atomic
        from voicedrag.dragio import save_gif, save_npy, save_png

        folder = Path(folder)
        base, n = folder, 1
        while folder.exists():  # two saves in the same second must not overwrite each other
            n += 1
            folder = base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir(parents=True)
        except OSError as err:
            from voicedrag.errors import VoicedragError

            raise VoicedragError(
                f"cannot create the folder {folder} ({err.strerror}); choose a writable --out folder."
            ) from err
        current = self.current
        if current.photo_image is not None:
            # A photo's edits: the photo itself, edits pasted back, and the model's crop beside it.
            files = [save_png(current.photo_image, folder / "image.png"), save_png(current.image, folder / "crop.png")]
        else:
            files = [save_png(current.image, folder / "image.png")]
        files.append(save_npy(self.current.ws, folder / "latent.npy"))
        history = folder / "history.json"
        write_text_atomic(history, json.dumps(self.history_json(), indent=2) + "\n")
        files.append(history)
        drag = self.last_drag()
        if drag is not None and drag.frames:
            files.append(save_gif(drag.frames + [drag.image], folder / "last_drag.gif"))
        return SaveResult(folder, files)
