"""A session's history on disk, written after every change, so that it survives the process.

The TUI keeps a journal per session: `<out>/session-<stamp>/journal.json` and one latent per
history entry in `latents/NNNNNN.npy` ([1, num_ws, w_dim] float32). Images are not written:
on resume each entry's image is drawn again from its latent, exactly as it was drawn the first
time (a seed's by `Generator.render`, a drag's by the drag session's own render), and checked
against the SHA-256 of the original pixels. An entry whose image is not a render of its latent
(any kind but a seed, a drag or a reset to an image already in the history) has its picture
kept in `pictures/NNNNNN.png`.

Every file is written whole or not at all (engine.atomic), latents before the journal that
names them, so a kill -9 at any moment leaves the previous journal and everything it names
intact: a drag that was running is the most that is lost.

Nothing here imports torch; `restore` takes the renderers as functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicedrag.errors import VoicedragError
from voicedrag.session import Entry, Rect, Session

FORMAT = "voicedrag-journal"
VERSION = 1
JOURNAL = "journal.json"
MAX_COMMANDS = 500  # the command bar's recall kept with a session
# The kinds whose image is the generator's render of the entry's latent (see the module's docstring).
RENDERED_KINDS = ("seed", "drag")
_LATENT_RE = re.compile(r"^latents/\d{6,}\.npy$")
_PICTURE_RE = re.compile(r"^pictures/\d{6,}\.png$")


class JournalError(VoicedragError):
    """A session journal that is missing, unreadable or does not fit the model."""


def image_digest(image: np.ndarray) -> str:
    """SHA-256 of an image's shape and pixels: what a re-rendered image must match."""
    image = np.ascontiguousarray(image)
    return hashlib.sha256(f"{image.shape}{image.dtype}".encode() + image.tobytes()).hexdigest()


def model_file(model: str) -> str | None:
    """The absolute path of a model given as a file (None for 'embedded' or a registry name)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_file() else None


def renders_from_latent(entry: Entry) -> bool:
    """Whether the entry's image is the generator's own render of its latent: a seed's or a drag's,
    not a photo's (inverted with tuned weights, pasted back) nor anything else."""
    return entry.kind in RENDERED_KINDS and getattr(entry, "photo", None) is None


# --------------------------------------------------------------------------- writing


