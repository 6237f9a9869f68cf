"""Load time of engine.nvlabs_pickle on the fixture pickles and on a synthetic full-size snapshot.

The synthetic file has the byte layout of a 512-px FFHQ snapshot (G, D, G_ema with independent
float32 tensors, about 360 MB), written with torch's own tensor pickling. Usage:
    python benchmarks/nvlabs_pickle_load.py [--fixtures DIR] [--big-mb 360]
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.nvlabs_pickle import read_nvlabs_pickle  # noqa: E402


def _reconstruct_persistent_obj(meta: dict) -> None:
    raise AssertionError("only used as a pickled name")


class _SnapshotPickler(pickle.Pickler):
    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, torch.nn.Module):
            meta = dict(type="class", version=6, module_src="# omitted\n",
                        class_name=type(obj).__name__, state=dict(obj.__dict__))
            return _reconstruct_persistent_obj, (meta,)
        return NotImplemented


def write_big_snapshot(path: Path, megabytes: int) -> None:
    """Three networks of equal size, each a stack of 512x512x3x3 convolutions (~9.4 MB apiece)."""
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    sys.modules.setdefault("torch_utils", types.ModuleType("torch_utils"))
    fake = sys.modules.setdefault("torch_utils.persistence", types.ModuleType("torch_utils.persistence"))
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    per_net = max(1, megabytes * 2**20 // 3 // (512 * 512 * 9 * 4))
    nets = {}
    for key in ("G", "D", "G_ema"):
        net = torch.nn.Sequential(*[torch.nn.Conv2d(512, 512, 3) for _ in range(per_net)])
        net._init_args, net._init_kwargs = (), {"layers": per_net}
        nets[key] = net
    with path.open("wb") as f:
        _SnapshotPickler(f, protocol=4).dump(nets)


def timed(path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read_nvlabs_pickle(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    parser.add_argument("--fixtures", type=Path, default=Path(os.environ.get("VOICEDRAG_FIXTURES", default)))
    parser.add_argument("--big-mb", type=int, default=360)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for pkl in sorted(args.fixtures.glob("*.pkl")):
        rows.append((pkl.name, pkl.stat().st_size / 2**20, timed(pkl, 5)))
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "synthetic_full_size.pkl"
        write_big_snapshot(big, args.big_mb)
        rows.append((big.name, big.stat().st_size / 2**20, timed(big, 1)))
    print(f"{'file':<28} {'MiB':>8} {'load s':>8}")
    for name, mib, sec in rows:
        print(f"{name:<28} {mib:>8.1f} {sec:>8.3f}")
    print(json.dumps({"load_seconds": {name: round(sec, 4) for name, _, sec in rows},
                      "size_mib": {name: round(mib, 1) for name, mib, _ in rows}}))


if __name__ == "__main__":
    main()
