"""Typed messages that the thread workers post to the editor screen (post_message is thread-safe).

An edit's events (`voicedrag.events`) travel as one message each, `EditUpdate`; the rest are
the screen's own: the model, seeds, notices, the microphone and taught keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from textual.message import Message

from voicedrag.events import EditEvent

if TYPE_CHECKING:
    from voicedrag.journal import Restored

Severity = Literal["information", "warning", "error"]
VoicePhase = Literal["idle", "loading", "recording", "transcribing"]


@dataclass
class ModelLoaded(Message):
    seed: int
    ws: np.ndarray
    image: np.ndarray
    name: str
    device: str
    seconds: float
    restored: Restored | None = None  # a session read back from its journal (--resume); seed, ws, image: its current


@dataclass
class ModelFailed(Message):
    error: str


@dataclass
class SeedReady(Message):
    seed: int
    ws: np.ndarray
    image: np.ndarray


@dataclass
class Notice(Message):
    """Something the user should read once (a missing back end, a slow first load)."""

    text: str
    severity: Severity = "information"


@dataclass
class EditUpdate(Message):
    """One event of the running edit's stream (`Editor.run`)."""

    event: EditEvent


@dataclass
class VoiceState(Message):
    state: VoicePhase


@dataclass
class VoiceLevel(Message):
    level: float


@dataclass
class VoiceFailed(Message):
    error: str


@dataclass
class Transcribed(Message):
    """Text heard from the microphone; tests post it to act as if it was spoken."""

    text: str
    seconds: float = 0.0


@dataclass
class PointTaught(Message):
    """A point was added to the session's keypoint template (`name nose` in the TUI)."""

    name: str
    xy: tuple[float, float]
    names: int
    path: str