@dataclass
class Journal:
    """The journal of one TUI session, in `folder` (created with the first write)."""

    folder: Path
    model: str  # as given: 'embedded', a registry name or a file
    psi: float
    template: str | None = None
    _files: dict[int, str] = field(default_factory=dict)  # Entry.id -> its latent, relative to folder
    _pictures: dict[int, str] = field(default_factory=dict)  # Entry.id -> its picture, where one is kept
    _digests: dict[int, str] = field(default_factory=dict)  # Entry.id -> image_digest
    _next: int = 1
    _written: tuple[tuple[int, ...], int] | None = None  # the (entry ids, index) last written
    _claimed: bool = False  # the folder is this session's (made by it, or the one it resumed)

    @classmethod
    def start(cls, out_dir: str | Path, model: str, psi: float, template: str | None = None) -> Journal:
        """A new session's journal in a fresh `session-<stamp>` folder of `out_dir` (not created yet)."""
        folder = Path(out_dir) / f"session-{time.strftime('%Y%m%d-%H%M%S')}"
        return cls(folder, model, psi, None if template is None else str(Path(template).resolve()))

    def _claim(self) -> None:
        """Make the session's folder, another name where one of that name exists (two sessions
        started in the same second), so that no two sessions write into one folder."""
        base, n = self.folder, 1
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                self.folder.mkdir()
                break
            except FileExistsError:
                n += 1
                self.folder = base.with_name(f"{base.name}-{n}")
        self._claimed = True

    @property
    def path(self) -> Path:
        return self.folder / JOURNAL

    def sync(self, session: Session, commands: list[str] | None = None) -> bool:
        """Write the session's history if it changed since the last write; True when written.
        Raises OSError when the folder cannot be written (the caller says so once)."""
        key = (tuple(e.id for e in session.entries), session.index)
        if key == self._written:
            return False
        if not self._claimed:
            self._claim()
        from engine.atomic import atomic_path, write_text_atomic

        seen: set[str] = set()
        for entry in session.entries:
            if entry.id not in self._digests:
                self._digests[entry.id] = image_digest(entry.image)
            digest = self._digests[entry.id]
            if entry.id not in self._files:
                name = f"latents/{self._next:06d}.npy"
                (self.folder / "latents").mkdir(exist_ok=True)
                with atomic_path(self.folder / name) as tmp, tmp.open("wb") as f:
                    np.save(f, np.ascontiguousarray(entry.ws, dtype=np.float32), allow_pickle=False)
                self._files[entry.id] = name
                if not renders_from_latent(entry) and digest not in seen:
                    self._pictures[entry.id] = self._save_picture(entry.image, self._next, atomic_path)
                self._next += 1
            seen.add(digest)
        record = {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "model_file": model_file(self.model),
            "template": self.template,
            "psi": self.psi,
            "index": session.index,
            "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "entries": [self._entry_json(e) for e in session.entries],
            "commands": list(commands or [])[-MAX_COMMANDS:],
        }
        write_text_atomic(self.path, json.dumps(record, indent=1, ensure_ascii=True) + "\n")
        self._written = key
        self._forget({e.id for e in session.entries})
        return True

    def use_template(self, path: str) -> None:
        """A keypoint template taught in this session: resuming loads it too (written with the next change)."""
        self.template = str(Path(path).resolve())
        self._written = None

    def _save_picture(self, image: np.ndarray, number: int, atomic_path: Callable[[Path], Any]) -> str:
        from PIL import Image

        name = f"pictures/{number:06d}.png"
        (self.folder / "pictures").mkdir(exist_ok=True)
        with atomic_path(self.folder / name) as tmp:
            Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")
        return name

    def _entry_json(self, entry: Entry) -> dict[str, object]:
        record = entry.to_json()
        record["seed"] = entry.seed
        record["latent"] = self._files[entry.id]
        record["picture"] = self._pictures.get(entry.id)
        record["image_sha256"] = self._digests[entry.id]
        return record

    def _forget(self, alive: set[int]) -> None:
        """Delete the files of entries that left the history (a redo branch cut by a new edit):
        only after the journal that no longer names them is in place."""
        for table in (self._files, self._pictures):
            for entry_id in [k for k in table if k not in alive]:
                (self.folder / table.pop(entry_id)).unlink(missing_ok=True)
        for entry_id in [k for k in self._digests if k not in alive]:
            del self._digests[entry_id]

    def note_error(self, text: str) -> Path | None:
        """Append a bug's traceback to errors.log beside the journal (what a report needs)."""
        try:
            if not self._claimed:
                self._claim()
            path = self.folder / "errors.log"
            with path.open("a", encoding="utf-8") as f:
                f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{text}\n")
            return path
        except OSError:
            return None


# --------------------------------------------------------------------------- reading


@dataclass
class JournaledEntry:
    record: dict[str, Any]  # the entry's JSON (Entry.to_json and the journal's fields)
    ws: np.ndarray  # [1, num_ws, w_dim] float32
    picture: np.ndarray | None = None  # the kept image of an entry that is not a render


@dataclass
class Journaled:
    """A journal read back: enough to rebuild the session once the model is loaded."""

    path: Path
    model: str
    model_file: str | None
    template: str | None
    psi: float
    index: int
    entries: list[JournaledEntry]
    commands: list[str]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def model_ref(self) -> str:
        """What to load: the file the journal names where it still exists, else the name as given."""
        if self.model_file is not None and Path(self.model_file).is_file():
            return self.model_file
        return self.model

    def journal(self) -> Journal:
        """The journal to go on writing this session into, from where it left off."""
        j = Journal(self.folder, self.model, self.psi, self.template, _claimed=True)
        numbers = [int(re.sub(r"\D", "", e.record["latent"])) for e in self.entries]
        j._next = max(numbers, default=0) + 1
        return j


def find_journal(where: str | Path) -> Path:
    """The journal.json of `where`: the file itself, a session folder, or the newest session in an
    output folder. Raises JournalError naming what to do."""
    where = Path(where).expanduser()
    if where.is_file():
        if where.name != JOURNAL:
            raise JournalError(
                f"{where} is not a session journal; give --resume a session folder "
                f"(such as voicedrag-out/session-...) or its {JOURNAL}."
            )
        return where
    if not where.is_dir():
        raise JournalError(
            f"there is no folder {where} to resume from; give --resume a session folder "
            "(such as voicedrag-out/session-...), or start without --resume."
        )
    if (where / JOURNAL).is_file():
        return where / JOURNAL
    found = []
    try:
        for path in where.glob(f"session-*/{JOURNAL}"):
            try:
                found.append((path.stat().st_mtime, path))
            except OSError:
                continue
    except OSError as err:
        raise JournalError(
            f"cannot read the folder {where} ({err.strerror or err}); give --resume a readable session folder."
        ) from err
    if not found:
        raise JournalError(
            f"no session journal in {where}; start without --resume, or give --resume the "
            "session folder to restore (voicedrag-out/session-...)."
        )
    return max(found)[1]


