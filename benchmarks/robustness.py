"""Robustness: bad input never crashes, hangs or loses work.

    python benchmarks/robustness.py [--jobs 2] [--sample N] [--only CATEGORY ...] [--list] [--times]

Runs at least 1,400 probes over every subcommand: typed commands fuzzed through
`parse --json -` and `edit --say`, numbers, points and masks, devices, output
paths, model files (junk, truncated and bit-flipped pickles, crafted numpy dtype
and scalar states, code-running globals, deep nesting, a billion-laughs memo,
hostile init arguments, voicedrag configs with wrong types and sizes, weights
that are not finite), images (bombs, lying headers, odd formats), audio (lying
headers, odd encodings), signals (Ctrl-C at chosen moments, kill -9 during a
save over an existing file) and the TUI without a terminal. Two categories
reuse files written for the tests: "checkpoint bombs" (tests/hostile_pickles.py:
memo and nesting bombs, length claims, out-of-band buffers, persistent ids,
giant shapes, forbidden globals), each through `render` and `drag` within
5 s and 500 MB more than the process had, and "malformed rules"
(tests/malformed_rules.py) through `parse --rules` and a model's kit. "typed TUI
commands" types fuzzed lines and every app command's grammar with numbers at
every extreme into one headless TUI per batch (alive, its history kept, no
handler failing, a known command answering after each line); "terminals
without pixel size" opens the TUI on pseudo-terminals that report no pixel
size and answer no query (or garbage, or too late), which must draw and quit
with nothing printed before the screen.

Each probe names the exit code it expects and, for a user error, a pattern the
one-sentence message must match. A probe ends as one of:
  ok            as expected
  traceback     a Python traceback on stderr
  crash         killed by a signal it was not sent (a segfault, an abort)
  hang          still running at its time limit (then killed)
  lost          a file the user had, or one the tool said it wrote, is missing,
                truncated or unreadable
  ran-code      a model file ran code (a marker file appeared)
  wrong-exit    another exit code than expected
  wrong-output  the message is not one sentence matching the pattern, or the
                output is not what the probe checks for

Most probes run the command in a child forked from this process, which has
imported the command line, torch and the models' code but run nothing (so each
probe starts clean and fast); signals and the TUI run `python -m voicedrag` as
a real process. `--sample N` runs every Nth probe of each category (the test
suite uses it). Prints a table (with each category's slowest probe and the most
memory a forked probe added to what it started with), the probes that failed,
with `--times` every probe's seconds and memory, then one JSON object.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import wave
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
VERDICTS = ("ok", "traceback", "crash", "hang", "lost", "ran-code", "wrong-exit", "wrong-output")
MARKER = "PWNED"  # a model file that runs code makes this file in the probe's folder
SIZE = 128  # the embedded model's image size, which the point probes are written for


@dataclass
class Result:
    rc: int | None  # None: hung (killed at the time limit)
    stdout: str
    stderr: str
    folder: Path
    signalled: bool = False  # the probe itself sent the signal that ended it
    seconds: float | None = None  # from start to exit
    grew_mb: float | None = None  # forked probes: peak resident memory less what the child had at its start


@dataclass
class Probe:
    category: str
    name: str
    argv: list[str]
    expect: int | tuple[int, ...] = 2
    sentence: str | None = None  # regex the error message (exit 2) must match
    json_error: bool = False  # the message is the "error" of the last JSON line (`transcribe --json`)
    stdin: bytes = b""
    files: dict[str, bytes] = field(default_factory=dict)  # written into the probe's folder first
    check: Callable[[Result], str | None] | None = None  # further checks: a problem, or None
    lines: Callable[[Result], list[tuple[str, str, str]]] | None = None  # per-input verdicts (batches)
    process: bool = False  # run as a real process (signals, terminals)
    send: tuple[float, int] | None = None  # (seconds after start, signal) for process probes
    env: dict[str, str] = field(default_factory=dict)
    close_stdout: bool = False  # process probes: stdout is a pipe whose reader has gone (`| head -c 0`)
    timeout: float = 90.0
    count: int = 1  # inputs this probe stands for (a batch of typed commands counts each line)
    run: Callable[[list[str]], int] | None = None  # forked probes: called with argv instead of the command line


# --- the verdict ------------------------------------------------------------------------------

def _message_lines(stderr: str) -> list[str]:
    # The lines that are the tool's own message: its prefix, or argparse's "voicedrag X: error:".
    return [line for line in stderr.splitlines() if line.startswith("voicedrag")]


def verdict(probe: Probe, res: Result) -> tuple[str, str]:
    if res.rc is None:
        return "hang", f"still running after {probe.timeout:.0f} s"
    if (res.folder / MARKER).exists():
        return "ran-code", "a marker file appeared"
    if "Traceback (most recent call last)" in res.stderr:
        tail = [line for line in res.stderr.strip().splitlines() if line.strip()]
        return "traceback", tail[-1][:160] if tail else "traceback"
    if res.rc < 0 and not res.signalled:
        return "crash", f"killed by signal {-res.rc}; stderr ends: {_last(res.stderr)}"
    expected = probe.expect if isinstance(probe.expect, tuple) else (probe.expect,)
    if res.rc not in expected and not (res.signalled and res.rc < 0 and -res.rc in expected):
        return "wrong-exit", f"exit {res.rc}, expected {'/'.join(map(str, expected))}: {_last(res.stderr)}"
    if res.rc == 2:
        messages = _json_errors(res.stdout) if probe.json_error else _message_lines(res.stderr)
        if len(messages) != 1:
            return "wrong-output", f"{len(messages)} message lines: {_last(res.stderr)}"
        if probe.sentence and not re.search(probe.sentence, messages[0], re.IGNORECASE):
            return "wrong-output", f"message {messages[0][:160]!r} does not match {probe.sentence!r}"
    if probe.check is not None:
        problem = probe.check(res)
        if problem:
            kind, _, detail = problem.partition(": ")
            return (kind, detail) if kind in VERDICTS else ("wrong-output", problem)
    return "ok", ""


def _json_errors(stdout: str) -> list[str]:
    try:
        record = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return []
    return [record["error"]] if isinstance(record, dict) and isinstance(record.get("error"), str) else []


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(no message)"


# --- running ----------------------------------------------------------------------------------

def _preload() -> None:
    # Everything a probe may need, imported once here so that forked probes start in milliseconds.
    # Nothing is run: no torch op (its thread pool must not exist before a fork) and no model loaded.
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import torch  # noqa: F401

    import voicedrag.cli as cli

    for name in cli.SUBCOMMAND_MODULES:
        __import__(name)
    for name in ("engine.loading", "engine.generator", "engine.drag", "voicedrag.dragio", "voicedrag.editor",
                 "voicedrag.language.commands", "voicedrag.planning.rules", "voicedrag.speech.audio",
                 "voicedrag.session", "keypoints"):
        try:
            __import__(name)
        except ImportError:
            pass


def _child(probe: Probe, folder: Path) -> None:
    # In the forked child: the probe's folder, its stdin and two files for the outputs, then the
    # command exactly as `voicedrag` runs it; an exception that escapes is printed as Python would.
    import resource
    import traceback

    code = 1
    try:
        os.chdir(folder)
        # A runaway allocation ends as MemoryError (a traceback, so a failed probe), not in swap.
        resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))
        # The peak resident memory starts again from here (Linux), so that what the probe itself
        # adds can be told from the pages it shares with this process.
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            (folder / ".rss").write_text(f"{_resident_mb():.1f}")
        except OSError:
            pass
        fd = os.open(folder / ".stdin", os.O_RDONLY)
        os.dup2(fd, 0)
        for n, name in ((1, ".stdout"), (2, ".stderr")):
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, n)
        os.environ.update(probe.env)
        sys.argv = ["voicedrag", *probe.argv]
        import voicedrag.cli as cli

        try:
            code = int((probe.run or cli.main)(probe.argv) or 0)
        except SystemExit as stop:
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:  # what the interpreter would do with an uncaught exception
            traceback.print_exc()
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    finally:
        os._exit(code)


class _Running:
    def __init__(self, probe: Probe, folder: Path) -> None:
        self.probe, self.folder, self.start = probe, folder, time.monotonic()
        self.signalled, self.sent = False, False
        (folder / ".stdin").write_bytes(probe.stdin)
        for name, data in probe.files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        self.seconds: float | None = None
        self.grew_mb: float | None = None
        self.base_mb = _resident_mb()  # what a forked child starts with, where it cannot say itself
        if probe.process:
            env = {**os.environ, "PYTHONPATH": str(REPO), **probe.env}
            with (folder / ".stdin").open("rb") as fin, (folder / ".stdout").open("wb") as fout, \
                    (folder / ".stderr").open("wb") as ferr:
                self.proc = subprocess.Popen([sys.executable, "-m", "voicedrag", *probe.argv], cwd=folder,
                                             stdin=fin, stdout=subprocess.PIPE if probe.close_stdout else fout,
                                             stderr=ferr, env=env, start_new_session=True,
                                             # Ctrl-C as from a terminal, even when this runs in the
                                             # background (which leaves SIGINT ignored for children).
                                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        else:
            pid = os.fork()
            if pid == 0:
                _child(probe, folder)
            self.pid = pid

    def poll(self) -> int | None | bool:
        """The exit code (negative: a signal) when done, False while running."""
        now = time.monotonic() - self.start
        if self.probe.send and not self.sent and now >= self.probe.send[0]:
            self.sent = True
            self._signal(self.probe.send[1])
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is not None:
                self.seconds = now
                return rc
        else:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.seconds = now
                try:
                    start = float((self.folder / ".rss").read_text())
                except (OSError, ValueError):
                    start = self.base_mb
                self.grew_mb = max(0.0, usage.ru_maxrss / 1024 - start)
                return os.waitstatus_to_exitcode(status)
        if now > self.probe.timeout:
            self._signal(signal.SIGKILL)
            if self.proc is not None:
                self.proc.wait()
            else:
                os.waitpid(self.pid, 0)
            return None
        return False

    def _signal(self, sig: int) -> None:
        self.signalled = sig != signal.SIGINT  # Ctrl-C must be handled; kill -9 and TERM just end it
        try:
            if self.proc is not None:
                self.proc.send_signal(sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def result(self, rc: int | None) -> Result:
        read = lambda name: (self.folder / name).read_bytes().decode("utf-8", "replace")  # noqa: E731
        return Result(rc, read(".stdout"), read(".stderr"), self.folder, self.signalled, self.seconds, self.grew_mb)


def _resident_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return 0.0


def run_probes(probes: Sequence[Probe], jobs: int = 2,
               report: Callable[[Probe, list[tuple[str, str, str]], Result], None] | None = None
               ) -> list[tuple[Probe, list[tuple[str, str, str]]]]:
    """Run every probe (`jobs` at a time); each gives (input name, verdict, detail) per input."""
    _preload()
    root = Path(tempfile.mkdtemp(prefix="voicedrag-robustness-"))
    pending = list(enumerate(probes))
    running: list[_Running] = []
    done: list[tuple[Probe, list[tuple[str, str, str]]]] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                i, probe = pending.pop(0)
                folder = root / f"{i:05d}"
                folder.mkdir()
                running.append(_Running(probe, folder))
            time.sleep(0.005)
            for item in list(running):
                rc = item.poll()
                if rc is False:
                    continue
                running.remove(item)
                res = item.result(rc if isinstance(rc, int) else None)
                kind, detail = verdict(item.probe, res)
                if item.probe.lines is not None and kind == "ok":
                    outcomes = item.probe.lines(res)
                else:
                    outcomes = [(item.probe.name, kind, detail)] * item.probe.count
                done.append((item.probe, outcomes))
                if report:
                    report(item.probe, outcomes, res)
                shutil.rmtree(item.folder, ignore_errors=True)
    finally:
        for item in running:
            item._signal(signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
    return done


# --- probes: typed commands -------------------------------------------------------------------

WORDS = ("open close raise lower turn tilt move drag smile frown widen narrow blink the a mouth eyes eye left "
         "right ear ears head nose lips brows up down by to and then pixels px bit lot more less slightly "
         "undo redo reset help quit save stop mask all please make look like van gogh red hat green "
         "painting glasses face chin cheek wink to from at of").split()


def _fuzz_commands(rng: random.Random, n: int) -> list[bytes]:
    makers: list[Callable[[], str]] = [
        lambda: " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9))),
        lambda: "".join(chr(rng.randint(32, 126)) for _ in range(rng.randint(0, 60))),
        lambda: "".join(chr(rng.choice([rng.randint(0xA0, 0x2FFF), rng.randint(0x1F300, 0x1FAFF),
                                        rng.randint(0x0590, 0x06FF), 0x0301, 0x200B, 0xFEFF]))
                        for _ in range(rng.randint(1, 30))),
        lambda: f"drag {rng.choice(['', '-'])}{rng.uniform(-1e3, 1e3):.{rng.randint(0, 3)}f},"
                f"{rng.randint(-99, 999)} {rng.choice(['to', '>', '->', 'into', ''])} "
                f"{rng.choice(['1e400', 'nan', 'inf', str(rng.randint(0, 70)), '0x1f', '1_0'])},"
                f"{rng.randint(0, 70)}" + rng.choice(["", ";", "; 5,6 to 7,8", " and 1,1 to 2,2"] * 2),
        lambda: f"{rng.choice(WORDS)} the {rng.choice(['mouth', 'eyes', 'left ear', 'head'])} by "
                f"{rng.choice(['5', '-3', '1e9', 'nan', 'a lot', '0', '999999999999', '½', 'five'])} "
                f"{rng.choice(['pixels', 'px', '%', ''])}",
        lambda: rng.choice(WORDS) * rng.randint(50, 400),  # very long lines
        lambda: " ; ".join(f"{rng.randint(0, 64)},{rng.randint(0, 64)}>{rng.randint(0, 64)},{rng.randint(0, 64)}"
                           for _ in range(rng.randint(1, 30))),
        lambda: rng.choice(["\t", " ", "\x00", "\x1b[2J", "\x07", "%s%n", "{0}", "${HOME}", "$(touch PWNED)",
                            "`touch PWNED`", "'; touch PWNED", "../../etc/passwd", "\\", "\"", "'"])
        * rng.randint(1, 5),
    ]
    out: list[bytes] = []
    for _ in range(n):
        text = rng.choice(makers)().replace("\n", " ").replace("\r", " ")
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.05:  # bytes that are not UTF-8
            data = data + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xED, 0xA0])]) + data[:5]
        out.append(data)
    return out


def _batch_lines(inputs: list[bytes], first: int) -> Callable[[Result], list[tuple[str, str, str]]]:
    def check(res: Result) -> list[tuple[str, str, str]]:
        records = res.stdout.splitlines()
        outcomes = []
        for k, data in enumerate(inputs):
            name = f"parse line {first + k}: {data[:40]!r}"
            if k >= len(records):
                outcomes.append((name, "wrong-output", f"no JSON line for it ({len(records)} for {len(inputs)})"))
                continue
            try:
                record = json.loads(records[k])
            except ValueError as err:
                outcomes.append((name, "wrong-output", f"not JSON: {err}"))
                continue
            text = data.decode("utf-8", "replace")
            ok = isinstance(record, dict) and record.get("text") == text and (
                record.get("error") or record.get("control") or record.get("edits"))
            outcomes.append((name, "ok", "") if ok else
                            (name, "wrong-output", f"neither an edit, a control nor an error: {records[k][:120]}"))
        if len(records) > len(inputs):
            outcomes[-1] = (outcomes[-1][0], "wrong-output", "more JSON lines than input lines")
        return outcomes
    return check


def command_probes(rng: random.Random) -> list[Probe]:
    probes: list[Probe] = []
    inputs = _fuzz_commands(rng, 1000)
    for b in range(0, len(inputs), 50):
        batch = inputs[b:b + 50]
        probes.append(Probe("commands", f"parse batch {b // 50}", ["parse", "--json", "-"], expect=0,
                            stdin=b"\n".join(batch) + b"\n", lines=_batch_lines(batch, b), count=len(batch),
                            timeout=240))
    known = [  # (command, expected exit of `edit`, message pattern)
        ("drag -5,-5 to 30,30", 2, "negative"), ("drag 1,2 to 3,4; 5,6 to 7,8", 0, None),
        ("make it look like a van gogh painting", 2, "can move|cannot"), ("paint it red", 2, "can move|cannot"),
        ("give him a hat", 2, "can move|cannot"), ("", 2, "command"), ("   ", 2, "command"),
        ("drag 1e400,2 to 3,4", 2, "command|point|number"), ("drag nan,2 to 3,4", 2, "command|point|number"),
        ("drag 900,900 to 910,910", 2, "outside|image"),
        ("open the mouth", 0, None), ("close the eyes", 0, None), ("raise the left ear", 0, None),
        ("x" * 5000, 2, "command|edit"), ("undo", 2, "control word"),
        ("open the wings", 2, "wings|part|can move|command"),
    ]
    for text, code, pattern in known:
        probes.append(Probe("commands", f"edit --say {text[:40]!r}", ["edit", "--say", text, "--steps", "2",
                                                                     "--out", "o.png", "--json"],
                            expect=code, sentence=pattern, check=_wrote_if_ok("o.png")))
    for data in _fuzz_commands(rng, 24):
        text = data.decode("utf-8", "replace").replace("\x00", "")
        probes.append(Probe("commands", f"edit --say fuzz {text[:40]!r}",
                            ["edit", "--say", text, "--steps", "2", "--out", "o.png"], expect=(0, 2),
                            check=_wrote_if_ok("o.png")))
    return probes


def _valid_png(path: Path) -> str | None:
    from PIL import Image

    if not path.is_file():
        return f"lost: {path.name} was not written"
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as err:  # noqa: BLE001 - any failure to read back is the finding
        return f"lost: {path.name} is unreadable ({type(err).__name__})"
    return None


def _wrote_if_ok(*names: str) -> Callable[[Result], str | None]:
    def check(res: Result) -> str | None:
        if res.rc != 0:
            return None
        for name in names:
            path = res.folder / name
            if name.endswith((".png", ".gif")):
                problem = _valid_png(path)
                if problem:
                    return problem
            elif not path.is_file() or path.stat().st_size == 0:
                return f"lost: {name} was not written"
        return None
    return check


# --- probes: numbers, points, devices ---------------------------------------------------------

BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "1e309", "4294967296", "abc", "", "0x10", "1,5", "--", "1e-400"]
GOOD_NUMBERS = {"--seed": ["4294967295", "0"], "--psi": ["0", "1", "-1"], "--lr": ["0.001"], "--steps": ["1"]}


def number_probes() -> list[Probe]:
    base = {
        "render": ["render", "--out", "o.png"],
        "drag": ["drag", "--points", "30,40>31,41", "--steps", "1", "--out", "o.png"],
        "edit": ["edit", "--say", "open the mouth", "--steps", "1", "--out", "o.png"],
        "keypoints": ["keypoints", "--json"],
        "demo": ["demo", "--out-dir", "d"],
    }
    flags = {"render": ["--seed", "--psi"], "drag": ["--seed", "--psi", "--lr", "--steps"],
             "edit": ["--seed", "--psi", "--lr", "--steps"], "keypoints": ["--seed"], "demo": ["--seed"]}
    probes: list[Probe] = []
    for cmd, names in flags.items():
        for flag in names:
            for value in BAD_NUMBERS:
                if value == "1e-400" and flag != "--lr":
                    continue  # 1e-400 is 0.0: a fine psi, an int error for seeds (counted under "abc")
                if value == "-1" and flag == "--psi":
                    continue  # in range: psi -1 mirrors the face about the average (in GOOD_NUMBERS)
                argv = _set(base[cmd], flag, value)
                # "-1" and "--" read as options: argparse then says the flag needs a value, also exit 2.
                probes.append(Probe("numbers", f"{cmd} {flag} {value!r}", argv,
                                    sentence=flag.lstrip("-") + "|expected one argument"))
            if cmd in ("render", "drag"):
                for value in GOOD_NUMBERS[flag]:
                    probes.append(Probe("numbers", f"{cmd} {flag} {value} (in range)", _set(base[cmd], flag, value),
                                        expect=0, check=_wrote_if_ok("o.png")))
    for value in BAD_NUMBERS + ["100000", "1025", "0"]:
        probes.append(Probe("numbers", f"transcribe --threads {value!r}", ["transcribe", "--threads", value, "x.wav"],
                            sentence="threads|expected one argument"))
    for value in ["nan", "inf", "-1", "0", "abc", "1e309", "100000"]:
        probes.append(Probe("numbers", f"transcribe --max-seconds {value!r}",
                            ["transcribe", "x.wav", "--max-seconds", value],
                            sentence="max-seconds|max_seconds|expected one argument"))
    for value in ["nan", "-1", "2", "abc", "inf"]:
        probes.append(Probe("numbers", f"keypoints --min-confidence {value!r}",
                            ["keypoints", "--json", "--seed", "0", "--min-confidence", value],
                            sentence="confidence|expected one argument"))
    probes.append(Probe("devices", "render --device '' (the default)", _set(base["render"], "--device", ""), expect=0,
                        check=_wrote_if_ok("o.png")))
    for device in ["cpu:5", "cuda:99", "cuda:-1", "meta", "mps", "gpu", "cuda:x", "tpu", "cpu,cuda", "cuda:1e9"]:
        for cmd in ("render", "drag", "edit", "keypoints", "demo"):
            if cmd == "keypoints":
                continue
            probes.append(Probe("devices", f"{cmd} --device {device!r}", _set(base[cmd], "--device", device),
                                sentence="device"))
    return probes


def _set(argv: list[str], flag: str, value: str) -> list[str]:
    return [*argv, f"{flag}={value}"]  # "=": a value that starts with "-" is still the value


BAD_POINTS = ["", "1,2", "1,2>3", "a,b>c,d", ";", ">", "1,2,3>4,5", "-1,2>3,4", "1,2>-3,4",
              "nan,1>2,3", "1,inf>2,3", "1e400,1>2,3", "900,900>10,10", "10,10>900,900", f"{SIZE},{SIZE}>1,1",
              "1,2>>3,4", "1 2>3 4", "1,2>3,4;5,6", "0x10,2>3,4", "\x00", "1e2,1>2,3", "1.,2>3,4"]
# A trailing ';', a pair given many times, digits of other scripts and a handle on its target are read.
GOOD_POINTS = ["30,40>32,42", "30,40>32,42;20,20>21,21", " 30 , 40 > 32 , 42 ", "30.5,40.25>32,42", "0,0>1,1",
               "63,63>62,62", "1,2>3,4;", "1,2>3,4" + ";1,2>3,4" * 300, "١,٢>٣,٤", "1,2>1,2"]
BAD_MASKS = ["1,2,3", "10,10,5,5", "0,0,0,0", "-1,0,10,10", "0,0,900,900", "a,b,c,d", "nan,0,10,10",
             "0,0,10,10,10", "40,40,50,50", "0,0,0,0"]  # the last two leave the handle outside


def point_probes() -> list[Probe]:
    base = ["drag", "--steps", "2", "--out", "o.png", "--json"]
    probes = [Probe("points", f"--points {p[:40]!r}", [*base, f"--points={p}"],
                    sentence="point|handle|target|image|pair") for p in BAD_POINTS]
    probes += [Probe("points", f"--points {p!r} (valid)", [*base, f"--points={p}"], expect=0,
                     check=_wrote_if_ok("o.png")) for p in GOOD_POINTS]
    probes += [Probe("points", f"--mask {m!r}", [*base, "--points=30,30>32,32", f"--mask={m}"],
                     sentence="mask|rectangle|outside") for m in BAD_MASKS]
    # An empty --mask (an unset shell variable) means no mask, as an empty --device means the default.
    probes.append(Probe("points", "--mask '' (none)", [*base, "--points=30,30>32,32", "--mask="], expect=0,
                        check=_wrote_if_ok("o.png")))
    probes.append(Probe("points", "--mask 20,20,50,50 (valid)", [*base, "--points=30,30>32,32", "--mask=20,20,50,50"],
                        expect=0, check=_wrote_if_ok("o.png")))
    return probes


# --- probes: outputs --------------------------------------------------------------------------

def output_probes() -> list[Probe]:
    drag = ["drag", "--points", "30,40>31,41", "--steps", "1"]
    edit = ["edit", "--say", "open the mouth", "--steps", "1"]
    cases: list[tuple[str, list[str], dict[str, bytes], str]] = []
    probes_ok: list[Probe] = []
    keypoints = ["keypoints", "--seed", "0"]
    for cmd, argv in (("render", ["render"]), ("drag", drag), ("edit", edit), ("keypoints", keypoints)):
        # A missing folder is made (as `mkdir -p` would): the save then succeeds.
        probes_ok.append(Probe("outputs", f"{cmd} --out in a missing folder", [*argv, "--out=no/such/dir/o.png"],
                               expect=0, check=_wrote_if_ok("no/such/dir/o.png")))
        for what, path, files, pattern in [
            ("a folder", "adir", {"adir/keep": b"x"}, "folder|directory"),
            ("under a file", "afile/o.png", {"afile": b"x"}, "is a file, not a folder"),
            ("in /proc", "/proc/o.png", {}, "cannot be written|accept"),
            ("empty name", "", {}, "needs a file name"),
            ("a name too long", "x" * 300 + ".png", {}, "longer than"),
        ]:
            cases.append((f"{cmd} --out {what}", [*argv, f"--out={path}"], files, pattern))
    for cmd, argv in (("drag", drag), ("edit", edit)):
        for what, extra, pattern in [
            ("--gif same as --out", ["--out", "x.png", "--gif", "x.png"], "same|both|clash|overwrite"),
            ("--save-latent same as --out", ["--out", "x.png", "--save-latent", "x.png"], "same|both|clash|overwrite"),
            ("--save-latent a folder", ["--out", "x.png", "--save-latent", "adir"], "folder|directory"),
            ("--save-latent in /proc", ["--out", "x.png", "--save-latent", "/proc/ws.npy"], "cannot be written|accept"),
            ("same file by two spellings", ["--out", "x.png", "--gif", "./x.png"], "same|both|clash|overwrite"),
        ]:
            cases.append((f"{cmd} {what}", [*argv, *extra], {"adir/keep": b"x"}, pattern))
    cases.append(("demo --out-dir a file", ["demo", "--out-dir", "afile"], {"afile": b"x"}, "folder|directory|file"))
    cases.append(("demo --out-dir in /proc", ["demo", "--out-dir", "/proc/d"], {}, "cannot be written|accept"))
    probes = [Probe("outputs", name, argv, files=files, sentence=pattern) for name, argv, files, pattern in cases]
    probes += probes_ok
    probes.append(Probe("outputs", "edit --gif in a missing folder", [*edit, "--out", "x.png", "--gif", "no/x.gif"],
                        expect=0, check=_wrote_if_ok("x.png", "no/x.gif")))
    # A write that succeeds must leave exactly the files it names, readable.
    probes.append(Probe("outputs", "drag writes out, gif and latent", [*drag, "--out", "a.png", "--gif", "a.gif",
                                                                       "--save-latent", "a"], expect=0,
                        check=_wrote_if_ok("a.png", "a.gif", "a")))
    probes.append(Probe("outputs", "render over an existing file", ["render", "--out", "old.png"], expect=0,
                        files={"old.png": b"not a png"}, check=_wrote_if_ok("old.png")))
    return probes


# --- probes: model files ----------------------------------------------------------------------

class _Reduce:
    """Pickles as a call of `func(*args)` (and a state), which is how a hostile file is written."""

    def __init__(self, func: object, args: tuple, state: object = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _stand_in(meta: dict) -> None:
    """Written in place of NVlabs' `_reconstruct_persistent_obj`, then renamed in the bytes."""


