"""Model names as the user gives them, resolved to files the engine loads.

"embedded" is the shipped face model (`voicedrag_assets`); a registry name is its cached
download (`voicedrag.registry`); anything else is a path. The engine only ever sees paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from voicedrag.errors import VoicedragError

if TYPE_CHECKING:
    import torch

    from engine.stylegan2 import Generator

EMBEDDED = "embedded"
# The format name the project's own generator configs carried before the engine named it
# "stylegan-generator"; models exported then still load.
LEGACY_FORMAT = "voicedrag-generator"


def embedded_model_path() -> Path:
    from voicedrag_assets import EMBEDDED_MODEL, asset_path

    return asset_path(EMBEDDED_MODEL)


def resolve_model_path(name: str | Path) -> Path:
    """The file a model name stands for: the shipped model for "embedded", else the path given."""
    if str(name) == EMBEDDED:
        path = embedded_model_path()
        if not path.is_file():
            raise VoicedragError("the embedded face model is not installed; reinstall voicedrag or pass --model PATH.")
        return path
    return Path(name).expanduser()


def load_model_file(name: str | Path, device: str | torch.device | None = None) -> Generator:
    """The generator of a model name or file; a missing file is one sentence naming --model."""
    from engine.loading import OWN_FORMAT, load_generator

    path = resolve_model_path(name)
    if not path.exists():
        raise VoicedragError(f"no model file at {path}; check the path or pass --model embedded.")
    return load_generator(path, device=device, formats=(OWN_FORMAT, LEGACY_FORMAT))


def model_title(name: str) -> str:
    """How a model is named on screen: the embedded one in words, a file by its name."""
    return "the embedded face model" if name == EMBEDDED else name.replace("\\", "/").rsplit("/", 1)[-1]
