"""Nothing a user types, points at or names loses their work: the TUI's edge (an exception in a
handler is one sentence and the session goes on), its journal (a session survives the process,
kill -9 included) and terminals that cannot tell their cell size."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path

import numpy as np
import pytest
from textual.pilot import Pilot
from tui_helpers import idle, log_text, make_app, ready, save_tiny, type_command, wait_for

from voicedrag.journal import JOURNAL, JournalError, check_model, find_journal, read_journal

SIZE = (120, 40)
BUG = "this is a bug, please report it"


@pytest.fixture(scope="module")
def model(tiny_generator, tmp_path_factory) -> Path:
    return save_tiny(tiny_generator, tmp_path_factory.mktemp("robust-model"))


@pytest.fixture(scope="module")
def plain(tiny_generator, tmp_path_factory) -> Path:
    """A model without a keypoint detector, where 'name' teaches points."""
    from engine import save_generator

    return save_generator(tiny_generator, tmp_path_factory.mktemp("robust-plain") / "plain.safetensors")


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def journal_of(out: Path) -> Path:
    return find_journal(out)


# --------------------------------------------------------------------------- the app's edge


def test_an_exception_in_a_handler_is_one_sentence_and_the_session_goes_on(model: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from voicedrag.tui.screen import EditScreen

    def boom(self: EditScreen) -> None:
        raise RuntimeError("labels exploded")

    async def scenario() -> None:
        app = make_app(model, steps=2)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "drag 10,10 to 13,13")
            await idle(pilot)
            entries = list(app.edit.session.entries)
            monkeypatch.setattr(EditScreen, "action_labels", boom)
            await type_command(pilot, "labels")  # a typed command: the screen's handler
            await pilot.press("ctrl+l")  # a key: the app's binding runs the action
            await pilot.pause()
            text = log_text(app)
            assert "the command 'labels' failed (RuntimeError: labels exploded" in text and BUG in text
            assert "the key ctrl+l failed (RuntimeError: labels exploded" in text
            assert app.is_running and app.edit.session.entries == entries
            # A timer's callback is not a handler: Textual's own last resort, which goes on too.
            app.set_timer(0.01, lambda: 1 / 0)
            await pilot.pause(0.1)
            assert "the screen failed (ZeroDivisionError" in log_text(app)
            # A worker that ends in an exception is reported, not lost without a word.
            app.edit.run_worker(lambda: [][1], thread=True, name="probe", exit_on_error=False)
            await wait_for(pilot, lambda: "the probe worker failed (IndexError" in log_text(app), what="the report")
            # Still responsive: the next commands work and the history is whole.
            await type_command(pilot, "undo")
            assert app.edit.session.index == 0 and app.edit.session.entries == entries
            assert (app.edit.journal.folder / "errors.log").read_text().count("Traceback") == 4

    run(scenario())


def test_a_failing_edit_event_does_not_leave_the_screen_busy(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voicedrag.tui.stream import EditStream

    def boom(self: EditStream, event: object) -> None:
        raise ValueError("no plan today")

    async def scenario() -> None:
        app = make_app(model, steps=2)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            monkeypatch.setattr(EditStream, "show_planned", boom)
            await type_command(pilot, "drag 10,10 to 13,13")
            await idle(pilot)
            assert "showing the edit's planned event failed (ValueError: no plan today" in log_text(app)
            monkeypatch.undo()
            assert not app.edit.busy and len(app.edit.session.entries) == 2  # its Finished still arrived
            await type_command(pilot, "drag 12,12 to 15,15")
            await idle(pilot)
            assert len(app.edit.session.entries) == 3

    run(scenario())


def test_a_view_that_cannot_be_drawn_is_reported_and_the_next_commands_work(model: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from voicedrag.tui import widgets

    drawn = widgets.compose

    def fails_with_a_mask(image: np.ndarray, size: tuple[int, int], overlay: object) -> object:
        if getattr(overlay, "mask", None):
            raise ValueError("cannot draw this mask")
        return drawn(image, size, overlay)  # type: ignore[arg-type]

    async def scenario() -> None:
        app = make_app(model, steps=2)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            monkeypatch.setattr(widgets, "compose", fails_with_a_mask)
            await type_command(pilot, "mask 0,0,20,20")
            # The edit starts, its view fails to draw, and so does the report's own redraw: the
            # screen must not be left busy, nor its message loop stopped.
            await type_command(pilot, "drag 10,10 to 13,13")
            await idle(pilot)
            assert log_text(app).count("cannot draw this mask") >= 2 and app.is_running
            monkeypatch.undo()
            await type_command(pilot, "mask off")
            await type_command(pilot, "drag 10,10 to 13,13")
            await idle(pilot)
            assert app.edit.session.current.label == "drag 10,10 to 13,13"

    run(scenario())


def test_a_mask_narrower_than_a_display_pixel_is_drawn() -> None:
    from voicedrag.tui.overlay import Overlay, compose

    image = np.zeros((128, 128, 3), np.uint8)
    for rect in [(23, 23, 24, 24), (0, 0, 1, 128), (127, 127, 128, 128)]:
        picture = compose(image, (56, 112), Overlay(mask=[rect]))
        assert picture.size == (56, 112)


def test_an_exception_while_composing_keeps_textuals_behaviour(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voicedrag.tui.screen import EditScreen

    def broken(self: EditScreen) -> object:
        raise RuntimeError("no layout")

    monkeypatch.setattr(EditScreen, "compose", broken)

    async def scenario() -> None:
        app = make_app(model)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()

    with pytest.raises(RuntimeError, match="no layout"):
        run(scenario())


@pytest.mark.parametrize("text,hint", [
    ("mask 0,0," + "1" * 400 + ",5", "finite numbers"),
    ("seed " + "9" * 400, "seed is a whole number"),
    ("seed 4294967296", "seed is a whole number"),
    ("seed -1", "seed is a whole number"),
    ("steps " + "9" * 400, "from 1 to 100000 steps"),
    ("steps 0", "from 1 to 100000 steps"),
    ("name x " + "9" * 400 + ",3", "outside the 32x32 image"),
    ("name " + "x" * 60, "at most 40 characters"),
    ("points " + "1,1>2,2;" * 40, "at most 32"),
    ("points " + "1" * 400 + ",1>2,2", "use x in 0..31 and y in 0..31"),
    ("x" * 100_000, "at most 1000"),
    ("open the [/b] mouth [@click=app.quit]now[/]", ""),
])
def test_commands_out_of_range_are_one_sentence(plain: Path, text: str, hint: str) -> None:
    async def scenario() -> None:
        app = make_app(plain, steps=2)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, text)
            await idle(pilot)
            shown = str(app.query_one("#hint").render())
            assert hint in shown, shown
            assert BUG not in log_text(app) and app.is_running and len(app.edit.session.entries) == 1

    run(scenario())


def test_control_characters_never_reach_the_screen(model: Path) -> None:
    async def scenario() -> None:
        app = make_app(model, steps=2)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            bar = app.query_one("#command")
            bar.focus()
            await pilot.press("a")
            bar.insert_text_at_cursor("\x1b[2J\x07\ud800b\tc")  # as a paste inserts it
            assert bar.value == "a\ufffd[2J\ufffd\ufffdb c"
            await pilot.press("enter")
            await idle(pilot)
            text = log_text(app)
            assert "\x1b" not in text and "\x07" not in text and "a\ufffd[2J" in text

    run(scenario())


# --------------------------------------------------------------------------- the journal


def test_the_journal_brings_a_session_back_with_its_undo(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first: dict[str, object] = {}

    async def before() -> None:
        app = make_app(model, steps=3, out_dir=str(out))
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_command(pilot, "mask 0,0,20,20")
            await type_command(pilot, "drag 10,10 to 13,13")
            await idle(pilot)
            await type_command(pilot, "drag 12,8 to 12,5")
            await idle(pilot)
            await pilot.press("ctrl+n")
            await wait_for(pilot, lambda: app.edit.session.seed == 1, what="the new seed")
            await pilot.press("ctrl+z")  # back to the second drag; the new seed is the redo
            s = app.edit.session
            first.update(labels=[e.label for e in s.entries], kinds=[e.kind for e in s.entries], index=s.index,
                         images=[e.image.copy() for e in s.entries], ws=[e.ws.copy() for e in s.entries],
                         pairs=[e.pairs for e in s.entries], masks=[e.mask for e in s.entries],
                         folder=app.edit.journal.folder)

    run(before())
    folder = first["folder"]
    assert isinstance(folder, Path) and folder.parent == out and folder.name.startswith("session-")
    assert sorted(p.name for p in folder.iterdir()) == [JOURNAL, "latents"]  # no images: they are drawn again
    assert len(list((folder / "latents").iterdir())) == 4
    record = json.loads((folder / JOURNAL).read_text())
    assert record["index"] == 2 and record["commands"][-2:] == ["drag 10,10 to 13,13", "drag 12,8 to 12,5"]

    async def after() -> None:
        app = make_app(model, steps=3, out_dir=str(out), resume=str(journal_of(out)))
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            s = app.edit.session
            assert [e.label for e in s.entries] == first["labels"] and s.index == first["index"]
            assert [e.kind for e in s.entries] == first["kinds"]
            # Drawn again from the latents, bit for bit (a drag's image is the drag's own render).
            for got, want in zip(s.entries, first["images"], strict=True):  # type: ignore[call-overload]
                assert np.array_equal(got.image, want)
            for got, want in zip(s.entries, first["ws"], strict=True):  # type: ignore[call-overload]
                assert np.array_equal(got.ws, want)
            assert [e.pairs for e in s.entries] == first["pairs"] and [e.mask for e in s.entries] == first["masks"]
            assert "resumed the session" in log_text(app) and "differ" not in log_text(app)
            assert np.array_equal(app.query_one("#image").image, s.current.image)
            bar = app.query_one("#command")
            bar.focus()
            await pilot.press("up")
            assert bar.value == "drag 12,8 to 12,5"  # the typed lines come back to the recall
            await pilot.press("ctrl+z")
            assert s.index == 1 and np.array_equal(s.current.image, first["images"][1])  # type: ignore[index]
            await pilot.press("ctrl+y", "ctrl+y")
            assert s.index == 3 and s.seed == 1
            await pilot.press("ctrl+z", "ctrl+z")
            # A new edit cuts the redo branch, here and on disk: the journal goes on in the same folder.
            await type_command(pilot, "drag 9,9 to 11,11")
            await idle(pilot)
            assert [e.label for e in s.entries][-1] == "drag 9,9 to 11,11" and len(s.entries) == 3
            assert app.edit.journal.folder == folder

    run(after())
    again = read_journal(folder / JOURNAL)
    assert [e.record["label"] for e in again.entries] == [*first["labels"][:2], "drag 9,9 to 11,11"]  # type: ignore[index]
    assert len(list((folder / "latents").iterdir())) == 3  # the cut branch's latents are gone
    assert sorted(p.parent.name for p in out.glob(f"*/{JOURNAL}")) == [folder.name]


def test_damaged_journals_are_refused_in_one_sentence(model: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from voicedrag.cli.tui import main_tui
    from voicedrag.journal import Journal
    from voicedrag.session import Session

    ws = np.zeros((1, 4, 8), np.float32)
    session = Session(3, ws, np.zeros((8, 8, 3), np.uint8), model="m")
    journal = Journal.start(tmp_path / "out", str(model), 0.7)
    journal.sync(session, ["seed 3"])
    path = journal.path
    good = read_journal(find_journal(tmp_path / "out"))
    assert good.model_ref == str(model.resolve()) and good.index == 0 and good.commands == ["seed 3"]
    check_model(str(model), good)
    check_model(None, good)
    with pytest.raises(JournalError, match="was made with the model .* resume it without --model"):
        check_model("embedded", good)

    def refused(change: object, pattern: str) -> None:
        record = json.loads(path.read_text())
        text = change(record) if callable(change) else change
        path.write_text(text if isinstance(text, str) else json.dumps(record))
        with pytest.raises(JournalError, match=pattern) as err:
            read_journal(path)
        assert "\n" not in str(err.value) and ("--resume" in str(err.value) or "update" in str(err.value))
        journal._written = None
        journal.sync(session, ["seed 3"])  # whole again for the next case

    refused('{"format": "voicedrag-journal", "vers', "damaged .*not JSON")
    refused("[1, 2]", "not a voicedrag session journal")
    refused(lambda r: r.update(version=99), "newer voicedrag")
    refused(lambda r: r.update(index=5), "position in the history is out of range")
    refused(lambda r: r.update(entries=[]), "holds no history")
    refused(lambda r: r["entries"][0].update(latent="../../etc/passwd"), "not one in latents/")
    refused(lambda r: r["entries"][0].update(pairs=[{"handle": [1e999, 2], "target": [1, 2]}]), "finite")
    refused(lambda r: r["entries"][0].update(seed=-1), "seed")
    latent = path.parent / good.entries[0].record["latent"]
    latent.write_bytes(latent.read_bytes()[:40])
    with pytest.raises(JournalError, match="entry 1"):
        read_journal(path)
    latent.unlink()
    with pytest.raises(JournalError, match=r"\.npy of entry 1 is missing"):
        read_journal(path)
    with pytest.raises(JournalError, match="no session journal in"):
        find_journal(tmp_path)
    with pytest.raises(JournalError, match="there is no folder"):
        find_journal(tmp_path / "nowhere")

    # The command line says it before any window opens: one line, exit 2.
    assert main_tui(["--resume", str(tmp_path / "nowhere")]) == 2
    assert main_tui(["--resume", str(path.parent)]) == 2
    assert main_tui(["--out", str(tmp_path / "empty"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("voicedrag: ") for line in err), err
    assert "missing" in err[1]


def test_a_drag_image_is_the_render_of_its_latent(model: Path, tmp_path: Path) -> None:
    """The journal keeps no images: a drag's image must be exactly what its final latent draws."""
    from engine.types import DragPair, Point
    from voicedrag.editor import Editor, load_kit
    from voicedrag.events import EditRequest, Finished, ImageState
    from voicedrag.journal import Journal
    from voicedrag.session import Session
    from voicedrag.tui.workers import restore_journal

    editor = Editor(load_kit(str(model), "cpu"), paraphrase=False)
    ws, image = editor.seed(0)
    session = Session(0, ws, image)
    for handle, target in [((10, 10), (14, 16)), ((20, 8), (17, 8))]:
        current = session.current
        request = EditRequest(ImageState(current.ws, current.image), pairs=(DragPair(Point(*handle), Point(*target)),))
        finished = list(editor.run(request))[-1]
        assert isinstance(finished, Finished)
        session.push(finished.entry)
    session.reset()
    journal = Journal.start(tmp_path, str(model), 0.7)
    journal.sync(session)
    restored = restore_journal(editor, str(journal.path))
    assert (restored.redrawn, restored.differ) == (3, 0)  # the reset is a copy of the seed's image
    for got, want in zip(restored.session.entries, session.entries, strict=True):
        assert np.array_equal(got.image, want.image) and got.kind == want.kind