class _Persist:
    """A module as the official persistence machinery pickles it: a call with a meta dict."""

    def __init__(self, state: dict, class_name: str) -> None:
        self.meta = {"type": "class", "version": 6, "module_src": "open('PWNED', 'w')\n",
                     "class_name": class_name, "state": state}

    def __reduce__(self) -> tuple:
        return _stand_in, (self.meta,)


def _persistent(init_kwargs: object, class_name: str = "Generator") -> bytes:
    # {"G_ema": Generator(**init_kwargs)} as an official snapshot stores it, with one StyleGAN2
    # tensor (synthesis.b4.const) so that it reads as a StyleGAN2 generator and its arguments are
    # what the loader must judge. The module source in it must never run.
    import torch

    def module(name: str, modules: dict | None = None, params: dict | None = None, **extra: object) -> _Persist:
        return _Persist({"_modules": modules or {}, "_parameters": params or {}, "_buffers": {}, "training": False,
                         **extra}, name)

    b4 = module("SynthesisBlock", params={"const": torch.zeros(4, 4, 4)})
    net = module(class_name, modules={"synthesis": module("SynthesisNetwork", modules={"b4": b4})},
                 _init_args=(), _init_kwargs=init_kwargs)
    data = pickle.dumps({"G_ema": net}, protocol=2)
    here = f"c{_stand_in.__module__}\n_stand_in\n".encode()
    assert here in data
    return data.replace(here, b"ctorch_utils.persistence\n_reconstruct_persistent_obj\n")


