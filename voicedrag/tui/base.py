"""What every part of the editor screen shares: its state, the log, the hint and the status.

`ViewState` (voicedrag.tui.state) is the screen's one reactive value: every change to what is
shown is a new value, and its watcher redraws the status and the image once. The parts of the
screen (history, pointer, voice, the edit stream) are mixins on this base, each a concern of its
own; `voicedrag.tui.screen.EditScreen` puts them together.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import RichLog, Static
from textual.worker import Worker, WorkerState

from engine.types import DragPair, Point
from voicedrag.events import Step
from voicedrag.session import Entry, Session
from voicedrag.tui.guard import Guarded
from voicedrag.tui.overlay import Overlay
from voicedrag.tui.state import LiveDrag, ViewState
from voicedrag.tui.widgets import ImagePane

if TYPE_CHECKING:
    from voicedrag.journal import Journal
    from voicedrag.tui.app import TuiOptions
    from voicedrag.tui.workers import Backend

XY = tuple[float, float]
REDRAW_SECONDS = 0.2  # the drag's points and progress on screen at most this often


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


# Control characters (escape sequences among them) would reach the terminal through the log and
# the command bar; unpaired surrogates cannot be encoded for it at all.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_BREAKS = re.compile("[\t\n\r\u2028\u2029]")


def printable(text: str) -> str:
    """A typed, pasted or spoken line as the screen may show it: tabs and line breaks as spaces,
    control characters and unpaired surrogates as U+FFFD."""
    return _UNPRINTABLE.sub("\ufffd", _BREAKS.sub(" ", text))


def clip(text: str, limit: int = 200) -> str:
    """A long line (a pasted paragraph) shortened for the log: its start and how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def steps_text(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def at(size: tuple[int, int] | None, fx: float, fy: float) -> str:
    """A point at (fx, fy) of the image, as typed coordinates that fit it."""
    w, h = size or (64, 64)
    return f"{round(fx * (w - 1))},{round(fy * (h - 1))}"


def example_drag(size: tuple[int, int] | None) -> str:
    return f"drag {at(size, 0.45, 0.6)} to {at(size, 0.5, 0.66)}"


@dataclass
class Timings:
    """When the current edit reached each stage (perf_counter), for the latency benchmark."""

    command_at: float | None = None
    planned_at: float | None = None
    first_preview_at: float | None = None
    last_redraw: float = 0.0

    def start(self) -> None:
        self.command_at, self.planned_at, self.first_preview_at = time.perf_counter(), None, None


class ScreenBase(Guarded, Screen[None]):
    """The editor screen's shared state and its three text surfaces (log, hint, status)."""

    view: reactive[ViewState] = reactive(ViewState, always_update=True, init=False)

    def __init__(self, options: TuiOptions, backend: Backend) -> None:
        super().__init__()
        self.options = options
        self.backend = backend
        self.session: Session | None = None
        self.model_name = ""
        self.device = ""
        self.model_error: str | None = None
        self.timings = Timings()
        self.last_step: Step | None = None  # the running drag's latest step
        self.journal: Journal | None = None  # the session's history on disk (journal_history)
        self.journal_error: str | None = None  # why the journal could not be written, once said

    # ------------------------------------------------------------ text

    def log_line(self, text: str) -> None:
        self.query_one("#log", RichLog).write(text)

    def set_hint(self, text: str, error: bool = False) -> None:
        """One plain sentence under the command bar (escaped here: it often quotes what was typed)."""
        hint = self.query_one("#hint", Static)
        hint.set_class(error, "error")
        hint.update(
            escape(text)
            if text
            else "[dim]Enter runs · ↑/↓ history · tab: points on the image · ctrl+p: all actions[/]"
        )

    def set_progress(self, text: str) -> None:
        self.query_one("#progress", Static).update(text, layout=False)

    # ------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        """An edit is running (parsing, planning or dragging)."""
        return self.view.busy

    @property
    def image_size(self) -> tuple[int, int] | None:
        return None if self.session is None else self.session.size

    def history_changed(self) -> None:
        """The session (or the keypoints found on it) changed: a new view, drawn once."""
        self.journal_history()
        self.view = replace(self.view, revision=self.view.revision + 1)

    def journal_history(self) -> None:
        """Write the session's history to its journal when it changed (an edit, undo, redo, reset,
        a new seed), so that a crash or a kill loses at most the drag that was running."""
        if self.journal is None or self.session is None:
            return
        from voicedrag.tui.widgets import CommandBar

        try:
            self.journal.sync(self.session, self.query_one(CommandBar).history)
        except OSError as err:
            why = f"the session cannot be kept in {self.journal.folder} ({err.strerror or err})"
            if why != self.journal_error:  # said once, not after every edit
                self.journal_error = why
                self.log_line(
                    f"[yellow]{escape(why)}; edits will not survive a crash. Save with ctrl+s, or "
                    "restart with a writable --out.[/]"
                )
            return
        self.journal_error = None

    # ------------------------------------------------------------ the app's edge

    def report_bug(self, error: BaseException, doing: str) -> None:
        """An exception no handler caught: one sentence in the log, the traceback beside the journal,
        and the screen ready for the next command (guard.Guarded and VoiceDragApp.survive)."""
        import traceback

        from voicedrag.tui.workers import describe

        sentence = describe(error, doing)
        trace = "".join(traceback.format_exception(error))
        self.log.error(trace)  # Textual's devtools console
        if self.journal is not None:
            self.journal.note_error(trace)
        # Each on its own: the part of the screen that failed may fail again as it is redrawn (a
        # view that cannot be drawn), and the report must still reach the others.
        for show in (
            lambda: self.log_line(f"[red]{escape(sentence)}[/]"),
            lambda: self.set_hint(sentence, error=True),
            self.unless_editing,
        ):
            try:
                show()
            except Exception as again:  # noqa: BLE001 - reported where it still can be
                self.log.error(f"while reporting a bug: {again!r}")

    def unless_editing(self) -> None:
        """An edit whose last event never reached the view (a handler failed on it) must not leave
        the screen busy for ever: once no edit's worker runs, the screen takes commands again."""
        if self.busy and not any(w.is_running for w in self.workers if w.group == "drag"):
            self.set_progress("")
            self.view = replace(self.view, live=None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The workers catch what they expect; anything else would end them without a word.
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.report_bug(event.worker.error, f"the {event.worker.name} worker")
        elif event.worker.group == "drag" and event.state in (WorkerState.SUCCESS, WorkerState.CANCELLED):
            # Its events were all posted before it ended, and so have been shown by now.
            self.unless_editing()

    def before_entry(self) -> Entry | None:
        """The state the current one was made from (None for the first image)."""
        s = self.session
        if s is None or s.index == 0:
            return None
        return s.entries[s.index - 1]

    def keypoints_of(self, entry: Entry | None) -> dict[str, Point] | None:
        editor = self.backend.editor
        return None if entry is None or editor is None else editor.cached_keypoints(entry.id)

    def watch_view(self) -> None:
        if self.is_mounted:
            self.redraw()
            self.refresh_status()  # after the image: the status names the cursor on it

    def refresh_status(self) -> None:
        v = self.view
        parts = []
        if self.model_error:
            parts.append("[red]no model[/]")
        elif self.session is None:
            from voicedrag.models import model_title

            parts.append(f"[yellow]loading {escape(model_title(self.options.model))}…[/]")
        else:
            s = self.session
            parts.append(f"[b]{escape(self.model_name)}[/b] · {self.device} · {s.size[0]}x{s.size[1]}")
            parts.append(f"seed {s.seed} · edit {s.index + 1}/{len(s.entries)}")
        pane = self.query_one(ImagePane)
        if pane.image is not None:
            parts.append(f"cursor {pane.cursor[0]},{pane.cursor[1]}")
        points = f"points {len(v.manual)}" + (" +handle" if v.pending_handle else "")
        mask = "off" if v.mask is None else ",".join(str(n) for n in v.mask[0])
        parts.append(f"{points} · mask {mask} · labels {'on' if v.show_labels else 'off'}")
        if v.view_before:
            parts.append("[reverse] before [/] the last edit · ctrl+b: after")
        self.query_one("#status", Static).update("\n".join(parts))

    def redraw(self) -> None:
        pane = self.query_one(ImagePane)
        if self.session is None:
            pane.show(None)
            return
        v = self.view
        entry = self.session.current
        image = entry.image
        ov = Overlay(mask=None if v.mask is None else list(v.mask), mask_corner=v.mask_corner)
        before = self.before_entry() if v.view_before and not v.busy else None
        live = v.live
        if before is not None:
            image = before.image
            if entry.kind == "drag" and v.show_markers:  # where the drag started and where it aimed
                ov.handles = [(p.handle.x, p.handle.y) for p in entry.pairs]
                ov.targets = [(p.target.x, p.target.y) for p in entry.pairs]
        elif live is not None and live.planned is not None:
            image = live.image if live.image is not None else image
            points = live.points or tuple(p.handle for p in live.planned.pairs)
            ov.handles = [(p.x, p.y) for p in points]
            ov.targets = [(p.target.x, p.target.y) for p in live.planned.pairs]
            mask = v.mask or live.planned.mask
            ov.mask = None if mask is None else list(mask)
        elif v.manual or v.pending_handle:
            ov.handles = [a for a, _ in v.manual] + ([v.pending_handle] if v.pending_handle else [])
            ov.targets = [b for _, b in v.manual]
        elif entry.kind == "drag" and v.show_markers:
            ov.handles = [(p.x, p.y) for p in entry.final_points]
            ov.targets = [(p.target.x, p.target.y) for p in entry.pairs]
        labels: dict[str, XY] = {}
        kp = self.keypoints_of(before if before is not None else entry)
        if v.show_labels and kp:
            labels = {name: (p.x, p.y) for name, p in kp.items()}
            ov.keypoints = labels
        pane.show(image, ov, labels)

    # ------------------------------------------------------------ edits

    def start_edit(self, label: str, text: str | None = None, pairs: tuple[DragPair, ...] = ()) -> None:
        """Run one edit (typed or spoken `text`, or hand-placed `pairs`) on the current image in a
        worker; its events come back as EditUpdate messages (voicedrag.tui.stream)."""
        from functools import partial

        from textual.widgets import ProgressBar

        from voicedrag.events import DragOptions, EditRequest, ImageState
        from voicedrag.tui import workers

        assert self.session is not None
        entry = self.session.current
        request = EditRequest(
            ImageState(entry.ws, entry.image, entry.id, photo=entry.photo, photo_image=entry.photo_image),
            text=text,
            pairs=pairs,
            mask=self.view.mask,
            label=label,
            controls=True,
            drag=DragOptions(
                max_steps=self.options.steps,
                preview_seconds=self.options.preview_seconds,
                preview_size=self.query_one(ImagePane).shown_pixels(),
                report_seconds=REDRAW_SECONDS / 2,
            ),
        )
        if self.backend.editor is not None:
            self.backend.editor.begin()  # on the UI thread, so that an Esc right after is not lost
        self.timings.start()
        self.last_step = None
        # The plan and the live handles are what a running drag shows.
        self.view = replace(self.view, live=LiveDrag(), view_before=False, show_markers=True)
        self.set_progress("[yellow]planning…[/]")
        self.query_one("#bar", ProgressBar).update(total=self.options.steps, progress=0)
        self.run_worker(
            partial(workers.run_edit, self.backend, request, self.post_message),
            thread=True,
            group="drag",
            name="drag",
            exit_on_error=False,
        )

    # ------------------------------------------------------------ shared checks

    def not_ready(self, what: str) -> None:
        """Say why `what` cannot happen before a model is shown: still loading, or it failed to load."""
        if self.model_error:
            self.set_hint(
                f"no model is loaded, so nothing to {what} ({self.model_error.rstrip('.')}); "
                "restart voicedrag with another --model.",
                error=True,
            )
        else:
            self.set_hint(f"nothing to {what} yet; the model is still loading.", error=True)

    def idle_session(self, what: str) -> Session | None:
        """The session, when `what` may act on it now; else None, with the reason in the hint."""
        if self.session is None:
            self.not_ready(what)
            return None
        if self.busy:
            self.set_hint(f"a drag is running; press Esc to stop it, then {what}.", error=True)
            return None
        return self.session

    def reset_progress(self) -> None:
        """The status of the last drag no longer describes the image (undo, redo, reset, new seed)."""
        from textual.widgets import ProgressBar

        self.view = replace(self.view, view_before=False)
        self.set_progress("")
        self.query_one("#bar", ProgressBar).update(total=self.options.steps, progress=0)
        self.set_hint("")  # a failed drag's "ctrl+z undoes it" is stale once the image changed

    def labels_need_keypoints(self) -> None:
        """Find the keypoints of the image on view, once, when labels are shown."""
        if not self.view.show_labels or self.session is None or self.backend.editor is None:
            return
        entry = (self.view.view_before and self.before_entry()) or self.session.current
        if self.keypoints_of(entry) is not None:
            return
        from functools import partial

        from voicedrag.tui import workers

        # One search at a time (exclusive): the labels of the entry on view when it ends are asked again.
        self.run_worker(
            partial(workers.detect_keypoints, self.backend, entry.id, entry.image, entry.ws, self.post_message),
            thread=True,
            group="keypoints",
            name="keypoints",
            exit_on_error=False,
        )
