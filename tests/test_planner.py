"""Planning: edit intents + keypoints -> drag pairs and the region that may move."""
from __future__ import annotations

import math

import pytest

from engine.types import Point
from voicedrag.language.commands import CommandParser
from voicedrag.intents import EditIntent
from voicedrag.planning.rules import MIN_HANDLE_GAP, RulesError, default_rules, mask_array, plan

SIZE = (256, 256)


def face(scale: float = 1.0, cx: float = 128.0, cy: float = 128.0) -> dict[str, Point]:
    """A frontal face laid out like the embedded renderer's (viewer's left = smaller x)."""
    raw = {
        "head_top": (0, -80), "chin": (0, 78), "left_ear_tip": (-93, -52), "right_ear_tip": (93, -52),
        "left_ear_base": (-62, -30), "right_ear_base": (62, -30), "left_brow": (-30, -34),
        "right_brow": (30, -34), "left_eye_top": (-30, -20), "left_eye_bottom": (-30, -10),
        "left_eye_center": (-30, -15), "right_eye_top": (30, -20), "right_eye_bottom": (30, -10),
        "right_eye_center": (30, -15), "nose_root": (0, -12), "nose_tip": (0, 14), "upper_lip": (0, 34),
        "lower_lip": (0, 36), "mouth_left": (-20, 37), "mouth_right": (20, 37),
    }
    return {k: Point(cx + x * scale, cy + y * scale) for k, (x, y) in raw.items()}


def pairs_by_name(p) -> dict[str, tuple[Point, Point]]:
    return {n: (pair.handle, pair.target) for n, pair in zip(p.names, p.pairs)}


@pytest.fixture(scope="module")
def parser() -> CommandParser:
    return CommandParser(use_embeddings=False)


def test_open_mouth_moves_lower_lip_down_inside_mask(parser: CommandParser) -> None:
    kp = face()
    result = plan(parser.parse("open the mouth").edits, kp, SIZE)
    got = pairs_by_name(result)
    handle, target = got["lower_lip"]
    assert handle == kp["lower_lip"] and target.y > handle.y
    assert abs(target.x - handle.x) < 1e-6
    assert result.mask is not None
    m = result.mask_array()
    assert m is not None and m.shape == (256, 256)
    for h, t in got.values():
        assert m[int(h.y), int(h.x)] and m[int(t.y), int(t.x)]
    # The eyes must not be in the region that may move.
    assert not m[int(kp["left_eye_center"].y), int(kp["left_eye_center"].x)]


def test_amount_and_pixels_scale_displacement(parser: CommandParser) -> None:
    kp = face()
    kp["lower_lip"] = kp["upper_lip"]  # closed, so that even "wide" stays inside the mouth's limit
    base = pairs_by_name(plan(parser.parse("open the mouth").edits, kp, SIZE))["lower_lip"]
    small = pairs_by_name(plan(parser.parse("open the mouth a little").edits, kp, SIZE))["lower_lip"]
    wide = pairs_by_name(plan(parser.parse("open the mouth wide").edits, kp, SIZE))["lower_lip"]
    d = lambda p: p[0].distance(p[1])  # noqa: E731
    assert d(small) < d(base) < d(wide)
    px = plan(parser.parse("move the nose up by 4 pixels").edits, kp, SIZE)
    moves = [pair.handle.distance(pair.target) for pair in px.pairs]
    assert max(moves) == pytest.approx(4.0)
    for pair in px.pairs:
        assert pair.target.y < pair.handle.y


def test_plan_scales_with_face(parser: CommandParser) -> None:
    edits = parser.parse("open the mouth").edits
    small = pairs_by_name(plan(edits, face(0.5), SIZE))["lower_lip"]
    big = pairs_by_name(plan(edits, face(1.0), SIZE))["lower_lip"]
    assert big[0].distance(big[1]) == pytest.approx(2 * small[0].distance(small[1]), rel=1e-6)


def test_sides_pick_handles(parser: CommandParser) -> None:
    kp = face()
    left = pairs_by_name(plan(parser.parse("close the left eye").edits, kp, SIZE))
    assert set(left) == {"left_eye_top"}
    h, t = left["left_eye_top"]
    assert t.y > h.y  # the lid comes down
    both = pairs_by_name(plan(parser.parse("raise both ears").edits, kp, SIZE))
    assert set(both) == {"left_ear_tip", "right_ear_tip"}
    assert all(t.y < h.y for h, t in both.values())
    right = plan(parser.parse("raise the right ear").edits, kp, SIZE)
    assert right.names == ["right_ear_tip"]
    assert right.mask is not None and all(x0 > 128 for x0, _, _, _ in right.mask)


