"""Rules files are checked against their schema: a malformed file, however it is malformed, ends in
one RulesError sentence naming the key, never another exception."""
from __future__ import annotations

import copy
import datetime
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.malformed_rules import malformed_rules, malformed_rules_bytes, nest, places, shipped, toml_document
from voicedrag.planning.rules import RulesError, load_rules, parse_rules

SHIPPED = shipped()


def one_line(err: RulesError) -> str:
    msg = str(err)
    assert msg and "\n" not in msg and "\r" not in msg and msg.endswith("."), msg
    assert len(msg) < 400, msg
    return msg


def test_the_writer_round_trips_the_shipped_rules(tmp_path: Path) -> None:
    for name, data in SHIPPED.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(toml_document(data), encoding="utf-8")
        assert load_rules(path) == parse_rules(data, path)


@pytest.mark.parametrize("name, text", malformed_rules(seed=0, random_count=40))
def test_malformed_rules_files_load_or_say_one_sentence(name: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_rules(path)
    except RulesError as err:
        one_line(err)


@pytest.mark.parametrize("name, data", malformed_rules_bytes())
def test_rules_files_that_are_not_text_say_one_sentence(name: str, data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_bytes(data)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    one_line(info.value)


# --- particular faults --------------------------------------------------------------------------

def _face() -> dict:
    return copy.deepcopy(SHIPPED["face"])


@pytest.mark.parametrize("mutate, pattern", [
    (lambda d: d.update(rule=[3, *d["rule"]]), r"'rule\[1\]' must be a table \(a rule\), not 3"),
    (lambda d: d["rule"][0].update(handles=3), r"'rule\[1\]\.handles' must be a list of handle tables .*, not 3"),
    (lambda d: d["rule"][0]["handles"].insert(0, "lower_lip"),
     r"'rule\[1\]\.handles\[1\]' must be a table \(a handle\), not 'lower_lip'"),
    (lambda d: d["rule"][0]["handles"][0].update(move=["a", 0.1]),
     r"'rule\[1\]\.handles\[1\]\.move' must be \[dx, dy\]"),
    (lambda d: d["rule"][0]["handles"][0].update(move=[math.inf, 0.1]), r"\.move' must be \[dx, dy\], two finite"),
    (lambda d: d["rule"][0]["handles"][0].update(point=7), r"'rule\[1\]\.handles\[1\]\.point' must be a keypoint name"),
    (lambda d: d["rule"][0]["limits"][0].update(max=math.nan),
     r"'rule\[1\]\.limits\[1\]\.max' must be a finite number"),
    (lambda d: d["rule"][0]["limits"].append(1.5), r"'rule\[1\]\.limits\[2\]' must be a table \(a limit\), not 1\.5"),
    (lambda d: d["rule"][0].update(limits={"point": "chin"}), r"'rule\[1\]\.limits' must be a list of limit tables"),
    (lambda d: d["rule"][0].update(mask=[["chin"], 3]), r"'rule\[1\]\.mask' must be a list of keypoint groups"),
    (lambda d: d["rule"][0].update(action=["open"]), r"'rule\[1\]\.action' must be a string, not a list"),
    (lambda d: d["rule"][0].update(part={"name": "mouth"}), r"'rule\[1\]\.part' must be a string, not a table"),
    (lambda d: d["rule"][0].update(verbs=[1, 2]), r"'rule\[1\]\.verbs' must be a word or a list of words"),
    (lambda d: d["rule"][0].update(handle=[]), r"'rule\[1\]\.handle' is not a key of a rule \(those are action, "),
    (lambda d: d.update(rule={"action": "open"}), r"'rule' must be a list of \[\[rule\]\] tables, not a table"),
    (lambda d: d.update(rules=[]), r"'rules' is not a key of a rules file"),
    (lambda d: d.update(parts=3), r"'parts' must be a table of parts such as \[parts\.mouth\], not 3"),
    (lambda d: d["parts"].update(mouth=3), r"'parts\.mouth' must be a table \(a part\), not 3"),
    (lambda d: d["parts"]["mouth"].update(handles=3), r"'parts\.mouth\.handles' is not a key of a part"),
    (lambda d: d["parts"]["eyes"].update(sided="yes"), r"'parts\.eyes\.sided' must be true or false, not 'yes'"),
    (lambda d: d["parts"].update({"a\nb": {}}), r"the part name 'a\\nb' must be a printable word"),
    (lambda d: d.update(keypoints=3), r"'keypoints' must be a list of keypoint names, not 3"),
    (lambda d: d.update(keypoints=["chin", "bad\tname"]), r"'keypoints' must be a list of keypoint names, not a list"),
    (lambda d: d.update(mask_margin=True), r"'mask_margin' must be a finite number, not true"),
    (lambda d: d.update(name=datetime.date(2024, 1, 1)), r"'name' must be a string, not a date or time"),
    (lambda d: d.update(description="x" * 1000 + "\n"), r"'description' must be a string, not 'xxx"),
])
def test_a_wrong_type_names_its_key(mutate, pattern: str) -> None:
    data = _face()
    mutate(data)
    with pytest.raises(RulesError, match=pattern) as info:
        parse_rules(data, Path("x.toml"))
    msg = one_line(info.value)
    assert msg.startswith("rules file x.toml: ") and msg.endswith("; fix the file.")


def test_deep_nesting_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("name = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(RulesError, match="nests arrays or tables too deeply") as info:
        load_rules(path)
    one_line(info.value)
    path.write_text("x = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n")
    with pytest.raises(RulesError, match="too deeply") as info:
        load_rules(path)
    one_line(info.value)
    # Dotted table headers nest without recursion: the unknown key is named, the rest never walked.
    path.write_text("[parts.mouth" + ".a" * 150 + "]\n")
    with pytest.raises(RulesError, match=r"'parts\.mouth\.a' is not a key of a part") as info:
        load_rules(path)
    one_line(info.value)
    # The same header twice: tomllib's message quotes the whole path, the sentence does not.
    path.write_text(("[parts.mouth" + ".a" * 150 + "]\n") * 2)
    with pytest.raises(RulesError, match=r"Cannot declare .*\.\.\. \(at line 2, column \d+\)\)") as info:
        load_rules(path)
    one_line(info.value)
    # tomllib takes time quadratic in a dotted key's parts (7 s for 50,000): refused before it reads.
    path.write_text("[parts.mouth" + ".a" * 50_000 + "]\n")
    with pytest.raises(RulesError, match=r"line 1 has more than 200 dots") as info:
        load_rules(path)
    one_line(info.value)
    path.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(RulesError, match=r"larger than 1 MB") as info:
        load_rules(path)
    one_line(info.value)
    data = _face()
    deep: dict = {}
    for _ in range(100_000):
        deep = {"a": deep}
    data["rule"][0]["handles"][0]["move"] = deep
    with pytest.raises(RulesError, match=r"\.move' must be \[dx, dy\], two finite numbers, not a table"):
        parse_rules(data)


# --- any mutation of the shipped rules ----------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(), TEXT,
                    st.dates(), st.sampled_from(["lower_lip", "mouth", "open", "left", "up", "chin"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(TEXT, inner, max_size=4)), max_leaves=8)


@st.composite
def mutated_rules(draw: st.DrawFn) -> dict:
    data = copy.deepcopy(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    for _ in range(draw(st.integers(1, 3))):
        spots = places(data)
        if not spots:
            break
        container, key = draw(st.sampled_from(spots))
        action = draw(st.sampled_from(["replace", "delete", "nest", "wrap"]))
        if action == "replace":
            container[key] = draw(VALUES)  # type: ignore[index]
        elif action == "delete":
            del container[key]  # type: ignore[attr-defined]
        elif action == "nest":  # deep enough that a recursive reader of the TOML text runs out of stack
            container[key] = nest(container[key], draw(st.integers(1, 600)), draw(st.booleans()))  # type: ignore
        else:  # the value one level down, as a list or a table of one
            container[key] = nest(container[key], 1, draw(st.booleans()))  # type: ignore
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_rules())
def test_mutated_rules_load_or_say_one_sentence(data: dict, tmp_path: Path) -> None:
    path = tmp_path / "mutated.toml"
    path.write_text(toml_document(data), encoding="utf-8")
    try:
        load_rules(path)
    except RulesError as err:
        one_line(err)
    try:
        parse_rules(data, path)  # the same document without the TOML reader's own limits
    except RulesError as err:
        one_line(err)
