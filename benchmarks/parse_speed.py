"""Command parsing speed: loading the parser and sentence model, then one line at a time.

Targets: loading <= 3 s; one line parsed <= 20 ms after loading.
Lines the grammar understands never touch the sentence model; paraphrases
("drop the jaw") and unknown words do, so the two kinds are timed apart.

    .venv/bin/python benchmarks/parse_speed.py [--repeat N]

Prints a table, and as its last line one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRAMMAR_LINES = [
    "open the mouth a little", "close the left eye", "raise both ears", "turn the head right",
    "move the nose up by 4 pixels", "make the nose longer", "smile", "open the mouth and close the eyes",
    "Open the mouse.", "drag 30,40 to 50,60", "undo", "save the picture", "close the ice",
    "raise both years", "turn the hat left", "drag one twenty, two hundred to one forty, one eighty",
    "could you please tilt the head to the left a lot", "open the", "wag the tail", "widen his jaw",
]
MODEL_LINES = [
    "show me your teeth", "look surprised", "go to sleep", "the teeth should show", "let the ears flop",
    "look happy and wiggle", "keep the lips together", "make the ears stand up",
]


def _whisper_lines() -> list[str]:
    """Real recogniser transcripts, when tests/data has them (mishearings exercise the corrector)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "data" / "whisper_mishearings.tsv"
    if not path.is_file():
        return []
    lines = []
    for row in path.read_text(encoding="utf-8").splitlines()[1:]:
        cols = row.split("\t")
        lines.extend(c for c in cols[3:5] if c.strip())
    return lines


def _timed(parser: object, line: str) -> float:
    """Seconds to parse one line, with the per-line caches emptied (a line never seen before)."""
    index = getattr(parser, "_index", None)
    if index is not None:
        index._recent.clear()
    parser.corrector._lookup.cache_clear()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    parser.parse(line)  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def _stats(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "mean_ms": round(statistics.fmean(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
        "max_ms": round(ms[-1], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="passes over the line sets")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from voicedrag.language.commands import CommandParser

    import_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    parser = CommandParser()
    build_s = time.perf_counter() - t0

    # Cold: no cached phrase embeddings (first run on a machine). Warm: later runs.
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = tmp
        t0 = time.perf_counter()
        cold = CommandParser()
        ok = cold.load()
        load_cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = CommandParser()
        warm.load()
        load_warm_s = time.perf_counter() - t0
        if old is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = old
    parser = warm
    if not ok:
        print(f"sentence model not loaded: {cold.embedding_error}")

    for line in GRAMMAR_LINES + MODEL_LINES:  # warm-up (first calls allocate)
        parser.parse(line)
    grammar_t: list[float] = []
    model_t: list[float] = []
    for _ in range(args.repeat):
        grammar_t.extend(_timed(parser, line) for line in GRAMMAR_LINES)
        model_t.extend(_timed(parser, line) for line in MODEL_LINES)
    whisper_t = [_timed(parser, line) for line in _whisper_lines()]
    g, m, a = _stats(grammar_t), _stats(model_t), _stats(grammar_t + model_t + whisper_t)
    w = _stats(whisper_t) if whisper_t else None

    print("command parsing speed")
    print(f"  import voicedrag.language.commands (pulls in engine, torch)  {import_s:8.3f} s")
    print(f"  build parser (rules, lexicon, corrector)            {build_s:8.3f} s")
    print(f"  load sentence model + embed phrasings, cold cache   {load_cold_s:8.3f} s   target <= 3 s")
    print(f"  load sentence model, warm cache                     {load_warm_s:8.3f} s   target <= 3 s")
    print(f"  {'lines':<24}{'n':>5}{'mean ms':>10}{'p95 ms':>10}{'max ms':>10}")
    rows = [("grammar", g, len(grammar_t)), ("paraphrase (model)", m, len(model_t))]
    if w is not None:
        rows.append(("real whisper transcripts", w, len(whisper_t)))
    rows.append(("all", a, len(grammar_t) + len(model_t) + len(whisper_t)))
    for name, st, n in rows:
        print(f"  {name:<24}{n:>5}{st['mean_ms']:>10}{st['p95_ms']:>10}{st['max_ms']:>10}")
    print("  target: one line <= 20 ms")
    print(json.dumps({
        "import_s": round(import_s, 3), "build_s": round(build_s, 3),
        "load_cold_s": round(load_cold_s, 3), "load_warm_s": round(load_warm_s, 3),
        "model_loaded": ok, "grammar": g, "paraphrase": m, "whisper": w, "all": a,
        "load_ok": load_cold_s <= 3.0, "line_ok": a["mean_ms"] <= 20.0,
    }))


if __name__ == "__main__":
    main()
