"""Speed options for the engine's drag loop, each against the default: keep what pays.

For every option this measures milliseconds per `engine.DragSession` iteration
in the steady state (previews off, the first step excluded, as
`benchmarks/drag_speed.py` times the engine) and the option's effect on the
result: the largest distance in pixels between the option's handle and the
default's, step by step, over a drag of `--traj-steps` steps.

- default: float32, contiguous tensors (the baseline every ratio refers to);
- channels_last: the generator's 4-D weights and every synthesis/toRGB layer's
  input in `torch.channels_last` (a fresh generator, so nothing leaks);
- inference_mode: tracking under `torch.inference_mode()` instead of
  `torch.no_grad()`: `track_points` alone, timed both ways on the windows a
  DragSession reads (the session itself hard-codes no_grad, so the per-call
  difference is added to the default iteration as an estimate);
- bf16: the whole session step under `torch.autocast("cpu", dtype=torch.bfloat16)`,
  with a note whether the CPU has native AVX-512 BF16 / AMX BF16;
- compile: `torch.compile(dynamic=True)` of every synthesis layer (the windowed
  path crops shapes that change as the handle moves); compile time, i.e. the
  first step, reported apart from the steady state.

Generators are the official configurations of `benchmarks/drag_speed.py`
(random weights), one handle; the mask case runs at `--mask-resolutions`.

    OMP_NUM_THREADS=1 python benchmarks/drag_options.py [--resolutions 256 512] [--iters 5]
        [--traj-steps 30] [--threads 1] [--options channels_last bf16 ...]

Prints a table (speedup = default ms / option ms, > 1 is faster), then one JSON
object with the same figures as the last line. Each option is wrapped so that a
failure prints one line and the run goes on.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch._dynamo  # the compile option sets its recompile limit and reads its counters

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.drag_speed import (  # noqa: E402
    centre_mask, engine_session, make_generator, official_config, pair_for, time_steps,
)
from engine import DragConfig, DragPair, DragSession, Generator, Point  # noqa: E402
from engine.drag import track_points  # noqa: E402
from engine.stylegan2 import SynthesisLayer, ToRGBLayer  # noqa: E402

OPTIONS = ("default", "channels_last", "inference_mode", "bf16", "compile")
Figures = dict[str, float | int | bool | str | None]
# A factory, not a context manager: each step needs a fresh one (autocast objects are single-use).
StepContext = Callable[[], contextlib.AbstractContextManager[object]]


@dataclass(frozen=True)
class Case:
    res: int
    masked: bool

    @property
    def tag(self) -> str:
        return f"{self.res}_mask" if self.masked else f"{self.res}"

    def mask(self) -> np.ndarray | None:
        return centre_mask(self.res) if self.masked else None


@dataclass
class Row:
    option: str
    tag: str
    ms_per_iter: float | None
    speedup: float | None  # default ms / option ms
    gap_px: float | None
    note: str


@dataclass
class Variant:
    """A generator prepared for one option and the context each session step runs in."""

    G: Generator
    context: StepContext
    note: str
    # channels_last only: how many layer outputs were channels_last, of how many seen.
    layouts: dict[str, int] | None = None


def traj_pair(res: int) -> DragPair:
    """drag_speed's trajectory drag (256 px: (100, 140) -> (130, 120)) scaled to `res`: long
    enough that the handle keeps moving for the whole comparison."""
    s = res / 256
    return DragPair(Point(round(100 * s), round(140 * s)), Point(round(130 * s), round(120 * s)))


def steady_config() -> DragConfig:
    return DragConfig(max_steps=10**9, preview_every=0, stop_distance=0.0)


def graphs_so_far() -> int:
    """Graphs dynamo has compiled since its counters were last cleared (0 without torch.compile)."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def time_option(v: Variant, case: Case, iters: int) -> tuple[float, float, int]:
    """(ms per steady-state iteration, seconds of the first step, graphs compiled during the timed
    steps). The first step runs inside engine_session and is excluded from the ms figure; for
    compile it is where most compiling happens, but a moving handle can still bring new shapes."""
    G, mask = v.G, case.mask()
    ws0 = G.ws_from_seed(0)
    t0 = time.perf_counter()
    with v.context():
        s = engine_session(G, ws0, pair_for(case.res), mask)
    first_s = time.perf_counter() - t0

    warmup = 1
    new_graphs: list[int] = []  # per call: time_steps runs warmup, the timed iters, then a flop-count step

    def step() -> None:
        g = graphs_so_far()
        with v.context():
            s.step()
        new_graphs.append(graphs_so_far() - g)

    ms = time_steps(step, iters, warmup=warmup).ms_per_iter
    return ms, first_s, sum(new_graphs[warmup : warmup + iters])