def test_directions_are_the_viewers(parser: CommandParser) -> None:
    kp = face()
    right = pairs_by_name(plan(parser.parse("turn the head right").edits, kp, SIZE))
    assert "nose_tip" in right and all(t.x > h.x for h, t in right.values())
    left = pairs_by_name(plan(parser.parse("tilt the head to the left").edits, kp, SIZE))
    h, t = left["head_top"]
    assert t.x < h.x  # the top of the head goes to the viewer's left
    # Rotation about the chin keeps distances to it.
    assert t.distance(kp["chin"]) == pytest.approx(h.distance(kp["chin"]), rel=1e-6)


def test_smile_and_longer_nose(parser: CommandParser) -> None:
    kp = face()
    smile = pairs_by_name(plan(parser.parse("smile").edits, kp, SIZE))
    assert smile["mouth_left"][1].y < smile["mouth_left"][0].y
    assert smile["mouth_left"][1].x < smile["mouth_left"][0].x
    assert smile["mouth_right"][1].x > smile["mouth_right"][0].x
    nose = pairs_by_name(plan(parser.parse("make the nose longer").edits, kp, SIZE))
    assert nose["nose_tip"][1].y > nose["nose_tip"][0].y


def test_several_edits_combine(parser: CommandParser) -> None:
    kp = face()
    result = plan(parser.parse("open the mouth and close the eyes").edits, kp, SIZE)
    names = set(result.names)
    assert {"lower_lip", "left_eye_top", "right_eye_top"} <= names
    assert result.mask is not None and len(result.mask) >= 2
    # The same keypoint named twice moves once, by the sum.
    twice = plan([EditIntent("open", "mouth"), EditIntent("open", "mouth")], kp, SIZE)
    once = plan([EditIntent("open", "mouth")], kp, SIZE)
    a = pairs_by_name(twice)["lower_lip"]
    b = pairs_by_name(once)["lower_lip"]
    assert a[0].distance(a[1]) == pytest.approx(2 * b[0].distance(b[1]))


def test_every_rule_plans_inside_the_image() -> None:
    kp = face()
    rules = default_rules()
    for rule in rules.rules:
        for d in rule.directions or (None,):
            result = plan([EditIntent(rule.action, rule.part, direction=d)], kp, SIZE, rules)
            assert result.pairs, (rule.action, rule.part, d)
            assert not result.warnings, result.warnings
            for name, pair in zip(result.names, result.pairs):
                assert pair.handle == kp[name]
                assert 0 <= pair.target.x <= 255 and 0 <= pair.target.y <= 255
                # Handles sit on the named part: every handle keypoint belongs to the rule.
                assert name in {h.point for h in rule.handles}
                assert 0.5 <= pair.handle.distance(pair.target) < 60


def test_targets_outside_are_clipped_with_warning(parser: CommandParser) -> None:
    kp = face(cy=30.0)  # the head touches the top edge
    result = plan(parser.parse("raise the ears a lot").edits, kp, SIZE)
    assert any("outside" in w for w in result.warnings), result.warnings
    for pair in result.pairs:
        assert 0 <= pair.target.y <= 255 and 0 <= pair.target.x <= 255


def test_explicit_drags(parser: CommandParser) -> None:
    result = plan(parser.parse("drag 30,40 to 50,60").edits, {}, SIZE)
    assert result.pairs[0].handle == Point(30, 40) and result.pairs[0].target == Point(50, 60)
    assert result.mask is None
    up = plan(parser.parse("move the point at 100, 50 up").edits, face(), SIZE)
    assert up.pairs[0].target.y < 50 and up.pairs[0].target.x == 100
    with pytest.raises(RulesError, match="outside"):
        plan(parser.parse("drag 300,40 to 50,60").edits, {}, SIZE)
    clipped = plan(parser.parse("drag 30,40 to 500,60").edits, {}, SIZE)
    assert clipped.pairs[0].target.x == 255 and clipped.warnings


def test_unknown_part_and_rule_errors() -> None:
    kp = face()
    with pytest.raises(RulesError, match="this model has no tail; it knows: mouth, eyes"):
        plan([EditIntent("raise", "tail")], kp, SIZE)
    with pytest.raises(RulesError, match="no rule to tilt the nose"):
        plan([EditIntent("tilt", "nose", direction="left")], kp, SIZE)
    with pytest.raises(RulesError, match="which way"):
        plan([EditIntent("turn", "head")], kp, SIZE)
    missing = {k: v for k, v in kp.items() if k != "lower_lip"}
    with pytest.raises(RulesError, match="lower_lip"):
        plan([EditIntent("open", "mouth")], missing, SIZE)


