"""Malformed rules files: particular faults, and seeded random mutations of the shipped rules.

Used by tests/test_rules_schema.py (whose Hypothesis test draws its own mutations with the same
writer) and by the "malformed rules" category of benchmarks/robustness.py. Only the standard
library is imported, so the texts are the same wherever they are made.
"""
from __future__ import annotations

import copy
import datetime
import json
import math
import random
import sys
import tomllib
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parents[1] / "assets" / "rules"


def shipped() -> dict[str, dict]:
    return {name: tomllib.loads((RULES_DIR / f"{name}.toml").read_text(encoding="utf-8"))
            for name in ("face", "animal")}


# --- a TOML writer -------------------------------------------------------------------------------

def toml_string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML wants DEL escaped too.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(data: dict) -> str:
    """`data` as TOML, every table inline (`rule = [{...}, ...]` reads as [[rule]] does)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))  # the writer recurses per level; the reader must not
    try:
        return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in data.items())
    finally:
        sys.setrecursionlimit(limit)


# --- mutations -----------------------------------------------------------------------------------

def places(value: object) -> list[tuple[object, object]]:
    """Every (container, key or index) in a parsed document."""
    out: list[tuple[object, object]] = []
    todo = [value]
    while todo:
        node = todo.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            out.append((node, key))
            todo.append(child)
    return out


def nest(value: object, depth: int, as_table: bool) -> object:
    for _ in range(depth):
        value = {"a": value} if as_table else [value]
    return value


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 2 else 7)
    if kind == 0:
        return rng.choice([0, 1, -1, 3, 2**63 - 1, -(2**63)])
    if kind == 1:
        return rng.choice([0.0, 0.5, -1e308, 1e308, math.inf, -math.inf, math.nan])
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return rng.choice(["", "lower_lip", "mouth", "open", "left", "up", "a\nb", "\x00", "\x7f", "é", "x" * 500])
    if kind == 4:
        return datetime.date(1979, 5, 27)
    if kind == 5:
        return rng.choice(["chin", "nose_tip"]) if rng.random() < 0.5 else 7
    if kind == 6:
        return None  # not a TOML value: the caller deletes the key instead
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["point", "move", "a", "handles", "x y"]): _random_value(rng, depth + 1)
            for _ in range(rng.randrange(4))}


def mutate(data: dict, rng: random.Random, changes: int) -> str:
    """Change `data` in place `changes` times; returns what was done, in a few words."""
    done = []
    for _ in range(changes):
        spots = places(data)
        if not spots:
            break
        container, key = rng.choice(spots)
        action = rng.choice(["replace", "delete", "nest", "wrap"])
        value = _random_value(rng) if action == "replace" else None
        if action == "delete" or (action == "replace" and value is None):
            del container[key]  # type: ignore[attr-defined]
            done.append(f"deleted {key!r}")
        elif action == "replace":
            container[key] = value  # type: ignore[index]
            done.append(f"{key!r} replaced")
        else:
            depth = rng.randint(1, 600) if action == "nest" else 1
            container[key] = nest(container[key], depth, rng.random() < 0.5)  # type: ignore[index]
            done.append(f"{key!r} nested {depth} deep")
    return ", ".join(done)


def _face_with(change: object) -> str:
    data = copy.deepcopy(shipped()["face"])
    change(data)  # type: ignore[operator]
    return toml_document(data)


def malformed_rules(seed: int = 0, random_count: int = 40) -> list[tuple[str, str]]:
    """(name, TOML text) of rules files that must be refused in one sentence, or read."""
    cases: list[tuple[str, str]] = [
        ("an integer where a rule's table belongs", _face_with(lambda d: d.update(rule=[3, *d["rule"]]))),
        ("an integer for handles", _face_with(lambda d: d["rule"][0].update(handles=3))),
        ("a word where a handle's table belongs", _face_with(lambda d: d["rule"][0]["handles"].insert(0, "chin"))),
        ("move of words", _face_with(lambda d: d["rule"][0]["handles"][0].update(move=["a", "b"]))),
        ("move of inf", _face_with(lambda d: d["rule"][0]["handles"][0].update(move=[math.inf, 0.0]))),
        ("limit max nan", _face_with(lambda d: d["rule"][0]["limits"][0].update(max=math.nan))),
        ("limits a table", _face_with(lambda d: d["rule"][0].update(limits={"point": "chin"}))),
        ("parts an integer", _face_with(lambda d: d.update(parts=3))),
        ("a part an integer", _face_with(lambda d: d["parts"].update(mouth=3))),
        ("sided a word", _face_with(lambda d: d["parts"]["eyes"].update(sided="yes"))),
        ("a part name with a newline", _face_with(lambda d: d["parts"].update({"a\nb": {}}))),
        ("keypoints an integer", _face_with(lambda d: d.update(keypoints=3))),
        ("mask_margin true", _face_with(lambda d: d.update(mask_margin=True))),
        ("a date for the name", _face_with(lambda d: d.update(name=datetime.date(2024, 1, 1)))),
        ("an unknown key", _face_with(lambda d: d["rule"][0].update(handle=[]))),
        ("rules for rule", _face_with(lambda d: d.update(rules=d.pop("rule")))),
        ("arrays nested 100,000 deep", "name = " + "[" * 100_000 + "]" * 100_000 + "\n"),
        ("inline tables nested 5,000 deep", "x = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n"),
        ("a table header 50,000 keys deep", "[parts.mouth" + ".a" * 50_000 + "]\n"),
        ("a long table header twice", ("[parts.mouth" + ".a" * 150 + "]\n") * 2),
        ("not TOML", "name = [\n"),
        ("a 2 MB comment", "# " + "x" * (2 << 20) + "\n"),
        ("an empty file", ""),
    ]
    rng = random.Random(seed)
    rules = shipped()
    for i in range(random_count):
        name = rng.choice(sorted(rules))
        data = copy.deepcopy(rules[name])
        what = mutate(data, rng, rng.randint(1, 3))
        cases.append((f"{name} mutated #{i}: {what}"[:80], toml_document(data)))
    return cases


def malformed_rules_bytes() -> list[tuple[str, bytes]]:
    """Rules files that are not even text."""
    return [("not UTF-8", b'name = "\xff\xfe"\n'), ("a NUL byte", b"name = \"a\x00b\"\n")]
