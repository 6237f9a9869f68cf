"""`voicedrag render` and `voicedrag drag` as a user runs them."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import fixture_path


def voicedrag(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voicedrag", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", ["sg2_64_flat.pkl", "sg2_128_ada.pkl"])
def test_drag_json_on_fixture_pickles(name, tmp_path):
    model = fixture_path(name)
    out, gif, ws = tmp_path / "out.png", tmp_path / "drag.gif", tmp_path / "ws.npy"
    p = voicedrag("drag", "--model", str(model), "--seed", "0", "--points", "20,30>26,30;40,40>40,36",
                  "--steps", "4", "--out", str(out), "--gif", str(gif), "--save-latent", str(ws),
                  "--device", "cpu", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert set(report) >= {"model", "seed", "size", "pairs", "steps", "converged", "mean_distance", "seconds", "out"}
    res = 64 if "64" in name else 128
    assert report["size"] == [res, res] and report["steps"] == 4 and report["converged"] is False
    assert [p_["handle"] for p_ in report["pairs"]] == [[20.0, 30.0], [40.0, 40.0]]
    assert all(len(p_["final"]) == 2 for p_ in report["pairs"])
    assert Image.open(out).size == (res, res)
    assert Image.open(gif).n_frames >= 2
    assert np.load(ws).shape[1] == (10 if res == 64 else 12)


def test_render_json(tmp_path):
    model = fixture_path("sg2_128_ada.pkl")
    out = tmp_path / "img.png"
    p = voicedrag("render", "--model", str(model), "--seed", "1", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["size"] == [128, 128] and report["out"] == str(out)
    ref = np.load(fixture_path("sg2_128_ada_ref.npz"))["seed1_psi0.7_img"][0]
    expected = ((np.clip(ref, -1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(1, 2, 0)
    got = np.asarray(Image.open(out))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--points", "20,30>200,30"], "outside"),
        (["--points", "20,30-26,30"], "cannot read"),
        (["--points", "20,30>26,30", "--mask", "1,2,3"], "mask"),
        (["--points", "20,30>26,30", "--model", "/no/such/model.pkl"], "no model file"),
        (["--points", "20,30>26,30", "--mask", "40,40,50,50"], "outside the mask"),
        (["--points", "20,30>26,30", "--seed=--"], "--seed needs a value"),
        (["--points", "20,30>26,30", "--psi=--"], "--psi needs a value"),
    ],
)
def test_user_errors_exit_2_with_one_sentence(args, needle, tmp_path):
    model = str(fixture_path("sg2_64_flat.pkl"))
    base = ["drag", "--model", model, "--out", str(tmp_path / "o.png")]
    p = voicedrag(*base, *args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in p.stderr
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("command", ["drag", "edit"])
def test_outputs_that_would_overwrite_each_other_are_refused_before_any_work(command, tmp_path):
    what = ["--points", "20,30>26,30"] if command == "drag" else ["--say", "open the mouth"]
    same = tmp_path / "x.png"
    p = voicedrag(command, *what, "--out", str(same), "--save-latent", str(same))
    assert p.returncode == 2 and "--out and --save-latent both name" in p.stderr and "Traceback" not in p.stderr
    assert not same.exists()
    p = voicedrag(command, *what, "--out", str(same), "--save-latent", str(tmp_path))
    assert p.returncode == 2 and "is a folder" in p.stderr and not same.exists()


@pytest.mark.parametrize("where, files, needle", [
    ("afile/o.png", {"afile": b"x"}, "is a file, not a folder"),
    ("/proc/o.png", {}, "does not accept new files"),
    ("x" * 300 + ".png", {}, "longer than the 255 bytes"),
    ("", {}, "needs a file name"),
])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(where, files, needle, tmp_path):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    p = subprocess.run([sys.executable, "-m", "voicedrag", "drag", "--points", "20,30>26,30", f"--out={where}"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "steps" not in p.stderr  # no drag ran


def test_a_missing_output_folder_is_made(tmp_path):
    out = tmp_path / "new" / "dir" / "o.png"
    p = voicedrag("render", "--out", str(out))
    assert p.returncode == 0 and Image.open(out).size == (128, 128)


def test_the_latent_is_written_to_the_path_asked_for_and_a_closed_pipe_is_quiet(tmp_path):
    ws = tmp_path / "latent"  # no .npy: written as named, not as latent.npy
    proc = subprocess.Popen([sys.executable, "-m", "voicedrag", "edit", "--say", "open the mouth", "--steps", "2",
                             "--out", str(tmp_path / "x.png"), "--save-latent", str(ws), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the report is printed
    err = proc.stderr.read()
    assert proc.wait(timeout=600) == 0, err  # the reader had what it wanted
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert np.load(ws).ndim == 3 and not (tmp_path / "latent.npy").exists()
    assert (tmp_path / "x.png").exists()


@pytest.mark.parametrize("flag,value", [("--lr", "nan"), ("--lr", "-1"), ("--lr", "-inf"), ("--lr", "inf"),
                                        ("--seed", "-1"), ("--seed", str(2**32)), ("--psi", "nan"),
                                        ("--psi", "inf"), ("--steps", "0"), ("--seed", "1.5")])
def test_numbers_out_of_range_are_refused_before_any_work(flag, value, tmp_path):
    out = tmp_path / "x.png"
    p = voicedrag("edit", "--say", "open the mouth", "--out", str(out), f"{flag}={value}")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"argument {flag}" in p.stderr and "give " in p.stderr and not out.exists()


def test_numbers_in_range_pass_unchanged():
    from voicedrag.cli import argtypes

    assert argtypes.seed("4294967295") == 2**32 - 1 and argtypes.psi("0.7") == 0.7
    assert argtypes.lr("0.002") == 0.002 and argtypes.steps("300") == 300 and argtypes.threads("2") == 2
    assert argtypes.confidence("0.5") == 0.5 and argtypes.seconds("30") == 30.0
    for check, value in ((argtypes.confidence, "nan"), (argtypes.confidence, "1.5"), (argtypes.seconds, "inf"),
                         (argtypes.seconds, "0")):
        with pytest.raises(Exception, match="give a"):
            check(value)


def test_devices_that_do_not_exist_are_refused_in_one_sentence():
    import torch

    from engine.errors import CheckpointError
    from engine.loading import pick_device

    assert pick_device("cpu") == torch.device("cpu") and pick_device("cpu:0") == torch.device("cpu:0")
    for bad, needle in [("cpu:5", "the CPU is one device"), ("meta", "not a device"), ("bogus", "unknown device")]:
        with pytest.raises(CheckpointError, match=needle):
            pick_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(CheckpointError, match="no CUDA GPU"):
            pick_device("cuda:3")
    else:
        with pytest.raises(CheckpointError, match="there is no cuda"):
            pick_device(f"cuda:{torch.cuda.device_count()}")


def test_saves_are_atomic_and_keep_the_previous_file_when_they_fail(tmp_path, monkeypatch):
    from PIL import Image

    from voicedrag.dragio import save_gif, save_npy, save_png

    out = tmp_path / "x.png"
    first = np.zeros((8, 8, 3), np.uint8)
    save_png(first, out)
    before = out.read_bytes()

    def broken(self, fp, *a, **k):  # a save that dies halfway, as a full disk or Ctrl-C would
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(Exception, match="cannot write"):
        save_png(np.full((8, 8, 3), 255, np.uint8), out)
    monkeypatch.undo()
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.png"]
    # The format follows the target's name, not the temporary file's.
    assert Image.open(save_gif([first, first + 9], tmp_path / "d.gif")).format == "GIF"
    assert np.load(save_npy(np.ones((1, 2, 3), np.float32), tmp_path / "ws")).shape == (1, 2, 3)
    # A new file gets the mode any new file would (not mkstemp's private 0600); a replaced one keeps its own.
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    fresh = save_png(first, tmp_path / "fresh.png")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~mask
    os.chmod(fresh, 0o640)
    save_png(first, fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640


def test_ctrl_c_during_a_drag_writes_what_was_asked_from_the_last_state(tmp_path):
    import os
    import signal
    import threading
    import time

    out, ws = tmp_path / "x.png", tmp_path / "ws.npy"
    # A drag that crawls (a tiny learning rate; 5 000 steps take minutes): it is running when Ctrl-C
    # comes 10 s in (the model loads in about 2 s; without a terminal there is no progress to watch).
    proc = subprocess.Popen([sys.executable, "-m", "voicedrag", "drag", "--points", "4,4>60,60", "--steps", "5000",
                             "--lr", "1e-6",
                             "--out", str(out), "--save-latent", str(ws), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None and proc.stdout is not None
    err = bytearray()

    def read_stderr() -> None:  # the progress line is redrawn with \r, so read bytes, not lines
        while chunk := os.read(proc.stderr.fileno(), 4096):
            err.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    time.sleep(10.0)
    assert proc.poll() is None, err.decode()
    proc.send_signal(signal.SIGINT)
    stdout = proc.stdout.read()
    assert proc.wait(timeout=300) == 130, err.decode()
    reader.join(timeout=10)
    text = err.decode()
    assert "interrupted after" in text and "Traceback" not in text
    report = json.loads(stdout)
    assert report["interrupted"] is True and 0 < report["steps"] < 5000
    assert Image.open(out).size == (128, 128) and np.load(ws).ndim == 3


def _png(width: int, height: int, *extra: bytes) -> bytes:
    """A PNG whose header says width x height, with the given chunks before its (tiny) pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return (b"\x89PNG\r\n\x1a\n" + header + b"".join(chunk(k, d) for k, d in extra)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4)) + chunk(b"IEND", b""))