def _damaged(path: Path, why: str) -> JournalError:
    return JournalError(
        f"the session journal {path} is damaged ({why}); resume another session with "
        "--resume DIR, or start a new one without --resume."
    )


def _finite_pair(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def _check_entry(record: object, n: int) -> str | None:
    """Why entry `n` of a journal cannot be restored, or None."""
    if not isinstance(record, dict):
        return f"entry {n} is not an object"
    for name in ("label", "kind", "latent"):
        if not isinstance(record.get(name), str):
            return f"entry {n} has no {name}"
    if not _LATENT_RE.match(record["latent"]):
        return f"entry {n} names the latent {record['latent'][:80]!r}, not one in latents/"
    picture = record.get("picture")
    if picture is not None and not (isinstance(picture, str) and _PICTURE_RE.match(picture)):
        return f"entry {n} names the picture {str(picture)[:80]!r}, not one in pictures/"
    pairs = record.get("pairs", [])
    if not isinstance(pairs, list) or not all(
        isinstance(p, dict) and _finite_pair(p.get("handle")) and _finite_pair(p.get("target")) for p in pairs
    ):
        return f"entry {n} has points that are not pairs of finite numbers"
    points = record.get("final_points", [])
    if not isinstance(points, list) or not all(_finite_pair(p) for p in points):
        return f"entry {n} has final points that are not pairs of finite numbers"
    mask = record.get("mask")
    if mask is not None and not (
        isinstance(mask, list)
        and all(
            isinstance(r, list) and len(r) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
            for r in mask
        )
    ):
        return f"entry {n} has a mask that is not a list of rectangles"
    seed = record.get("seed")
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32):
        return f"entry {n} has a seed that is not a whole number from 0 to 4294967295"
    return None


def _load_latent(folder: Path, name: str) -> np.ndarray:
    with (folder / name).open("rb") as f:
        ws = np.load(f, allow_pickle=False)
    if not isinstance(ws, np.ndarray) or ws.dtype != np.float32 or ws.ndim != 3 or ws.shape[0] != 1:
        raise ValueError(f"{name} is not a [1, num_ws, w_dim] float32 latent")
    if not np.isfinite(ws).all():
        raise ValueError(f"{name} holds numbers that are not finite")
    return ws


