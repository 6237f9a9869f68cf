"""Acceptance tests of the TUI: the app driven by Textual's Pilot on a tiny random generator."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from tui_helpers import idle, log_text, make_app, ready, save_tiny, type_command, wait_for

from voicedrag.tui.messages import Transcribed

SIZE = (120, 40)


@pytest.fixture(scope="module")
def model(tiny_generator, tmp_path_factory) -> Path:
    return save_tiny(tiny_generator, tmp_path_factory.mktemp("tui-model"))


@pytest.fixture(scope="module")
def slow_model(tiny_generator, tmp_path_factory) -> Path:
    """A model whose drags crawl (a tiny learning rate), for tests that act while a drag runs: each
    key a Pilot presses waits until the busy process looks idle (up to a second or two), and a
    drag at the usual rate could converge before the key arrives."""
    return save_tiny(tiny_generator, tmp_path_factory.mktemp("tui-slow"), drag={"lr": 1e-7})


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_typed_command_drags_and_changes_the_image(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            before = app.edit.session.current.image.copy()
            # Typed key by key, as a user would.
            app.query_one("#command").focus()
            await pilot.press(*"drag 10,10 to 14,16", "enter")
            await wait_for(pilot, lambda: app.edit.busy or len(app.edit.session.entries) > 1, what="the drag to start")
            await idle(pilot)
            s = app.edit.session
            assert len(s.entries) == 2 and s.index == 1
            entry = s.current
            assert entry.kind == "drag" and entry.label == "drag 10,10 to 14,16"
            assert entry.steps >= 1
            assert [(p.handle.x, p.handle.y, p.target.x, p.target.y) for p in entry.pairs] == [(10, 10, 14, 16)]
            assert np.abs(entry.image.astype(int) - before.astype(int)).mean() > 0.5
            # The pane shows the new image, not the old one.
            assert app.query_one("#image").image is entry.image
            text = log_text(app)
            # 12 steps on a random model do not get there: the log says so instead of "done".
            assert "point 1 (10,10)" in text and "(14,16)" in text and "did not converge" in text and "done" not in text
            assert app.query_one("#command").history[-1] == "drag 10,10 to 14,16"

    run(scenario())


def test_explicit_points_typed_clicked_and_by_keys(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "points 8,8>12,12; 20,20>20,16")
            assert app.edit.view.manual == (((8.0, 8.0), (12.0, 12.0)), ((20.0, 20.0), (20.0, 16.0)))
            await type_command(pilot, "clear")
            assert app.edit.view.manual == ()

            # Cursor and Enter: the cursor starts at the centre (16,16).
            pane = app.query_one("#image")
            pane.focus()
            await pilot.pause()
            assert pane.cursor == (16, 16)
            await pilot.press("right", "right", "right", "enter", "down", "down", "shift+down", "enter")
            assert app.edit.view.manual == (((19.0, 16.0), (19.0, 26.0)),)

            # Mouse: a click places a handle, the next its target.
            cols, rows = pane.grid
            await pilot.click("#picture", offset=(cols // 4, rows // 4))
            await pilot.click("#picture", offset=(cols // 4 + 4, rows // 4 + 2))
            assert len(app.edit.view.manual) == 2
            (hx, hy), (tx, ty) = app.edit.view.manual[1]
            assert abs(hx - 8) <= 1 and abs(hy - 8) <= 1.5, (hx, hy)
            assert tx > hx and ty > hy

            await pilot.press("ctrl+g")
            await idle(pilot)
            entry = app.edit.session.current
            assert entry.kind == "drag" and len(entry.pairs) == 2
            assert app.edit.view.manual == ()  # consumed by the drag

            # A point outside the image is refused with a sentence, not a traceback.
            await type_command(pilot, "points 8,8>40,40")
            hint = app.query_one("#hint")
            assert hint.has_class("error") and "outside the 32x32 image" in str(hint.render())

    run(scenario())


def test_mask_limits_the_drag(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "mask 0,0,15,15")
            assert app.edit.view.mask == ((0, 0, 16, 16),)
            await type_command(pilot, "drag 6,6 to 9,9")
            await idle(pilot)
            entry = app.edit.session.current
            assert entry.kind == "drag" and entry.mask == [(0, 0, 16, 16)]
            assert "mask: 0,0..15,15" in log_text(app)

            # Drawn with the keys: m at one corner, m at the other.
            pane = app.query_one("#image")
            pane.focus()
            await pilot.press("m", *["right"] * 4, *["down"] * 2, "m")
            assert app.edit.view.mask == ((16, 16, 21, 19),)
            await type_command(pilot, "mask off")
            assert app.edit.view.mask is None
            await type_command(pilot, "mask 0,0,40,10")
            assert app.edit.view.mask is None and "does not fit" in str(app.query_one("#hint").render())

    run(scenario())


def test_undo_redo_reset_by_keys_and_words(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            original = app.edit.session.current.image.copy()
            await type_command(pilot, "drag 10,10 to 13,13")
            await idle(pilot)
            edited = app.edit.session.current.image.copy()
            assert not np.array_equal(original, edited)

            await pilot.press("ctrl+z")
            assert app.edit.session.index == 0
            assert np.array_equal(app.query_one("#image").image, original)
            await pilot.press("ctrl+y")
            assert app.edit.session.index == 1 and np.array_equal(app.query_one("#image").image, edited)

            await type_command(pilot, "undo")
            await pilot.pause()
            assert app.edit.session.index == 0
            await type_command(pilot, "redo")
            await pilot.pause()
            assert app.edit.session.index == 1

            await pilot.press("ctrl+o")  # reset: a new step back to the original
            assert app.edit.session.index == 2 and np.array_equal(app.edit.session.current.image, original)
            await pilot.press("ctrl+z")
            assert np.array_equal(app.edit.session.current.image, edited)

            await pilot.press("ctrl+z", "ctrl+z")  # one more than there is
            assert app.edit.session.index == 0 and "nothing to undo" in str(app.query_one("#hint").render())

    run(scenario())


def test_escape_stops_a_drag_and_keeps_the_last_frame(slow_model: Path) -> None:
    async def scenario() -> None:
        app = make_app(slow_model, steps=5000)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "drag 4,4 to 28,28")
            await wait_for(pilot, lambda: app.edit.last_step is not None and app.edit.last_step.step >= 2,
                           what="a few drag steps")
            # Keys still work while the drag runs.
            await pilot.press("ctrl+l")
            assert app.edit.view.show_labels
            await pilot.press("escape")
            await idle(pilot, timeout=30)
            entry = app.edit.session.current
            assert entry.kind == "drag" and entry.cancelled and not entry.converged
            assert 2 <= entry.steps < 5000
            assert app.query_one("#image").image is entry.image
            assert "stopped; kept the last frame" in log_text(app)

    run(scenario())


def test_unknown_command_says_what_to_do_at_once(slow_model: Path) -> None:
    async def scenario() -> None:
        app = make_app(slow_model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "xyzzy")
            await wait_for(pilot, lambda: not app.edit.busy, timeout=30)
            await pilot.pause()
            hint = app.query_one("#hint")
            assert hint.has_class("error")
            assert "did you mean" in str(hint.render())
            assert len(app.edit.session.entries) == 1

            # A drag while another runs is refused with the way out.
            app.options.steps = 5000
            await type_command(pilot, "drag 4,4 to 28,28")
            await wait_for(pilot, lambda: app.edit.last_step is not None, what="the drag")
            await type_command(pilot, "drag 5,5 to 6,6")
            assert "press Esc" in str(hint.render())
            await pilot.press("escape")
            await idle(pilot)

    run(scenario())


def test_named_edit_without_keypoints_explains_itself(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "open the mouth")
            await idle(pilot)
            text = log_text(app)
            assert "edit open the mouth" in text
            # The tiny random generator draws no face: either no detector is installed yet, or it finds
            # no mouth; both end in a sentence that points to explicit drags, and no edit is made.
            hint = str(app.query_one("#hint").render())
            assert "drag 30,40 to 50,60" in hint or app.edit.session.current.kind == "drag", hint

    run(scenario())


def test_transcript_is_run_as_if_spoken(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            app.edit.post_message(Transcribed("drag 10,12 to 12,15"))
            await wait_for(pilot, lambda: app.edit.busy or len(app.edit.session.entries) > 1, what="the spoken drag")
            await idle(pilot)
            assert app.edit.session.current.label == "drag 10,12 to 12,15"
            assert "heard drag 10,12 to 12,15" in log_text(app)

            # "undo" said aloud
            app.edit.post_message(Transcribed("undo"))
            await wait_for(pilot, lambda: app.edit.session.index == 0, what="the spoken undo")

        confirm = make_app(model, auto_run_voice=False)
        async with confirm.run_test(size=SIZE) as pilot:
            await ready(pilot)
            confirm.edit.post_message(Transcribed("drag 3,3 to 5,5"))
            await pilot.pause(0.1)
            bar = confirm.query_one("#command")
            assert bar.value == "drag 3,3 to 5,5" and len(confirm.edit.session.entries) == 1
            await pilot.press("enter")
            await wait_for(pilot, lambda: len(confirm.edit.session.entries) > 1, what="the confirmed drag")
            await idle(pilot)

    run(scenario())


def test_voice_key_without_microphone_gives_a_notice(model: Path) -> None:
    from voicedrag.speech.audio import microphone_status

    usable, message = microphone_status()
    if usable:
        pytest.skip("this machine has a microphone; the no-microphone notice cannot be shown")

    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("space")  # on the empty command bar: listen
            await wait_for(pilot, lambda: app.edit.voice_error is not None, timeout=30, what="the voice notice")
            assert app.edit.voice_error == message and " ".join(message.split()) in log_text(app)
            assert app.query_one("#command").value == ""
            app.edit.voice_error = None
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.edit.voice_error == message, timeout=30, what="the second notice")
            # Typing still works.
            await type_command(pilot, "points 1,1>2,2")
            assert app.edit.view.manual

    run(scenario())


def test_save_new_seed_and_history(model: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(model, out_dir=str(tmp_path / "out"))
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "drag 10,10 to 13,12")
            await idle(pilot)
            await pilot.press("ctrl+s")
            # The session's journal (session-<stamp>) shares the folder with the saves.
            folders = [p for p in (tmp_path / "out").iterdir() if not p.name.startswith("session-")]
            assert len(folders) == 1
            names = sorted(p.name for p in folders[0].iterdir())
            assert names == ["history.json", "image.png", "last_drag.gif", "latent.npy"]
            ws = np.load(folders[0] / "latent.npy")
            assert ws.shape == app.edit.session.current.ws.shape
            assert str(folders[0]).replace(" ", "") in log_text(app).replace(" ", "")  # wrapped in the pane

            first = app.edit.session.current.image.copy()
            await pilot.press("ctrl+n")
            await wait_for(pilot, lambda: app.edit.session.seed == 1, what="the new seed")
            assert not np.array_equal(app.edit.session.current.image, first)
            await pilot.press("ctrl+z")  # the previous image and its edits are still there
            await pilot.pause()
            assert app.edit.session.seed == 0 and np.array_equal(app.edit.session.current.image, first)
            await pilot.press("ctrl+y")
            await pilot.pause()
            await type_command(pilot, "seed 0")
            await wait_for(pilot, lambda: app.edit.session.seed == 0, what="seed 0")

            bar = app.query_one("#command")
            bar.focus()
            await pilot.press("up")
            assert bar.value == "seed 0"
            await pilot.press("up")
            assert bar.value == "drag 10,10 to 13,12"
            await pilot.press("down", "down")
            assert bar.value == ""

    run(scenario())


def test_missing_model_is_a_notice_and_the_app_stays_usable(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(tmp_path / "nothing.pkl")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.edit.model_error is not None, what="the load error")
            assert "no model file" in app.edit.model_error
            await type_command(pilot, "open the mouth")
            assert "no model is loaded" in str(app.query_one("#hint").render())
            await type_command(pilot, "help")
            assert "Commands" in log_text(app)

    run(scenario())


def test_commands_typed_while_loading_run_when_ready(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            # The UI takes keys before the model has loaded.
            await type_command(pilot, "drag 10,10 to 12,12")
            await ready(pilot)
            await wait_for(pilot, lambda: len(app.edit.session.entries) > 1, what="the queued drag")
            await idle(pilot)
            assert app.edit.session.current.label == "drag 10,10 to 12,12"

    run(scenario())


def test_command_palette_lists_every_action(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            titles = {c.title for c in app.get_system_commands(app.screen)}
            for needed in ("Undo", "Redo", "Reset", "New seed", "Save", "Keypoint labels", "Drag placed points",
                           "Clear points", "Clear mask", "Voice: start or stop listening", "Stop the drag",
                           "Help", "Place points on the image"):
                assert needed in titles
            # Every key binding of the app has a palette entry too.
            callbacks = {c.callback.__name__ for c in app.get_system_commands(app.screen)}
            for binding in app.BINDINGS:
                assert f"action_{binding.action}" in callbacks or binding.action == "quit", binding.action
            assert any(t.lower().startswith("quit") for t in titles)

    run(scenario())


def test_keypoint_labels_toggle(model: Path) -> None:
    from faceworld.render import render_seed

    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            # Keypoints as the detector reports them ({name: Point}), here the renderer's true ones.
            kp = render_seed(0, 32).keypoints
            app.edit.backend.editor.use_keypoints(app.edit.session.current.id, kp)
            await pilot.press("ctrl+l")
            await pilot.pause()
            labels = list(app.query(".kp-label"))
            # On a 32 px image some labels do not fit without overlapping and are left out.
            assert len(kp) // 2 <= len(labels) <= len(kp)
            assert {str(w.render()) for w in labels} >= {"nose tip", "chin"}
            spans = [(w.styles.offset.y.value, w.styles.offset.x.value, len(str(w.render()))) for w in labels]
            for i, (r1, x1, n1) in enumerate(spans):
                for r2, x2, n2 in spans[i + 1:]:
                    assert r1 != r2 or x1 + n1 <= x2 or x2 + n2 <= x1, "labels overlap"
            pane = app.query_one("#image")
            cols, rows = pane.grid
            for w in labels:
                assert 0 <= w.styles.offset.x.value < cols and 0 <= w.styles.offset.y.value < rows
            # No label covers a keypoint's dot (its own or another's).
            dots = {(min(int((p.y + 0.5) / 32 * rows), rows - 1), min(int((p.x + 0.5) / 32 * cols), cols - 1))
                    for p in kp.values()}
            for r, x, n in spans:
                covered = [(r, c) for c in range(int(x), int(x) + n) if (r, c) in dots]
                assert not covered, f"a label at row {r}, columns {x}..{x + n - 1} covers a dot"
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert not app.query(".kp-label")

    run(scenario())


def test_level_meter_follows_the_voice_worker_messages(model: Path) -> None:
    from voicedrag.tui.messages import VoiceLevel, VoiceState

    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            meter = app.query_one("#voice")
            app.edit.post_message(VoiceState("recording"))
            app.edit.post_message(VoiceLevel(0.5))
            await pilot.pause(0.05)
            text = str(meter.render())
            assert "REC" in text and text.count("█") == 10 and text.count("░") == 10
            app.edit.post_message(VoiceState("transcribing"))
            await pilot.pause(0.05)
            assert "transcribing" in str(meter.render())
            app.edit.post_message(VoiceState("idle"))
            await pilot.pause(0.05)
            assert "ctrl+r" in str(meter.render())

    run(scenario())


def test_naming_points_teaches_a_template_that_words_then_use(tiny_generator, tmp_path: Path) -> None:
    """On a model without a detector: 'name X' at the cursor or at coordinates teaches the session's
    template (saved in the out folder); a word edit is then planned from the taught points."""
    import json

    from engine import save_generator

    plain = save_generator(tiny_generator, tmp_path / "plain.safetensors")

    async def scenario() -> None:
        app = make_app(plain, out_dir=str(tmp_path / "out"))
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            names = [("left_eye_center", "6,12"), ("right_eye_center", "26,12"), ("upper_lip", "16,20"),
                     ("lower_lip", "16,21"), ("chin", "16,27"), ("mouth_left", "12,21")]
            for name, xy in names:
                await type_command(pilot, f"name {name} {xy}")
                await idle(pilot)
            app.query_one("#image").cursor = (20, 21)
            await type_command(pilot, "name mouth_right")
            await idle(pilot)
            text = log_text(app)
            assert "taught mouth_right at 20,21: the template knows 7 point(s)" in text
            saved = json.loads((tmp_path / "out" / "template.json").read_text())
            assert saved["samples"][-1]["points"]["mouth_right"]["xy"] == [20.0, 21.0]
            await type_command(pilot, "name nose 99,3")
            await idle(pilot)
            assert "outside the 32x32 image" in str(app.query_one("#hint").render())
            await type_command(pilot, "open the mouth")
            await idle(pilot)
            assert app.edit.session.current.kind == "drag"
            # Planned on the taught lips (the planner parts lips 1 px apart by half a pixel each).
            handles = sorted((p.handle.x, p.handle.y) for p in app.edit.session.current.pairs)
            assert handles == [(16.0, 19.5), (16.0, 21.5)], log_text(app)[-600:]

    run(scenario())


def test_naming_points_on_a_model_with_a_detector_says_it_is_not_needed(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "name nose 3,3")
            await idle(pilot)
            assert "has its own keypoint detector" in str(app.query_one("#hint").render())

    run(scenario())


def test_save_and_new_seed_without_a_model_say_that_none_is_loaded(tmp_path: Path) -> None:
    """Before, ctrl+s after a failed load said the model was 'still loading'."""
    async def scenario() -> None:
        app = make_app(tmp_path / "nothing.pkl")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.edit.model_error is not None, what="the load error")
            for key in ("ctrl+s", "ctrl+n"):
                await pilot.press(key)
                await pilot.pause()
                hint = str(app.query_one("#hint").render())
                assert "no model is loaded" in hint and "still loading" not in hint, hint

    run(scenario())


def test_help_examples_fit_the_loaded_image_and_quit_is_shown(model: Path) -> None:
    import re

    from voicedrag.tui.app import VoiceDragApp, help_text

    for size in ((32, 32), (64, 64), (512, 512)):
        numbers = [int(v) for v in re.findall(r"\d+", help_text(size).split("go ")[0].split("left\n")[1])]
        assert numbers and max(numbers) < size[0], (size, numbers)
    assert any(b.action == "quit" and b.show for b in VoiceDragApp.BINDINGS)

    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "help")
            text = log_text(app)
            assert "quit (ctrl+q)" in text and "mask 8,16,23,25" in text  # 32 px model: x, y in 0..31

    run(scenario())


def test_a_long_garbled_line_does_not_flood_the_log(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            before = len(log_text(app))
            await type_command(pilot, " ".join(["opn teh moth"] * 170)[:2000])
            await idle(pilot)
            added = log_text(app)[before:]
            assert len(added) < 1500, len(added)

    run(scenario())


def test_step_counts_read_as_english() -> None:
    from voicedrag.tui.base import steps_text

    assert steps_text(1) == "1 step" and steps_text(2) == "2 steps" and steps_text(0) == "0 steps"


def test_escape_closes_the_command_palette_and_tab_skips_the_log(model: Path) -> None:
    async def scenario() -> None:
        from textual.command import CommandPalette

        from voicedrag.tui.widgets import CommandBar, ImagePane

        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("ctrl+p")
            await pilot.pause()
            assert isinstance(app.screen, CommandPalette)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, CommandPalette)
            focused = []
            for _ in range(4):
                await pilot.press("tab")
                await pilot.pause()
                focused.append(type(app.focused))
            assert set(focused) <= {CommandBar, ImagePane}, focused

    run(scenario())


def test_undo_and_new_seed_clear_the_last_drags_status_and_a_busy_command_is_refused_in_the_log(
        model: Path) -> None:
    async def scenario() -> None:
        from textual.widgets import ProgressBar

        app = make_app(model, steps=12)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "drag 8,10 to 14,18")
            await idle(pilot)
            assert "12 steps" in str(app.query_one("#progress").render())
            app.edit.set_hint("did not converge: the handles ended far; ctrl+z undoes it.", error=True)
            await pilot.press("ctrl+z")
            await pilot.pause()
            assert str(app.query_one("#progress").render()).strip() == ""
            assert "did not converge" not in str(app.query_one("#hint").render())
            assert app.query_one("#bar", ProgressBar).progress == 0
            await type_command(pilot, "drag 8,10 to 14,18")
            await idle(pilot)
            await pilot.press("ctrl+n")
            await idle(pilot)
            assert str(app.query_one("#progress").render()).strip() == ""
            # A command typed while a drag runs is refused next to it in the log.
            from dataclasses import replace

            from voicedrag.tui.state import LiveDrag

            app.edit.view = replace(app.edit.view, live=LiveDrag())  # as while an edit runs
            await type_command(pilot, "smile")
            app.edit.view = replace(app.edit.view, live=None)
            assert "not run: a drag is running" in log_text(app).split("> smile")[-1]

    run(scenario())


def test_the_image_grows_back_when_the_terminal_is_enlarged(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            pane = app.query_one("#image")
            start = pane.grid
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            small = pane.grid
            await pilot.resize_terminal(200, 60)
            await pilot.pause()
            big = pane.grid
            assert small[0] < start[0] < big[0] and small[1] < start[1] < big[1], (start, small, big)

    run(scenario())


def test_a_handle_outside_the_mask_is_refused_as_the_cli_refuses_it(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model, steps=3)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "mask 0,0,10,10")
            await type_command(pilot, "drag 20,20 to 24,22")
            await idle(pilot)
            text = log_text(app)
            assert "the handle at 20,20 lies outside the mask" in text
            assert "after 3 steps" not in text  # refused, as the CLI refuses it
            await type_command(pilot, "drag 5,5 to 7,7")
            await idle(pilot)
            assert "handle at 5,5" not in log_text(app) and "after 3 steps" in log_text(app)

    run(scenario())


def test_markers_hide_when_a_drag_ends_and_before_after_flips(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model, steps=3)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            pane = app.query_one("#image")
            await pilot.press("ctrl+b")  # the first image: nothing before it
            await pilot.pause()
            assert not app.edit.view.view_before and "nothing before it" in str(app.query_one("#hint").render())
            await type_command(pilot, "drag 8,10 to 14,18")
            await idle(pilot)
            entry = app.edit.session.current
            # The edited part is in view: no handle or target marker on it.
            assert pane.overlay.handles == [] and pane.overlay.targets == []
            await pilot.press("ctrl+t")
            await pilot.pause()
            assert pane.overlay.handles == [(p.x, p.y) for p in entry.final_points]
            assert pane.overlay.targets == [(14.0, 18.0)]
            await type_command(pilot, "hide points")
            assert pane.overlay.handles == []
            # Before and after, by key and by word; the status says which is shown.
            await pilot.press("ctrl+b")
            await pilot.pause()
            assert pane.image is app.edit.session.entries[0].image
            assert "before" in str(app.query_one("#status").render())
            await pilot.press("ctrl+b")
            await pilot.pause()
            assert pane.image is entry.image and "before" not in str(app.query_one("#status").render())
            await type_command(pilot, "before")
            assert pane.image is app.edit.session.entries[0].image
            await type_command(pilot, "before")  # a word says which; it does not flip back
            assert pane.image is app.edit.session.entries[0].image
            await type_command(pilot, "after")
            assert pane.image is entry.image
            # Any change of state leaves the before view.
            await type_command(pilot, "before")
            await pilot.press("ctrl+z")
            await pilot.pause()
            assert not app.edit.view.view_before and pane.image is app.edit.session.current.image

    run(scenario())


def test_colour_system_is_applied_to_the_console(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model, colors="256")
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert app.console.color_system == "256"
            from voicedrag.tui.colors import palette_256

            # The picture is made of colours the 256-colour output keeps exactly.
            cells = app.query_one("#picture")._cells()  # each cell's upper and lower pixel, as drawn
            allowed = {tuple(c) for c in palette_256().tolist()}
            drawn = {tuple(c) for c in cells.reshape(-1, 3).tolist()}
            assert len(drawn) > 8 and drawn <= allowed
        app = make_app(model, colors="truecolor")
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert app.console.color_system == "truecolor"

    run(scenario())


def test_the_tui_without_a_terminal_says_so_and_exits() -> None:
    import subprocess
    import sys

    # stdout a pipe, stdin not a terminal: as under cron or CI.
    proc = subprocess.run([sys.executable, "-m", "voicedrag", "tui", "--model", "missing.pkl"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "needs a terminal" in proc.stderr and "\x1b[" not in proc.stdout + proc.stderr


def test_options_alone_open_the_tui(capsys: pytest.CaptureFixture[str]) -> None:
    from voicedrag.cli import main

    # `voicedrag --seed 3` is the TUI with a seed, not an unknown subcommand; under pytest
    # stdin is no terminal, so the TUI says so instead of starting.
    assert main(["--seed", "3"]) == 2
    assert "needs a terminal" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
