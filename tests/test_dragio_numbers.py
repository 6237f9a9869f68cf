"""Numbers typed for --points and --mask: whatever the text, one SpecError sentence or a result."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.types import Point
from voicedrag.dragio import SpecError, check_inside, parse_mask, parse_points

SIZE = (128, 128)


def one_sentence(err: SpecError) -> str:
    msg = str(err)
    assert msg.endswith(".") and "\n" not in msg and len(msg) < 300, msg
    return msg


@pytest.mark.parametrize("spec, pattern", [
    ("inf,0,5,5", "not finite"),
    ("0,0,inf,5", "not finite"),
    ("-inf,0,5,5", "not finite"),
    ("1e309,0,5,5", "not finite"),
    ("0,0,5," + "9" * 400, "not finite"),
    ("nan,0,5,5", "not finite"),
    ("0,0,5,Infinity", "not finite"),
    ("1e308,0,5,5", "does not fit"),
    ("0,0,5", "cannot read"),
    ("0,0,5,5,5", "cannot read"),
    ("a,b,c,d", "cannot read"),
    ("", "cannot read"),
    (",,,", "cannot read"),
    ("0x10,0,5,5", "cannot read"),
])
def test_bad_masks_are_one_sentence(spec: str, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern) as info:
        parse_mask(spec, SIZE)
    one_sentence(info.value)


def test_mask_reads_what_float_reads() -> None:
    mask = parse_mask(" 2 , 3.4,1_0, 20 ", SIZE)  # spaces, decimals and underscores, as float() takes them
    assert mask.sum() == 9 * 18 and mask[3, 2] and mask[20, 10] and not mask[21, 10]


@pytest.mark.parametrize("spec, pattern", [
    ("9" * 400 + ",1>2,3", "not two finite numbers"),
    ("1,2>3," + "9" * 5000, "not two finite numbers"),
    ("inf,1>2,3", "cannot read"),
    ("nan,1>2,3", "cannot read"),
    ("1e400,1>2,3", "cannot read"),
    ("1,2>" + "3" * 10_000, "cannot read the point pair '1,2>3333"),
])
def test_bad_points_are_one_sentence(spec: str, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern) as info:
        parse_points(spec, SIZE)
    one_sentence(info.value)


@pytest.mark.parametrize("p", [Point(float("inf"), 1.0), Point(1.0, float("nan")), Point(float("-inf"), 0.0),
                               Point(10**400, 1), Point("x", 1)])  # type: ignore[arg-type]
def test_check_inside_refuses_what_is_not_a_finite_point(p: Point) -> None:
    with pytest.raises(SpecError) as info:
        check_inside(p, SIZE)
    one_sentence(info.value)


def test_long_input_is_read_quickly() -> None:
    for spec in ("1" * 1_000_000, " " * 1_000_000 + "x", "1,2>3,4;" * 100_000 + "x", ",".join(["1"] * 200_000)):
        start = time.perf_counter()
        for parse in (parse_points, parse_mask):
            with pytest.raises(SpecError) as info:
                parse(spec, SIZE)
            one_sentence(info.value)
        assert time.perf_counter() - start < 5.0  # linear: a backtracking regex would take minutes


SIZES = st.tuples(st.integers(1, 4096), st.integers(1, 4096))
# Text near the grammar as well as anywhere: digits, signs, separators, exponents and words of float().
NEAR = st.lists(st.sampled_from(list("0123456789-+.,;> eE_") + ["inf", "nan", "Infinity", "١", "\x00", "\n"]),
                max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(spec=st.one_of(st.text(max_size=60), NEAR), size=SIZES)
def test_any_text_for_points_or_mask_is_read_or_one_sentence(spec: str, size: tuple[int, int]) -> None:
    for parse in (parse_points, parse_mask):
        try:
            parse(spec, size)
        except SpecError as err:
            one_sentence(err)


@settings(max_examples=200, deadline=None)
@given(x=st.floats(), y=st.floats(), size=SIZES)
def test_any_float_point_is_inside_or_one_sentence(x: float, y: float, size: tuple[int, int]) -> None:
    try:
        check_inside(Point(x, y), size)
    except SpecError as err:
        one_sentence(err)
    else:
        assert 0 <= x <= size[0] - 1 and 0 <= y <= size[1] - 1
