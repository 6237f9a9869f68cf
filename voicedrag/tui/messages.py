"""Typed messages that the thread workers post to the app (Textual's post_message is thread-safe)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from textual.message import Message

if TYPE_CHECKING:
    from voicedrag.session import Entry, Rect


class ModelLoaded(Message):
    def __init__(self, generator: Any, seed: int, ws: np.ndarray, image: np.ndarray, name: str, device: str,
                 seconds: float) -> None:
        super().__init__()
        self.generator = generator
        self.seed = seed
        self.ws = ws
        self.image = image
        self.name = name
        self.device = device
        self.seconds = seconds


class ModelFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class SeedReady(Message):
    def __init__(self, seed: int, ws: np.ndarray, image: np.ndarray) -> None:
        super().__init__()
        self.seed = seed
        self.ws = ws
        self.image = image


class Notice(Message):
    """Something the user should read once (a missing back end, a slow first load)."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text = text
        self.severity = severity


class CommandParsed(Message):
    def __init__(self, text: str, result: Any) -> None:
        super().__init__()
        self.text = text
        self.result = result  # voicedrag.language.commands.ParseResult


class ControlRequested(Message):
    def __init__(self, word: str, text: str) -> None:
        super().__init__()
        self.word = word
        self.text = text


class CommandFailed(Message):
    def __init__(self, text: str, error: str, suggestions: list[str] | None = None) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.suggestions = list(suggestions or [])


class KeypointsFound(Message):
    def __init__(self, entry_id: int, keypoints: dict[str, Any], notice: str | None) -> None:
        super().__init__()
        self.entry_id = entry_id
        self.keypoints = keypoints
        self.notice = notice


@dataclass
class PlannedDrag:
    label: str
    handles: list[tuple[float, float]]
    targets: list[tuple[float, float]]
    names: list[str]
    mask: list[Rect] | None
    warnings: list[str] = field(default_factory=list)
    edits: list[dict[str, object]] = field(default_factory=list)


class DragPlanned(Message):
    def __init__(self, plan: PlannedDrag) -> None:
        super().__init__()
        self.plan = plan


class DragStep(Message):
    def __init__(self, step: int, max_steps: int, points: list[tuple[float, float]], mean_distance: float,
                 rate: float, image: np.ndarray | None) -> None:
        super().__init__()
        self.step = step
        self.max_steps = max_steps
        self.points = points
        self.mean_distance = mean_distance
        self.rate = rate
        self.image = image


class DragFinished(Message):
    def __init__(self, entry: Entry) -> None:
        super().__init__()
        self.entry = entry


class DragFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class VoiceState(Message):
    """idle | loading | recording | transcribing"""

    def __init__(self, state: str) -> None:
        super().__init__()
        self.state = state


class VoiceLevel(Message):
    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level


class VoiceFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class Transcribed(Message):
    """Text heard from the microphone; tests post it to act as if it was spoken."""

    def __init__(self, text: str, seconds: float = 0.0) -> None:
        super().__init__()
        self.text = text
        self.seconds = seconds


class PointTaught(Message):
    """A point was added to the session's keypoint template (`name nose` in the TUI)."""

    def __init__(self, name: str, xy: tuple[float, float], names: int, path: str) -> None:
        super().__init__()
        self.name = name
        self.xy = xy
        self.names = names
        self.path = path
