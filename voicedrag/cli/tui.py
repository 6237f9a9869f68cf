"""`voicedrag tui`: the terminal UI (also what `voicedrag` with no arguments opens)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from engine.types import DEFAULT_PSI
from voicedrag.cli import argtypes

if TYPE_CHECKING:
    from voicedrag.tui.app import TuiOptions


class _Default(str):
    """A default value, told apart from the same text typed (--resume refuses only a --model given)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tui",
        help="open the terminal UI (the default with no arguments)",
        description="Speak or type edits and watch the drag in the terminal.",
    )
    add_arguments(p)
    p.set_defaults(run=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=_Default("embedded"), help="generator file (.pkl or .safetensors), or 'embedded'")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="seed of the first image (default 0)")
    p.add_argument(
        "--image",
        default=None,
        metavar="PHOTO",
        help="open this photo to edit (framed, put into the model; save writes it photo-sized)",
    )
    p.add_argument(
        "--template",
        default=None,
        metavar="T.json",
        help="keypoints taught with `voicedrag keypoints teach`, for a model without a detector",
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--steps", type=argtypes.steps, default=300, help="most drag steps per edit (default 300)")
    p.add_argument(
        "--psi", type=argtypes.psi, default=DEFAULT_PSI, help=f"truncation psi for seeds (default {DEFAULT_PSI})"
    )
    p.add_argument("--out", default="voicedrag-out", help="folder that saves go into (default ./voicedrag-out)")
    p.add_argument(
        "--renderer",
        default="auto",
        choices=["auto", "halfcell", "unicode", "sixel", "tgp"],
        help="how the image is drawn: auto picks Kitty or Sixel graphics when the terminal has them",
    )
    p.add_argument(
        "--colors",
        default="auto",
        choices=["auto", "truecolor", "256", "standard"],
        help="colours the terminal shows (auto: COLORTERM, TERM, terminfo and tmux say; "
        "256 dithers the picture onto the xterm palette)",
    )
    p.add_argument(
        "--confirm-voice",
        action="store_true",
        help="put a transcript in the command bar and wait for Enter instead of running it",
    )
    p.add_argument(
        "--no-paraphrase",
        action="store_true",
        help="read commands with the grammar alone (no sentence model; faster start, less forgiving)",
    )
    p.add_argument("--threads", type=argtypes.threads, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="restore a session that was cut short (its model, psi and history, undo included): DIR "
        "is its folder (default: the newest session in --out)",
    )


def options_from_args(args: argparse.Namespace) -> TuiOptions:
    from voicedrag.tui.app import TuiOptions

    return TuiOptions(
        model=args.model,
        seed=args.seed,
        device=args.device,
        steps=max(args.steps, 1),
        psi=args.psi,
        renderer=args.renderer,
        auto_run_voice=not args.confirm_voice,
        out_dir=args.out,
        threads=args.threads,
        paraphrase=not args.no_paraphrase,
        template=args.template,
        image=args.image,
        colors=args.colors,
    )


def run(args: argparse.Namespace) -> int:
    from voicedrag.tui.app import run_tui

    options = options_from_args(args)
    if args.resume is not None:
        import sys

        from voicedrag.journal import JournalError, check_model, find_journal, read_journal

        try:
            journaled = read_journal(find_journal(args.resume or args.out))
            check_model(None if isinstance(args.model, _Default) else args.model, journaled)
        except JournalError as err:
            print(f"voicedrag: {err}", file=sys.stderr)
            return 2
        options.resume = str(journaled.path)
        options.model, options.psi = journaled.model_ref, journaled.psi
        if args.template is None:
            options.template = journaled.template
    return run_tui(options)


def main_tui(argv: list[str]) -> int:
    """`voicedrag [tui [options]]`, parsed without importing the other subcommands."""
    parser = argparse.ArgumentParser(
        prog="voicedrag tui", description="Speak or type edits and watch the drag in the terminal."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
