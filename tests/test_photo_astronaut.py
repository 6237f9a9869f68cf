"""A real photograph end to end: scikit-image's astronaut, with a random-weight official-size 512 px
StyleGAN2 standing in for FFHQ. Face mesh -> FFHQ framing -> a short inversion -> "smile" planned
from the photo's own keypoints -> drag -> paste back."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine import Generator, GeneratorConfig, MappingConfig
from engine.invert import InvertConfig
from keypoints.align import paste_back
from voicedrag.editor import Editor, KitSpec, kit_for_generator
from voicedrag.events import DragOptions, EditRequest, Finished, PhotoOpened, Planned

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None or importlib.util.find_spec("skimage") is None,
                       reason="needs the LiteRT runtime and scikit-image's photographs (pip install -e '.[dev]')"),
]


def official_512() -> Generator:
    """The paper's 512 px StyleGAN2 configuration (as FFHQ's), with random weights."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(z_dim=512, w_dim=512, img_resolution=512, channel_base=32768, channel_max=512,
                          num_fp16_res=4, conv_clamp=256, mapping=MappingConfig(num_layers=8))
    return Generator(cfg).eval().requires_grad_(False)


def test_the_astronaut_is_framed_inverted_smiled_and_pasted_back(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import skimage.data

    monkeypatch.setenv("VOICEDRAG_INVERSIONS", str(tmp_path / "inversions"))
    photo = skimage.data.astronaut()
    path = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(path)
    # The kit of a photo-real face model: the face mesh finds the parts, the face rules move them.
    editor = Editor(kit_for_generator(official_512(), name="ffhq-like", spec=KitSpec(rules="face", detector="face")),
                    paraphrase=False)
    events = list(editor.open_photo(path, InvertConfig(w_steps=2, wplus_steps=2, tune=False, start_candidates=0)))
    opened = events[-1]
    assert isinstance(opened, PhotoOpened), events[-1]
    state = opened.state
    assert state.image.shape == (512, 512, 3)
    # FFHQ's framing puts the eyes about 0.375 and 0.625 across the crop, a little above the middle.
    left, right = state.keypoints["left_eye_center"], state.keypoints["right_eye_center"]
    assert abs(left.x / 512 - 0.375) < 0.03 and abs(right.x / 512 - 0.625) < 0.03
    out = list(editor.run(EditRequest(editor.photo_state(state), text="smile", drag=DragOptions(max_steps=3))))
    planned = next(e for e in out if isinstance(e, Planned))
    # Planned from the photo's own mouth corners (found on the photo's crop, not on the inversion).
    corners = {n: p.handle for n, p in zip(planned.names, planned.pairs, strict=True)}
    assert {"mouth_left", "mouth_right"} <= set(corners)
    assert corners["mouth_left"].distance(state.keypoints["mouth_left"]) < 2.0
    finished = out[-1]
    assert isinstance(finished, Finished) and finished.entry.photo_image is not None
    result = finished.entry.photo_image
    assert result.shape == photo.shape
    from voicedrag.planning.rules import mask_array

    mask = None if planned.mask is None else mask_array(list(planned.mask), (512, 512))
    _, alpha = paste_back(photo, finished.entry.image, state.image, state.alignment, mask)
    assert np.array_equal(result[alpha == 0], photo[alpha == 0])  # equality, not closeness
    assert (alpha > 0).any() and (alpha == 0).mean() > 0.5
