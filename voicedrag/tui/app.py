"""The voicedrag terminal UI: speak, type or point, and watch the drag.

The app owns the lifecycle (options, the colours, loading the model, quitting, the command
palette); the editor screen (`voicedrag.tui.screen.EditScreen`) shows the edits. Loading models,
parsing, planning, dragging and listening run in thread workers (voicedrag.tui.workers) that
post typed messages back. Nothing here imports torch, so the window is up and taking keys while
the model still loads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from engine.types import DEFAULT_PSI
from voicedrag.tui import workers
from voicedrag.tui.base import at as point_at
from voicedrag.tui.base import example_drag
from voicedrag.tui.guard import Guarded
from voicedrag.tui.screen import EditScreen


def help_text(size: tuple[int, int] | None) -> str:
    """The commands and keys, with example coordinates that fit the loaded model's image."""

    def at(fx: float, fy: float) -> str:
        return point_at(size, fx, fy)

    drag = example_drag(size)
    pairs = f"{at(0.45, 0.6)}>{at(0.5, 0.66)};{at(0.3, 0.4)}>{at(0.3, 0.45)}"
    mask = f"mask {at(0.25, 0.5)},{at(0.75, 0.8)}"
    return f"""[b]Commands[/b] (type, or press ctrl+r / space and say them):
  open the mouth · smile · close the left eye · turn the head a little to the left
  {drag:<26}explicit handle>target points (also: {pairs})
  {mask:<26}only this rectangle may move (mask off to remove)
  go                        drag the points placed on the image     clear   remove placed points
  undo · redo · reset · save · stop · seed 7 · new seed · labels · steps 100 · help · quit (ctrl+q)
  before · after (ctrl+b)   compare with the image before the last edit
  show points · hide points (ctrl+t)   the finished drag's handles and targets
  name nose [x,y]           on a model without a detector: teach a keypoint (at the cursor) that words use
  open me.jpg               edit your own photo: framed, put into the model, edits pasted back (Esc stops)
[b]On the image[/b] (tab to focus): arrows move the cursor (shift: 8 px), enter or a click places a
  handle then its target, m at two corners (or a mouse drag) draws the mask, c clears, g drags."""


@dataclass
class TuiOptions:
    model: str = "embedded"
    seed: int = 0
    device: str | None = None
    steps: int = 300  # as `voicedrag edit` and `drag`
    psi: float = DEFAULT_PSI
    renderer: str = "auto"  # auto | halfcell | unicode | sixel | tgp
    auto_run_voice: bool = True  # run a transcript at once, or wait for Enter
    out_dir: str = "voicedrag-out"
    preview_seconds: float = 0.25
    preload_parser: bool = True  # build the command parser and its sentence model in the background
    paraphrase: bool = True  # free phrasings through the sentence model (off: the grammar alone)
    threads: int | None = None  # torch threads for the workers (None: torch's default, all cores)
    template: str | None = None  # keypoint template for a model without a detector
    image: str | None = None  # a photo to open once the model is loaded (instead of editing the seed)
    load_delay: float = 0.5  # seconds between the first frame and the start of model loading
    colors: str | None = None  # truecolor | 256 | standard; None: as Textual reads the environment
    journal: bool = True  # keep the session's history in out_dir/session-<stamp> (voicedrag.journal)
    resume: str | None = None  # a journal.json to restore (its model, psi and history) instead of a seed


# More bugs than this within BUG_WINDOW seconds is an app that cannot go on (a widget that fails on
# every frame): Textual's own handling then ends it, with the traceback; the journal keeps the history.
BUG_LIMIT = 20
BUG_WINDOW = 10.0