def trajectory(v: Variant, case: Case, steps: int) -> list[tuple[int, int]]:
    """The handle after each of `steps` steps of traj_pair's drag."""
    G = v.G
    s = DragSession(G, G.ws_from_seed(1), [traj_pair(case.res)], mask=case.mask(), config=steady_config())
    out = []
    for _ in range(steps):
        with v.context():
            s.step()
        out.append(s.points[0])
    return out


def max_gap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> float:
    return max((float(np.hypot(p[0] - q[0], p[1] - q[1])) for p, q in zip(a, b)), default=0.0)


# --- the variants --------------------------------------------------------------------------


def default_variant(res: int) -> Variant:
    return Variant(make_generator(res), contextlib.nullcontext, "float32, contiguous")


def channels_last_variant(res: int) -> Variant:
    """Weights via Module.to(memory_format=...), and each layer's input converted by a forward
    pre-hook: the engine's ops take whatever layout they are given, so no engine change is needed.
    A forward hook counts the layer outputs that come out channels_last: ops inside a layer (the FIR
    up-sampling reshapes to 6-D) may change the layout, and the count shows what was reached."""
    G = make_generator(res).to(memory_format=torch.channels_last)
    seen: dict[str, int] = {"cl": 0, "all": 0}

    def to_cl(_m: torch.nn.Module, args: tuple[object, ...]) -> tuple[object, ...]:
        x = args[0]
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            return (x.contiguous(memory_format=torch.channels_last), *args[1:])
        return args

    def record(_m: torch.nn.Module, _args: tuple[object, ...], out: torch.Tensor) -> None:
        seen["all"] += 1
        # A 1x1 map is both layouts at once; count only the maps where the layout means something.
        if out.shape[2] * out.shape[3] > 1 and out.is_contiguous(memory_format=torch.channels_last):
            seen["cl"] += 1

    for m in G.synthesis.modules():
        if isinstance(m, (SynthesisLayer, ToRGBLayer)):
            m.register_forward_pre_hook(to_cl)
            m.register_forward_hook(record)
    return Variant(G, contextlib.nullcontext, "weights + layer inputs channels_last (pre-hooks)", layouts=seen)


def bf16_variant(res: int) -> Variant:
    def ctx() -> contextlib.AbstractContextManager[object]:
        return torch.autocast("cpu", dtype=torch.bfloat16)

    return Variant(make_generator(res), ctx, "autocast bf16 around the whole step")


def compile_variant(res: int, fb: int) -> Variant:
    """Every synthesis layer up to the feature block compiled in place (state-dict keys unchanged).
    Per layer rather than the whole network: the windowed path calls layers directly on crops.
    All layers share one code object (SynthesisLayer.forward), and each instance, and each dense
    size (the full-size constant noise pins it), is its own cache entry: dynamo's per-code recompile
    limit (8) would leave the rest running eagerly, so the caller raises it for this option."""
    G = make_generator(res)
    for block in G.synthesis.blocks()[: fb + 1]:
        for m in block.modules():
            if isinstance(m, SynthesisLayer):
                m.compile(dynamic=True)
    return Variant(G, contextlib.nullcontext, "torch.compile(dynamic=True) per synthesis layer")


