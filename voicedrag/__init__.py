"""voicedrag: speak or type an edit; the image changes the way DragGAN changes it."""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum: int, frame: object) -> None:
    # A Ctrl-C before main() runs (while the package imports) ends as one sentence, not a traceback.
    # Nothing has been done yet, so the process ends at once: an exception raised here would surface
    # inside whatever module is importing, which may turn it into another error (numpy does).
    sys.stderr.write("voicedrag: interrupted.\n")
    sys.stderr.flush()
    os._exit(130)


def _started_as_the_command() -> bool:
    # Only the `voicedrag` command (or `python -m voicedrag`) gets the handler: importing this
    # package from other code must not change how that program answers Ctrl-C.
    first = sys.argv[0] if sys.argv else ""
    return (
        first == "-m"
        or first.replace("\\", "/").endswith(("/voicedrag", "voicedrag/__main__.py"))
        or first == "voicedrag"
    )


# OpenMP's threads wait for work passively rather than spinning. A spinning thread holds its core
# between operations; beside one other busy process on two cores, the engine's step then waits
# for the scheduler, and the drag lost twice what the plain loop lost. Measured on this 2-core
# CPU under load: a 256-channel 3x3 convolution at 64 px took 102-105 ms spinning and 62-66 ms
# passive (benchmarks/drag_speed.py --load). Set before torch loads, and only for the command:
# importing the package from other code leaves that program's threads as they were.
if _started_as_the_command():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Installed at the first import of the package (the command's first line imports it), so that the
# window in which Ctrl-C still meets Python's default handler is as short as it can be.
if _started_as_the_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