class VoiceDragApp(Guarded, App[int]):
    TITLE = "voicedrag"
    SUB_TITLE = "speak or type an edit"
    CSS_PATH = "app.tcss"  # beside this file; shipped as package data
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, options: TuiOptions | None = None) -> None:
        super().__init__()
        self.options = options or TuiOptions()
        if self.options.colors is not None:
            from rich.console import COLOR_SYSTEMS

            # Rich reads only COLORTERM and TERM; voicedrag.tui.colors knows more terminals (and tmux).
            self.console._color_system = COLOR_SYSTEMS[self.options.colors]
        self.backend = workers.Backend(
            psi=self.options.psi, threads=self.options.threads, paraphrase=self.options.paraphrase
        )
        self.edit = EditScreen(self.options, self.backend)
        self.started = time.perf_counter()
        self.ready_at: float | None = None  # perf_counter when the UI took its first key
        self.bugs: list[float] = []  # monotonic times of the exceptions survived (survive)

    def get_default_screen(self) -> Screen:
        return self.edit

    def on_mount(self) -> None:
        self.call_after_refresh(self._mark_ready)

    def on_unmount(self) -> None:
        # Every model call of the app runs on one shared thread (workers.TORCH): a drag left
        # running after the app is gone would hold up the next app's work in this process.
        if self.backend.editor is not None:
            self.backend.editor.cancel()

    def _mark_ready(self) -> None:
        self.ready_at = time.perf_counter()
        # The loader starts a moment after the first frame: importing torch holds the interpreter
        # lock for stretches of up to a second on a busy machine, which would freeze the first screen.
        if self.options.load_delay > 0:
            self.set_timer(self.options.load_delay, self._start_loading)
        else:
            self._start_loading()

    def _start_loading(self) -> None:
        self.run_worker(
            partial(
                workers.load_model,
                self.backend,
                self.options.model,
                self.options.device,
                self.options.seed,
                self.edit.post_message,
                self.options.template,
                self.options.resume,
            ),
            thread=True,
            group="model",
            name="load model",
            exit_on_error=False,
        )

    # ------------------------------------------------------------ the app's edge

    def survive(self, error: Exception, doing: str) -> bool:
        """Report an exception that escaped a handler as one sentence and go on; False where Textual's
        own handling must end the app: before the editor screen is up (it could not show the
        sentence), or after BUG_LIMIT bugs in BUG_WINDOW seconds."""
        if self.ready_at is None or not self.edit.is_mounted or self._exit:
            return False
        now = time.monotonic()
        self.bugs = [t for t in self.bugs if now - t < BUG_WINDOW] + [now]
        if len(self.bugs) > BUG_LIMIT:
            return False
        try:
            self.edit.report_bug(error, doing)
        except Exception:  # noqa: BLE001 - a screen that cannot even say so: Textual's own handling
            return False
        return True

    def _handle_exception(self, error: Exception) -> None:
        # What no handler of this app caught: a timer's callback, a widget mounted later, a frame
        # that failed to draw. Textual ends the app for each; once the screen is up, it goes on.
        from textual.worker import WorkerFailed

        if not isinstance(error, WorkerFailed) and self.survive(error, "the screen"):
            return
        super()._handle_exception(error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker of the app (loading the model) that ended in an exception: a bug to report."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.edit.report_bug(event.worker.error, f"the {event.worker.name} worker")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        e = self.edit
        for title, help_text, callback in [
            ("Voice: start or stop listening", "Record a spoken command (ctrl+r)", e.action_voice),
            ("Stop the drag", "Stop and keep the last frame (Esc)", e.action_stop),
            ("Undo", "Undo the last edit (ctrl+z)", e.action_undo),
            ("Redo", "Redo the undone edit (ctrl+y)", e.action_redo),
            ("Reset", "Back to the original image (ctrl+o)", e.action_reset),
            ("New seed", "A new image from the next seed (ctrl+n)", e.action_new_seed),
            ("Save", "Image, latent, history and GIF to a folder (ctrl+s)", e.action_save),
            ("Keypoint labels", "Show or hide keypoints (ctrl+l)", e.action_labels),
            (
                "Before / after",
                "Flip between the image before the last edit and after it (ctrl+b)",
                e.action_before_after,
            ),
            ("Drag points", "Show or hide the finished drag's handles and targets (ctrl+t)", e.action_markers),
            ("Drag placed points", "Run a drag with the hand-placed points (ctrl+g)", e.action_go),
            ("Clear points", "Remove hand-placed points", e.action_clear_points),
            ("Clear mask", "Let the whole image move", e.action_clear_mask),
            ("Place points on the image", "Focus the image: arrows, Enter, m, c, g", e.action_focus_image),
            ("Help", "List commands and keys (F1)", e.action_help),
        ]:
            yield SystemCommand(title, help_text, callback)


def run_tui(options: TuiOptions) -> int:
    import os
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Under cron, CI or a pipe the screen would be escape codes written into a file, waiting
        # forever for keys that never come.
        print(
            "voicedrag's terminal UI needs a terminal; run it in one, or use `voicedrag edit --say TEXT "
            "--out F.png` for one edit without it.",
            file=sys.stderr,
        )
        return 2
    if options.colors in (None, "auto"):
        from voicedrag.tui.colors import detect_color_system

        # TEXTUAL_COLOR_SYSTEM is Textual's own override; it wins over the detection.
        options.colors = None if os.environ.get("TEXTUAL_COLOR_SYSTEM") else detect_color_system()
    lenient_terminal_input()
    app = VoiceDragApp(options)
    result = app.run()
    return int(result or 0)


def lenient_terminal_input() -> None:
    """Read the terminal's bytes that are not UTF-8 as U+FFFD instead of ending the app.

    Textual's input thread decodes strict UTF-8: one other byte (a key on a Latin-1 terminal, a
    garbled answer to a query that came late) ends that thread, and Textual then ends the app with
    its traceback. The thread asks its module for the decoder by name when it starts."""
    import codecs
    from functools import partial

    try:
        import textual.drivers.linux_driver as driver
    except ImportError:  # not a POSIX system: another driver
        return
    if getattr(driver, "getincrementaldecoder", None) is codecs.getincrementaldecoder:
        driver.getincrementaldecoder = lambda encoding: partial(
            codecs.getincrementaldecoder(encoding), errors="replace"
        )