# --------------------------------------------------------------------------- terminals


def _reprobe(monkeypatch: pytest.MonkeyPatch, winsize: tuple[int, int, int, int], query: object) -> object:
    """widgets.probe_terminal as in a terminal with this TIOCGWINSZ answer, whose size query does `query`."""
    import contextlib

    from textual_image import _terminal

    from voicedrag.tui import widgets

    class Tty:
        closed = False

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    @contextlib.contextmanager
    def capture(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        yield query()  # type: ignore[operator]

    monkeypatch.setattr(sys, "__stdout__", Tty())
    monkeypatch.setattr(_terminal, "get_tiocgwinsz", lambda: winsize)
    monkeypatch.setattr(_terminal, "capture_terminal_response", capture)
    monkeypatch.delattr(_terminal.get_cell_size, "_result", raising=False)
    found = widgets.probe_terminal()
    monkeypatch.setattr(widgets, "CELL_MEASURED", found[1])
    return found


def test_a_terminal_that_does_not_answer_the_size_query_gets_a_typical_cell_silently(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    from voicedrag.tui import widgets

    def timeout() -> object:
        raise TimeoutError("Timeout waiting for data")

    def damaged() -> object:
        raise OSError(5, "Input/output error")

    for winsize, query in [((24, 80, 0, 0), timeout), ((0, 0, 0, 0), timeout), ((24, 80, 0, 0), damaged)]:
        module, measured = _reprobe(monkeypatch, winsize, query)  # type: ignore[misc]
        assert module is not None and measured is False
        assert widgets.cell_size() == widgets.DEFAULT_CELL
        assert widgets.renderer_class("auto") is widgets.HalfBlockPicture
        assert widgets.renderer_class("halfcell") is widgets.HalfBlockPicture
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "TimeoutError" not in out + err and "cell size" not in out + err

    # A terminal that tells its pixel size is measured, and 'auto' may use its graphics.
    module, measured = _reprobe(monkeypatch, (24, 80, 720, 432), timeout)  # type: ignore[misc]
    assert measured is True and widgets.cell_size() == (9, 18)


def test_a_pseudo_terminal_without_pixel_size_prints_nothing_before_the_app() -> None:
    """The real thing: textual-image's queries on a terminal that never answers them."""
    pty = pytest.importorskip("pty")
    assert pty
    code = ("import voicedrag.tui.widgets as w; "
            "print('PROBED', w.CELL_MEASURED, w.renderer_class('auto').__name__, w.cell_size())")
    for rows, cols in ((24, 80), (0, 0)):
        status, output = _in_pty([sys.executable, "-c", code], rows, cols, timeout=60)
        assert status == 0, output
        shown = output.decode("utf-8", "replace")
        assert "PROBED False HalfBlockPicture (10, 20)" in shown
        assert "Traceback" not in shown and "Failed" not in shown, shown


def _in_pty(argv: list[str], rows: int, cols: int, timeout: float) -> tuple[int, bytes]:
    """Run argv on a new pseudo-terminal of rows x cols cells and no pixel size that answers no query."""
    import fcntl
    import select
    import struct
    import subprocess
    import termios
    import time

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            cwd=Path(__file__).resolve().parents[1])
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready_fds, _, _ = select.select([master], [], [], 0.1)
            if ready_fds:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
        return proc.wait(), output
    finally:
        os.close(master)


class PtyApp:
    """`voicedrag tui` on a pseudo-terminal: keys are written to it, the screen's bytes read back."""

    def __init__(self, args: list[str], cwd: Path, rows: int = 40, cols: int = 120) -> None:
        import fcntl
        import struct
        import subprocess
        import termios
        import threading

        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
        env.pop("TEXTUAL", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "voicedrag", "tui", *args], stdin=slave, stdout=slave,
                                     stderr=slave, close_fds=True, cwd=cwd, env=env, start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, cond: object, timeout: float, what: str) -> None:
        import time

        deadline = time.monotonic() + timeout
        while not cond():  # type: ignore[operator]
            if self.proc.poll() is not None:
                raise AssertionError(f"voicedrag ended (exit {self.proc.returncode}) while waiting for {what}: "
                                     f"{bytes(self.output[-2000:])!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {bytes(self.output[-2000:])!r}")
            time.sleep(0.1)

    def shown(self, text: str) -> bool:
        return text.encode() in self.output

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        os.close(self.master)


