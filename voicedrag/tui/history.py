"""The editor screen's history: undo, redo and reset (one method behind the three), seeds,
saving, and the views of the history (before/after, the drag's points, keypoint labels)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Literal

from voicedrag.tui import messages as m
from voicedrag.tui import workers
from voicedrag.tui.base import ScreenBase, clip, escape

Move = Literal["undo", "redo", "reset"]

# What each move says when it cannot happen, and how it reports the entry it reached.
_NOTHING: dict[Move, str] = {
    "undo": "nothing to undo.",
    "redo": "nothing to redo.",
    "reset": "the image is already the original.",
}


class HistoryActions(ScreenBase):
    def move(self, how: Move) -> None:
        """Undo, redo or reset (back to the original as a new step, so that an undo brings the
        edits back); the image, status and labels follow."""
        s = self.idle_session(how)
        if s is None:
            return
        reached = s.undo() if how == "undo" else s.redo() if how == "redo" else s.reset()
        if reached is None:
            self.set_hint(_NOTHING[how])
            return
        if how == "reset":
            self.log_line("reset to the original image (undo brings the edits back)")
        else:
            self.log_line(f"{how} → {escape(clip(s.current.label, 80))} ({s.index + 1}/{len(s.entries)})")
        self.reset_progress()
        self.history_changed()
        self.labels_need_keypoints()

    def action_undo(self) -> None:
        """Undo the last edit."""
        self.move("undo")

    def action_redo(self) -> None:
        """Redo the edit that was undone."""
        self.move("redo")

    def action_reset(self) -> None:
        """Back to the original image (undo brings the edits back)."""
        self.move("reset")

    # ------------------------------------------------------------ seeds

    def change_seed(self, seed: int) -> None:
        if self.session is None or self.backend.generator is None:
            self.set_hint("the model is still loading.", error=True)
            return
        if self.busy:
            self.set_hint("a drag is running; press Esc to stop it first.", error=True)
            return
        self.run_worker(
            partial(workers.new_seed, self.backend, seed, self.post_message),
            thread=True,
            group="seed",
            name="seed",
            exit_on_error=False,
        )

    def action_new_seed(self) -> None:
        """A new image (the next seed)."""
        if self.session is not None:
            self.change_seed(self.session.seed + 1)
        else:
            self.not_ready("draw a new seed from")

    def on_seed_ready(self, message: m.SeedReady) -> None:
        assert self.session is not None
        self.session.new_seed(message.seed, message.ws, message.image)
        if self.backend.editor is not None:
            # Keypoints of entries a new step cut off (the redo branch) are forgotten; the rest stay.
            self.backend.editor.forget(keep={e.id for e in self.session.entries})
        self.view = replace(self.view, manual=(), pending_handle=None)
        self.log_line(f"seed {message.seed}: new image (ctrl+z goes back to the previous one)")
        self.reset_progress()
        self.history_changed()
        self.labels_need_keypoints()

    # ------------------------------------------------------------ saving

    def action_save(self) -> None:
        """Save image, latent, edit history and the last drag's GIF."""
        s = self.idle_session("save")
        if s is None:
            return
        from engine.errors import UserError

        try:
            saved = s.save(s.default_folder(self.options.out_dir))
        except UserError as err:
            self.set_hint(str(err), error=True)
            self.notify(str(err), title="Not saved", severity="error", markup=False)
            return
        names = ", ".join(f.name for f in saved.files)
        self.log_line(f"[green]saved[/] {escape(names)} to {escape(str(saved.folder))}")
        self.notify(f"{names}\nin {saved.folder.resolve()}", title="Saved", timeout=10, markup=False)

    # ------------------------------------------------------------ views of the history

    def action_before_after(self) -> None:
        """Flip between the image before the last edit and after it."""
        s = self.idle_session("compare before and after")
        if s is None:
            return
        if self.before_entry() is None:
            self.set_hint("this is the first image; there is nothing before it to compare.")
            return
        before = not self.view.view_before
        self.set_hint(
            f"before '{clip(s.current.label, 60)}'; ctrl+b shows after" if before else "after; ctrl+b shows before"
        )
        self.view = replace(self.view, view_before=before)
        self.labels_need_keypoints()

    def action_markers(self) -> None:
        """Show or hide the finished drag's handle and target points."""
        shown = not self.view.show_markers
        self.set_hint(
            "the drag's points are shown (ctrl+t hides them)"
            if shown
            else "the drag's points are hidden (ctrl+t shows them)"
        )
        self.view = replace(self.view, show_markers=shown)

    def action_labels(self) -> None:
        """Show or hide the keypoint labels."""
        shown = not self.view.show_labels
        self.log_line(f"keypoint labels {'on' if shown else 'off'}")
        self.view = replace(self.view, show_labels=shown)
        self.labels_need_keypoints()