def _billion_laughs() -> bytes:
    x: list = []
    for _ in range(40):
        x = [x, x]
    return pickle.dumps({"G_ema": x, "kwargs": x}, protocol=4)


def _deep(n: int) -> bytes:
    return b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"."


def _pickle_cases() -> list[tuple[str, bytes, str]]:
    import numpy as np
    from numpy._core import multiarray

    def dtype_file(name: str, state: tuple) -> bytes:
        dtype = _Reduce(np.dtype, (name, False, True), state)
        scalar = _Reduce(multiarray.scalar, (dtype, b"\x00" * 8))
        return pickle.dumps({"G_ema": {"x": scalar}}, protocol=2)

    f8 = np.dtype("f8")
    cases = [
        ("dtype field past its item (V4)", dtype_file("V4", (3, "|", None, ("a",), {"a": (f8, 10**6)}, 4, 1, 16))),
        ("dtype field past its item (f8)", dtype_file("f8", (3, "<", None, ("a",), {"a": (f8, 10**6)}, 8, 1, 16))),
        ("dtype huge subarray", dtype_file("f8", (3, "<", (f8, (10**6,)), None, None, 8, 1, 0))),
        ("dtype wrong item size", dtype_file("f8", (3, "<", None, None, None, 10**6, 1, 0))),
        ("dtype of objects", dtype_file("O", (3, "|", None, None, None, -1, -1, 63))),
        ("dtype negative offset", dtype_file("V8", (3, "|", None, ("a",), {"a": (f8, -(10**6))}, 8, 1, 16))),
        ("dtype state of wrong length", dtype_file("f8", (3, "<"))),
        ("dtype state with a string flag", dtype_file("f8", (3, "<", None, None, None, 8, 1, "x"))),
        ("scalar with short data", pickle.dumps({"G_ema": _Reduce(multiarray.scalar, (f8, b"\x00"))}, protocol=2)),
        ("scalar of an object dtype",
         pickle.dumps({"G_ema": _Reduce(multiarray.scalar, (np.dtype("O"), 3))}, protocol=2)),
        ("ndarray state past its buffer",
         pickle.dumps({"G_ema": _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                        (1, (10**6,), f8, False, b"\x00" * 8))}, protocol=2)),
        ("ndarray with negative shape",
         pickle.dumps({"G_ema": _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                        (1, (-5,), f8, False, b""))}, protocol=2)),
        ("os.system", pickle.dumps({"G_ema": _Reduce(os.system, ("touch PWNED",))}, protocol=4)),
        ("builtins.eval", pickle.dumps({"G_ema": _Reduce(eval, ("open('PWNED','w')",))}, protocol=4)),
        ("builtins.exec", pickle.dumps({"G_ema": _Reduce(exec, ("open('PWNED','w')",))}, protocol=4)),
        ("subprocess.Popen", pickle.dumps({"G_ema": _Reduce(subprocess.Popen, (["touch", "PWNED"],))}, protocol=4)),
        ("getattr chain",
         pickle.dumps({"G_ema": _Reduce(getattr, (_Reduce(__import__, ("os",)), "system"))}, protocol=4)),
        ("builtins.open", pickle.dumps({"G_ema": _Reduce(open, ("PWNED", "w"))}, protocol=4)),
        ("importlib", pickle.dumps({"G_ema": _Reduce(__import__, ("os",))}, protocol=4)),
        ("numpy.load", pickle.dumps({"G_ema": _Reduce(np.load, ("/etc/passwd",))}, protocol=4)),
        ("billion laughs memo", _billion_laughs()),
        ("nesting 100000 deep", _deep(100_000)),
        ("nesting 3000 deep", _deep(3000)),
        ("not a dict", pickle.dumps([1, 2, 3], protocol=4)),
        ("no G_ema", pickle.dumps({"D": 1}, protocol=4)),
        ("G_ema an int", pickle.dumps({"G_ema": 7}, protocol=4)),
        ("G_ema None", pickle.dumps({"G_ema": None}, protocol=4)),
        ("a huge long", b"\x80\x02\x8b" + struct.pack("<i", 2**30) + b"\x00" * 16),
        ("a huge bytes claim", b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"xx"),
        ("a huge frame claim", b"\x80\x04\x95" + struct.pack("<Q", 2**62) + b"}."),
        ("an empty pickle", b"\x80\x04."),
        ("protocol 99", b"\x80\x63}."),
    ]
    good = dict(z_dim=32, c_dim=0, w_dim=64, img_resolution=32, img_channels=3,
                mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=256, channel_max=32))
    for key, value in [("img_resolution", 2**40), ("img_resolution", 0), ("img_resolution", -64),
                       ("img_resolution", "128"), ("img_resolution", 96), ("img_resolution", float("nan")),
                       ("img_resolution", None), ("img_resolution", True), ("z_dim", 10**12), ("w_dim", 0),
                       ("w_dim", -3), ("img_channels", 10**6), ("c_dim", -1), ("mapping_kwargs", {"num_layers": 10**7}),
                       ("mapping_kwargs", "eight"), ("synthesis_kwargs", {"channel_base": 2**40}),
                       ("synthesis_kwargs", {"channel_max": 10**9, "channel_base": 10**9}),
                       ("synthesis_kwargs", {"architecture": "sideways"}),
                       ("synthesis_kwargs", {"conv_clamp": float("inf")}),
                       ("unknown_argument", 1)]:
        kwargs = {**good, key: value}
        cases.append((f"init {key}={value!r}"[:60], _persistent(kwargs)))
    cases.append(("init of an unknown class", _persistent(good, class_name="Rootkit")))
    cases.append(("init kwargs a list", _persistent([1, 2])))  # type: ignore[arg-type]
    return [(name, data, "model|pickle|refused|corrupt|checkpoint|network|generator|argument|resolution|"
             "config|support|must|read|too|is not|holds a|not an") for name, data in cases]


