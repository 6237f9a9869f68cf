"""The editor screen: the image, the side panel (status, voice, progress, log) and the command bar.

Its parts are layered by concern (base -> history -> pointer -> stream -> voice); this class
adds the layout, the keys and the model's arrival.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, ProgressBar, RichLog, Static

from voicedrag.models import model_title
from voicedrag.session import Session
from voicedrag.tui import messages as m
from voicedrag.tui import workers
from voicedrag.tui.base import clip, escape, example_drag
from voicedrag.tui.voice import VoiceInput
from voicedrag.tui.widgets import CommandBar, ImagePane, LevelMeter, cell_size

if TYPE_CHECKING:
    from voicedrag.journal import Restored


LOG_LINES = 5000


def placeholder_text(size: tuple[int, int] | None) -> str:
    return f"type a command: open the mouth · {example_drag(size)} · undo   (ctrl+r or space: speak)"


class EditScreen(VoiceInput):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "voice", "Voice", priority=True),
        Binding("escape", "stop", "Stop", priority=True),
        Binding("ctrl+z", "undo", "Undo", priority=True),
        # Redo and reset are in the palette (ctrl+p) and help: the footer has room for 120 columns.
        Binding("ctrl+y", "redo", "Redo", priority=True, show=False),
        Binding("ctrl+o", "reset", "Reset", priority=True, show=False),
        Binding("ctrl+b", "before_after", "Before", priority=True),
        Binding("ctrl+t", "markers", "Points", priority=True),
        Binding("ctrl+n", "new_seed", "Seed", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+l", "labels", "Labels", priority=True),
        Binding("ctrl+g", "go", "Drag", priority=True),
        Binding("f1", "help", "Help"),
    ]

    queued: list[str]
    keypoint_notice: str | None = None

    def compose(self) -> ComposeResult:
        self.queued = []
        yield Header()
        with Horizontal(id="main"):
            yield ImagePane(self.options.renderer, id="image")
            with Vertical(id="side"):
                yield Static("", id="status")
                yield LevelMeter("", id="voice")
                yield Static("", id="progress")
                yield ProgressBar(total=self.options.steps, show_eta=False, id="bar")
                # Bounded: a session of thousands of commands must not slow every later line down.
                yield RichLog(id="log", wrap=True, markup=True, highlight=False, min_width=20, max_lines=LOG_LINES)
        yield CommandBar(placeholder=placeholder_text(None), id="command")
        yield Static("", id="hint")
        yield Footer()

    def on_mount(self) -> None:
        # Tab moves between the command bar and the image only: the log cannot take typing, and
        # text typed into it was silently lost.
        self.query_one("#log", RichLog).can_focus = False
        self.query_one(CommandBar).focus()
        self.query_one(LevelMeter).set_state("idle")
        self.log_line("[b]voicedrag[/b]: type or say an edit, e.g. [i]open the mouth[/i]. F1 or 'help' lists commands.")
        self.log_line(f"loading model [i]{escape(model_title(self.options.model))}[/i]…")
        self.set_hint("")
        self.refresh_status()

    def on_resize(self, event: events.Resize) -> None:
        # The event's size: while it is handled, self.size may still be the terminal's previous
        # size, which left the image one resize behind (it never grew back after an enlargement).
        self.layout_image(event.size.width, event.size.height)

    def layout_image(self, width: int, height: int) -> None:
        """Give the image as many columns as a square picture of the available height needs."""
        rows = max(height - 7, 4)
        cw, ch = cell_size()
        cols = min(int(rows * ch / cw), max(width - 40, 20))
        self.query_one(ImagePane).styles.width = cols

    def action_focus_image(self) -> None:
        """Put the cursor on the image to place points with the keys."""
        self.query_one(ImagePane).focus()

    # ------------------------------------------------------------ the model

    def on_model_loaded(self, message: m.ModelLoaded) -> None:
        restored = message.restored
        if restored is not None:
            self.session = restored.session
            self.journal = restored.journal
            self.query_one(CommandBar).recall(restored.commands)
        else:
            self.session = Session(message.seed, message.ws, message.image, model=message.name)
            if self.options.journal:
                from voicedrag.journal import Journal

                self.journal = Journal.start(
                    self.options.out_dir, self.options.model, self.options.psi, self.options.template
                )
        self.model_name = message.name
        self.device = message.device
        self.log_line(
            f"model ready: {escape(message.name)} on {message.device}, "
            f"{message.image.shape[1]}x{message.image.shape[0]} px"
        )
        if restored is not None:
            self.say_restored(restored)
        self.query_one(CommandBar).placeholder = placeholder_text(self.image_size)
        self.history_changed()
        if self.options.preload_parser:
            self.run_worker(
                partial(workers.load_parser, self.backend, True, self.post_message),
                thread=True,
                group="parser",
                name="load parser",
                exit_on_error=False,
            )
        queued, self.queued = self.queued, []
        for text in queued:
            self.submit(text, remember=False)
        if self.options.image:
            self.open_photo(self.options.image)

    def say_restored(self, restored: Restored) -> None:
        s = restored.session
        edits = sum(e.kind != "seed" for e in s.entries)
        self.log_line(
            f"[green]resumed[/] the session in {escape(str(restored.journal.folder))}: "
            f"{len(s.entries)} states ({edits} edits), at {s.index + 1}: "
            f"{escape(clip(s.current.label, 60))}; ctrl+z undoes it"
        )
        if restored.differ:
            self.log_line(
                f"[yellow]{restored.differ} of the {restored.redrawn} images drawn again from their "
                "latents differ slightly from the first drawing (another device or version); the "
                "latents are exact.[/]"
            )

    def on_model_failed(self, message: m.ModelFailed) -> None:
        self.model_error = message.error
        self.query_one(ImagePane).set_placeholder(f"no model: {escape(message.error)}")
        self.log_line(f"[red]model: {escape(message.error)}[/]")
        self.notify(message.error, title="Model not loaded", severity="error", timeout=10, markup=False)
        self.refresh_status()

    def on_notice(self, message: m.Notice) -> None:
        self.log_line(("[red]" if message.severity == "error" else "[yellow]") + escape(message.text) + "[/]")
        self.notify(message.text, severity=message.severity, timeout=8, markup=False)
