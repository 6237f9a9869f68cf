"""A plain (not editable) install carries everything a user needs, and runs from any folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What the wheel must carry beside the code: the embedded model, its keypoint model, the rules, the cards.
SHIPPED = (
    "voicedrag_assets/models/faces.safetensors", "voicedrag_assets/models/faces.json",
    "voicedrag_assets/models/MODEL_CARD.md", "voicedrag_assets/keypoints/face_detector.safetensors",
    "voicedrag_assets/keypoints/face_detector.json", "voicedrag_assets/keypoints/MODEL_CARD.md",
    "voicedrag_assets/rules/face.toml",
)


def _copy_sources(dest: Path) -> Path:
    # Built from a copy, so that the build leaves nothing in the checkout.
    skip = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                  "tests", "benchmarks")
    shutil.copytree(REPO, dest, ignore=skip)
    return dest


@pytest.mark.slow
def test_a_wheel_installs_the_models_and_the_demo_runs_from_another_folder(tmp_path: Path) -> None:
    src = _copy_sources(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("voicedrag-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in SHIPPED if n not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert any(n.startswith("voicedrag/tui/") and n.endswith(".tcss") for n in names) or not list(
        (REPO / "voicedrag" / "tui").glob("*.tcss"))

    # A fresh venv that sees this environment's dependencies (torch, textual, ...) but not the
    # editable install of the checkout: a .pth file adds the site-packages folder as a plain path,
    # and plain paths do not run the editable finder's own .pth.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    deps = sysconfig.get_paths()["purelib"]
    (site / "deps.pth").write_text(deps + "\n")
    # pip installs into the fresh venv (its scripts too) without a pip of the venv's own.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VOICEDRAG_FIXTURES")}
    env["VOICEDRAG_FIXTURES"] = str(tmp_path / "no-fixtures")  # the demo may not lean on the test fixtures
    where = subprocess.run([str(python), "-c", "import voicedrag, voicedrag_assets; "
                            "print(voicedrag.__file__); print(voicedrag_assets.__file__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where

    demo = subprocess.run([str(venv / "bin" / "voicedrag"), "demo", "--json", "--out-dir", "demo"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    report = json.loads(demo.stdout)
    assert report["command"] == "open the mouth" and report["converged"]
    assert (work / "demo" / "after.png").is_file() and (work / "demo" / "drag.gif").is_file()

    edit = subprocess.run([str(venv / "bin" / "voicedrag"), "edit", "--model", "embedded", "--seed", "3", "--say",
                           "open the mouth", "--out", "open.png", "--json"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    assert edit.returncode == 0, edit.stderr
    out = json.loads(edit.stdout)
    assert [p["name"] for p in out["plan"]["pairs"]] and (work / "open.png").is_file()
