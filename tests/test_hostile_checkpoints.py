"""Hostile checkpoints (tests/hostile_pickles.py) end in one CheckpointError sentence, within 5 s
and 500 MB, through the pickle reader and through load_generator, and never run anything."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import CheckpointError
from engine.loading import load_generator
from engine.nvlabs_pickle import read_nvlabs_pickle
from tests.hostile_pickles import GOOD_KWARGS, generator, hostile_checkpoints, snapshot

REPO = Path(__file__).resolve().parents[1]
KINDS = {h.name: h for h in hostile_checkpoints()}
SECONDS = 5.0
PEAK_MB = 500.0  # the whole process's resident memory at its peak, torch and all

# One process loads every file in turn (torch imported once), timing each and resetting the
# kernel's peak-memory mark before it (writing 5 to /proc/self/clear_refs), so that each file's
# peak is its own. Where the mark cannot be reset, tracemalloc's peak of Python allocations is
# added to the memory in use before the load instead.
_MEASURE = textwrap.dedent("""
    import json, sys, time, tracemalloc
    from pathlib import Path

    import engine.stylegan2, engine.stylegan3  # noqa: F401  (imported before any timing)
    from engine.errors import CheckpointError
    from engine.loading import load_generator

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def reset_peak():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    paths = [Path(p) for p in sys.argv[1:]]
    for warm in paths[:3]:  # first loads import lazily: keep that out of the figures
        try:
            load_generator(warm, device="cpu")
        except Exception:
            pass
    for path in paths:
        before = status("VmRSS")
        kernel = reset_peak()
        if not kernel:
            tracemalloc.start()
        t0 = time.perf_counter()
        try:
            load_generator(path, device="cpu")
            error, message = None, ""
        except CheckpointError as err:
            error, message = "CheckpointError", str(err)
        except BaseException as err:
            error, message = type(err).__name__, str(err)[:300]
        seconds = time.perf_counter() - t0
        if kernel:
            peak = status("VmHWM")
        else:
            peak = before + tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        print(json.dumps({"file": path.name, "error": error, "message": message, "seconds": seconds,
                          "peak_mb": peak, "before_mb": before}), flush=True)
""")


def measure(folder: Path, names: list[str], timeout: float = 600) -> dict[str, dict]:
    """Each named kind loaded through load_generator in one fresh process: its error, seconds and
    peak memory. A kind that crashes the process (a segfault) is the first one missing."""
    paths = []
    for i, name in enumerate(names):
        path = folder / f"kind{i:03d}.pkl"
        path.write_bytes(KINDS[name].data)
        paths.append(str(path))
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *paths], capture_output=True, text=True,
                          timeout=timeout, cwd=folder, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    out = {names[int(r["file"][4:7])]: r for r in rows}
    if len(out) < len(names):
        missing = names[len(out)]
        raise AssertionError(f"the measuring process ended (exit {proc.returncode}) at {missing!r}: "
                             f"{proc.stderr.strip()[-500:]}")
    return out


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return measure(tmp_path_factory.mktemp("hostile"), list(KINDS))


def one_sentence(message: str) -> None:
    assert message.endswith(".") and "\n" not in message and "Traceback" not in message, message
    assert len(message) < 400, message
    for leak in ("MemoryError", "RecursionError", "OverflowError", "set_int_max_str_digits"):
        assert leak not in message, message


@pytest.mark.parametrize("name", list(KINDS))
def test_hostile_checkpoint_is_refused_quickly_in_little_memory(name: str, measured: dict[str, dict]) -> None:
    row = measured[name]
    assert row["error"] == "CheckpointError", row
    one_sentence(row["message"])
    assert row["seconds"] < SECONDS, row
    assert row["peak_mb"] < PEAK_MB, row


@pytest.mark.parametrize("name", list(KINDS))
def test_the_layer_that_refuses(name: str, tmp_path: Path) -> None:
    """The reader refuses what it must; what it returns is plain, and the loader refuses that."""
    hostile = KINDS[name]
    path = tmp_path / "m.pkl"
    path.write_bytes(hostile.data)
    if hostile.refused_by == "reader":
        with pytest.raises(CheckpointError) as info:
            read_nvlabs_pickle(path)
        one_sentence(str(info.value))
    else:
        read_nvlabs_pickle(path)
        with pytest.raises(CheckpointError) as info:
            load_generator(path, device="cpu")
        one_sentence(str(info.value))
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("stylegan3", [False, True])
def test_the_writer_of_hostile_files_writes_readable_snapshots(tmp_path: Path, stylegan3: bool) -> None:
    """The same opcodes with nothing hostile in them read back as written, so each hostile file
    differs from a readable one only in what it is named for."""
    path = tmp_path / "good.pkl"
    path.write_bytes(snapshot(generator(stylegan3=stylegan3)))
    net = read_nvlabs_pickle(path)
    assert net.class_name == "Generator" and net.init_kwargs == GOOD_KWARGS and net.init_args == ()
    assert net.family == ("stylegan3" if stylegan3 else "stylegan2")
    name = "synthesis.input.affine.weight" if stylegan3 else "synthesis.b4.const"
    assert list(net.state_dict) == [name] and not net.state_dict[name].any()
