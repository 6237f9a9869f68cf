"""The CLI and the TUI consume one event stream: the same commands on the same image give the
same events (plans, outcomes and sentences), whichever front end shows them."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tui_helpers import idle, make_app, ready, type_command
from voicedrag.cli import main
from voicedrag.editor import Editor
from voicedrag.events import Control, EditEvent, EditRequest, Finished, Planned, Refused
from voicedrag.models import embedded_model_path

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not embedded_model_path().is_file(), reason="the embedded model is not installed")]

STEPS = 4
SEED = 3


@pytest.fixture
def streams(monkeypatch: pytest.MonkeyPatch) -> list[list[EditEvent]]:
    """Every edit's events, as the editor yielded them to whichever front end ran it."""
    recorded: list[list[EditEvent]] = []
    original = Editor.run

    def run(self: Editor, request: EditRequest) -> Iterator[EditEvent]:
        events: list[EditEvent] = []
        recorded.append(events)
        for event in original(self, request):
            events.append(event)
            yield event

    monkeypatch.setattr(Editor, "run", run)
    return recorded


def outcome(events: list[EditEvent]) -> Any:
    """What an edit came to, front-end independent: the plan and the drag's result, a refusal,
    or a control word."""
    last = events[-1]
    if isinstance(last, Refused):
        return ("refused", last.sentence)
    if isinstance(last, Control):
        return ("control", last.word)
    planned = next(e for e in events if isinstance(e, Planned))
    assert isinstance(last, Finished)
    entry = last.entry
    return ("dragged", planned.pairs, planned.names, planned.mask, planned.warnings,
            entry.steps, [(round(p.x, 3), round(p.y, 3)) for p in entry.final_points], entry.converged)


def cli(*args: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main([*args, "--model", "embedded", "--seed", str(SEED), "--steps", str(STEPS), "--device", "cpu",
                 "--out", str(tmp_path / "out.png")])
    return code, capsys.readouterr().err


def test_the_cli_and_the_tui_give_the_same_events(streams: list[list[EditEvent]], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # The CLI: each command on the seed's image.
    codes = [
        cli("edit", "--say", "open the mouth", tmp_path=tmp_path, capsys=capsys),
        cli("drag", "--points", "60,70>64,74", tmp_path=tmp_path, capsys=capsys),
        cli("edit", "--say", "xyzzy", tmp_path=tmp_path, capsys=capsys),
        cli("drag", "--points", "90,90>94,92", "--mask", "0,0,40,40", tmp_path=tmp_path, capsys=capsys),
        cli("edit", "--say", "undo the last edit", tmp_path=tmp_path, capsys=capsys),
    ]
    assert [c for c, _ in codes] == [0, 0, 2, 2, 2]
    cli_outcomes = [outcome(events) for events in streams]
    streams.clear()

    # The TUI: the same commands on the same image (each edit undone before the next).
    async def scenario() -> None:
        app = make_app("embedded", seed=SEED, steps=STEPS, paraphrase=True)  # as the CLI parses
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)
            for command in ["open the mouth", "undo", "drag 60,70 to 64,74", "undo", "xyzzy", "mask 0,0,40,40",
                            "drag 90,90 to 94,92", "mask off", "undo the last edit"]:
                await type_command(pilot, command)
                await idle(pilot)
            assert app.edit.session is not None and app.edit.session.index == 0  # undo went back each time

    asyncio.run(scenario())
    tui = [outcome(events) for events in streams]

    word, drag, refused, outside, undo = cli_outcomes
    assert word[0] == "dragged" and word == tui[0]
    assert drag[0] == "dragged" and drag == tui[1]
    assert refused == tui[2] and "did you mean" in refused[1]
    # Both refuse a handle outside the mask, with the same sentence; the CLI exits with it.
    assert outside == tui[3] and outside[1].startswith("the handle at 90,90 lies outside the mask")
    assert f"voicedrag: {outside[1]}" in codes[3][1]
    # A spoken-style "undo" is the TUI's to act on, and the CLI, which has no history, says it is no edit.
    assert tui[4] == ("control", "undo") and undo[0] == "refused" and "control word" in undo[1]
