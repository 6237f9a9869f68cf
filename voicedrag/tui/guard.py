"""The app's edge: an exception that escapes a handler is one sentence in the log, and the session goes on.

Textual ends the app on an exception in any message handler (`App._handle_exception`), and the
message loop that ran the handler stops for good even where the app would carry on. Every
typed line, key and worker message of this app reaches its code through the `_dispatch_message`
of the app, the editor screen or one of its widgets, so that is where `Guarded` catches: the
message is dropped, the app says what failed as a bug to report (`VoiceDragApp.survive`), and
the loop takes the next message. Composing and mounting are left to Textual: a screen that
cannot be built cannot show a sentence either.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from textual import events
from textual.message import Message
from textual.message_pump import MessagePump
from textual.widgets import Input


@runtime_checkable
class Survivor(Protocol):
    """An app that can report an exception and go on (VoiceDragApp)."""

    def survive(self, error: Exception, doing: str) -> bool: ...


def doing(message: Message) -> str:
    """What the user was doing when `message` failed, for the sentence that reports it."""
    from voicedrag.tui.base import clip
    from voicedrag.tui.messages import EditUpdate

    if isinstance(message, events.Key):
        return f"the key {message.key}"
    if isinstance(message, Input.Submitted):
        return f"the command '{clip(' '.join(message.value.split()), 60)}'"
    if isinstance(message, events.MouseEvent):
        return "the mouse on the screen"
    if isinstance(message, EditUpdate):  # one event of an edit's stream
        return f"showing the edit's {type(message.event).__name__.lower()} event"
    return f"the {type(message).__name__} message"


class Guarded(MessagePump):
    """A message pump whose handlers' exceptions are reported by the app instead of ending it."""

    async def _dispatch_message(self, message: Message) -> None:
        try:
            await super()._dispatch_message(message)
        except Exception as error:
            app = self.app
            if (
                isinstance(message, (events.Compose, events.Mount))
                or not isinstance(app, Survivor)
                or not app.survive(error, doing(message))
            ):
                raise
