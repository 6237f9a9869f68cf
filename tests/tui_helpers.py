"""Shared pieces of the TUI tests: a tiny generator on disk and waiting helpers."""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from voicedrag.tui.app import TuiOptions, VoiceDragApp


def save_tiny(generator: object, folder: Path, drag: dict[str, object] | None = None) -> Path:
    """The tiny generator as a voicedrag model file; `drag` replaces its drag settings."""
    import json

    from engine import save_generator

    # Named a face-world kit, as the embedded model is, so that words are planned on it.
    path = save_generator(generator, folder / "tiny32.safetensors",  # type: ignore[arg-type]
                          extra={"kit": {"rules": "face", "detector": "faceworld"}})
    if drag is not None:
        config = path.with_suffix(".json")
        meta = json.loads(config.read_text())
        meta["config"]["drag"] = drag
        config.write_text(json.dumps(meta))
    return path


def scratch_folder() -> str:
    """A folder of this test process (removed when it ends), where an app's session journal goes
    unless the test names its own --out."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.TemporaryDirectory(prefix="voicedrag-tui-tests-")
    return tempfile.mkdtemp(dir=_SCRATCH.name)


_SCRATCH: tempfile.TemporaryDirectory[str] | None = None


def make_app(model: Path | str, **overrides: object) -> VoiceDragApp:
    opts = dict(model=str(model), steps=12, renderer="halfcell", preload_parser=False, paraphrase=False,
                preview_seconds=0.0, load_delay=0.0)
    if "out_dir" not in overrides:
        opts["out_dir"] = scratch_folder()
    opts.update(overrides)
    return VoiceDragApp(TuiOptions(**opts))  # type: ignore[arg-type]


async def wait_for(pilot: Pilot, cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


async def ready(pilot: Pilot) -> VoiceDragApp:
    app = pilot.app
    assert isinstance(app, VoiceDragApp)
    await wait_for(pilot, lambda: app.edit.session is not None or app.edit.model_error is not None, what="the model")
    assert app.edit.model_error is None, app.edit.model_error
    app.query_one("#command").cursor_blink = False  # a blinking cursor would make snapshots depend on timing
    await pilot.pause()
    return app


async def type_command(pilot: Pilot, text: str) -> None:
    app = pilot.app
    bar = app.query_one("#command")
    bar.focus()
    bar.value = text  # typing letter by letter is slow and tested once on its own
    await pilot.press("enter")


async def idle(pilot: Pilot, timeout: float = 90.0) -> None:
    app = pilot.app
    await pilot.pause()
    await wait_for(pilot, lambda: not app.edit.busy, timeout, "the drag to finish")  # type: ignore[attr-defined]
    await pilot.pause()


def log_text(app: VoiceDragApp) -> str:
    """The log pane's text, with its wrapped lines joined again (so a long sentence can be searched for)."""
    log = app.query_one("#log")
    return " ".join(" ".join(line.text for line in log.lines).split())  # type: ignore[attr-defined]
