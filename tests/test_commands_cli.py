"""`voicedrag parse`: one command as JSON, or one command per line from stdin."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voicedrag.cli import main

REPO = Path(__file__).resolve().parents[1]
FIELDS = {"text", "corrected", "control", "edits", "error"}
EDIT_FIELDS = {"action", "part", "side", "direction", "amount", "pixels", "handle", "target"}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


def test_parse_json_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["parse", "Open the mouse.", "--json", "--no-embeddings"], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    js = json.loads(lines[0])
    assert FIELDS <= set(js)
    assert js["text"] == "Open the mouse." and js["corrected"] == "open the mouth"
    assert js["control"] is None and js["error"] is None
    assert len(js["edits"]) == 1 and set(js["edits"][0]) == EDIT_FIELDS
    assert js["edits"][0]["action"] == "open" and js["edits"][0]["part"] == "mouth"


def test_parse_json_drag_points(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run_cli(["parse", "drag 30,40 to 50,60", "--json", "--no-embeddings"], capsys)
    e = json.loads(out)["edits"][0]
    assert e["action"] == "drag" and e["handle"] == [30.0, 40.0] and e["target"] == [50.0, 60.0]


def test_parse_json_error_and_control(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run_cli(["parse", "wag the tail", "--json", "--no-embeddings"], capsys)
    js = json.loads(out)
    assert "no tail" in js["error"] and js["edits"] == []
    _, out = run_cli(["parse", "undo", "--json", "--no-embeddings"], capsys)
    assert json.loads(out)["control"] == "undo"


def test_parse_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["parse", "close the left eye", "--no-embeddings"], capsys)
    assert code == 0 and "close the left eye" in out


def test_parse_stdin_one_object_per_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["open the mouth", "", "undo", "drag 1,2 to 3,4", "banana"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    code, out = run_cli(["parse", "--json", "--no-embeddings", "-"], capsys)
    assert code == 0
    objs = [json.loads(line) for line in out.strip().splitlines()]
    assert [o["text"] for o in objs] == lines
    assert objs[0]["edits"][0]["part"] == "mouth"
    assert objs[1]["error"] and objs[2]["control"] == "undo" and objs[4]["error"]


def test_parse_unknown_rules_file_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["parse", "smile", "--rules", str(tmp_path / "none.toml")])
    assert code == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_parse_stdin_subprocess_with_model() -> None:
    """The real entry point, sentence model included, reading several lines in one process."""
    proc = subprocess.run(
        [sys.executable, "-m", "voicedrag", "parse", "--json", "-"],
        input="open the mouth\nshow me your teeth\nraise both years\n", capture_output=True, text=True,
        cwd=REPO, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    objs = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert len(objs) == 3
    assert objs[0]["edits"][0]["action"] == "open"
    assert objs[1]["edits"][0]["action"] == "open" and objs[1]["edits"][0]["part"] == "mouth"
    assert objs[2]["edits"][0]["part"] == "ears"


def test_parse_needs_text_or_audio(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["parse", "--no-embeddings"]) == 2
    assert "--audio" in capsys.readouterr().err
    assert main(["parse", "smile", "--audio", str(tmp_path / "a.wav"), "--no-embeddings"]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message"), [(None, "No such audio file"), (b"", "empty"),
                                                  (b"RIFF not really a wav", "not a readable")])
def test_parse_bad_audio_is_one_clear_sentence(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               content: bytes | None, message: str) -> None:
    path = tmp_path / "command.wav"
    if content is not None:
        path.write_bytes(content)
    code = main(["parse", "--audio", str(path), "--json", "--no-embeddings"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    err = captured.err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_parse_audio_spoken_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A spoken command, transcribed offline with the rules' vocabulary as the prompt, then parsed."""
    wav = tmp_path / "f.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), "open the mouth"], check=True,
                   capture_output=True)
    code, out = run_cli(["parse", "--audio", str(wav), "--json", "--no-embeddings"], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    js = json.loads(lines[0])
    assert FIELDS | {"transcript", "audio"} <= set(js)
    assert js["audio"] == str(wav) and js["text"] == js["transcript"]
    assert "mouth" in js["transcript"].lower()
    assert js["error"] is None and len(js["edits"]) == 1
    assert js["edits"][0]["action"] == "open" and js["edits"][0]["part"] == "mouth"
    # Plain output shows what was heard, then what it means.
    code, out = run_cli(["parse", "--audio", str(wav), "--no-embeddings"], capsys)
    assert code == 0 and out.startswith("transcript: ") and "edit: open the mouth" in out


def test_parse_stdin_survives_bytes_that_are_not_utf8() -> None:
    import subprocess
    import sys

    # A strict UTF-8 locale and an invalid byte in the middle line: every line still gets its object.
    env = {**__import__("os").environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict"}
    proc = subprocess.run([sys.executable, "-m", "voicedrag", "parse", "--json", "--no-embeddings", "-"],
                          input=b"open the mouth\n\xff\xfe bad\nclose the eyes\n", capture_output=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["text"] for r in rows] == ["open the mouth", "\ufffd\ufffd bad", "close the eyes"]
    assert rows[0]["edits"] and rows[2]["edits"]
