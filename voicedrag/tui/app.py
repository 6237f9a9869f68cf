"""The voicedrag terminal UI: speak, type or point, and watch the drag.

The UI thread only draws and keeps state; loading models, parsing,
planning, dragging and listening run in thread workers (voicedrag.tui.workers)
that post typed messages back. Nothing here imports torch, so the window is
up and taking keys while the model still loads.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from textual import events, on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, RichLog, Static
from textual.worker import Worker, get_current_worker

from engine.types import DEFAULT_PSI
from voicedrag.session import Session
from voicedrag.tui import messages as m
from voicedrag.tui import workers
from voicedrag.tui.localcmd import LocalCommand, read_local
from voicedrag.tui.overlay import Overlay
from voicedrag.tui.widgets import CommandBar, ImagePane, LevelMeter

XY = tuple[float, float]
Rect = tuple[int, int, int, int]

MAX_CORRECTIONS_SHOWN = 5
REDRAW_SECONDS = 0.2  # the drag's points and progress on screen at most this often


def _at(size: tuple[int, int] | None, fx: float, fy: float) -> str:
    """A point at (fx, fy) of the image, as typed coordinates that fit it."""
    w, h = size or (64, 64)
    return f"{round(fx * (w - 1))},{round(fy * (h - 1))}"


def example_drag(size: tuple[int, int] | None) -> str:
    return f"drag {_at(size, 0.45, 0.6)} to {_at(size, 0.5, 0.66)}"


def placeholder_text(size: tuple[int, int] | None) -> str:
    return f"type a command: open the mouth · {example_drag(size)} · undo   (ctrl+r or space: speak)"


def help_text(size: tuple[int, int] | None) -> str:
    """The commands and keys, with example coordinates that fit the loaded model's image."""

    def at(fx: float, fy: float) -> str:
        return _at(size, fx, fy)

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
    load_delay: float = 0.5  # seconds between the first frame and the start of model loading
    colors: str | None = None  # truecolor | 256 | standard; None: as Textual reads the environment


