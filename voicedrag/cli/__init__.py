"""The `voicedrag` command line: one subcommand per step of the pipeline.

Each module of `voicedrag/cli/` registers its subcommands with `register(sub)`
and keeps heavy imports (torch, whisper, ...) inside the functions that run
them, so that `voicedrag --help` and the TUI start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from engine.errors import UserError
from voicedrag import _interrupted_while_starting, _started_as_the_command  # the handler is installed there
from voicedrag.errors import VoicedragError

# Modules that contribute subcommands, in the order they appear in --help.
SUBCOMMAND_MODULES: list[str] = [
    "voicedrag.cli.engine",
    "voicedrag.cli.speech",
    "voicedrag.cli.demo",
    "voicedrag.cli.parse",
    "voicedrag.cli.edit",
    "voicedrag.cli.photo",
    "voicedrag.cli.keypoints",
    "voicedrag.cli.models",
    "voicedrag.cli.tui",
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("voicedrag")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicedrag",
        description="Speak or type an edit; the image changes the way DragGAN changes it.",
    )
    parser.add_argument("--version", action="version", version=f"voicedrag {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, KeyboardInterrupt
    argv = list(sys.argv[1:] if argv is None else argv)
    # `voicedrag`, `voicedrag tui ...` and `voicedrag --seed 3` (options alone) open the TUI.
    tui_options = bool(argv) and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")
    if not argv or argv[0] == "tui" or tui_options:
        # The TUI starts before the other subcommand modules are imported, so that it is on
        # screen at once; its workers import torch and the models in the background.
        from voicedrag.cli.tui import main_tui

        return main_tui(argv[1:] if argv and argv[0] == "tui" else argv)
    try:
        # Inside the try: a Ctrl-C while the subcommands' modules import is an interruption too.
        for arg in argv:
            # argparse drops a value of '--' given as `--seed=--` and passes an empty list on,
            # which would fail far from here; it is a missing value.
            if arg.startswith("--") and arg.endswith("=--"):
                raise VoicedragError(f"{arg[:-3]} needs a value; '--' is not one.")
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "run", None) is None:
            parser.print_help()
            return 0
        return int(args.run(args) or 0)
    except UserError as err:
        print(f"voicedrag: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("voicedrag: interrupted.", file=sys.stderr)
        if _started_as_the_command():
            # CPython ends the process by SIGINT at exit when a KeyboardInterrupt went through code it
            # evaluated itself (as some imports are), even one caught here; exit now, with 130.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except BrokenPipeError:
        # The reader went away (`voicedrag parse --json - | head -n 1`): it had what it wanted and
        # the files are written, so this is no failure; stdout is pointed at /dev/null so that the
        # interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