def _mutations(rng: random.Random, data: bytes, n: int) -> list[tuple[str, bytes]]:
    out = []
    for k in range(n):
        kind = k % 3
        if kind == 0:
            cut = rng.randint(0, len(data) - 1)
            out.append((f"truncated at {cut}", data[:cut]))
        elif kind == 1:
            b = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            out.append(("bits flipped", bytes(b)))
        else:
            start = rng.randrange(len(data))
            out.append((f"junk at {start}", data[:start] + rng.randbytes(rng.randint(1, 64)) + data[start + 64:]))
    return out


def _own_format() -> tuple[bytes, dict]:
    folder = REPO / "assets" / "models"
    return (folder / "faces.safetensors").read_bytes(), json.loads((folder / "faces.json").read_text())


def model_probes(rng: random.Random) -> list[Probe]:
    probes: list[Probe] = []
    render = ["render", "--out", "o.png", "--model"]
    for name, data, pattern in _pickle_cases():
        probes.append(Probe("pickles", name, [*render, "m.pkl"], files={"m.pkl": data}, sentence=pattern, timeout=60))
    anymodel = ("model|pickle|refused|corrupt|checkpoint|network|truncated|read|safetensors|file|config|weights|finite|"
                "empty|holds a|not an|does not fit")
    for name, data in [("empty", b""), ("text", b"hello\n"), ("random", rng.randbytes(4096)),
                       ("zip", b"PK\x03\x04" + rng.randbytes(100)), ("gzip", b"\x1f\x8b" + rng.randbytes(100))]:
        for ext in (".pkl", ".safetensors", ".pt", ".txt"):
            probes.append(Probe("models", f"{name}{ext}", [*render, f"m{ext}"], files={f"m{ext}": data},
                                sentence=anymodel + "|format|kind|extension"))
    for name, path, pattern in [("missing file", "nope.pkl", "no model file"),
                                ("a folder", "adir", "folder|directory|model"),
                                ("unknown registry name", "ffhq9000", "no model file"),
                                ("/dev/null", "/dev/null", anymodel + "|format|kind|extension|empty"),
                                ("registry model not downloaded", "ffhq512", "download")]:
        probes.append(Probe("models", name, [*render, path], files={"adir/x": b""}, sentence=pattern))
    weights, meta = _own_format()
    for name, data in _mutations(rng, weights, 24):
        probes.append(Probe("models", f"safetensors {name}", [*render, "m.safetensors"], expect=(0, 2),
                            files={"m.safetensors": data, "m.json": json.dumps(meta).encode()},
                            sentence=anymodel, check=_wrote_if_ok("o.png")))
    fixture = FIXTURES / "sg2_64_flat.pkl"
    if fixture.exists():
        official = fixture.read_bytes()
        for name, data in _mutations(rng, official, 45):
            probes.append(Probe("pickles", f"official pickle {name}", [*render, "m.pkl"], expect=(0, 2),
                                files={"m.pkl": data}, sentence=anymodel + "|argument|resolution|support",
                                check=_wrote_if_ok("o.png")))
    for name, change in _config_changes():
        bad = json.loads(json.dumps(meta))
        change(bad)
        text = json.dumps(bad, allow_nan=True).encode() if not isinstance(bad, bytes) else bad
        probes.append(Probe("configs", name, [*render, "m.safetensors"],
                            files={"m.safetensors": weights, "m.json": text}, sentence="config|model|json|setting|"
                            "must|drag|resolution|weights|format|family|kit|rules|detector|not|invalid"))
    for name, where in [("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf"))]:
        probes.append(Probe("configs", f"a weight that is {name}", [*render, "m.safetensors"],
                            files={"m.safetensors": _poison(weights, where), "m.json": json.dumps(meta).encode()},
                            sentence="finite"))
    return probes


