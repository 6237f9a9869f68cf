"""The face world: procedural stylised faces whose true keypoints and attributes are known.

It is the data of the embedded model's world, not a detector: the trainers draw their images
from it (`training/`), and the tests and benchmarks measure every edit against its truth. It
needs only numpy, Pillow and `engine.types`.
"""
