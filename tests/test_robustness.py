"""The robustness suite (benchmarks/robustness.py): a sample of its probes must all end as
expected, and its verdicts must tell each kind of failure apart."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "robustness.py"


def _module():
    spec = importlib.util.spec_from_file_location("robustness", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["robustness"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


rb = _module()


def _result(tmp_path: Path, rc: int | None, stdout: str = "", stderr: str = "", signalled: bool = False):
    return rb.Result(rc, stdout, stderr, tmp_path, signalled)


def test_the_suite_has_at_least_1400_probes_in_every_category():
    probes = rb.all_probes()
    categories = {p.category for p in probes}
    assert sum(p.count for p in probes) >= 1400
    assert {"commands", "numbers", "devices", "points", "outputs", "pickles", "models", "configs", "images",
            "audio", "signals", "tui", "typed TUI commands", "terminals without pixel size"} <= categories
    # Every user error names what its message must say.
    assert all(p.sentence for p in probes if p.expect == 2 and p.lines is None)


def test_verdicts_tell_failures_apart(tmp_path):
    probe = rb.Probe("x", "x", [], expect=2, sentence="seed")
    assert rb.verdict(probe, _result(tmp_path, 2, stderr="voicedrag: give a seed from 0.\n"))[0] == "ok"
    assert rb.verdict(probe, _result(tmp_path, None))[0] == "hang"
    assert rb.verdict(probe, _result(tmp_path, -11))[0] == "crash"
    traceback = "Traceback (most recent call last):\n  x\nValueError: y\n"
    assert rb.verdict(probe, _result(tmp_path, 1, stderr=traceback))[0] == "traceback"
    assert rb.verdict(probe, _result(tmp_path, 0))[0] == "wrong-exit"
    assert rb.verdict(probe, _result(tmp_path, 2, stderr="voicedrag: the psi is bad.\n"))[0] == "wrong-output"
    assert rb.verdict(probe, _result(tmp_path, 2, stderr="voicedrag: a seed.\nvoicedrag: and more.\n"))[0] \
        == "wrong-output"
    (tmp_path / rb.MARKER).write_text("")
    assert rb.verdict(probe, _result(tmp_path, 2, stderr="voicedrag: a seed.\n"))[0] == "ran-code"


def test_lost_files_are_found(tmp_path):
    (tmp_path / "o.png").write_bytes(rb.OLD_PNG[:20])  # the user's file, cut short
    assert rb._previous_or_whole(_result(tmp_path, -9, signalled=True)).startswith("lost")
    (tmp_path / "o.png").write_bytes(rb.OLD_PNG)
    assert rb._previous_or_whole(_result(tmp_path, -9, signalled=True)) is None
    probe = rb.Probe("x", "x", [], expect=0, check=rb._wrote_if_ok("a.png"))
    assert rb.verdict(probe, _result(tmp_path, 0)) == ("lost", "a.png was not written")


def test_typed_command_batches_check_every_line(tmp_path):
    lines = rb._batch_lines([b"open the mouth", b"zz"], 0)
    good = [json.dumps({"text": "open the mouth", "edits": [{}]}), json.dumps({"text": "zz", "error": "no"})]
    assert [v for _, v, _ in lines(_result(tmp_path, 0, stdout="\n".join(good)))] == ["ok", "ok"]
    assert [v for _, v, _ in lines(_result(tmp_path, 0, stdout=good[0]))] == ["ok", "wrong-output"]
    assert [v for _, v, _ in lines(_result(tmp_path, 0, stdout=good[0] + "\nNaN"))] == ["ok", "wrong-output"]


def test_typed_tui_lines_check_every_line(tmp_path):
    lines = rb._tui_lines([b"undo", b"mask 1,2,3,4", b"seed 1", b"steps 9", b"go"], 0)
    ok = {"alive": True, "answered": True, "kept": True, "bug": None}
    records = [{"n": 0, **ok}, {"n": 1, **ok, "bug": "the command failed (ValueError: x); this is a bug"},
               {"n": 2, **ok, "kept": False}, {"n": 3, **ok, "answered": False}]
    stdout = "\n".join(json.dumps(r) for r in records)
    assert [v for _, v, _ in lines(_result(tmp_path, 0, stdout=stdout))] == ["ok", "traceback", "lost", "hang", "crash"]


def test_a_terminal_probe_sees_what_was_printed_outside_the_screen(tmp_path):
    assert rb._drew_and_said_nothing(_result(tmp_path, 0, stdout="drew\n")) is None
    assert rb._drew_and_said_nothing(_result(tmp_path, 0, stdout="never drew\n")).startswith("wrong-output")
    assert "printed outside" in rb._drew_and_said_nothing(_result(tmp_path, 0, stdout="drew\n",
                                                                  stderr="Failed to get cell size\n"))


def test_the_crafted_pickles_are_what_they_claim():
    cases = dict((name, data) for name, data, _ in rb._pickle_cases())
    assert b"_reconstruct_persistent_obj" in cases["init img_resolution=1099511627776"]
    assert b"_stand_in" not in cases["init img_resolution=1099511627776"]
    assert b"numpy" in cases["dtype field past its item (V4)"] and len(cases["billion laughs memo"]) < 2000


def test_a_sample_of_the_probes_all_end_as_expected():
    # A fresh process: the probes are forked from it, which needs a process that has run no torch op.
    proc = subprocess.run([sys.executable, str(SCRIPT), "--sample", "7", "--jobs", "2"], capture_output=True,
                          text=True, timeout=900)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["probes"] >= 150, summary
    failures = "\n".join(f"{f['verdict']}: {f['category']}: {f['probe']}: {f['detail']}" for f in summary["failures"])
    assert summary["ok"] == summary["probes"], failures
    assert proc.returncode == 0


# --- what the suite found, each checked where it was fixed -----------------------------------

def test_network_arguments_that_are_not_keywords_are_one_sentence(tmp_path):
    from engine.errors import CheckpointError
    from engine.loading import load_generator

    for kwargs in ([1, 2], {"mapping_kwargs": [1]}, {1: 2}, {"synthesis_kwargs": "x"}):
        path = tmp_path / "m.pkl"
        path.write_bytes(rb._persistent(kwargs))
        try:
            load_generator(path, device="cpu")
        except CheckpointError as err:
            assert "keyword" in str(err) and "\n" not in str(err), err
        else:
            raise AssertionError(f"{kwargs!r} loaded")
    assert not (tmp_path / rb.MARKER).exists()  # the module source in the file never ran


def test_a_kit_naming_rules_that_do_not_exist_is_refused_with_the_model(tmp_path):
    from engine.errors import UserError
    from voicedrag.editor import KitSpec

    weights, meta = rb._own_format()
    (tmp_path / "m.safetensors").write_bytes(weights)
    meta["kit"] = {"rules": "nonesuch", "detector": "faceworld"}
    (tmp_path / "m.json").write_text(json.dumps(meta))
    try:
        KitSpec.from_model_file(tmp_path / "m.safetensors")
    except UserError as err:
        assert "nonesuch" in str(err) and "face" in str(err)
    else:
        raise AssertionError("unknown rules accepted")
    meta["kit"] = {"rules": "face", "detector": "faceworld"}
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert KitSpec.from_model_file(tmp_path / "m.safetensors").rules == "face"