class VoiceDragApp(App[int]):
    TITLE = "voicedrag"
    SUB_TITLE = "speak or type an edit"
    CSS_PATH = "app.tcss"  # beside this file; shipped as package data
    BINDINGS = [
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
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, options: TuiOptions | None = None) -> None:
        super().__init__()
        self.options = options or TuiOptions()
        if self.options.colors is not None:
            from rich.console import COLOR_SYSTEMS

            # Rich reads only COLORTERM and TERM; voicedrag.tui.colors knows more terminals (and tmux).
            self.console._color_system = COLOR_SYSTEMS[self.options.colors]
        self.backend = workers.Backend(psi=self.options.psi, threads=self.options.threads,
                                       paraphrase=self.options.paraphrase)
        self.session: Session | None = None
        self.model_name = ""
        self.device = ""
        self.model_error: str | None = None
        self.queued: list[str] = []
        self.busy = False  # a command or drag worker is running
        self.drag_worker: Worker[None] | None = None
        self.live_points: list[XY] | None = None  # handles during a drag
        self.live_plan: m.PlannedDrag | None = None
        self.live_image: np.ndarray | None = None
        self.manual: list[tuple[XY, XY]] = []  # hand-placed handle/target pairs
        self.pending_handle: XY | None = None
        self.mask: list[Rect] | None = None  # hand-drawn region that may move
        self.mask_corner: XY | None = None
        self.show_labels = False
        # A finished drag's handle and target markers sit on exactly the part that was edited, so
        # they are hidden when it ends; ctrl+t brings them back. ctrl+b shows the image before it.
        self.show_markers = True
        self.view_before = False
        self.keypoints: dict[int, dict[str, Any]] = {}  # Entry.id -> {name: Point}
        self.kp_pending: set[int] = set()
        self.voice_state = "idle"
        self.voice_worker: Worker[None] | None = None
        self.voice_note = ""
        self.voice_error: str | None = None
        self.keypoint_notice: str | None = None
        self.started = time.perf_counter()
        self.ready_at: float | None = None  # perf_counter when the UI took its first key
        self.first_preview_at: float | None = None
        self.planned_at: float | None = None
        self.command_at: float | None = None
        self.last_step: m.DragStep | None = None
        self.last_redraw = 0.0

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield ImagePane(self.options.renderer, id="image")
            with Vertical(id="side"):
                yield Static("", id="status")
                yield LevelMeter("", id="voice")
                yield Static("", id="progress")
                yield ProgressBar(total=self.options.steps, show_eta=False, id="bar")
                yield RichLog(id="log", wrap=True, markup=True, highlight=False, min_width=20)
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
        self.log_line(f"loading model [i]{_escape(_short_model(self.options.model))}[/i]…")
        self.set_hint("")
        self.refresh_status()
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
        self.run_worker(partial(workers.load_model, self.backend, self.options.model, self.options.device,
                                self.options.seed, self.post_message, self.options.template),
                        thread=True, group="model", name="load model", exit_on_error=False)

    def on_resize(self, event: events.Resize) -> None:
        # The event's size: while it is handled, self.size may still be the terminal's previous
        # size, which left the image one resize behind (it never grew back after an enlargement).
        self._layout_image(event.size.width, event.size.height)

    def _layout_image(self, width: int | None = None, height: int | None = None) -> None:
        """Give the image as many columns as a square picture of the available height needs."""
        pane = self.query_one(ImagePane)
        width = self.size.width if width is None else width
        height = self.size.height if height is None else height
        rows = max(height - 7, 4)
        from voicedrag.tui.widgets import cell_size

        cw, ch = cell_size()
        cols = int(rows * ch / cw)
        cols = min(cols, max(width - 40, 20))
        pane.styles.width = cols

    # ------------------------------------------------------------ helpers

    def log_line(self, text: str) -> None:
        self.query_one("#log", RichLog).write(text)

    def set_hint(self, text: str, error: bool = False) -> None:
        hint = self.query_one("#hint", Static)
        hint.set_class(error, "error")
        hint.update(text or "[dim]Enter runs · ↑/↓ history · tab: points on the image · ctrl+p: all actions[/]")

    def refresh_status(self) -> None:
        parts = []
        if self.model_error:
            parts.append("[red]no model[/]")
        elif self.session is None:
            parts.append(f"[yellow]loading {_escape(_short_model(self.options.model))}…[/]")
        else:
            s = self.session
            parts.append(f"[b]{self.model_name}[/b] · {self.device} · {s.size[0]}x{s.size[1]}")
            parts.append(f"seed {s.seed} · edit {s.index + 1}/{len(s.entries)}")
        pane = self.query_one(ImagePane)
        if pane.image is not None:
            parts.append(f"cursor {pane.cursor[0]},{pane.cursor[1]}")
        pts = len(self.manual) + (1 if self.pending_handle else 0)
        extra = f"points {len(self.manual)}" + (" +handle" if self.pending_handle else "")
        mask = "off" if self.mask is None else ",".join(str(v) for v in self.mask[0])
        parts.append(f"{extra if pts else 'points 0'} · mask {mask} · labels {'on' if self.show_labels else 'off'}")
        if self.view_before:
            parts.append("[reverse] before [/] the last edit · ctrl+b: after")
        self.query_one("#status", Static).update("\n".join(parts))

    def before_entry(self) -> Any:
        """The state the current one was made from (None for the first image)."""
        s = self.session
        if s is None or s.index == 0:
            return None
        return s.entries[s.index - 1]

    def current_keypoints(self) -> dict[str, Any] | None:
        if self.session is None:
            return None
        return self.keypoints.get(self.session.current.id)

    def redraw(self) -> None:
        pane = self.query_one(ImagePane)
        if self.session is None:
            pane.show(None)
            return
        entry = self.session.current
        image = entry.image
        ov = Overlay(mask=self.mask, mask_corner=self.mask_corner)
        before = self.before_entry() if self.view_before and not self.busy else None
        if before is not None:
            image = before.image
            if entry.kind == "drag" and self.show_markers:  # where the drag started and where it aimed
                ov.handles = [(p.handle.x, p.handle.y) for p in entry.pairs]
                ov.targets = [(p.target.x, p.target.y) for p in entry.pairs]
        elif self.busy and self.live_plan is not None:
            image = self.live_image if self.live_image is not None else image
            ov.handles = list(self.live_points or self.live_plan.handles)
            ov.targets = list(self.live_plan.targets)
            ov.mask = self.mask or self.live_plan.mask
        elif self.manual or self.pending_handle:
            ov.handles = [a for a, _ in self.manual] + ([self.pending_handle] if self.pending_handle else [])
            ov.targets = [b for _, b in self.manual]
        elif entry.kind == "drag" and self.show_markers:
            ov.handles = [(p.x, p.y) for p in entry.final_points]
            ov.targets = [(p.target.x, p.target.y) for p in entry.pairs]
        labels: dict[str, XY] = {}
        kp = self.keypoints.get(before.id) if before is not None else self.current_keypoints()
        if self.show_labels and kp:
            labels = {name: (p.x, p.y) for name, p in kp.items()}
            ov.keypoints = labels
        pane.show(image, ov, labels)

    # ------------------------------------------------------------ model messages

    def on_model_loaded(self, message: m.ModelLoaded) -> None:
        self.session = Session(message.seed, message.ws, message.image, model=message.name)
        self.model_name = message.name
        self.device = message.device
        self.log_line(f"model ready: {_escape(message.name)} on {message.device}, "
                      f"{message.image.shape[1]}x{message.image.shape[0]} px")
        self.query_one(CommandBar).placeholder = placeholder_text(self._image_size())
        self.refresh_status()
        self.redraw()
        if self.options.preload_parser:
            self.run_worker(partial(workers.load_parser, self.backend, True, self.post_message),
                            thread=True, group="parser", name="load parser", exit_on_error=False)
        queued, self.queued = self.queued, []
        for text in queued:
            self.submit(text, remember=False)

    def on_model_failed(self, message: m.ModelFailed) -> None:
        self.model_error = message.error
        self.query_one(ImagePane).set_placeholder(f"no model: {message.error}")
        self.log_line(f"[red]model: {message.error}[/]")
        self.notify(message.error, title="Model not loaded", severity="error", timeout=10)
        self.refresh_status()

    def on_seed_ready(self, message: m.SeedReady) -> None:
        assert self.session is not None
        self.session.new_seed(message.seed, message.ws, message.image)
        if self.backend.editor is not None:
            # Keypoints of entries a new step cut off (the redo branch) are forgotten; the rest stay.
            self.backend.editor.forget(keep={e.id for e in self.session.entries})
        self.manual, self.pending_handle = [], None
        self.log_line(f"seed {message.seed}: new image (ctrl+z goes back to the previous one)")
        self._reset_progress()
        self.refresh_status()
        self.redraw()
        self._labels_need_keypoints()

    def on_notice(self, message: m.Notice) -> None:
        self.log_line(("[red]" if message.severity == "error" else "[yellow]") + message.text + "[/]")
        self.notify(message.text, severity=message.severity, timeout=8)  # type: ignore[arg-type]

    # ------------------------------------------------------------ commands

    @on(CommandBar.Submitted)
    def on_command_submitted(self, event: CommandBar.Submitted) -> None:
        text = event.value.strip()
        bar = self.query_one(CommandBar)
        bar.value = ""
        if text:
            self.submit(text)

    def submit(self, text: str, remember: bool = True, spoken: bool = False) -> None:
        """Run one line of input: an app command, a control word, or an edit for the parser."""
        if remember:
            self.query_one(CommandBar).remember(text)
        self.log_line(("[magenta]heard[/] " if spoken else "[b]>[/b] ") + _escape(_clip(text)))
        self.set_hint("")
        local = read_local(text)
        if local is not None:
            self.run_local(local)
            return
        if self.model_error:
            self.set_hint(f"no model is loaded ({self.model_error})", error=True)
            return
        if self.session is None:
            self.queued.append(text)
            self.set_hint("the model is still loading; the command will run when it is ready.")
            return
        if self.busy:
            why = "a drag is running; press Esc to stop it, then give the command again."
            self.log_line(f"  [yellow]not run: {why}[/]")
            self.set_hint(why, error=True)
            return
        self.start_drag(text)

    def start_drag(self, label: str, pairs: list[tuple[XY, XY]] | None = None) -> None:
        assert self.session is not None
        entry = self.session.current
        req = workers.DragRequest(
            label=label, ws=entry.ws, image=entry.image, max_steps=self.options.steps,
            preview_seconds=self.options.preview_seconds, mask=self.mask, pairs=list(pairs or []),
            entry_id=entry.id, report_seconds=REDRAW_SECONDS / 2,
        )
        self.busy = True
        self.view_before = False
        self.show_markers = True  # the plan and the live handles are what a running drag shows
        if self.backend.editor is not None:
            self.backend.editor.begin()  # on the UI thread, so that an Esc right after is not lost
        self.live_plan = None
        self.live_points = None
        self.live_image = None
        self.last_step = None
        self.command_at = time.perf_counter()
        self.first_preview_at = None
        self.planned_at = None
        self.query_one("#progress", Static).update("[yellow]planning…[/]", layout=False)
        self.drag_worker = self.run_worker(partial(self._command_worker, req), thread=True, group="drag",
                                           name="drag", exit_on_error=False)

    def _command_worker(self, req: workers.DragRequest) -> None:
        workers.run_command(self.backend, req, self.post_message)

    def run_local(self, cmd: LocalCommand) -> None:
        kind = cmd.kind
        if kind == "control":
            self.control(cmd.word)
        elif kind == "mask":
            self.set_mask_inclusive(*cmd.numbers)
        elif kind == "mask_off":
            self.mask, self.mask_corner = None, None
            self.log_line("mask off: the whole image may move")
            self.refresh_status()
            self.redraw()
        elif kind == "points":
            self.set_points(cmd.spec)
        elif kind == "clear":
            self.action_clear_points()
        elif kind == "go":
            self.action_go()
        elif kind == "labels":
            self.action_labels()
        elif kind == "before":
            if self.view_before != (cmd.word == "before"):
                self.action_before_after()
        elif kind == "markers":
            if self.show_markers != (cmd.word == "show"):
                self.action_markers()
        elif kind == "seed":
            self.change_seed(int(cmd.numbers[0]))
        elif kind == "new_seed":
            self.action_new_seed()
        elif kind == "name":
            self.teach_point(cmd.word, cmd.numbers)
        elif kind == "steps":
            self.options.steps = max(int(cmd.numbers[0]), 1)
            self.query_one("#bar", ProgressBar).update(total=self.options.steps, progress=0)
            self.log_line(f"drags now stop after at most {self.options.steps} steps")

    def control(self, word: str) -> None:
        actions = {"undo": self.action_undo, "redo": self.action_redo, "reset": self.action_reset,
                   "save": self.action_save, "stop": self.action_stop, "help": self.action_help,
                   "quit": self.action_quit}
        action = actions.get(word)
        if action is None:
            self.set_hint(f"'{word}' is not something voicedrag can do yet.", error=True)
            return
        result = action()
        if hasattr(result, "__await__"):
            self.run_worker(result)  # type: ignore[arg-type]

    def _image_size(self) -> tuple[int, int] | None:
        return None if self.session is None else self.session.size

    def set_mask_inclusive(self, x0: float, y0: float, x1: float, y1: float) -> None:
        size = self._image_size()
        if size is None:
            self.set_hint("the model is still loading; draw the mask when the image is shown.", error=True)
            return
        w, h = size
        xa, xb = sorted((int(round(x0)), int(round(x1))))
        ya, yb = sorted((int(round(y0)), int(round(y1))))
        if not (0 <= xa and xb < w and 0 <= ya and yb < h):
            self.set_hint(f"the mask {xa},{ya},{xb},{yb} does not fit the {w}x{h} image; "
                          f"use x in 0..{w - 1} and y in 0..{h - 1}.", error=True)
            return
        self.mask = [(xa, ya, xb + 1, yb + 1)]
        self.mask_corner = None
        self.log_line(f"mask: only {xa},{ya} .. {xb},{yb} may move")
        self.refresh_status()
        self.redraw()

    def set_points(self, spec: str) -> None:
        size = self._image_size()
        if size is None:
            self.set_hint("the model is still loading; give points when the image is shown.", error=True)
            return
        from voicedrag.dragio import SpecError, parse_points

        try:
            pairs = parse_points(spec, size)
        except SpecError as err:
            self.set_hint(str(err), error=True)
            return
        self.manual = [((p.handle.x, p.handle.y), (p.target.x, p.target.y)) for p in pairs]
        self.pending_handle = None
        self.log_line(f"points: {_pairs_text(self.manual)}")
        self.set_hint("points placed; 'go' (or ctrl+g) drags them.")
        self.refresh_status()
        self.redraw()

    def teach_point(self, name: str, xy: tuple[float, ...]) -> None:
        """Teach the session's keypoint template `name` at xy (or at the cursor) on the current image."""
        size = self._image_size()
        if size is None or self.session is None or self.backend.editor is None:
            self.set_hint("the model is still loading; name points when the image is shown.", error=True)
            return
        if self.backend.editor.kit.has_detector:
            self.set_hint("this model has its own keypoint detector; naming points is for models without one.",
                          error=True)
            return
        x, y = (xy[0], xy[1]) if xy else self.query_one(ImagePane).cursor
        w, h = size
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            self.set_hint(f"{x:g},{y:g} is outside the {w}x{h} image; use x in 0..{w - 1} and y in 0..{h - 1}.",
                          error=True)
            return
        path = Path(self.options.out_dir) / "template.json"
        self.run_worker(partial(workers.teach_point, self.backend, self.session.current.ws, name, (float(x), float(y)),
                                path, self.post_message), thread=True, group="teach", name="teach",
                        exit_on_error=False)

    def on_point_taught(self, message: m.PointTaught) -> None:
        x, y = message.xy
        self.log_line(f"taught {message.name} at {x:g},{y:g}: the template knows {message.names} point(s) "
                      f"and is saved in {message.path} (--template it next time)")
        self.keypoints.clear()
        self.kp_pending.clear()
        self._labels_need_keypoints()
        self.redraw()

    def change_seed(self, seed: int) -> None:
        if self.session is None or self.backend.generator is None:
            self.set_hint("the model is still loading.", error=True)
            return
        if self.busy:
            self.set_hint("a drag is running; press Esc to stop it first.", error=True)
            return
        self.run_worker(partial(workers.new_seed, self.backend, seed, self.post_message), thread=True,
                        group="seed", name="seed", exit_on_error=False)

    # ------------------------------------------------------------ worker messages

    def on_command_parsed(self, message: m.CommandParsed) -> None:
        r = message.result
        if r.corrections:
            # A long line can carry a hundred corrections; the log shows the first few and a count.
            shown = r.corrections[:MAX_CORRECTIONS_SHOWN]
            fixes = ", ".join(f"{a}→{b}" for a, b in shown)
            more = len(r.corrections) - len(shown)
            if more:
                fixes += f", and {more} more"
            self.log_line(f"  [dim]read as[/] '{_escape(_clip(r.corrected))}' ({_escape(fixes)})")
        for e in r.edits:
            self.log_line(f"  [cyan]edit[/] {_escape(e.phrase())} · amount {e.amount:g}")
        for phrase in r.matched:
            self.log_line(f"  [dim]matched[/] '{_escape(phrase)}'")

    def on_control_requested(self, message: m.ControlRequested) -> None:
        self._drag_done()
        self.control(message.word)

    def on_command_failed(self, message: m.CommandFailed) -> None:
        self._drag_done()
        self.log_line(f"  [red]{_escape(_clip(message.error, 300))}[/]")
        self.set_hint(_clip(message.error, 300), error=True)
        if message.suggestions:
            self.query_one(CommandBar).history.extend(s for s in message.suggestions[:3] if s)

    def on_keypoints_found(self, message: m.KeypointsFound) -> None:
        self.kp_pending.discard(message.entry_id)
        if message.notice and message.notice != self.keypoint_notice:
            # Said once: the same notice after every command would drown the log.
            self.keypoint_notice = message.notice
            self.notify(message.notice, title="Keypoints", severity="warning", timeout=8)
            if not self.busy:  # during a command, the command's own failure says it
                self.log_line(f"[yellow]{_escape(message.notice)}[/]")
        if message.keypoints:
            self.keypoints[message.entry_id] = message.keypoints
        self.redraw()

    def on_drag_planned(self, message: m.DragPlanned) -> None:
        plan = message.plan
        self.live_plan = plan
        self.planned_at = time.perf_counter()
        for name, h, t in zip(plan.names, plan.handles, plan.targets):
            self.log_line(f"  [red]●[/] {name} ({h[0]:.0f},{h[1]:.0f}) → [blue]●[/] ({t[0]:.0f},{t[1]:.0f})")
        if plan.mask:
            rects = "; ".join(f"{x0},{y0}..{x1 - 1},{y1 - 1}" for x0, y0, x1, y1 in plan.mask)
            self.log_line(f"  mask: {rects}")
        for w in plan.warnings:
            self.log_line(f"  [yellow]! {_escape(w)}[/]")
        self.query_one("#bar", ProgressBar).update(total=self.options.steps, progress=0)
        self.redraw()

    def on_drag_step(self, message: m.DragStep) -> None:
        self.last_step = message
        self.live_points = message.points
        if message.image is not None:
            self.live_image = message.image
            if self.first_preview_at is None:
                self.first_preview_at = time.perf_counter()
        # The screen follows the drag a few times a second, and at once for a new frame: every
        # repaint holds the interpreter lock that the drag's thread needs between its torch calls.
        now = time.perf_counter()
        if message.image is None and now - self.last_redraw < REDRAW_SECONDS:
            return
        self.last_redraw = now
        self.query_one("#progress", Static).update(
            f"step {message.step + 1}/{message.max_steps} · {message.mean_distance:5.1f} px · "
            f"{message.rate:4.1f} it/s", layout=False)
        self.query_one("#bar", ProgressBar).update(total=message.max_steps, progress=message.step + 1)
        self.redraw()

    def on_drag_finished(self, message: m.DragFinished) -> None:
        assert self.session is not None
        entry = message.entry
        self.session.push(entry)
        self.manual, self.pending_handle = [], None
        self._drag_done()
        self.show_markers = False  # the edited part in view; ctrl+t brings the points back
        state = ("stopped (Esc); kept the last frame" if entry.cancelled else
                 "converged" if entry.converged else "reached the step limit")
        dist = f"{entry.mean_distance:.1f} px" if entry.mean_distance is not None else ""
        short = "stopped" if entry.cancelled else "converged" if entry.converged else "step limit"
        if entry.verdict:
            # A failed drag is not "done": say so, and offer the undo.
            self.log_line(f"  [yellow]after {_steps(entry.steps)}, {_escape(entry.verdict)}[/]")
            self.notify(f"{entry.verdict}.\nctrl+z undoes it.", title="Drag failed", severity="warning", timeout=10)
            short = "failed"
        else:
            self.log_line(f"  [green]done[/]: {state} after {_steps(entry.steps)}, {dist} from the targets")
        self.query_one("#progress", Static).update(f"{short} · {_steps(entry.steps)} · {dist} to go", layout=False)
        bar = self.query_one("#bar", ProgressBar)
        # Converged or at its limit: full. Stopped by Esc: as far as it got.
        bar.update(total=bar.total or 1, progress=min(entry.steps, bar.total or 1) if entry.cancelled
                   else bar.total or 1)
        if entry.verdict:
            self.set_hint(f"{entry.verdict}; ctrl+z undoes it.", error=True)
        else:
            self.set_hint("ctrl+b: before/after · ctrl+t: the drag's points · ctrl+z undoes it · ctrl+s saves")
        self.refresh_status()
        self.redraw()
        self._labels_need_keypoints()

    def on_drag_failed(self, message: m.DragFailed) -> None:
        self._drag_done()
        self.log_line(f"  [red]{_escape(_clip(message.error, 300))}[/]")
        self.set_hint(_clip(message.error, 300), error=True)
        self.query_one("#progress", Static).update("", layout=False)
        self.redraw()

    def _reset_progress(self) -> None:
        """The status of the last drag no longer describes the image (undo, redo, reset, new seed)."""
        self.view_before = False
        self.query_one("#progress", Static).update("", layout=False)
        self.query_one("#bar", ProgressBar).update(total=self.options.steps, progress=0)
        self.set_hint("")  # a failed drag's "ctrl+z undoes it" is stale once the image changed

    def _drag_done(self) -> None:
        self.busy = False
        self.live_plan = None
        self.live_points = None
        self.live_image = None
        self.query_one("#progress", Static).update("", layout=False)

    # ------------------------------------------------------------ voice

    @on(CommandBar.VoiceKey)
    def on_voice_key(self) -> None:
        self.action_voice()

    def on_voice_state(self, message: m.VoiceState) -> None:
        self.voice_state = message.state
        self.query_one(LevelMeter).set_state(message.state, note=self.voice_note)

    def on_voice_level(self, message: m.VoiceLevel) -> None:
        if self.voice_state == "recording":
            self.query_one(LevelMeter).set_state("recording", message.level)

    def on_voice_failed(self, message: m.VoiceFailed) -> None:
        self.voice_error = message.error
        self.voice_note = f"[dim]voice: {_escape(message.error)}[/]" if "microphone" in message.error.lower() else ""
        self.log_line(f"[yellow]voice: {_escape(message.error)}[/]")
        self.notify(message.error, title="Voice", severity="warning", timeout=6)

    def on_transcribed(self, message: m.Transcribed) -> None:
        bar = self.query_one(CommandBar)
        if self.options.auto_run_voice:
            self.submit(message.text, spoken=True)
        else:
            bar.value = message.text
            bar.cursor_position = len(message.text)
            bar.focus()
            self.log_line(f"[magenta]heard[/] {_escape(message.text)} [dim](Enter runs it)[/]")

    # ------------------------------------------------------------ image pane

    def on_image_pane_point_chosen(self, message: ImagePane.PointChosen) -> None:
        p = (float(message.x), float(message.y))
        if self.pending_handle is None:
            self.pending_handle = p
            self.set_hint(f"handle at {p[0]:.0f},{p[1]:.0f}; now place its target.")
        else:
            self.manual.append((self.pending_handle, p))
            self.pending_handle = None
            self.set_hint(f"{len(self.manual)} pair(s) placed; g / ctrl+g / 'go' drags them.")
        self.refresh_status()
        self.redraw()

    def on_image_pane_mask_corner(self, message: ImagePane.MaskCorner) -> None:
        if self.mask_corner is None:
            self.mask_corner = (float(message.x), float(message.y))
            self.set_hint("mask corner set; move to the opposite corner and press m.")
            self.redraw()
        else:
            (x0, y0), self.mask_corner = self.mask_corner, None
            self.set_mask_inclusive(x0, y0, message.x, message.y)

    def on_image_pane_mask_drawn(self, message: ImagePane.MaskDrawn) -> None:
        self.set_mask_inclusive(message.a[0], message.a[1], message.b[0], message.b[1])

    def on_image_pane_cursor_moved(self, message: ImagePane.CursorMoved) -> None:
        self.refresh_status()

    def on_image_pane_clear_requested(self) -> None:
        self.action_clear_points()

    def on_image_pane_go_requested(self) -> None:
        self.action_go()

    # ------------------------------------------------------------ actions

    def action_voice(self) -> None:
        """Start listening, or stop and transcribe when already listening."""
        recorder = self.backend.recorder
        if recorder is not None:
            recorder.stop()
            return
        if self.voice_worker is not None and self.voice_worker.is_running:
            self.set_hint("still working on the last recording…")
            return
        self.voice_worker = self.run_worker(self._voice_worker, thread=True, group="voice", name="voice",
                                            exit_on_error=False)

    def _voice_worker(self) -> None:
        worker = get_current_worker()
        workers.voice(self.backend, self.post_message, lambda: worker.is_cancelled)

    def action_stop(self) -> None:
        """Stop the running drag (keeping its last frame), listening, or a half-drawn mask; or close
        the command palette (this binding has priority, so it would otherwise never reach it)."""
        from textual.command import CommandPalette

        if isinstance(self.screen, CommandPalette):
            self.screen.dismiss()
            return
        if self.busy:
            if self.backend.editor is not None:
                self.backend.editor.cancel()  # the one handle: before the drag starts, or during it
            self.log_line("[yellow]stopping…[/]")
            return
        if self.backend.recorder is not None:
            self.backend.recorder.stop()
            return
        if self.mask_corner is not None or self.pending_handle is not None:
            self.mask_corner, self.pending_handle = None, None
            self.set_hint("")
            self.refresh_status()
            self.redraw()
            return
        if self.focused is not self.query_one(CommandBar):
            self.query_one(CommandBar).focus()

    def not_ready(self, what: str) -> None:
        """Say why `what` cannot happen before a model is shown: still loading, or it failed to load."""
        if self.model_error:
            self.set_hint(f"no model is loaded, so nothing to {what} ({self.model_error.rstrip('.')}); "
                          "restart voicedrag with another --model.", error=True)
        else:
            self.set_hint(f"nothing to {what} yet; the model is still loading.", error=True)

    def _idle_session(self, what: str) -> Session | None:
        if self.session is None:
            self.not_ready(what)
            return None
        if self.busy:
            self.set_hint(f"a drag is running; press Esc to stop it, then {what}.", error=True)
            return None
        return self.session

    def action_undo(self) -> None:
        """Undo the last edit."""
        s = self._idle_session("undo")
        if s is None:
            return
        if s.undo() is None:
            self.set_hint("nothing to undo.")
            return
        self.log_line(f"undo → {s.current.label} ({s.index + 1}/{len(s.entries)})")
        self._reset_progress()
        self.refresh_status()
        self.redraw()
        self._labels_need_keypoints()

    def action_redo(self) -> None:
        """Redo the edit that was undone."""
        s = self._idle_session("redo")
        if s is None:
            return
        if s.redo() is None:
            self.set_hint("nothing to redo.")
            return
        self.log_line(f"redo → {s.current.label} ({s.index + 1}/{len(s.entries)})")
        self._reset_progress()
        self.refresh_status()
        self.redraw()
        self._labels_need_keypoints()

    def action_reset(self) -> None:
        """Back to the original image (undo brings the edits back)."""
        s = self._idle_session("reset")
        if s is None:
            return
        if s.reset() is None:
            self.set_hint("the image is already the original.")
            return
        self.log_line("reset to the original image (undo brings the edits back)")
        self._reset_progress()
        self.refresh_status()
        self.redraw()

    def action_new_seed(self) -> None:
        """A new image (the next seed)."""
        if self.session is not None:
            self.change_seed(self.session.seed + 1)
        else:
            self.not_ready("draw a new seed from")

    def action_save(self) -> None:
        """Save image, latent, edit history and the last drag's GIF."""
        s = self._idle_session("save")
        if s is None:
            return
        from engine.errors import UserError

        try:
            saved = s.save(s.default_folder(self.options.out_dir))
        except UserError as err:
            self.set_hint(str(err), error=True)
            self.notify(str(err), title="Not saved", severity="error")
            return
        names = ", ".join(f.name for f in saved.files)
        self.log_line(f"[green]saved[/] {names} to {saved.folder}")
        self.notify(f"{names}\nin {saved.folder.resolve()}", title="Saved", timeout=10)

    def action_before_after(self) -> None:
        """Flip between the image before the last edit and after it."""
        s = self._idle_session("compare before and after")
        if s is None:
            return
        before = self.before_entry()
        if before is None:
            self.set_hint("this is the first image; there is nothing before it to compare.")
            return
        self.view_before = not self.view_before
        self.set_hint(f"before '{_escape(_clip(s.current.label, 60))}'; ctrl+b shows after" if self.view_before
                      else "after; ctrl+b shows before")
        self.refresh_status()
        self.redraw()
        self._labels_need_keypoints()

    def action_markers(self) -> None:
        """Show or hide the finished drag's handle and target points."""
        self.show_markers = not self.show_markers
        self.set_hint("the drag's points are shown (ctrl+t hides them)" if self.show_markers
                      else "the drag's points are hidden (ctrl+t shows them)")
        self.redraw()

    def action_labels(self) -> None:
        """Show or hide the keypoint labels."""
        self.show_labels = not self.show_labels
        self.log_line(f"keypoint labels {'on' if self.show_labels else 'off'}")
        self._labels_need_keypoints()
        self.refresh_status()
        self.redraw()

    def _labels_need_keypoints(self) -> None:
        if not self.show_labels or self.session is None:
            return
        entry = (self.view_before and self.before_entry()) or self.session.current
        key = entry.id
        if key in self.keypoints or key in self.kp_pending:
            return
        self.kp_pending.add(key)
        self.run_worker(partial(workers.detect_keypoints, self.backend, key, entry.image, self.post_message, entry.ws),
                        thread=True,
                        group="keypoints", name="keypoints", exit_on_error=False)

    def action_go(self) -> None:
        """Drag the hand-placed points."""
        if not self.manual:
            self.set_hint("no points placed; click the image (or tab, arrows, Enter) to place a handle "
                          f"and its target, or type '{example_drag(self._image_size())}'.", error=True)
            return
        if self._idle_session("drag") is None:
            return
        label = "drag " + "; ".join(f"{a[0]:.0f},{a[1]:.0f} to {b[0]:.0f},{b[1]:.0f}" for a, b in self.manual)
        self.log_line(f"[b]>[/b] {label}")
        self.start_drag(label, pairs=self.manual)

    def action_clear_points(self) -> None:
        """Remove the hand-placed points and the mask corner."""
        self.manual, self.pending_handle, self.mask_corner = [], None, None
        self.log_line("points cleared")
        self.refresh_status()
        self.redraw()

    def action_clear_mask(self) -> None:
        """Let the whole image move again."""
        self.run_local(LocalCommand("mask_off", "mask off"))

    def action_help(self) -> None:
        """List the commands and keys."""
        self.log_line(help_text(self._image_size()))

    def action_focus_image(self) -> None:
        """Put the cursor on the image to place points with the keys."""
        self.query_one(ImagePane).focus()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, callback in [
            ("Voice: start or stop listening", "Record a spoken command (ctrl+r)", self.action_voice),
            ("Stop the drag", "Stop and keep the last frame (Esc)", self.action_stop),
            ("Undo", "Undo the last edit (ctrl+z)", self.action_undo),
            ("Redo", "Redo the undone edit (ctrl+y)", self.action_redo),
            ("Reset", "Back to the original image (ctrl+o)", self.action_reset),
            ("New seed", "A new image from the next seed (ctrl+n)", self.action_new_seed),
            ("Save", "Image, latent, history and GIF to a folder (ctrl+s)", self.action_save),
            ("Keypoint labels", "Show or hide keypoints (ctrl+l)", self.action_labels),
            ("Before / after", "Flip between the image before the last edit and after it (ctrl+b)",
             self.action_before_after),
            ("Drag points", "Show or hide the finished drag's handles and targets (ctrl+t)", self.action_markers),
            ("Drag placed points", "Run a drag with the hand-placed points (ctrl+g)", self.action_go),
            ("Clear points", "Remove hand-placed points", self.action_clear_points),
            ("Clear mask", "Let the whole image move", self.action_clear_mask),
            ("Place points on the image", "Focus the image: arrows, Enter, m, c, g", self.action_focus_image),
            ("Help", "List commands and keys (F1)", self.action_help),
        ]:
            yield SystemCommand(title, help_text, callback)


def _clip(text: str, limit: int = 200) -> str:
    """A long line (a pasted paragraph) shortened for the log: its start and how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _short_model(model: str) -> str:
    return "the embedded face model" if model == "embedded" else model.replace("\\", "/").rsplit("/", 1)[-1]


def _pairs_text(pairs: list[tuple[XY, XY]]) -> str:
    return "; ".join(f"{a[0]:g},{a[1]:g}>{b[0]:g},{b[1]:g}" for a, b in pairs)


def run_tui(options: TuiOptions) -> int:
    import os
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Under cron, CI or a pipe the screen would be escape codes written into a file, waiting
        # forever for keys that never come.
        print("voicedrag's terminal UI needs a terminal; run it in one, or use `voicedrag edit --say TEXT "
              "--out F.png` for one edit without it.", file=sys.stderr)
        return 2
    if options.colors in (None, "auto"):
        from voicedrag.tui.colors import detect_color_system

        # TEXTUAL_COLOR_SYSTEM is Textual's own override; it wins over the detection.
        options.colors = None if os.environ.get("TEXTUAL_COLOR_SYSTEM") else detect_color_system()
    app = VoiceDragApp(options)
    result = app.run()
    return int(result or 0)
