"""The DragGAN core: StyleGAN2 generators, checkpoint loading and the drag loop.

Needs only torch and numpy; nothing here imports `keypoints` or `voicedrag`.
"""
from engine.drag import DragConfig, DragResult, DragSession, StepResult, to_uint8
from engine.errors import CheckpointError, VoicedragError
from engine.loading import load_generator, pick_device, save_generator
from engine.stylegan2 import Generator, GeneratorConfig, MappingConfig, SynthesisOutput
from engine.types import DragPair, Point

__all__ = [
    "CheckpointError", "DragConfig", "DragPair", "DragResult", "DragSession", "Generator", "GeneratorConfig",
    "MappingConfig", "Point", "StepResult", "SynthesisOutput", "VoicedragError", "load_generator", "pick_device",
    "save_generator", "to_uint8",
]
