"""The files voicedrag ships: the embedded face model, its keypoint model, rules and model cards.

Installed as the package `voicedrag_assets` (the folder `assets/` of the repository), so that a
plain `pip install .` carries them and every reader finds them the same way, through
`importlib.resources`, whether voicedrag runs from a checkout, an editable install or a wheel.
This is the one place that knows where they are. It imports nothing but the standard library, so
`engine/` and `keypoints/` may use it without depending on the application.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

EMBEDDED_MODEL = "models/faces.safetensors"
EMBEDDED_DETECTOR = "keypoints/face_detector.safetensors"
RULES_DIR = "rules"


def asset_path(relative: str) -> Path:
    """The file (or folder) `relative` inside the shipped assets, e.g. "models/faces.safetensors".

    The path may not exist (an install without the model); callers say what is missing.
    """
    root = resources.files(__name__)
    # Installed packages live on disk (wheels are unpacked), so the traversable is a real path;
    # the models are read by libraries that need a file name.
    return Path(str(root.joinpath(*relative.split("/"))))