def _poison(weights: bytes, value: float) -> bytes:
    # Overwrite the first float of the first tensor in a safetensors file with `value`.
    (n,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8:8 + n])
    first = min((v for k, v in header.items() if k != "__metadata__"), key=lambda v: v["data_offsets"][0])
    at = 8 + n + first["data_offsets"][0]
    fmt = {"F32": "<f", "F16": "<e", "F64": "<d"}[first["dtype"]]
    return weights[:at] + struct.pack(fmt, value) + weights[at + struct.calcsize(fmt):]


def _config_changes() -> list[tuple[str, Callable[[dict], None]]]:
    def cfg(key: str, value: object) -> Callable[[dict], None]:
        return lambda m: m["config"].__setitem__(key, value)

    def sub(group: str, key: str, value: object) -> Callable[[dict], None]:
        return lambda m: m["config"].setdefault(group, {}).__setitem__(key, value) if isinstance(
            m["config"].get(group), dict) else None

    changes: list[tuple[str, Callable[[dict], None]]] = []
    values: dict[str, list[object]] = {
        "img_resolution": [-64, 64.5, 2**40, 96, "64", None, float("nan"), 0, 1, True, [64]],
        "z_dim": [0, -1, 10**9, "32", 3.5], "w_dim": [0, -1, 10**9, None],
        "channel_base": [0, -1, 2**60, "x"], "channel_max": [0, 10**9, -5],
        "img_channels": [0, 10**6, 2], "num_fp16_res": [-1, 100, "a"], "conv_clamp": [float("nan"), -1, "x"],
        "architecture": ["sideways", 3, None], "activation": ["gelu", "", 5], "kernel_size": [0, -3, 2, 10**6],
        "resample_filter": [[], [0, 0], "1331", [float("inf")], [1] * 100000], "use_noise": ["yes", 2],
        "feature_block": [40, -1, "4", 4.5], "drag": [3, [], "fast"], "mapping": [[], 7, None],
    }
    for key, vals in values.items():
        for value in vals:
            changes.append((f"config {key}={str(value)[:30]}", cfg(key, value)))
    for key, vals in {"num_layers": [0, -1, 10**7, "4"], "lr_multiplier": [float("nan"), -1, "x"],
                      "activation": ["gelu"], "w_avg_beta": [2.0, "x"]}.items():
        for value in vals:
            changes.append((f"config mapping.{key}={value}", sub("mapping", key, value)))
    for key, vals in {"lr": ["fast", -1, 0, float("nan"), 10**9], "grid_scale": [1000, 0, -1], "nonsense": [1],
                      "space": ["z", 3], "r1": [-1, 10**6, "x"], "r2": [-1, 10**6], "tracking_block": [99, [-1], "a"],
                      "steps": [0, -5, 10**12]}.items():
        for value in vals:
            changes.append((f"config drag.{key}={value}", sub("drag", key, value)))
    changes += [
        ("config missing", lambda m: m.pop("config")), ("config a list", lambda m: m.__setitem__("config", [])),
        ("format unknown", lambda m: m.__setitem__("format", "something-else")),
        ("family unknown", lambda m: m.__setitem__("family", "stylegan9")),
        ("kit rules unknown", lambda m: m.__setitem__("kit", {"rules": "nonesuch", "detector": "faceworld"})),
        ("kit detector unknown", lambda m: m.__setitem__("kit", {"rules": "face", "detector": "nonesuch"})),
        ("kit a string", lambda m: m.__setitem__("kit", "face")),
        ("billion weights", lambda m: m["config"].update(channel_base=2**20, channel_max=4096, img_resolution=4096)),
        ("config key unknown", cfg("warp_factor", 9)),
    ]
    return changes


def _replaced(meta: dict, old: str, new: str) -> bytes:
    """The config as JSON text with one value's text replaced (which must be there: a probe that
    changed nothing would test the plain config)."""
    text = json.dumps(meta)
    assert old in text, f"{old!r} is not in the model's config"
    return text.replace(old, new, 1).encode()


def model_file_probes() -> list[Probe]:
    # Byte-level config files: not JSON, deep nesting, huge numbers, a BOM.
    weights, meta = _own_format()
    texts = {"not JSON": b"{", "empty": b"", "deep nesting": b"[" * 100_000 + b"]" * 100_000,
             "a huge number": _replaced(meta, f'"img_resolution": {meta["config"]["img_resolution"]}',
                                        '"img_resolution": ' + "9" * 5000),
             "NaN literal": _replaced(meta, f'"z_dim": {meta["config"]["z_dim"]}', '"z_dim": NaN'),
             "a list": b"[]", "a string": b'"hello"', "invalid UTF-8": b'{"format": "\xff"}', "null": b"null",
             "UTF-8 BOM": b"\xef\xbb\xbf" + json.dumps(meta).encode()}
    probes = [Probe("configs", f"config file {name}", ["render", "--out", "o.png", "--model", "m.safetensors"],
                    files={"m.safetensors": weights, "m.json": text},
                    expect=(0, 2) if name == "UTF-8 BOM" else 2, sentence="json|config|model|not")
              for name, text in texts.items()]
    probes.append(Probe("configs", "config file missing", ["render", "--out", "o.png", "--model", "m.safetensors"],
                        files={"m.safetensors": weights}, sentence="json|config|model"))
    return probes


# --- probes: images ---------------------------------------------------------------------------

def _png(width: int, height: int, *chunks: bytes, mode: int = 2, depth: int = 8) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, mode, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(chunks) + chunk(b"IEND", b"")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _image(mode: str, size: tuple[int, int], fmt: str, **save: object) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    im = Image.new(mode, size, 128 if mode in ("L", "P", "I;16", "1") else (128,) * len(mode))
    im.save(buf, fmt, **save)
    return buf.getvalue()