def _journal_state(out: Path) -> tuple[int, int] | None:
    """(entries, index) of the newest journal in out, or None while there is none."""
    try:
        record = json.loads(find_journal(out).read_text())
    except (JournalError, ValueError, OSError):
        return None
    return len(record["entries"]), record["index"]


@pytest.mark.slow
def test_kill_9_during_a_drag_loses_only_that_drag(tiny_generator, tmp_path: Path) -> None:
    pytest.importorskip("pty")
    import signal

    # Drags that crawl (a tiny learning rate): the second one is still running when it is killed.
    slow = save_tiny(tiny_generator, tmp_path / "model", drag={"lr": 1e-7})
    out = tmp_path / "out"
    common = ["--out", str(out), "--renderer", "halfcell", "--no-paraphrase", "--steps", "4"]
    app = PtyApp(["--model", str(slow), *common], tmp_path)
    try:
        app.wait(lambda: _journal_state(out) == (1, 0), 120, "the model and the first journal")
        app.send("drag 10,10 to 14,16\r")
        app.wait(lambda: _journal_state(out) == (2, 1), 120, "the first edit in the journal")
        app.send("steps 100000\r")
        app.wait(lambda: app.shown("at most 100000 steps"), 30, "the step limit")
        app.send("drag 12,12 to 20,20\r")
        app.wait(lambda: app.shown("/100000"), 60, "the second drag to run")
        os.killpg(app.proc.pid, signal.SIGKILL)
        assert app.proc.wait() == -signal.SIGKILL
    finally:
        app.close()
    journaled = read_journal(find_journal(out))
    assert [e.record["label"] for e in journaled.entries] == ["seed 0", "drag 10,10 to 14,16"]

    again = PtyApp(["--resume", *common], tmp_path)  # no --model: the journal's own is loaded
    try:
        again.wait(lambda: again.shown("resumed"), 120, "the session to come back")
        again.wait(lambda: again.shown("edit 2/2"), 30, "the status of the restored history")
        again.send("undo\r")
        again.wait(lambda: _journal_state(out) == (2, 0), 30, "the undo in the journal")
        again.wait(lambda: again.shown("edit 1/2"), 30, "the status after the undo")
        again.send("\x11")  # ctrl+q
        again.wait(lambda: again.proc.poll() is not None, 30, "voicedrag to quit")
        assert again.proc.returncode == 0, bytes(again.output[-2000:])
    finally:
        again.close()
    assert "Traceback" not in bytes(again.output).decode("utf-8", "replace")


