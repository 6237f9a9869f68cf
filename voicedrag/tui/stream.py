"""Lines typed or spoken into the editor screen: the app's own commands (a table), control words,
and edits, whose events (`Editor.run`, one EditUpdate message each) the screen only shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from textual import on
from textual.widgets import ProgressBar

from voicedrag.events import (
    Control,
    Finished,
    Inverting,
    KeypointsFound,
    Parsed,
    PhotoOpened,
    Planned,
    Refused,
    Step,
)
from voicedrag.tui import messages as m
from voicedrag.tui.base import REDRAW_SECONDS, clip, escape, printable, steps_text
from voicedrag.tui.localcmd import LocalCommand, LocalKind, read_local
from voicedrag.tui.photos import PhotoInput
from voicedrag.tui.state import LiveDrag
from voicedrag.tui.widgets import CommandBar

MAX_CORRECTIONS_SHOWN = 5
# A command is a sentence or a few points; a longer line is a paste gone wrong, and the parser's time
# grows faster than its length (30 s for 100 kB on one core), all of it on the one model thread.
MAX_COMMAND_CHARS = 1000
MAX_SEED = 2**32 - 1  # numpy's RandomState, which draws a seed's latent, takes no larger seed
MAX_STEPS = 100_000  # as `--steps` (voicedrag.cli.argtypes)


class EditStream(PhotoInput):
    queued: list[str]
    keypoint_notice: str | None

    # ------------------------------------------------------------ input

    @on(CommandBar.Submitted)
    def on_command_submitted(self, event: CommandBar.Submitted) -> None:
        text = event.value.strip()
        self.query_one(CommandBar).value = ""
        if text:
            self.submit(text)

    def submit(self, text: str, remember: bool = True, spoken: bool = False) -> None:
        """Run one line of input: an app command, a control word, or an edit for the parser."""
        text = printable(text).strip()
        if not text:
            return
        if len(text) > MAX_COMMAND_CHARS:
            self.log_line(("[magenta]heard[/] " if spoken else "[b]>[/b] ") + escape(clip(text, 80)))
            self.set_hint(
                f"that line is {len(text)} characters long; a command is at most {MAX_COMMAND_CHARS} "
                "(a sentence, or a few points), so type a shorter one.",
                error=True,
            )
            return
        if remember:
            self.query_one(CommandBar).remember(text)
        self.log_line(("[magenta]heard[/] " if spoken else "[b]>[/b] ") + escape(clip(text)))
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
        self.start_edit(text, text=text)

    def local_commands(self) -> dict[LocalKind, Callable[[LocalCommand], None]]:
        """What each of the app's own commands does."""
        return {
            "control": lambda c: self.control(c.word),
            "mask": lambda c: self.set_mask_inclusive(*c.numbers),
            "mask_off": lambda c: self.clear_mask(),
            "points": lambda c: self.set_points(c.spec),
            "clear": lambda c: self.action_clear_points(),
            "go": lambda c: self.action_go(),
            "labels": lambda c: self.action_labels(),
            "before": lambda c: self.action_before_after() if self.view.view_before != (c.word == "before") else None,
            "markers": lambda c: self.action_markers() if self.view.show_markers != (c.word == "show") else None,
            "seed": lambda c: self.seed_command(c.numbers[0]),
            "new_seed": lambda c: self.action_new_seed(),
            "open": lambda c: self.open_photo(c.spec),
            "name": lambda c: self.teach_point(c.word, c.numbers),
            "steps": lambda c: self.steps_command(c.numbers[0]),
        }

    def run_local(self, cmd: LocalCommand) -> None:
        self.local_commands()[cmd.kind](cmd)

    def seed_command(self, value: float) -> None:
        """`seed N`: a whole number in numpy's range, else the range in one sentence."""
        if not (value.is_integer() and 0 <= value <= MAX_SEED):
            self.set_hint(f"a seed is a whole number from 0 to {MAX_SEED}; try 'seed 7'.", error=True)
            return
        self.change_seed(int(value))

    def steps_command(self, value: float) -> None:
        """`steps N`: how many steps a drag may take at most."""
        if not (value.is_integer() and 1 <= value <= MAX_STEPS):
            self.set_hint(f"a drag takes from 1 to {MAX_STEPS} steps; try 'steps 100'.", error=True)
            return
        self.set_steps(int(value))

    def set_steps(self, steps: int) -> None:
        self.options.steps = max(steps, 1)
        self.query_one("#bar", ProgressBar).update(total=self.options.steps, progress=0)
        self.log_line(f"drags now stop after at most {self.options.steps} steps")

    def control(self, word: str) -> None:
        actions: dict[str, Callable[[], object]] = {
            "undo": self.action_undo,
            "redo": self.action_redo,
            "reset": self.action_reset,
            "save": self.action_save,
            "stop": self.action_stop,
            "help": self.action_help,
            "quit": self.app.exit,
        }
        action = actions.get(word)
        if action is None:
            self.set_hint(f"'{word}' is not something voicedrag can do yet.", error=True)
            return
        action()

    # ------------------------------------------------------------ the edit's events

    def on_edit_update(self, message: m.EditUpdate) -> None:
        event = message.event
        if isinstance(event, Parsed):
            self.show_parsed(event)
        elif isinstance(event, Control):
            self.edit_done()
            self.control(event.word)
        elif isinstance(event, KeypointsFound):
            self.show_keypoints(event)
        elif isinstance(event, Planned):
            self.show_planned(event)
        elif isinstance(event, Step):
            self.show_step(event)
        elif isinstance(event, Finished):
            self.show_finished(event)
        elif isinstance(event, Refused):
            self.show_refused(event)
        elif isinstance(event, Inverting):
            self.show_inverting(event)
        elif isinstance(event, PhotoOpened):
            self.show_photo(event)

    def show_parsed(self, event: Parsed) -> None:
        r = event.result
        if r.corrections:
            # A long line can carry a hundred corrections; the log shows the first few and a count.
            shown = r.corrections[:MAX_CORRECTIONS_SHOWN]
            fixes = ", ".join(f"{a}→{b}" for a, b in shown)
            more = len(r.corrections) - len(shown)
            if more:
                fixes += f", and {more} more"
            self.log_line(f"  [dim]read as[/] '{escape(clip(r.corrected))}' ({escape(fixes)})")
        for e in r.edits:
            self.log_line(f"  [cyan]edit[/] {escape(e.phrase())} · amount {e.amount:g}")
        for phrase in r.matched:
            self.log_line(f"  [dim]matched[/] '{escape(phrase)}'")

    def show_keypoints(self, event: KeypointsFound) -> None:
        if event.notice and event.notice != self.keypoint_notice:
            # Said once: the same notice after every command would drown the log.
            self.keypoint_notice = event.notice
            self.notify(event.notice, title="Keypoints", severity="warning", timeout=8, markup=False)
            if not self.busy:  # during a command, the command's own failure says it
                self.log_line(f"[yellow]{escape(event.notice)}[/]")
        self.history_changed()

    def show_planned(self, event: Planned) -> None:
        self.timings.planned_at = time.perf_counter()
        for name, p in zip(event.names, event.pairs, strict=True):
            self.log_line(
                f"  [red]●[/] {name} ({p.handle.x:.0f},{p.handle.y:.0f}) → "
                f"[blue]●[/] ({p.target.x:.0f},{p.target.y:.0f})"
            )
        if event.mask:
            rects = "; ".join(f"{x0},{y0}..{x1 - 1},{y1 - 1}" for x0, y0, x1, y1 in event.mask)
            self.log_line(f"  mask: {rects}")
        for w in event.warnings:
            self.log_line(f"  [yellow]! {escape(w)}[/]")
        self.query_one("#bar", ProgressBar).update(total=self.options.steps, progress=0)
        self.view = replace(self.view, live=LiveDrag(planned=event))

    def show_step(self, event: Step) -> None:
        self.last_step = event
        live = self.view.live or LiveDrag()
        if event.image is not None and self.timings.first_preview_at is None:
            self.timings.first_preview_at = time.perf_counter()
        # The screen follows the drag a few times a second, and at once for a new frame: every
        # repaint holds the interpreter lock that the drag's thread needs between its torch calls.
        now = time.perf_counter()
        if event.image is None and now - self.timings.last_redraw < REDRAW_SECONDS:
            return
        self.timings.last_redraw = now
        self.set_progress(
            f"step {event.step + 1}/{event.max_steps} · {event.mean_distance:5.1f} px · {event.rate:4.1f} it/s"
        )
        self.query_one("#bar", ProgressBar).update(total=event.max_steps, progress=event.step + 1)
        self.view = replace(
            self.view,
            live=replace(live, points=event.points, image=event.image if event.image is not None else live.image),
        )

    def show_finished(self, event: Finished) -> None:
        assert self.session is not None
        entry = event.entry
        self.session.push(entry)
        self.journal_history()  # first: whatever happens next, this edit is kept
        short = "stopped" if entry.cancelled else "converged" if entry.converged else "step limit"
        if entry.verdict:
            # A failed drag is not "done": say so, and offer the undo.
            self.log_line(f"  [yellow]{escape(event.summary)}[/]")
            self.notify(
                f"{entry.verdict}.\nctrl+z undoes it.",
                title="Drag failed",
                severity="warning",
                timeout=10,
                markup=False,
            )
            short = "failed"
        else:
            self.log_line(f"  [green]done[/]: {escape(event.summary)}")
        dist = f"{entry.mean_distance:.1f} px" if entry.mean_distance is not None else ""
        self.set_progress(f"{short} · {steps_text(entry.steps)} · {dist} to go")
        bar = self.query_one("#bar", ProgressBar)
        # Converged or at its limit: full. Stopped by Esc: as far as it got.
        bar.update(
            total=bar.total or 1, progress=min(entry.steps, bar.total or 1) if entry.cancelled else bar.total or 1
        )
        if entry.verdict:
            self.set_hint(f"{entry.verdict}; ctrl+z undoes it.", error=True)
        else:
            self.set_hint("ctrl+b: before/after · ctrl+t: the drag's points · ctrl+z undoes it · ctrl+s saves")
        # The edited part in view; ctrl+t brings the points back.
        self.view = replace(
            self.view, live=None, manual=(), pending_handle=None, show_markers=False, revision=self.view.revision + 1
        )
        self.labels_need_keypoints()

    def show_refused(self, event: Refused) -> None:
        self.edit_done()
        self.log_line(f"  [red]{escape(clip(event.sentence, 300))}[/]")
        self.set_hint(clip(event.sentence, 300), error=True)
        if event.suggestions:
            self.query_one(CommandBar).history.extend(s for s in event.suggestions[:3] if s)

    def action_stop(self) -> None:
        """Stop the running edit (keeping its last frame), listening, or a half-drawn mask."""
        if self.busy:
            if self.backend.editor is not None:
                self.backend.editor.cancel()  # the one handle: before the drag starts, or during it
            self.log_line("[yellow]stopping…[/]")
            return
        if self.backend.recorder is not None:
            self.backend.recorder.stop()
            return
        if self.view.mask_corner is not None or self.view.pending_handle is not None:
            self.set_hint("")
            self.view = replace(self.view, mask_corner=None, pending_handle=None)
            return
        bar = self.query_one(CommandBar)
        if self.app.focused is not bar:
            bar.focus()

    def action_help(self) -> None:
        """List the commands and keys."""
        from voicedrag.tui.app import help_text

        self.log_line(help_text(self.image_size))

    def edit_done(self) -> None:
        self.set_progress("")
        self.view = replace(self.view, live=None)
