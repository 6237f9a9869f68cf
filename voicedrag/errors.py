"""The application's errors. Like the engine's (`engine.errors.UserError`, which they extend),
each message is one sentence that says what to do; a front end catches `UserError` to show
any of them, from any layer, without a traceback."""

from __future__ import annotations

from engine.errors import UserError

__all__ = ["UserError", "VoicedragError"]


class VoicedragError(UserError):
    """Something the user gave the application that it cannot act on."""