# --------------------------------------------------------------------------- typed lines, generated


def _typed_lines():  # type: ignore[no-untyped-def]
    """Hypothesis strategy: lines a user could type, paste or say, aimed at every command's grammar."""
    from hypothesis import strategies as st

    number = st.one_of(
        st.integers(0, 40).map(str),  # inside (and just outside) the 32 px image
        st.integers(-10**6, 10**6).map(str),
        st.integers(1, 400).map(lambda n: "9" * n),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["0", "-0", "31", "32", "4294967295", "4294967296", "1e400", "nan", "inf", "-inf",
                         "0x1f", "1_0", "½", "", "1.5", "-1.5", "00000007", "٣", "１２"]),
    )
    sep = st.sampled_from([",", " ", ", ", " ,", ";", "", "  "])
    rect = st.one_of(
        st.tuples(number, number, number, number),
        # reversed and empty rectangles inside the image
        st.tuples(st.integers(0, 31), st.integers(0, 31)).map(lambda t: (str(t[1]), str(t[0]), str(t[0]), str(t[1]))),
    )
    mask = st.tuples(st.sampled_from(["mask", "/mask", "MASK"]), rect, sep).map(
        lambda t: f"{t[0]} {t[2].join(t[1])}")
    pair = st.tuples(number, number, number, number, st.sampled_from([">", " > ", "->", " to "]))
    points = st.tuples(st.sampled_from(["points ", "point ", "/points ", ""]), st.lists(pair, min_size=1, max_size=40),
                       st.sampled_from([";", "; ", " and "])).map(
        lambda t: t[0] + t[2].join(f"{a},{b}{arrow}{c},{d}" for a, b, c, d, arrow in t[1]))
    drag = pair.map(lambda p: f"drag {p[0]},{p[1]} to {p[2]},{p[3]}")
    name = st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,60}", fullmatch=True), st.text(max_size=8))
    numbered = st.one_of(
        st.tuples(st.sampled_from(["seed", "steps", "/seed", "Steps"]), number).map(lambda t: f"{t[0]} {t[1]}"),
        st.tuples(name, st.one_of(st.just(""), st.tuples(number, number).map(lambda t: f" {t[0]},{t[1]}"))).map(
            lambda t: f"name {t[0]}{t[1]}"),
    )
    control = st.sampled_from([
        "undo", "redo", "reset", "save", "stop", "help", "new seed", "another face", "clear", "clear the points",
        "go", "run", "labels", "hide keypoints", "before", "after", "show the before", "show points", "hide markers",
        "mask off", "no mask", "/undo", "Undo.", "REDO!", "undo undo", "open the mouth", "smile", "close the left eye",
        "turn the head a little to the left", "raise the right ear by 1e400 px", "open the mouth by nan pixels",
    ])
    junk = st.one_of(
        st.text(max_size=60),
        st.text(st.characters(codec=None, categories=None), max_size=20),  # surrogates and controls too
        st.sampled_from(["\x1b[2J", "\x1b]0;title\x07", "\x1b[6n", "\x00", "\x7f", "\x9b31m", "\r\n", "\t", "\ud800",
                         "[b]", "[/]", "[/b]", "[@click=app.quit]x[/]", "[link=file:///etc/passwd]x", "\u202e",
                         "%s%n", "{0}", "\\", "'", '"', "😀" * 30, "ﷺ", "\u0301" * 50]),
        st.tuples(st.text(min_size=1, max_size=4), st.integers(100, 40_000)).map(lambda t: t[0] * t[1]),
    )
    grammar = st.one_of(mask, points, drag, numbered, control)
    return st.one_of(
        grammar, grammar, junk,
        st.lists(st.one_of(grammar, junk), min_size=2, max_size=3).map(" ".join),
        st.tuples(grammar, junk).map("".join),
    )


