"""The DragGAN core: StyleGAN2 generators, checkpoint loading and the drag loop.

Needs only torch and numpy; nothing here imports the layers above it.
Names are resolved lazily so that `engine.types` and `engine.errors` can be
imported (by the CLI, the command parser, the TUI) without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DragConfig": "engine.drag",
    "DragResult": "engine.drag",
    "DragSession": "engine.drag",
    "StepResult": "engine.drag",
    "to_uint8": "engine.ops",
    "CheckpointError": "engine.errors",
    "UserError": "engine.errors",
    "load_generator": "engine.loading",
    "pick_device": "engine.loading",
    "save_generator": "engine.loading",
    "Generator": "engine.stylegan2",
    "GeneratorConfig": "engine.stylegan2",
    "MappingConfig": "engine.stylegan2",
    "SynthesisOutput": "engine.stylegan2",
    "DragPair": "engine.types",
    "Point": "engine.types",
    "Inversion": "engine.invert",
    "InversionResult": "engine.invert",
    "InvertConfig": "engine.invert",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