def test_mask_array_rasterises() -> None:
    m = mask_array([(2, 3, 5, 7)], (10, 8))
    assert m is not None and m.shape == (8, 10) and m.sum() == 3 * 4
    assert m[3, 2] and not m[7, 2] and not m[3, 5]
    assert mask_array(None, (10, 8)) is None


def test_plan_json_round_trip(parser: CommandParser) -> None:
    import json

    js = json.loads(json.dumps(plan(parser.parse("smile").edits, face(), SIZE).to_json()))
    assert {p["name"] for p in js["pairs"]} == {"mouth_left", "mouth_right"}
    assert all(len(p["handle"]) == 2 and len(p["target"]) == 2 for p in js["pairs"])
    assert math.isfinite(js["pairs"][0]["target"][0])


def test_plans_on_rendered_faces() -> None:
    """On keypoints of the embedded model's own renderer, every rule puts handles on its part, inside the image."""
    from faceworld.render import render_seed

    rules = default_rules()
    for seed in range(8):
        kp = render_seed(seed, 128).keypoints
        assert set(rules.keypoints) <= set(kp)
        for rule in rules.rules:
            for d in rule.directions or (None,):
                result = plan([EditIntent(rule.action, rule.part, direction=d)], kp, (128, 128), rules)
                for w in result.warnings:
                    assert any(s in w for s in ("already", "moved to its edge", "nothing needs", "no further")), w
                for name, pair in zip(result.names, result.pairs):
                    assert name in {h.point for h in rule.handles}
                    # on the keypoint, or moved off it (closed lips or lids) by at most MIN_HANDLE_GAP
                    assert math.hypot(pair.handle.x - kp[name].x, pair.handle.y - kp[name].y) <= MIN_HANDLE_GAP
                    assert 0 <= pair.target.x <= 127 and 0 <= pair.target.y <= 127
        opened = plan([EditIntent("open", "mouth")], kp, (128, 128), rules)
        ref = kp["right_eye_center"].x - kp["left_eye_center"].x
        gap_before = kp["lower_lip"].y - kp["upper_lip"].y
        if gap_before >= 0.40 * ref - 0.5:  # a mouth open about as far as the face world draws one
            assert "no further" in opened.warnings[0]
            continue
        # Either the rule's whole move, or up to the mouth's limit (less a lip move under half a pixel, dropped).
        assert lip_gap_after(opened, kp) >= min(gap_before + 0.36 * ref, 0.40 * ref) - 0.5


def test_tilt_without_direction_uses_the_rules_default(parser: CommandParser) -> None:
    kp = face()
    said = parser.parse("tilt the head")
    assert said.ok and said.edits[0].direction == "right"
    assert any("to the left" in w for w in said.warnings), said.warnings
    default = pairs_by_name(plan([EditIntent("tilt", "head")], kp, SIZE))
    right = pairs_by_name(plan(parser.parse("tilt the head to the right").edits, kp, SIZE))
    assert default.keys() == right.keys()
    for name, (h, t) in default.items():
        assert t.x == pytest.approx(right[name][1].x) and t.y == pytest.approx(right[name][1].y)
    with pytest.raises(RulesError, match="which way"):
        plan([EditIntent("turn", "head")], kp, SIZE)


def test_handles_on_one_spot_sent_different_ways_start_apart(parser: CommandParser) -> None:
    """A closed mouth: both lips are one point. Tracked from one pixel, the two handles would pull
    one feature both ways; each starts instead on its own side, its move unchanged."""
    kp = face()
    kp["upper_lip"], kp["lower_lip"] = Point(128.0, 165.0), Point(128.0, 165.2)
    got = pairs_by_name(plan(parser.parse("open the mouth").edits, kp, SIZE))
    (uh, ut), (lh, lt) = got["upper_lip"], got["lower_lip"]
    assert lh.y - uh.y == pytest.approx(2.0)  # MIN_HANDLE_GAP apart, upper lip above the lower
    assert uh.x == lh.x == 128.0
    apart = pairs_by_name(plan(parser.parse("open the mouth").edits, face(), SIZE))  # an open mouth: unchanged
    for name, (h, t) in got.items():
        ah, at = apart[name]
        assert (t.x - h.x, t.y - h.y) == pytest.approx((at.x - ah.x, at.y - ah.y))
    assert apart["lower_lip"][0] == face()["lower_lip"] and apart["upper_lip"][0] == face()["upper_lip"]