def test_image_bombs_are_refused_before_decoding(tmp_path):
    import zlib

    cases = {
        "claims.png": (_png(65535, 65535), "too large to decode safely"),
        "wide.png": (_png(20000, 3000), "20000 x 3000 pixels"),
        "ztxt.png": (_png(1, 1, (b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * 50_000_000, 9))), "safely"),
        "empty.png": (b"", "not an image"),
    }
    for name, (data, needle) in cases.items():
        (tmp_path / name).write_bytes(data)
        p = voicedrag("keypoints", "--image", str(tmp_path / name))
        assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, (name, p.stderr)
    p = voicedrag("keypoints", "--image", str(tmp_path))
    assert p.returncode == 2 and "is a folder" in p.stderr


def test_json_lines_are_strict_json():
    from voicedrag.cli.output import json_line

    line = json_line({"d": float("nan"), "pairs": [(1.0, float("inf"))], "n": 3, "s": "NaN", "ok": 0.5})
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "d": None, "pairs": [[1.0, None]], "n": 3, "s": "NaN", "ok": 0.5}


def test_ctrl_c_while_the_command_starts_is_one_sentence():
    # As the `voicedrag` script does: import the package (the signal comes right then), then main().
    code = ("import sys; sys.argv = ['/usr/bin/voicedrag', 'render']; import os, signal, time; "
            "import voicedrag.cli; os.kill(os.getpid(), signal.SIGINT); time.sleep(30)")
    # As from a terminal: a test run started in the background inherits Ctrl-C ignored.
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.returncode == 130 and p.stderr.strip() == "voicedrag: interrupted.", p.stderr
    # Imported by other code, the package leaves Ctrl-C alone.
    code = ("import signal, sys; sys.argv = ['other']; import voicedrag.cli; "
            "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.strip() == "True", p.stderr
