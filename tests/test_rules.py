"""Rules files: the shipped face rules, and clear errors for broken ones."""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from voicedrag.planning.rules import RULES_DIR, RulesError, default_rules, load_rules, parse_rules

FACE_KEYPOINTS = [
    "head_top", "chin", "left_ear_tip", "right_ear_tip", "left_ear_base", "right_ear_base", "left_brow",
    "right_brow", "left_eye_top", "left_eye_bottom", "left_eye_center", "right_eye_top", "right_eye_bottom",
    "right_eye_center", "nose_root", "nose_tip", "upper_lip", "lower_lip", "mouth_left", "mouth_right",
]


def test_face_rules_load_and_use_the_detector_names() -> None:
    rules = default_rules()
    assert list(rules.keypoints) == FACE_KEYPOINTS
    assert rules.reference == ("left_eye_center", "right_eye_center")
    assert {"mouth", "eyes", "ears", "nose", "head"} <= set(rules.parts)
    assert rules.part_words()["jaw"] == "mouth" and rules.part_words()["face"] == "head"
    assert rules.part_words()["eye"] == "eyes" and rules.part_words()["ear"] == "ears"
    for part in ("eyes", "ears"):
        assert rules.parts[part].sided


def test_face_rules_cover_the_issue_examples() -> None:
    rules = default_rules()
    for action, part in [("open", "mouth"), ("close", "eyes"), ("raise", "ears"), ("turn", "head"),
                         ("move", "nose"), ("lengthen", "nose"), ("smile", "mouth"), ("widen", "mouth")]:
        assert rules.find(action, part) is not None, (action, part)


def test_sided_rules_tag_both_sides() -> None:
    rules = default_rules()
    for rule in rules.rules:
        if rules.parts[rule.part].sided:
            sides = {h.side for h in rule.handles}
            assert sides == {"left", "right"}, (rule.action, rule.part)
            for h in rule.handles:
                assert h.point.startswith(h.side), (rule.action, rule.part, h.point)


def test_resolve_fallbacks() -> None:
    rules = default_rules()
    rule, d = rules.resolve("lower", "mouth", None)  # "lower the jaw"
    assert rule.action == "open" and d is None
    rule, d = rules.resolve("raise", "nose", None)
    assert rule.action == "move" and d == "up"
    assert rules.resolve("tilt", "nose", "left") is None


def test_load_by_name_and_path(tmp_path: Path) -> None:
    assert load_rules("face").name == "face"
    assert load_rules(RULES_DIR / "face.toml").name == "face"
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(RulesError, match="not valid TOML"):
        load_rules(bad)


def _face_data() -> dict:
    return tomllib.loads((RULES_DIR / "face.toml").read_text())


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["rule"][0]["handles"][0].update(point="lip_middle"), "lip_middle"),
    (lambda d: d["rule"][0].update(part="tail"), "not defined under"),
    (lambda d: d["rule"][0].update(action="dance"), "action must be one of"),
    (lambda d: d["rule"][0]["handles"][0].update(along=0.2), "exactly one of"),
    (lambda d: d["rule"][0].update(handles=[]), "no handles"),
    (lambda d: d.update(reference=["chin"]), "reference"),
    (lambda d: d.update(keypoints=[]), "no keypoints"),
    (lambda d: d["rule"][0]["handles"][0].update(move=[1.0]), "move must be"),
    (lambda d: next(r for r in d["rule"] if r["action"] == "tilt").update(default_direction="up"),
     "default_direction must be one of its directions"),
])
def test_broken_rules_say_what_is_wrong(mutate, message: str) -> None:
    data = _face_data()
    mutate(data)
    with pytest.raises(RulesError, match=message):
        parse_rules(data)