@pytest.mark.slow
def test_no_typed_line_ends_the_app_or_loses_its_history(model: Path, tmp_path: Path) -> None:
    """Thousands of generated lines typed into one app: after each it is alive and its history intact,
    no handler failed (every command validated what it was given) and a known command still works."""
    import contextvars

    import torch
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from voicedrag.tui.localcmd import read_local
    from voicedrag.tui.widgets import CommandBar
    from voicedrag.tui.workers import describe

    # One app for every example: its harness is entered once, in a context of its own, and each
    # example's lines run as a task in that context (Textual keeps the active app in context variables).
    threads = torch.get_num_threads()
    loop = asyncio.new_event_loop()
    context = contextvars.copy_context()
    app = make_app(model, steps=2, out_dir=str(tmp_path / "out"), threads=1)  # one thread: 20x faster drags here
    harness = app.run_test(size=SIZE)

    def in_app(coro: Coroutine[object, object, object]) -> object:
        return loop.run_until_complete(loop.create_task(coro, context=context))

    async def enter() -> Pilot:
        pilot = await harness.__aenter__()
        await ready(pilot)
        return pilot

    pilot = in_app(enter())
    assert isinstance(pilot, Pilot)
    bar = app.query_one(CommandBar)
    bugs: list[str] = []
    report = app.edit.report_bug
    app.edit.report_bug = lambda err, doing: (bugs.append(describe(err, doing)), report(err, doing))  # type: ignore[method-assign]
    app.exit = lambda *args, **kwargs: None  # type: ignore[method-assign] # a parsed 'quit' would end the run
    typed = [0]

    async def settle(line: str) -> None:
        # Until the known command has answered and nothing runs; without waiting for each frame
        # (a frame of this screen costs more than most commands), which come as they come.
        deadline = loop.time() + 60
        while app.options.steps != 2 or app.edit.busy or any(w.is_running for w in app.workers):
            assert loop.time() < deadline, f"{line[:200]!r}: the app did not answer the known command"
            await asyncio.sleep(0.002)

    async def drive(lines: list[str]) -> None:
        bugs.clear()  # each example on its own (Hypothesis runs a failing one again to shrink it)
        for n, line in enumerate(lines):
            local = read_local(line)
            if local is not None and local.word == "quit":
                continue  # quitting is not losing work
            s = app.edit.session
            before, at = [e.id for e in s.entries], s.index
            if n == 0:
                await type_command(pilot, line)  # through the keys
            else:
                bar.post_message(CommandBar.Submitted(bar, line))  # as Enter submits it, without a key's wait
            app.options.steps = 7
            # The known command, queued behind it: it must answer, and it keeps the drags short.
            bar.post_message(CommandBar.Submitted(bar, "steps 2"))
            await settle(line)
            typed[0] += 1
            assert app.is_running and app._exception is None, line[:200]
            assert not bugs, f"{line[:200]!r}: {bugs}"
            assert app.options.steps == 2, f"{line[:200]!r}: the known command after it did not run"
            s = app.edit.session
            now = [e.id for e in s.entries]
            assert now[: at + 1] == before[: at + 1] and 0 <= s.index < len(now), line[:200]
        await pilot.pause()  # every frame drawn: a sentence that fails to draw is a bug too
        assert not bugs, bugs

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(_typed_lines().map(lambda line: line[:100_000]), min_size=20, max_size=60))
    def typed_into_the_app(lines: list[str]) -> None:
        in_app(drive(lines))

    try:
        typed_into_the_app()
        # The journal on disk is the session in the app.
        assert app.edit.journal is not None
        journaled = read_journal(app.edit.journal.path)
        s = app.edit.session
        assert len(journaled.entries) == len(s.entries) and journaled.index == s.index
    finally:
        in_app(harness.__aexit__(None, None, None))
        loop.close()
        torch.set_num_threads(threads)
    assert typed[0] >= 1000, typed[0]
