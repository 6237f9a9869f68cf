"""The 256-colour picture: dithered onto colours the output keeps, and nearer the saved PNG than rounding."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from voicedrag.tui.colors import as_terminal_shows, detect_color_system, dither_256, palette_256


def test_palette_colours_survive_the_output() -> None:
    pal = palette_256()
    assert 200 <= len(pal) <= 240
    assert np.array_equal(as_terminal_shows(pal[None]), pal[None])


def test_detection_reads_the_environment() -> None:
    assert detect_color_system({"COLORTERM": "truecolor", "TERM": "xterm-256color"}, ask=False) == "truecolor"
    assert detect_color_system({"TERM": "xterm-kitty"}, ask=False) == "truecolor"
    assert detect_color_system({"TERM": "screen-256color"}, ask=False) == "256"
    assert detect_color_system({"VOICEDRAG_COLORS": "256", "COLORTERM": "truecolor"}, ask=False) == "256"


def test_seed_2_dithered_is_nearer_the_png_than_rounded() -> None:
    pytest.importorskip("skimage")
    from scipy.ndimage import gaussian_filter
    from skimage.color import rgb2lab

    from voicedrag.models import embedded_model_path
    if not embedded_model_path().is_file():
        pytest.skip("the embedded model is not installed")
    from voicedrag.editor import Editor, load_kit

    _, image = Editor(load_kit("embedded", None)).seed(2, 0.7)

    def error(shown: np.ndarray) -> float:
        # The eye averages neighbouring cells: compare after a one-pixel blur, in Lab.
        a = rgb2lab(gaussian_filter(image / 255.0, (1, 1, 0)))
        b = rgb2lab(gaussian_filter(shown / 255.0, (1, 1, 0)))
        return float(np.linalg.norm(a - b, axis=2).mean())

    dithered = np.asarray(dither_256(Image.fromarray(image)))
    assert np.array_equal(as_terminal_shows(dithered), dithered)  # nothing is rounded again on output
    naive, ours = error(as_terminal_shows(image)), error(dithered)
    assert ours < 0.5 * naive and ours < 3.0, (ours, naive)