def image_probes(rng: random.Random) -> list[Probe]:
    rows = zlib.compress(b"\x00" + b"\x80" * 192)
    bomb_text = b"k\x00\x00\x00" + zlib.compress(b"A" * (200 << 20), 9)
    bad = "image|picture|pixel|large|big|decode|read|format|size|file|png|not|unsupported|bomb|megapixel"
    cases: list[tuple[str, bytes, int | tuple[int, ...], str]] = [
        ("header 65535x65535", _png(65535, 65535, _png_chunk(b"IDAT", rows)), 2, "large|big|pixel|size"),
        ("header 20000x20000", _png(20000, 20000, _png_chunk(b"IDAT", rows)), 2, "large|big|pixel|size"),
        ("header 100000x1", _png(100000, 1, _png_chunk(b"IDAT", rows)), 2, "large|big|pixel|size"),
        ("header 0x0", _png(0, 0, _png_chunk(b"IDAT", rows)), 2, bad),
        # Pillow stops inflating a text chunk at its limit: the 64 x 1 picture itself is fine.
        ("zTXt bomb", _png(64, 1, _png_chunk(b"zTXt", bomb_text), _png_chunk(b"IDAT", rows)), (0, 2), bad),
        ("iCCP bomb", _png(64, 1, _png_chunk(b"iCCP", b"p\x00\x00" + zlib.compress(b"\x00" * (100 << 20), 9)),
                           _png_chunk(b"IDAT", rows)), (0, 2), bad),
        ("IDAT missing", _png(64, 64), 2, bad),
        ("IDAT short", _png(64, 64, _png_chunk(b"IDAT", rows)), (0, 2), bad),  # Pillow reads the rows given
        ("bad CRC", _png(64, 64)[:-4] + b"\x00\x00\x00\x00", 2, bad),
        ("empty", b"", 2, bad), ("text", b"hello", 2, bad), ("random", rng.randbytes(5000), 2, bad),
        ("PNG signature only", b"\x89PNG\r\n\x1a\n", 2, bad),
        ("SVG", b"<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'/>", 2, bad),
        ("RGB 64", _image("RGB", (64, 64), "PNG"), (0, 2), bad),
        ("RGBA 64", _image("RGBA", (64, 64), "PNG"), (0, 2), bad),
        ("grey 64", _image("L", (64, 64), "PNG"), (0, 2), bad),
        ("16-bit grey", _image("I;16", (64, 64), "PNG"), (0, 2), bad),
        ("palette", _image("P", (64, 64), "PNG"), (0, 2), bad), ("1-bit", _image("1", (64, 64), "PNG"), (0, 2), bad),
        ("1x1", _image("RGB", (1, 1), "PNG"), (0, 2), bad), ("3000x20", _image("RGB", (3000, 20), "PNG"), (0, 2), bad),
        ("JPEG", _image("RGB", (128, 96), "JPEG"), (0, 2), bad),
        ("CMYK JPEG", _image("CMYK", (64, 64), "JPEG"), (0, 2), bad),
        ("GIF", _image("P", (64, 64), "GIF"), (0, 2), bad), ("BMP", _image("RGB", (64, 64), "BMP"), (0, 2), bad),
        ("TIFF", _image("RGB", (64, 64), "TIFF"), (0, 2), bad), ("WebP", _image("RGB", (64, 64), "WEBP"), (0, 2), bad),
        ("JPEG truncated", _image("RGB", (128, 96), "JPEG")[:200], 2, bad),
        ("PNG truncated", _image("RGB", (64, 64), "PNG")[:60], 2, bad),
    ]
    probes = [Probe("images", name, ["keypoints", "--json", "--image", "i.png"], expect=code, files={"i.png": data},
                    sentence=pattern) for name, data, code, pattern in cases]
    probes += [Probe("images", name, ["keypoints", "--json", "--image", path], files={"adir/x": b""}, sentence=pattern)
               for name, path, pattern in [("missing", "nope.png", "no image|not found|no such|exist"),
                                           ("a folder", "adir", "folder|directory"),
                                           ("/dev/null", "/dev/null", bad)]]
    return probes


# --- probes: audio ----------------------------------------------------------------------------

def _wav(rate: int = 16000, channels: int = 1, width: int = 2, frames: bytes | None = None, fmt: int = 1,
         seconds: float = 0.5) -> bytes:
    data = frames if frames is not None else b"\x00" * int(rate * seconds) * channels * width
    # Fields are written modulo their width, as a lying header carries them.
    fields = (fmt, channels, rate, rate * channels * width, channels * width, width * 8)
    fmt_chunk = struct.pack("<HHIIHH", *(v % (1 << bits) for v, bits in zip(fields, (16, 16, 32, 32, 16, 16),
                                                                            strict=True)))
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
            + b"data" + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _tone(rate: int = 16000, seconds: float = 0.5) -> bytes:
    import math

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(int(rate * seconds))))
    return buf.getvalue()


def audio_probes(rng: random.Random) -> list[Probe]:
    bad = "audio|wav|sound|rate|channel|read|file|format|decode|sample|empty|not|header|too"
    cases: list[tuple[str, bytes, int | tuple[int, ...], str]] = [
        ("rate 2147483647", _wav(rate=2_147_483_647, frames=b"\x00" * 64), 2, "rate"),
        ("rate 0", _wav(rate=0, frames=b"\x00" * 64), 2, bad), ("rate 1", _wav(rate=1, frames=b"\x00" * 64), 2, "rate"),
        ("65535 channels", _wav(channels=65535, frames=b"\x00" * 64), 2, "channel"),
        ("0 channels", _wav(channels=0, frames=b"\x00" * 64), 2, bad),
        ("width 0", _wav(width=0, frames=b""), 2, bad), ("width 7", _wav(width=7, frames=b"\x00" * 70), 2, bad),
        ("data size lies", _wav()[:-8000], (0, 2), bad), ("header only", _wav()[:44], (0, 2), bad),
        ("RIFF only", b"RIFF", 2, bad), ("empty", b"", 2, bad), ("text", b"open the mouth", 2, bad),
        ("random", rng.randbytes(3000), 2, bad), ("MP3 junk", b"ID3\x03\x00" + rng.randbytes(500), 2, bad),
        ("FLAC junk", b"fLaC" + rng.randbytes(500), 2, bad),
        ("float NaN samples", _wav(fmt=3, width=4, frames=struct.pack("<f", float("nan")) * 8000), (0, 2), bad),
        ("float inf samples", _wav(fmt=3, width=4, frames=struct.pack("<f", float("inf")) * 8000), (0, 2), bad),
        ("silence 0.5 s", _wav(), 0, bad), ("a tone at 8 kHz", _tone(8000), 0, bad),
        ("8-bit", _wav(width=1), 0, bad), ("stereo", _wav(channels=2), 0, bad),
        ("very short", _wav(seconds=0.001), (0, 2), bad), ("compressed format 85", _wav(fmt=85), 2, bad),
    ]
    probes = []
    for name, data, code, pattern in cases:
        probes.append(Probe("audio", f"transcribe {name}", ["transcribe", "--json", "a.wav"], expect=code,
                            files={"a.wav": data}, sentence=pattern, timeout=120, json_error=True))
        if code == 2:
            probes.append(Probe("audio", f"parse --audio {name}", ["parse", "--json", "--audio", "a.wav"], expect=code,
                                files={"a.wav": data}, sentence=pattern))
            probes.append(Probe("audio", f"edit --audio {name}", ["edit", "--audio", "a.wav", "--out", "o.png"],
                                expect=code, files={"a.wav": data}, sentence=pattern))
    for name, path, pattern in [("missing", "nope.wav", "no such audio file"),
                                ("a folder", "adir", "folder|directory")]:
        probes.append(Probe("audio", f"transcribe {name}", ["transcribe", "--json", path], files={"adir/x": b""},
                            sentence=pattern, json_error=True))
    return probes


# --- probes: signals and terminals ------------------------------------------------------------

def _interrupted(res: Result) -> str | None:
    # Ctrl-C: exit 130 and one line; once the drag had begun, what was asked for is written.
    if "interrupted after" in res.stderr:
        for name in ("o.png", "o.gif"):
            problem = _valid_png(res.folder / name)
            if problem:
                return problem
        if not (res.folder / "o.npy").is_file():
            return "lost: o.npy was not written"
    elif "interrupted" not in res.stderr:
        return f"no word of the interruption: {_last(res.stderr)}"
    return None


def _previous_or_whole(res: Result) -> str | None:
    # kill -9 during the drag or its save: o.png is the user's old file or a whole new one.
    path = res.folder / "o.png"
    if not path.is_file():
        return "lost: the previous o.png is gone"
    if path.read_bytes() == OLD_PNG:
        return None
    return _valid_png(path)


OLD_PNG = _png(2, 2, _png_chunk(b"IDAT", zlib.compress(b"\x00" + b"\x10" * 6 + b"\x00" + b"\x20" * 6)))


def signal_probes() -> list[Probe]:
    probes = []
    drag = ["drag", "--points", "30,40>34,44", "--steps", "400", "--out", "o.png", "--gif", "o.gif",
            "--save-latent", "o.npy"]
    edit = ["edit", "--say", "open the mouth", "--steps", "400", "--out", "o.png", "--gif", "o.gif",
            "--save-latent", "o.npy"]
    # From 0.1 s: in its first tens of milliseconds the interpreter is still starting (importing
    # `site`) and no program's code, this one's included, can answer Ctrl-C yet.
    for at in (0.1, 0.15, 0.3, 0.6, 1.0, 1.5, 2.5, 4.0, 6.0):
        probes.append(Probe("signals", f"Ctrl-C in drag at {at} s", drag, expect=(0, 130), process=True,
                            send=(at, signal.SIGINT), check=_interrupted_or_done, timeout=60))
    for at in (0.1, 1.0, 3.0, 5.0):
        probes.append(Probe("signals", f"Ctrl-C in edit at {at} s", edit, expect=(0, 130), process=True,
                            send=(at, signal.SIGINT), check=_interrupted_or_done, timeout=60))
    for at in (0.5, 1.5, 2.5, 3.5, 4.5, 6.0):
        probes.append(Probe("signals", f"kill -9 in drag at {at} s over an existing file",
                            ["drag", "--points", "30,40>34,44", "--steps", "40", "--out", "o.png"], expect=(0, 9),
                            process=True, send=(at, signal.SIGKILL), files={"o.png": OLD_PNG},
                            check=_previous_or_whole, timeout=60))
    probes.append(Probe("signals", "SIGTERM in drag", drag, expect=(0, 15, 143), process=True,
                        send=(2.0, signal.SIGTERM), files={"o.png": OLD_PNG}, check=_previous_or_whole, timeout=60))
    probes.append(Probe("signals", "Ctrl-C in parse -", ["parse", "--json", "-"], expect=(0, 130), process=True,
                        stdin=b"open the mouth\n" * 2000, send=(1.0, signal.SIGINT), timeout=60))
    terminal = "terminal"
    for name, argv, env in [("no arguments", [], {}), ("tui", ["tui"], {}), ("options alone", ["--seed", "3"], {}),
                            ("tui with a model", ["tui", "--seed", "1"], {}), ("TERM=dumb", [], {"TERM": "dumb"}),
                            ("TERM unset", [], {"TERM": ""})]:
        probes.append(Probe("tui", f"TUI without a terminal: {name}", argv, sentence=terminal, process=True,
                            env=env, timeout=30))
    probes.append(Probe("tui", "closed pipe on parse", ["parse", "--json", "-"], expect=(0, 1), process=True,
                        stdin=b"open the mouth\n" * 50, timeout=60, close_stdout=True))
    probes.append(Probe("tui", "closed pipe on render", ["render", "--out", "o.png", "--json"], expect=(0, 1),
                        process=True, timeout=60, close_stdout=True, check=_wrote_if_ok("o.png")))
    return probes