def test_other_domain_rules_change_the_vocabulary(tmp_path: Path) -> None:
    """A rules file for another model domain brings its own parts and words."""
    from voicedrag.language.commands import CommandParser, vocabulary

    path = tmp_path / "cat.toml"
    path.write_text("""
name = "cat"
reference = ["left_eye", "right_eye"]
keypoints = ["left_eye", "right_eye", "tail_tip", "tail_base"]
[parts.tail]
words = ["tail"]
[parts.eyes]
words = ["eyes", "eye"]
sided = true
[[rule]]
action = "raise"
part = "tail"
verbs = ["wag"]
handles = [{ point = "tail_tip", move = [0.0, -0.5] }]
[[rule]]
action = "close"
part = "eyes"
handles = [{ point = "left_eye", side = "left", move = [0.0, 0.1] },
           { point = "right_eye", side = "right", move = [0.0, 0.1] }]
""")
    rules = load_rules(path)
    p = CommandParser(rules, use_embeddings=False)
    r = p.parse("raise the tail")
    assert r.ok and r.edits[0].part == "tail"
    assert p.parse("wag the tale").edits[0].action == "raise"
    r = p.parse("open the mouth")
    assert r.error and "no mouth" in r.error
    assert "tail" in vocabulary(rules)


def test_tilt_has_a_default_direction_and_turn_has_none() -> None:
    rules = default_rules()
    tilt = rules.find("tilt", "head")
    assert tilt is not None and tilt.default_direction in tilt.directions
    turn = rules.find("turn", "head")
    assert turn is not None and turn.default_direction is None


# A dog's head seen from the front, 256 px: eyes 60 px apart.
ANIMAL_POINTS = {
    "left_eye_center": (98, 110), "right_eye_center": (158, 110), "nose_tip": (128, 160),
    "upper_lip": (128, 178), "lower_lip": (128, 186), "chin": (128, 205),
    "left_ear_tip": (60, 60), "left_ear_base": (88, 80), "right_ear_tip": (196, 60),
    "right_ear_base": (168, 80), "head_top": (128, 55),
}


@pytest.mark.parametrize("text, moved, check", [
    ("open the mouth", {"lower_lip", "upper_lip"}, lambda d: d["lower_lip"][1] > 20 and d["upper_lip"][1] < 0),
    ("close the mouth", {"lower_lip"}, lambda d: d["lower_lip"][1] < 0),
    ("raise the left ear", {"left_ear_tip"}, lambda d: d["left_ear_tip"][1] < 0),
    ("lower the ears", {"left_ear_tip", "right_ear_tip"}, lambda d: d["left_ear_tip"][1] > 0 and d["right_ear_tip"][1] > 0),
    ("perk up the ears", {"left_ear_tip", "right_ear_tip"}, lambda d: d["right_ear_tip"][1] < 0),
    ("turn the head left", {"nose_tip", "left_eye_center", "right_eye_center", "upper_lip"},
     lambda d: all(v[0] < 0 for v in d.values())),
    ("tilt the head", {"head_top", "left_eye_center", "right_eye_center", "nose_tip"}, lambda d: d["head_top"][0] > 0),
    ("move the nose up", {"nose_tip"}, lambda d: d["nose_tip"][1] < 0),
    ("roar", {"lower_lip", "upper_lip"}, lambda d: d["lower_lip"][1] > 0),
])
def test_animal_rules_plan_each_command_on_template_points(text: str, moved: set[str], check) -> None:
    from engine.types import Point
    from voicedrag.language.commands import CommandParser
    from voicedrag.planning.pipeline import plan_command

    rules = load_rules("animal")
    parse = CommandParser(rules, use_embeddings=False).parse(text)
    assert parse.ok, parse.error
    image = np.zeros((256, 256, 3), np.uint8)
    keypoints = {n: Point(float(x), float(y)) for n, (x, y) in ANIMAL_POINTS.items()}
    planned = plan_command(parse, (image.shape[1], image.shape[0]), keypoints, rules=rules)
    got = {n: (p.target.x - p.handle.x, p.target.y - p.handle.y) for n, p in zip(planned.plan.names, planned.pairs)}
    assert set(got) == moved and check(got)
    for n, p in zip(planned.plan.names, planned.pairs):
        assert (p.handle.x, p.handle.y) == ANIMAL_POINTS[n]
