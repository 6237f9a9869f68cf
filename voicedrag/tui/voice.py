"""The microphone on the editor screen: start and stop listening, the level meter, and the text
heard, which runs as if typed (or waits in the command bar for Enter)."""

from __future__ import annotations

from textual import on
from textual.worker import Worker, get_current_worker

from voicedrag.tui import messages as m
from voicedrag.tui import workers
from voicedrag.tui.base import escape
from voicedrag.tui.stream import EditStream
from voicedrag.tui.widgets import CommandBar, LevelMeter


class VoiceInput(EditStream):
    voice_state: m.VoicePhase = "idle"
    voice_worker: Worker[None] | None = None
    voice_note = ""
    voice_error: str | None = None

    @on(CommandBar.VoiceKey)
    def on_voice_key(self) -> None:
        self.action_voice()

    def action_voice(self) -> None:
        """Start listening, or stop and transcribe when already listening."""
        recorder = self.backend.recorder
        if recorder is not None:
            recorder.stop()
            return
        if self.voice_worker is not None and self.voice_worker.is_running:
            self.set_hint("still working on the last recording…")
            return
        size = self.image_size  # read here, on the UI thread: spoken points are pixels of this image
        self.voice_worker = self.run_worker(
            lambda: self._voice_worker(size), thread=True, group="voice", name="voice", exit_on_error=False
        )

    def _voice_worker(self, size: tuple[int, int] | None) -> None:
        worker = get_current_worker()
        workers.voice(self.backend, self.post_message, lambda: worker.is_cancelled, size)

    def on_voice_state(self, message: m.VoiceState) -> None:
        self.voice_state = message.state
        self.query_one(LevelMeter).set_state(message.state, note=self.voice_note)

    def on_voice_level(self, message: m.VoiceLevel) -> None:
        if self.voice_state == "recording":
            self.query_one(LevelMeter).set_state("recording", message.level)

    def on_voice_failed(self, message: m.VoiceFailed) -> None:
        self.voice_error = message.error
        self.voice_note = f"[dim]voice: {escape(message.error)}[/]" if "microphone" in message.error.lower() else ""
        self.log_line(f"[yellow]voice: {escape(message.error)}[/]")
        self.notify(message.error, title="Voice", severity="warning", timeout=6, markup=False)

    def on_transcribed(self, message: m.Transcribed) -> None:
        bar = self.query_one(CommandBar)
        if self.options.auto_run_voice:
            self.submit(message.text, spoken=True)
        else:
            bar.value = message.text
            bar.cursor_position = len(message.text)
            bar.focus()
            self.log_line(f"[magenta]heard[/] {escape(message.text)} [dim](Enter runs it)[/]")
