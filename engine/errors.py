"""Errors a user can cause. Each message is one sentence that says what to do.

The engine's own errors name no front end: they speak of files, models and points, never of
flags or commands. The application subclasses `UserError` for its own and shows any of them
to the user as they are, without a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""


class CheckpointError(UserError):
    """A model file that cannot be read or built."""
