"""Rendering speed of the procedural face world on one core.

Prints a table and, as the last line, one JSON object with the figures.
CPU time is reported beside wall time because the machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from faceworld.render import SUPERSAMPLE, render_batch


def measure(size: int, n: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    render_batch(rng, 10, size)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    render_batch(rng, n, size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"size": size, "images": n, "wall_images_per_s": n / wall, "cpu_images_per_s": n / cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    rows = [measure(size, args.n) for size in (64, 128)]
    print(f"faceworld render speed (supersample {SUPERSAMPLE}x, one thread)")
    print(f"{'size':>6} {'images':>8} {'wall img/s':>12} {'cpu img/s':>12}")
    for r in rows:
        print(f"{r['size']:>6} {r['images']:>8} {r['wall_images_per_s']:>12.0f} {r['cpu_images_per_s']:>12.0f}")
    print(json.dumps({"faceworld_speed": rows}))


if __name__ == "__main__":
    main()