# --- inference_mode: track_points alone -----------------------------------------------------


def time_tracking(case: Case, calls: int) -> tuple[float, float, bool]:
    """Microseconds per track_points call under no_grad and under inference_mode, on the windows a
    DragSession reads after one step, and whether both give the same points. The blocks of calls
    alternate and the medians are kept, so that load from other processes hits both alike."""
    G = make_generator(case.res)
    s = DragSession(G, G.ws_from_seed(0), [pair_for(case.res)], mask=case.mask(), config=steady_config())
    s.step()
    # The session's own windows (a private method, read-only here): realistic shapes, and still
    # part of the autograd graph as they are when the session tracks.
    views, _native = s._features()
    assert s._refs is not None
    refs, size = s._refs, (s.res, s.res)

    def track() -> list[tuple[int, int]]:
        return [track_points(v, refs[i : i + 1], [p], s.r2, origin=o, size=size)[0]
                for i, (p, (v, o)) in enumerate(zip(s.points, views))]

    block = 20
    ng: list[float] = []
    im: list[float] = []
    for _ in range(max(calls // block, 1)):
        for ctx, acc in ((torch.no_grad, ng), (torch.inference_mode, im)):
            with ctx():
                t0 = time.perf_counter()
                for _ in range(block):
                    track()
                acc.append((time.perf_counter() - t0) / block * 1e6)
    with torch.no_grad():
        a = track()
    with torch.inference_mode():
        b = track()
    return statistics.median(ng), statistics.median(im), a == b


# --- the run ---------------------------------------------------------------------------------


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:160] if msg else ''}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--mask-resolutions", type=int, nargs="*", default=[512],
                    help="resolutions (among --resolutions) also measured with a centre mask")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--traj-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--track-calls", type=int, default=200, help="track_points calls per mode (inference_mode)")
    ap.add_argument("--options", nargs="+", choices=OPTIONS, default=list(OPTIONS),
                    help="the default always runs: every ratio and trajectory gap refers to it")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # Inductor compiles in a pool of worker processes by default; keep it to our thread budget.
    try:
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = torch.get_num_threads()
    except Exception:  # no inductor: the compile option will report its own failure
        pass

    flags = cpu_flags()
    fig: Figures = {
        "threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0], "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
    }
    print(f"torch {torch.__version__}, {fig['threads']} thread(s), CPU capability {fig['cpu_capability']}, "
          f"avx512_bf16: {'yes' if fig['bf16_native'] else 'no'}, amx_bf16: {'yes' if fig['amx_bf16'] else 'no'}"
          f"{'' if fig['bf16_native'] or fig['amx_bf16'] else ' (bf16 matmuls/convs run without native support)'}")
    print(f"load average (1 min) at start: {fig['load_avg_1min']:.2f}: other processes make every figure noisy")
    hdr = f"{'option':>15} {'res':>8} {'ms/iter':>9} {'speedup':>8} {'gap px':>7}  note"
    print(hdr)
    rows: list[Row] = []

    def emit(r: Row) -> None:
        rows.append(r)
        ms = f"{r.ms_per_iter:9.1f}" if r.ms_per_iter is not None else f"{'-':>9}"
        sp = f"{r.speedup:7.2f}x" if r.speedup is not None else f"{'-':>8}"
        gap = f"{r.gap_px:7.2f}" if r.gap_px is not None else f"{'-':>7}"
        print(f"{r.option:>15} {r.tag:>8} {ms} {sp} {gap}  {r.note}", flush=True)
        fig[f"{r.option}_ms_{r.tag}"] = None if r.ms_per_iter is None else round(r.ms_per_iter, 2)
        if r.option != "default":
            fig[f"{r.option}_speedup_{r.tag}"] = None if r.speedup is None else round(r.speedup, 3)
            fig[f"{r.option}_gap_px_{r.tag}"] = None if r.gap_px is None else round(r.gap_px, 3)

    def fail(option: str, tag: str, e: BaseException) -> None:
        fig[f"{option}_error_{tag}"] = one_line(e)
        emit(Row(option, tag, None, None, None, f"failed: {one_line(e)}"))
        if os.environ.get("DRAG_OPTIONS_TRACEBACK"):
            traceback.print_exc()

    cases = [Case(r, False) for r in args.resolutions]
    cases += [Case(r, True) for r in args.resolutions if r in args.mask_resolutions]
    for case in cases:
        tag = case.tag
        fb = official_config(case.res).drag_feature_block
        fig[f"feature_block_{tag}"] = fb
        # The baseline: without it nothing else at this case means anything.
        try:
            base = default_variant(case.res)
            base_ms, base_first, _ = time_option(base, case, args.iters)
            base_traj = trajectory(base, case, args.traj_steps)
            del base
        except Exception as e:
            fail("default", tag, e)
            continue
        fig[f"default_first_step_s_{tag}"] = round(base_first, 3)
        emit(Row("default", tag, base_ms, 1.0, 0.0, "float32, contiguous" + (", centre mask" if case.masked else "")))

        def measured(option: str, make: Callable[[], Variant]) -> None:
            limit = torch._dynamo.config.recompile_limit
            try:
                if option == "compile":
                    torch._dynamo.config.recompile_limit = 256
                    torch._dynamo.utils.counters.clear()
                v = make()
                ms, first_s, timed_graphs = time_option(v, case, args.iters)
                gap = max_gap(trajectory(v, case, args.traj_steps), base_traj)
                note = v.note
                if v.layouts is not None:
                    note += f" ({v.layouts['cl']}/{v.layouts['all']} layer outputs channels_last)"
                if option == "compile":
                    graphs = int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
                    fig[f"compile_s_{tag}"] = round(first_s - base_first, 2)
                    fig[f"compile_graphs_{tag}"] = graphs
                    fig[f"compile_graphs_in_timed_steps_{tag}"] = timed_graphs
                    note += (f"; compile ~{first_s - base_first:.1f} s (first step {first_s:.1f} s vs {base_first:.1f} s),"
                             f" {graphs} graphs in all")
                    if timed_graphs:
                        note += (f"; {timed_graphs} compiled DURING the timed steps, so ms/iter includes "
                                 f"recompiling (TORCH_LOGS=recompiles says why)")
                emit(Row(option, tag, ms, base_ms / ms, gap, note))
            except Exception as e:
                fail(option, tag, e)
            finally:
                if option == "compile":
                    torch._dynamo.reset()  # drop compiled code and guards so nothing leaks into later options
                    torch._dynamo.config.recompile_limit = limit

        if "channels_last" in args.options:
            measured("channels_last", lambda: channels_last_variant(case.res))
        if "inference_mode" in args.options:
            try:
                ng_us, im_us, same = time_tracking(case, args.track_calls)
                diff_ms = (im_us - ng_us) / 1000  # per iteration: one call per handle, one handle here
                est = base_ms + diff_ms
                fig.update({f"no_grad_track_us_{tag}": round(ng_us, 1), f"inference_mode_track_us_{tag}": round(im_us, 1),
                            f"inference_mode_diff_us_{tag}": round(im_us - ng_us, 1)})
                emit(Row("inference_mode", tag, est, base_ms / est, 0.0 if same else None,
                         f"track_points alone: no_grad {ng_us:.0f} us, inference_mode {im_us:.0f} us per call "
                         f"({im_us - ng_us:+.0f} us); ms/iter = default + that (estimate); "
                         f"points {'identical' if same else 'DIFFER'}"))
            except Exception as e:
                fail("inference_mode", tag, e)
        if "bf16" in args.options:
            measured("bf16", lambda: bf16_variant(case.res))
        if "compile" in args.options:
            measured("compile", lambda: compile_variant(case.res, fb))

    print(json.dumps(fig))


if __name__ == "__main__":
    main()
