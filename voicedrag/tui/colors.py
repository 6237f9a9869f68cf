"""How many colours the terminal shows, and pictures made for a 256-colour terminal.

A terminal that takes 24-bit colour gets the image as it is. One that takes
only the xterm 256-colour palette would otherwise get each pixel rounded, one
channel at a time, to the palette's 6x6x6 cube: brown hair turns olive and a
smooth cheek grows a yellow patch. There the picture is error-diffused
(Floyd-Steinberg) over exactly the palette colours the terminal output keeps,
so that a few neighbouring cells average to the true colour.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
from PIL import Image

COLOR_SYSTEMS = ("truecolor", "256", "standard")

# Terminals known to take 24-bit colour that do not all say so in COLORTERM.
_TRUECOLOR_TERMS = ("xterm-kitty", "xterm-ghostty", "alacritty", "foot", "wezterm", "contour", "iterm2")
_TRUECOLOR_PROGRAMS = ("iTerm.app", "WezTerm", "vscode", "Hyper", "ghostty", "Tabby", "rio")


def detect_color_system(environ: Mapping[str, str] | None = None, ask: bool = True) -> str:
    """'truecolor', '256' or 'standard' for the terminal described by `environ` (default: this process's).

    In order: VOICEDRAG_COLORS (an explicit choice); COLORTERM; terminals known to take 24-bit
    colour (TERM, TERM_PROGRAM, Windows Terminal, VTE >= 0.36, Konsole); the terminfo entry's RGB
    flag or 2**24 colours; inside tmux (when `ask`), whether tmux's client has the RGB feature;
    then the colour count in TERM's name, as the terminal libraries read it.
    """
    env = os.environ if environ is None else environ
    chosen = env.get("VOICEDRAG_COLORS", "").strip().lower()
    if chosen in COLOR_SYSTEMS:
        return chosen
    if env.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return "truecolor"
    term = env.get("TERM", "").strip().lower()
    if term.endswith("-direct") or term in _TRUECOLOR_TERMS or env.get("TERM_PROGRAM", "") in _TRUECOLOR_PROGRAMS:
        return "truecolor"
    if env.get("WT_SESSION") or env.get("KONSOLE_VERSION"):
        return "truecolor"
    vte = env.get("VTE_VERSION", "")
    if vte.isdigit() and int(vte) >= 3600:
        return "truecolor"
    if term and _terminfo_truecolor(term):
        return "truecolor"
    if ask and env.get("TMUX") and _tmux_client_rgb():
        return "truecolor"
    if term.endswith("256color") or term.endswith("256"):
        return "256"
    return "standard"


def _terminfo_truecolor(term: str) -> bool:
    """The terminfo entry for `term` declares direct colour (the RGB flag, or 2**24 colours)."""
    try:
        import curses

        curses.setupterm(term, os.open(os.devnull, os.O_WRONLY))
        return bool(curses.tigetflag("RGB") > 0 or curses.tigetnum("colors") >= 1 << 24)
    except Exception:  # noqa: BLE001 - no curses, no entry for this terminal: no answer from terminfo
        return False


def _tmux_client_rgb() -> bool:
    """Inside tmux: the attached client's terminal takes 24-bit colour (tmux >= 3.2 reports its features)."""
    tmux = shutil.which("tmux")
    if tmux is None:
        return False
    try:
        out = subprocess.run(
            [tmux, "display-message", "-p", "#{client_termfeatures}"],
            capture_output=True,
            text=True,
            timeout=0.5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "RGB" in out.split(",")


def _rich_index(rgb: tuple[int, ...]) -> int:  # (r, g, b)
    from rich.color import Color, ColorSystem

    number = Color.from_rgb(*rgb).downgrade(ColorSystem.EIGHT_BIT).number
    assert number is not None
    return number


@lru_cache(maxsize=1)
def palette_256() -> np.ndarray:
    """[N, 3] uint8: the xterm colours 16..255 that the terminal output keeps exactly.

    The output rounds every 24-bit colour to an xterm index (Rich's downgrade); a colour of the
    palette that rounds to another index (a grey of the cube that lands on the grey ramp) would
    drift, so only the fixed points are used. The 16 system colours are left out: terminals
    give them their own theme's values.
    """
    from rich.color import EIGHT_BIT_PALETTE

    keep = [tuple(EIGHT_BIT_PALETTE[i]) for i in range(16, 256)]
    keep = [c for c in keep if tuple(EIGHT_BIT_PALETTE[_rich_index(c)]) == c]
    return np.array(sorted(set(keep)), dtype=np.uint8)


def as_terminal_shows(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8: what a 256-colour terminal shows for `image` when it is sent as 24-bit colour
    and each pixel is rounded to the palette (no dithering). For tests and benchmarks."""
    from rich.color import EIGHT_BIT_PALETTE

    flat = image.reshape(-1, 3)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    shown = np.array([EIGHT_BIT_PALETTE[_rich_index(tuple(int(v) for v in c))] for c in colours], dtype=np.uint8)
    return shown[inverse.reshape(-1)].reshape(image.shape)


@lru_cache(maxsize=1)
def _palette_image() -> Image.Image:
    pal = palette_256()
    flat = pal.reshape(-1).tolist()
    flat += flat[:3] * (256 - len(pal))  # pad with the first colour: never nearer than itself
    img = Image.new("P", (1, 1))
    img.putpalette(flat)
    return img


def dither_256(image: Image.Image) -> Image.Image:
    """`image` (RGB) error-diffused onto `palette_256()`: every pixel is a colour the output keeps."""
    return image.convert("RGB").quantize(palette=_palette_image(), dither=Image.Dither.FLOYDSTEINBERG).convert("RGB")
