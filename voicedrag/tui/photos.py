"""A user's photo on the editor screen: `open FILE` (or `voicedrag tui --image FILE`) frames and
inverts it in a worker with a progress bar that Esc stops; the photo becomes a step of the history
(undo goes back to the image before it), its edits are pasted back into it, and save writes the
photo-sized result."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from textual.widgets import ProgressBar

from voicedrag.events import Inverting, PhotoOpened
from voicedrag.session import Entry
from voicedrag.tui import workers
from voicedrag.tui.base import escape
from voicedrag.tui.pointer import PointerInput
from voicedrag.tui.state import LiveDrag


class PhotoInput(PointerInput):
    def open_photo(self, path: str) -> None:
        """Put the photo at `path` into the model, as the next step of the history."""
        if self.idle_session("open a photo") is None or self.backend.editor is None:
            return
        self.backend.editor.begin()  # on the UI thread, so that an Esc right after is not lost
        self.log_line(f"opening {escape(Path(path).name)}: framing the face and putting it into the model…")
        self.set_progress("[yellow]framing…[/]")
        self.view = replace(self.view, live=LiveDrag(), view_before=False)
        self.run_worker(
            partial(workers.open_photo, self.backend, path, self.post_message),
            thread=True,
            group="drag",
            name="open photo",
            exit_on_error=False,
        )

    def show_inverting(self, event: Inverting) -> None:
        bar = self.query_one("#bar", ProgressBar)
        bar.update(total=max(event.total, 1), progress=event.step)
        self.set_progress(f"inverting ({event.phase}) · step {event.step}/{event.total} · {event.psnr:4.1f} dB")
        if event.image is not None:
            live = self.view.live or LiveDrag()
            self.view = replace(self.view, live=replace(live, image=event.image))

    def show_photo(self, event: PhotoOpened) -> None:
        assert self.session is not None
        photo = event.state
        entry = self.session.push(
            Entry(
                label=f"photo {Path(photo.path).name}",
                kind="photo",
                ws=photo.ws,
                image=photo.image,
                photo=photo,
                photo_image=photo.photo.rgb,
            )
        )
        if self.backend.editor is not None:
            # Words on the photo are planned from its own keypoints, not from the inversion's.
            self.backend.editor.use_keypoints(entry.id, photo.keypoints)
        for note in photo.photo.notes:
            self.log_line(f"  [yellow]! {escape(note)}[/]")
        how = "from the cache" if photo.cached else f"in {photo.seconds:.1f} s"
        w, h = photo.photo.size
        self.log_line(
            f"  [green]photo[/] {w}x{h}: framed and inverted {how}, {photo.psnr:.1f} dB "
            "(ctrl+z goes back to the image before it)"
        )
        self.set_progress("")
        self.set_hint("say or type an edit; save writes the photo with the edit pasted back")
        self.view = replace(self.view, live=None, manual=(), pending_handle=None, revision=self.view.revision + 1)
        self.labels_need_keypoints()
