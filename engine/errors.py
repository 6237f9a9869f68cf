"""Errors a user can cause. Each message is one sentence that says what to do."""
from __future__ import annotations


class VoicedragError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""


class CheckpointError(VoicedragError):
    """A model file that cannot be read or built."""
