"""Nothing a user types, points at or names loses their work: the TUI's edge (an exception in a
handler is one sentence and the session goes on), its journal (a session survives the process,
kill -9 included) and terminals that cannot tell their cell size."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

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
