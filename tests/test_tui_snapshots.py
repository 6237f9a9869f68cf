"""Snapshots of the TUI's main states (half-block images, so the output is the same on every terminal).

Regenerate after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs under tests/__snapshots__/ before committing them.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from tui_helpers import idle, make_app, ready, save_tiny, type_command, wait_for

SIZE = (120, 40)


@pytest.fixture(scope="module")
def model(tiny_generator, tmp_path_factory) -> Path:
    return save_tiny(tiny_generator, tmp_path_factory.mktemp("tui-snap"))


def test_ready(snap_compare, model: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)

    assert snap_compare(make_app(model), terminal_size=SIZE, run_before=before)


def test_after_a_drag(snap_compare, model: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await type_command(pilot, "drag 8,10 to 14,18")
        await idle(pilot)

    assert snap_compare(make_app(model, steps=3), terminal_size=SIZE, run_before=before)


def test_before_the_drag_with_its_points(snap_compare, model: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await type_command(pilot, "drag 8,10 to 14,18")
        await idle(pilot)
        await pilot.press("ctrl+b", "ctrl+t")  # the image before it, with where the drag started and aimed
        await pilot.pause()

    assert snap_compare(make_app(model, steps=3), terminal_size=SIZE, run_before=before)


def test_command_typed_during_a_drag(snap_compare, model: Path) -> None:
    async def before(pilot: Pilot) -> None:
        app = await ready(pilot)
        from dataclasses import replace

        from voicedrag.tui.state import LiveDrag

        # As while a drag runs: the command is refused next to it, in words.
        app.edit.view = replace(app.edit.view, live=LiveDrag())
        await type_command(pilot, "smile")
        await pilot.pause()

    assert snap_compare(make_app(model), terminal_size=SIZE, run_before=before)


def test_unknown_command(snap_compare, model: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await type_command(pilot, "xyzzy")
        await idle(pilot)

    assert snap_compare(make_app(model), terminal_size=SIZE, run_before=before)


def test_points_and_mask_by_hand(snap_compare, model: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await type_command(pilot, "mask 4,4,27,27")
        await type_command(pilot, "points 8,8>12,14; 24,20>20,20")
        pilot.app.query_one("#image").focus()
        await pilot.press("left", "left", "up", "up", "up", "enter")
        await pilot.pause()

    assert snap_compare(make_app(model), terminal_size=SIZE, run_before=before)


def test_keypoint_labels(snap_compare, model: Path) -> None:
    from faceworld.render import render_seed

    async def before(pilot: Pilot) -> None:
        app = await ready(pilot)
        app.edit.backend.editor.use_keypoints(app.edit.session.current.id, render_seed(0, 32).keypoints)  # as the detector reports them
        await pilot.press("ctrl+l")
        await pilot.pause()

    assert snap_compare(make_app(model), terminal_size=SIZE, run_before=before)


def test_help(snap_compare, model: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(model), terminal_size=SIZE, run_before=before)


def test_no_model(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: app.edit.model_error is not None)  # type: ignore[attr-defined]
        app.query_one("#command").cursor_blink = False
        await pilot.pause()

    # A fixed name, so that the message in the snapshot does not carry the temporary folder.
    assert snap_compare(make_app("missing-model.pkl"), terminal_size=SIZE, run_before=before)