def lip_gap_after(result, kp: dict[str, Point]) -> float:
    got = pairs_by_name(result)
    lower = got["lower_lip"][1] if "lower_lip" in got else kp["lower_lip"]
    upper = got["upper_lip"][1] if "upper_lip" in got else kp["upper_lip"]
    return lower.y - upper.y


def test_open_mouth_stops_at_the_mouths_limit(parser: CommandParser) -> None:
    kp = face()  # reference length 60 px
    ref = 60.0
    closed = dict(kp, lower_lip=Point(kp["upper_lip"].x, kp["upper_lip"].y + 2.0))
    full = plan(parser.parse("open the mouth").edits, closed, SIZE)
    assert not full.warnings
    assert lip_gap_after(full, closed) == pytest.approx(2.0 + 0.36 * ref, abs=0.01)  # the rule's whole move
    half_open = dict(kp, lower_lip=Point(kp["upper_lip"].x, kp["upper_lip"].y + 0.25 * ref))
    limited = plan(parser.parse("open the mouth").edits, half_open, SIZE)
    assert lip_gap_after(limited, half_open) == pytest.approx(0.40 * ref, abs=0.01)
    assert limited.warnings == [f"this model draws the mouth no further: moved {0.15 / 0.36:.0%} of the usual amount."]
    # Both lips keep the rule's proportions: the lower one still does most of the moving.
    got = pairs_by_name(limited)
    down = got["lower_lip"][1].y - got["lower_lip"][0].y
    up = got["upper_lip"][0].y - got["upper_lip"][1].y
    assert down == pytest.approx(up * 0.28 / 0.08, rel=1e-3)


def test_open_mouth_already_at_its_limit_moves_nothing(parser: CommandParser) -> None:
    kp = face()
    wide_open = dict(kp, lower_lip=Point(kp["upper_lip"].x, kp["upper_lip"].y + 0.45 * 60))
    result = plan(parser.parse("open the mouth").edits, wide_open, SIZE)
    assert result.pairs == []
    assert result.warnings[0] == "this model draws the mouth no further that way."
    # A distance the user names is taken as said, limit or not.
    said = plan(parser.parse("open the mouth by 10 pixels").edits, wide_open, SIZE)
    assert max(p.handle.distance(p.target) for p in said.pairs) == pytest.approx(10.0)


def test_raise_ear_swings_the_tip_about_its_base(parser: CommandParser) -> None:
    kp = face()
    tip, base = kp["left_ear_tip"], kp["left_ear_base"]
    # A dropped ear: the tip out to the side, a little above the base.
    dropped = dict(kp, left_ear_tip=Point(base.x - 36.0, base.y - 6.0))
    got = pairs_by_name(plan(parser.parse("raise the left ear").edits, dropped, SIZE))
    assert set(got) == {"left_ear_tip"}
    h, t = got["left_ear_tip"]
    assert h.distance(base) == pytest.approx(t.distance(base), rel=1e-6)  # a swing, not a stretch
    assert t.y < h.y and t.x > h.x  # up, and in toward the head
    # Already high: the swing stops where the tip stands 0.55 reference lengths above the base.
    high = dict(kp, left_ear_tip=Point(base.x - 20.0, base.y - 30.0))
    h, t = pairs_by_name(plan(parser.parse("raise the left ear").edits, high, SIZE))["left_ear_tip"]
    assert base.y - t.y == pytest.approx(0.55 * 60, abs=0.01)
    assert tip  # the unmodified face's own ear is left alone by these cases


def test_bad_limit_in_rules_file_is_one_sentence() -> None:
    from voicedrag.planning.rules import parse_rules

    data = {
        "keypoints": ["a", "b"], "reference": ["a", "b"], "parts": {"mouth": {"words": ["mouth"]}},
        "rule": [{"action": "open", "part": "mouth", "handles": [{"point": "a", "move": [0.0, 1.0]}],
                  "limits": [{"point": "a", "from": "b", "axis": [0.0, 0.0], "max": 1.0}]}],
    }
    with pytest.raises(RulesError, match="axis must not be"):
        parse_rules(data)
    data["rule"][0]["limits"] = [{"point": "a", "from": "c", "axis": [0.0, 1.0], "max": 1.0}]
    with pytest.raises(RulesError, match="keypoint 'c'"):
        parse_rules(data)