def _load_picture(folder: Path, name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(folder / name) as im:
        if im.width * im.height > 4096 * 4096:
            raise ValueError(f"{name} is larger than any model's image")
        return np.asarray(im.convert("RGB"))


def read_journal(path: str | Path) -> Journaled:
    """A journal and the latents it names, checked; raises JournalError with one sentence."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise JournalError(
            f"there is no session journal {path}; give --resume a session folder "
            "(such as voicedrag-out/session-...), or start without --resume."
        ) from err
    except OSError as err:
        raise JournalError(
            f"cannot read the session journal {path} ({err.strerror or err}); "
            "check its permissions, or start without --resume."
        ) from err
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _damaged(path, "it is not JSON") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _damaged(path, "it is not a voicedrag session journal")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise JournalError(
            f"the session journal {path} was written by a newer voicedrag (format {version}); "
            "update voicedrag to resume it."
        )
    model, entries, index = data.get("model"), data.get("entries"), data.get("index")
    if not isinstance(model, str) or not model:
        raise _damaged(path, "it names no model")
    if not isinstance(entries, list) or not entries:
        raise _damaged(path, "it holds no history")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(entries):
        raise _damaged(path, "its position in the history is out of range")
    psi = data.get("psi", 0.7)
    if not isinstance(psi, (int, float)) or isinstance(psi, bool) or not math.isfinite(psi):
        raise _damaged(path, "its truncation psi is not a number")
    model_path, template = data.get("model_file"), data.get("template")
    if (
        model_path is not None
        and not isinstance(model_path, str)
        or template is not None
        and not isinstance(template, str)
    ):
        raise _damaged(path, "its model file or template is not a path")
    commands = data.get("commands", [])
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise _damaged(path, "its command list is not a list of lines")
    restored: list[JournaledEntry] = []
    shape: tuple[int, ...] | None = None
    for n, record in enumerate(entries, 1):
        why = _check_entry(record, n)
        if why is not None:
            raise _damaged(path, why)
        try:
            ws = _load_latent(path.parent, record["latent"])
            picture = None if record.get("picture") is None else _load_picture(path.parent, record["picture"])
        except FileNotFoundError as err:
            raise _damaged(path, f"{Path(err.filename or record['latent']).name} of entry {n} is missing") from err
        except (OSError, ValueError, EOFError, SyntaxError) as err:
            raise _damaged(path, f"entry {n}: {err}") from err
        if shape is not None and ws.shape != shape:
            raise _damaged(path, f"the latent of entry {n} has another shape than the first")
        shape = ws.shape
        restored.append(JournaledEntry(record, ws, picture))
    return Journaled(path, model, model_path, template, float(psi), index, restored, list(commands))


def check_model(given: str | None, journaled: Journaled) -> None:
    """Refuse a --model other than the journal's: its latents only mean something to that model."""
    if given is None or given == journaled.model:
        return
    mine = model_file(given)
    if (
        mine is not None
        and journaled.model_file is not None
        and os.path.exists(journaled.model_file)
        and os.path.samefile(mine, journaled.model_file)
    ):
        return
    raise JournalError(
        f"the session in {journaled.folder} was made with the model {journaled.model}, not "
        f"{given}; resume it without --model (its own is loaded), or start a new session."
    )


# --------------------------------------------------------------------------- restoring


def entry_from_journal(item: JournaledEntry, image: np.ndarray) -> Entry:
    from engine.types import DragPair, Point

    r = item.record
    pairs = [DragPair(Point(*p["handle"]), Point(*p["target"])) for p in r.get("pairs", [])]
    mask: list[Rect] | None = (
        None if r.get("mask") is None else [(int(a), int(b), int(c), int(d)) for a, b, c, d in r["mask"]]
    )

    def number(name: str, default: float | None) -> float | None:
        v = r.get(name)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else default

    def text_list(name: str) -> list[str]:
        v = r.get(name)
        return [s for s in v if isinstance(s, str)] if isinstance(v, list) else []

    steps = r.get("steps")
    edits = r.get("edits")
    return Entry(
        label=r["label"],
        kind=r["kind"],
        ws=item.ws,
        image=image,
        pairs=pairs,
        final_points=[Point(*p) for p in r.get("final_points", [])],
        mask=mask,
        steps=steps if isinstance(steps, int) and not isinstance(steps, bool) else 0,
        converged=r.get("converged") is True,
        verdict=r["verdict"] if isinstance(r.get("verdict"), str) else None,
        cancelled=r.get("cancelled") is True,
        mean_distance=number("mean_distance", None),
        seconds=number("seconds", 0.0) or 0.0,
        edits=[e for e in edits if isinstance(e, dict)] if isinstance(edits, list) else [],
        warnings=text_list("warnings"),
        seed=r.get("seed"),
    )


Render = Callable[[np.ndarray], np.ndarray]


@dataclass
class Restored:
    session: Session
    journal: Journal
    redrawn: int  # entries whose image had to be drawn again (the rest were copies)
    differ: int  # of those, images that are not bit for bit the ones first shown
    commands: list[str]  # the lines typed in the session, for the command bar's recall


def restore(journaled: Journaled, render_seed: Render, render_drag: Render, model_name: str = "") -> Restored:
    """The session of a journal, each image drawn again from its latent (a seed's with
    `render_seed`, a drag's with `render_drag`, as they were first drawn) or copied from an
    earlier entry with the same pixels; the journal goes on in the same folder."""
    by_digest: dict[str, np.ndarray] = {}
    entries: list[Entry] = []
    redrawn = differ = 0
    for item in journaled.entries:
        digest = item.record.get("image_sha256")
        image = by_digest.get(digest) if isinstance(digest, str) else None
        if image is None and item.picture is not None:
            image = item.picture
        if image is None:
            render = render_drag if item.record["kind"] == "drag" else render_seed
            image = render(item.ws)
            redrawn += 1
            if isinstance(digest, str) and image_digest(image) != digest:
                differ += 1
        if isinstance(digest, str):
            by_digest.setdefault(digest, image)
        entries.append(entry_from_journal(item, image))
    session = Session.restored(entries, journaled.index, model=model_name)
    journal = journaled.journal()
    for entry, item in zip(entries, journaled.entries, strict=True):
        journal._files[entry.id] = item.record["latent"]
        if item.record.get("picture"):
            journal._pictures[entry.id] = item.record["picture"]
        journal._digests[entry.id] = image_digest(entry.image)
    journal._written = (tuple(e.id for e in entries), journaled.index)
    return Restored(session, journal, redrawn, differ, list(journaled.commands))
