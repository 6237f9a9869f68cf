"""`voicedrag edit`: words -> plan -> drag, headless."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import fixture_path


def voicedrag(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voicedrag", *args], capture_output=True, text=True, timeout=600)


def test_explicit_drag_by_words(tmp_path):
    model = fixture_path("sg2_64_flat.pkl")
    out = tmp_path / "out.png"
    p = voicedrag("edit", "--model", str(model), "--seed", "1", "--say", "drag twenty, thirty to 26 30 please",
                  "--steps", "3", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["edits"][0]["action"] == "drag"
    assert report["pairs"][0]["handle"] == [20.0, 30.0] and report["pairs"][0]["target"] == [26.0, 30.0]
    assert report["steps"] == 3 and out.is_file()
    assert set(report) >= {"model", "seed", "size", "pairs", "steps", "converged", "mean_distance", "seconds", "out"}


@pytest.mark.parametrize("say,needle", [("make it pretty", "did you mean"), ("undo", "control word"),
                                         ("drag 200,30 to 20,30", "outside")])
def test_words_that_make_no_edit(say, needle, tmp_path):
    model = fixture_path("sg2_64_flat.pkl")
    p = voicedrag("edit", "--model", str(model), "--say", say, "--out", str(tmp_path / "o.png"))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0].lower() and "Traceback" not in p.stderr