def _interrupted_or_done(res: Result) -> str | None:
    if res.rc == 0:
        return _wrote_if_ok("o.png", "o.gif", "o.npy")(res)
    return _interrupted(res)


# --- probes: checkpoint bombs and malformed rules ---------------------------------------------

BOMB_SECONDS = 5.0
BOMB_MB = 500.0


def _written_for_the_tests(name: str) -> Any:
    """A module of tests/ that writes hostile inputs (they are shared, not copied, so that the tests
    and this suite always probe the same files)."""
    import importlib

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(f"tests.{name}")


def _bounded(res: Result) -> str | None:
    # The time limit itself is the probe's timeout ("hang"); the memory is checked here.
    if res.grew_mb is not None and res.grew_mb > BOMB_MB:
        return f"wrong-output: the process grew by {res.grew_mb:.0f} MB, more than {BOMB_MB:.0f} MB"
    return None


def bomb_probes() -> list[Probe]:
    """Every hostile checkpoint through `render` and `drag`: one sentence, exit 2, within 5 s and 500 MB."""
    anymodel = ("model|pickle|refused|corrupt|checkpoint|network|generator|argument|keyword|resolution|"
                "usable|truncated|holds a|not an|positional")
    commands = {"render": ["render", "--out", "o.png", "--model", "m.pkl"],
                "drag": ["drag", "--points", "30,40>31,41", "--steps", "1", "--out", "o.png", "--model", "m.pkl"]}
    return [Probe("checkpoint bombs", f"{cmd}: {hostile.name}", argv, files={"m.pkl": hostile.data},
                  sentence=anymodel, timeout=BOMB_SECONDS, check=_bounded)
            for hostile in _written_for_the_tests("hostile_pickles").hostile_checkpoints()
            for cmd, argv in commands.items()]


def rules_probes(seed: int = 0) -> list[Probe]:
    """Malformed rules files through `parse --rules` and through a model whose kit names them: each is
    read (and used) or refused in one sentence."""
    made = _written_for_the_tests("malformed_rules")
    texts = made.malformed_rules(seed=seed, random_count=40)
    cases = [(name, text.encode("utf-8")) for name, text in texts] + made.malformed_rules_bytes()
    parse = ["parse", "--rules", "r.toml", "--no-embeddings", "--json", "open the mouth"]
    probes = [Probe("malformed rules", f"parse: {name}", parse, expect=(0, 2), files={"r.toml": data},
                    sentence=r"rules|toml") for name, data in cases]
    weights, meta = _own_format()
    meta = {**meta, "kit": {**meta["kit"], "rules": "r.toml"}}
    edit = ["edit", "--model", "m.safetensors", "--say", "open the mouth", "--steps", "1", "--out", "o.png"]
    particular = [(n, d) for n, d in cases if "mutated" not in n]  # the random ones go through parse only
    probes += [Probe("malformed rules", f"edit, the model's kit: {name}", edit, expect=(0, 2),
                     files={"m.safetensors": weights, "m.json": json.dumps(meta).encode(), "r.toml": data},
                     sentence=r"rules|toml", check=_wrote_if_ok("o.png")) for name, data in particular]
    return probes


# --- probes: the TUI: typed commands and terminals without pixel size --------------------------

TUI_BATCH = 50  # lines typed into one app (one probe)
TUI_NUMBERS = ["0", "-0", "1", "63", "127", "128", "-5", "4294967295", "4294967296", "9" * 400, "1" * 40, "1.5",
               "-1.5", "1e400", "nan", "inf", "0x1f", "½", "٣", ""]
TUI_WORDS = ["undo", "redo", "reset", "save", "stop", "help", "new seed", "clear", "go", "labels", "before",
             "after", "show points", "hide points", "mask off", "/undo", "Undo.", "quit", "exit"]


def _tui_fuzz(rng: random.Random, n: int) -> list[bytes]:
    """Lines for the TUI: the typed-command fuzz, and every app command's grammar (voicedrag.tui.localcmd)
    with numbers at every extreme, reversed and empty rectangles and forty pairs at once."""
    def num() -> str:
        return rng.choice([*TUI_NUMBERS, str(rng.randint(-200, 300)), str(rng.randint(0, SIZE - 1))])

    def sep() -> str:
        return rng.choice([",", " ", ", ", ";"])

    def rect() -> str:
        a, b = rng.randint(0, SIZE - 1), rng.randint(0, SIZE - 1)
        return rng.choice([f"{b},{a},{a},{b}", f"{a},{a},{a},{a}", sep().join(num() for _ in range(4))])

    grammar: list[Callable[[], str]] = [
        lambda: f"{rng.choice(['mask', '/mask', 'MASK'])} {rect()}",
        lambda: rng.choice(["points ", "point ", ""]) + rng.choice([";", "; "]).join(
            f"{num()},{num()}>{num()},{num()}" for _ in range(rng.randint(1, 40))),
        lambda: f"{rng.choice(['seed', 'steps', '/seed'])} {num()}",
        lambda: f"name {rng.choice(['nose', 'x' * 80, 'left_eye', 'é', '_'])} {num()},{num()}",
        lambda: f"drag {num()},{num()} to {num()},{num()}",
        lambda: rng.choice(TUI_WORDS),
    ]
    fuzz = _fuzz_commands(rng, n)
    return [fuzz[k] if k % 2 else rng.choice(grammar)().encode("utf-8") for k in range(n)]


def _type_into_tui(argv: list[str]) -> int:
    """A forked probe: each line of stdin typed into one headless TUI on the embedded model. One JSON
    line per input: the app alive, a known command answering after it, its history kept, and the
    sentence of any handler that failed (the app survives those; they are bugs all the same)."""
    import asyncio

    from voicedrag.tui.app import TuiOptions, VoiceDragApp
    from voicedrag.tui.widgets import CommandBar
    from voicedrag.tui.workers import describe

    # As a terminal would deliver them: bytes that are not UTF-8 become lone surrogates here.
    lines = [raw.decode("utf-8", "surrogateescape") for raw in sys.stdin.buffer.read().split(b"\n")[:-1]]
    app = VoiceDragApp(TuiOptions(steps=2, renderer="halfcell", preload_parser=False, paraphrase=False,
                                  preview_seconds=0.0, load_delay=0.0, threads=1, out_dir="out"))
    bugs: list[str] = []

    async def drive() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 120
            while app.edit.session is None and app.edit.model_error is None and time.monotonic() < deadline:
                await pilot.pause(0.05)
            if app.edit.session is None:
                print(f"voicedrag: the model did not load ({app.edit.model_error}).", file=sys.stderr)
                return
            report = getattr(app.edit, "report_bug", None)  # where the app reports what a handler raised
            if report is not None:
                app.edit.report_bug = lambda err, doing: (bugs.append(describe(err, doing)), report(err, doing))
            app.exit = lambda *args, **kwargs: None  # 'quit' is typed too: asking to leave loses nothing
            bar = app.query_one(CommandBar)
            for n, line in enumerate(lines):
                s = app.edit.session
                before, at = [e.id for e in s.entries], s.index
                bugs.clear()
                app.options.steps = 7
                bar.post_message(CommandBar.Submitted(bar, line))
                bar.post_message(CommandBar.Submitted(bar, "steps 2"))  # the known command
                deadline = time.monotonic() + 30
                while (app.options.steps != 2 or app.edit.busy or any(w.is_running for w in app.workers)) \
                        and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                answered = app.options.steps == 2 and not app.edit.busy
                await pilot.pause()  # and every frame drawn
                now = [e.id for e in app.edit.session.entries]
                print(json.dumps({"n": n, "alive": app.is_running and app._exception is None, "answered": answered,
                                  "kept": now[: at + 1] == before[: at + 1], "bug": bugs[0] if bugs else None}),
                      flush=True)
                if not answered:
                    break

    asyncio.run(drive())
    return 0


def _tui_lines(inputs: list[bytes], first: int) -> Callable[[Result], list[tuple[str, str, str]]]:
    def check(res: Result) -> list[tuple[str, str, str]]:
        records: dict[int, dict] = {}
        for line in res.stdout.splitlines():
            try:
                record = json.loads(line)
                records[int(record["n"])] = record
            except (ValueError, KeyError, TypeError):
                continue
        outcomes = []
        for k, data in enumerate(inputs):
            name = f"TUI line {first + k}: {data[:40]!r}"
            r = records.get(k)
            if r is None:
                outcomes.append((name, "crash", f"no answer for it: {_last(res.stderr)}"))
            elif r.get("bug"):
                outcomes.append((name, "traceback", f"a handler failed: {str(r['bug'])[:160]}"))
            elif not r.get("alive"):
                outcomes.append((name, "crash", "the app ended"))
            elif not r.get("kept"):
                outcomes.append((name, "lost", "the history before it changed"))
            elif not r.get("answered"):
                outcomes.append((name, "hang", "a known command typed after it did not answer within 30 s"))
            else:
                outcomes.append((name, "ok", ""))
        return outcomes
    return check


def tui_command_probes(rng: random.Random) -> list[Probe]:
    inputs = _tui_fuzz(rng, 400)
    return [Probe("typed TUI commands", f"TUI batch {b // TUI_BATCH}", [], expect=0,
                  stdin=b"\n".join(inputs[b:b + TUI_BATCH]) + b"\n", run=_type_into_tui,
                  lines=_tui_lines(inputs[b:b + TUI_BATCH], b), count=len(inputs[b:b + TUI_BATCH]), timeout=600)
            for b in range(0, len(inputs), TUI_BATCH)]


_QUERIES = (b"\x1b[16t", b"\x1b[c", b"\x1b_G")  # cell size, device attributes (Sixel), Kitty graphics
_ANSWERS = {
    "answers": {b"\x1b[16t": b"\x1b[6;20;10t", b"\x1b[c": b"\x1b[?62;22c"},  # a terminal that knows itself
    "garbage": {q: b"\x1b[99999999999999999999;zz;t\x1b[?;;c" for q in _QUERIES},
    "not UTF-8": {q: b"\xff\xfe\x1b[\xc3t" for q in _QUERIES},
}


def _open_on_terminal(argv: list[str]) -> int:
    """A forked probe: `voicedrag tui` on a pseudo-terminal of rows x cols cells and xpx x ypx pixels
    (0: unknown) that answers its queries as `mode` says (silent, late, answers, garbage, not UTF-8).
    It must draw its screen and quit on ctrl+q; what it printed outside the screen goes to stderr,
    'drew' to stdout once the screen was drawn."""
    import fcntl
    import select
    import termios

    rows, cols, xpx, ypx, mode, term = argv
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", int(rows), int(cols), int(xpx), int(ypx)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": term}
    proc = subprocess.Popen([sys.executable, "-m", "voicedrag", "tui", "--out", "out"], stdin=slave, stdout=slave,
                            stderr=slave, env=env, start_new_session=True, close_fds=True)
    os.close(slave)
    out, answered, late, drawn_at, quit_sent = b"", 0, [], None, False
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < 60:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            out += chunk
        for query in _QUERIES:  # answer each query once, as the mode says
            while out.count(query) > answered and mode != "silent":
                answer = _ANSWERS.get(mode, _ANSWERS["answers"]).get(query, b"")
                if mode == "late":
                    late.append((time.monotonic() + 0.6, answer))
                else:
                    os.write(master, answer)
                answered += 1
        for when, answer in [a for a in late if a[0] <= time.monotonic()]:
            late.remove((when, answer))
            os.write(master, answer)  # after textual-image gave up: Textual reads it as keys
        screen = out.partition(b"\x1b[?1049h")[2]
        if drawn_at is None and b"voicedrag" in screen:
            drawn_at = time.monotonic()
        if drawn_at is not None and not quit_sent and time.monotonic() - drawn_at > 0.5:
            os.write(master, b"\x11")  # ctrl+q
            quit_sent = True
    if proc.poll() is None:
        proc.kill()
    code = proc.wait()
    os.close(master)
    before, _, rest = out.partition(b"\x1b[?1049h")
    after = rest.rpartition(b"\x1b[?1049l")[2] if rest else b""
    text = re.sub(rb"\x1b(\[[0-?]*[ -/]*[@-~]|_[^\x1b]*\x1b\\|\][^\x07]*\x07|.)", b"", before + after)
    sys.stderr.write(text.decode("utf-8", "replace"))
    print("drew" if drawn_at is not None else "never drew")
    return 124 if code < 0 else code


def _drew_and_said_nothing(res: Result) -> str | None:
    if res.stdout.strip().splitlines()[-1:] != ["drew"]:
        return f"wrong-output: the TUI never drew its screen: {_last(res.stderr)}"
    shown = res.stderr.strip()
    if shown:
        return f"wrong-output: printed outside its screen: {shown[:160]!r}"
    return None


def terminal_probes() -> list[Probe]:
    """The TUI on terminals that report no pixel size (SSH, the Linux console) and answer no query,
    garbage, bytes that are not UTF-8, or too late; and, for contrast, ones that answer."""
    probes = []
    for rows, cols, xpx, ypx in [(24, 80, 0, 0), (50, 200, 0, 0), (12, 40, 0, 0), (24, 80, 800, 480)]:
        for mode in ("silent", "late", "garbage", "not UTF-8", "answers"):
            for term in ("linux", "xterm-256color", "vt100"):
                probes.append(Probe("terminals without pixel size",
                                    f"{rows}x{cols} cells, {xpx}x{ypx} px, {mode}, TERM={term}",
                                    [str(rows), str(cols), str(xpx), str(ypx), mode, term], expect=0,
                                    run=_open_on_terminal, check=_drew_and_said_nothing, timeout=90))
    return probes



# --- the suite --------------------------------------------------------------------------------

def all_probes(seed: int = 0) -> list[Probe]:
    rng = random.Random(seed)
    return (command_probes(rng) + number_probes() + point_probes() + output_probes() + model_probes(rng)
            + model_file_probes() + image_probes(rng) + audio_probes(rng) + signal_probes() + bomb_probes()
            + rules_probes(seed) + tui_command_probes(rng) + terminal_probes())


def sample(probes: Sequence[Probe], every: int) -> list[Probe]:
    by: dict[str, list[Probe]] = {}
    for p in probes:
        by.setdefault(p.category, []).append(p)
    return [p for group in by.values() for p in group[::every]]


def summarise(done: Sequence[tuple[Probe, list[tuple[str, str, str]]]]) -> dict:
    table: dict[str, dict[str, int]] = {}
    for probe, outcomes in done:
        row = table.setdefault(probe.category, {v: 0 for v in VERDICTS})
        for _, kind, _ in outcomes:
            row[kind] += 1
    total = {v: sum(row[v] for row in table.values()) for v in VERDICTS}
    return {"probes": sum(total.values()), **total, "by_category": table}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="probes run at once (default 2)")
    ap.add_argument("--sample", type=int, default=1, help="run every Nth probe of each category")
    ap.add_argument("--only", nargs="*", default=None, help="categories to run")
    ap.add_argument("--list", action="store_true", help="list the probes and exit")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fuzzed inputs")
    ap.add_argument("--times", action="store_true", help="print every probe's seconds and memory")
    args = ap.parse_args(argv)
    probes = all_probes(args.seed)
    if args.only:
        probes = [p for p in probes if p.category in args.only]
    probes = sample(probes, args.sample)
    if args.list:
        for p in probes:
            print(f"{p.category:16s} {p.name}")
        print(f"{sum(p.count for p in probes)} probes")
        return 0
    t0 = time.monotonic()
    failures: list[tuple[str, str, str, str]] = []
    times: list[tuple[str, str, float | None, float | None]] = []

    def report(probe: Probe, outcomes: list[tuple[str, str, str]], res: Result) -> None:
        times.append((probe.category, probe.name, res.seconds, res.grew_mb))
        for name, kind, detail in outcomes:
            if kind != "ok":
                failures.append((probe.category, name, kind, detail))
                print(f"  {kind:12s} {probe.category}: {name}: {detail}", file=sys.stderr, flush=True)

    done = run_probes(probes, jobs=args.jobs, report=report)
    summary = summarise(done)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    worst = {c: {"slowest_s": round(max((s for cat, _, s, _ in times if cat == c and s is not None), default=0.0), 2),
                 "most_mb": round(max((m for cat, _, _, m in times if cat == c and m is not None), default=0.0), 1)}
             for c in summary["by_category"]}
    summary["worst"] = worst
    width = max([10, *(len(c) for c in summary["by_category"])])
    print(f"{'category':{width}s} {'probes':>6s} " + " ".join(f"{v:>12s}" for v in VERDICTS)
          + f" {'slowest s':>10s} {'most +MB':>9s}")
    for category, row in summary["by_category"].items():
        print(f"{category:{width}s} {sum(row.values()):6d} " + " ".join(f"{row[v]:12d}" for v in VERDICTS)
              + f" {worst[category]['slowest_s']:10.2f} {worst[category]['most_mb']:9.1f}")
    print(f"{'all':{width}s} {summary['probes']:6d} " + " ".join(f"{summary[v]:12d}" for v in VERDICTS))
    print(f"{summary['probes'] - summary['ok']} of {summary['probes']} probes failed in {summary['seconds']} s")
    if args.times:
        print(f"{'seconds':>8s} {'+MB':>7s}  probe")
        for category, name, secs, grew in sorted(times, key=lambda t: (t[0], -(t[2] or 0.0))):
            shown_mb = "-" if grew is None else f"{grew:7.1f}"
            print(f"{secs or 0.0:8.2f} {shown_mb:>7s}  {category}: {name}")
        summary["times"] = [dict(category=c, probe=n, seconds=None if s is None else round(s, 3),
                                 grew_mb=None if m is None else round(m, 1)) for c, n, s, m in times]
    summary["failures"] = [dict(category=c, probe=n, verdict=k, detail=d) for c, n, k, d in failures]
    print(json.dumps(summary))
    return 0 if summary["ok"] == summary["probes"] else 1


if __name__ == "__main__":
    sys.exit(main())
