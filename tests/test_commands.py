"""Table-driven tests of command understanding: grammar, numbers, mishearings, paraphrases, errors.

Each case is (utterance, expectation). Expectations:
  "ctl:NAME"                  a control word
  "err" / "err:TEXT"          an error (whose message contains TEXT)
  "ACTION PART k=v ..." ;...  edits in order; keys: side, dir, amt (<1, >1 or a number), px, h, t
  "drag h=X,Y t=X,Y"          an explicit drag
Keys not given must have their neutral value (side/dir None, amount 1, no pixels).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from voicedrag.language.commands import CommandParser, ParseResult, collapse_repeats, normalize
from voicedrag.language.numbers import parse_number_words, split_number_words

DATA = Path(__file__).resolve().parent / "data"

# Every example in the acceptance list, then many more.
ACCEPTANCE = [
    ("open the mouth a little", "open mouth amt=<1"),
    ("close the left eye", "close eyes side=left"),
    ("raise both ears", "raise ears"),
    ("turn the head right", "turn head dir=right"),
    ("move the nose up by 4 pixels", "move nose dir=up px=4"),
    ("make the nose longer", "lengthen nose"),
    ("smile", "smile mouth"),
    ("open the mouth and close the eyes", "open mouth; close eyes"),
    ("Open the mouse.", "open mouth"),
    ("drag 30,40 to 50,60", "drag h=30,40 t=50,60"),
    ("undo", "ctl:undo"),
    ("save the picture", "ctl:save"),
]

GRAMMAR = [
    # actions on every part
    ("open the mouth", "open mouth"),
    ("close the mouth", "close mouth"),
    ("shut the mouth", "close mouth"),
    ("widen the mouth", "widen mouth"),
    ("narrow the mouth", "narrow mouth"),
    ("frown", "frown mouth"),
    ("grin", "smile mouth"),
    ("open the eyes", "open eyes"),
    ("close the eyes", "close eyes"),
    ("close your right eye", "close eyes side=right"),
    ("open the left eye a bit", "open eyes side=left amt=<1"),
    ("shut both eyes", "close eyes"),
    ("make the eyes bigger", "enlarge eyes"),
    ("make the eyes smaller", "shrink eyes"),
    ("squint", "narrow eyes"),
    ("widen the eyes", "widen eyes"),
    ("raise the eyebrows", "raise brows"),
    ("raise the left eyebrow", "raise brows side=left"),
    ("lower the brows", "lower brows"),
    ("furrow the brows", "lower brows"),
    ("lower the ears", "lower ears"),
    ("raise the right ear", "raise ears side=right"),
    ("drop the ears", "lower ears"),
    ("make the ears longer", "lengthen ears"),
    ("shorten the ears", "shorten ears"),
    ("make the ears bigger", "enlarge ears"),
    ("shrink the ears", "shrink ears"),
    ("shorten the nose", "shorten nose"),
    ("lengthen the nose", "lengthen nose"),
    ("make the nose bigger", "enlarge nose"),
    ("make the nose smaller", "shrink nose"),
    ("move the nose left", "move nose dir=left"),
    ("move the nose to the right", "move nose dir=right"),
    ("move the nose down", "move nose dir=down"),
    ("move the mouth up", "move mouth dir=up"),
    ("move the eyes down a little", "move eyes dir=down amt=<1"),
    ("move the left ear up", "move ears side=left dir=up"),
    ("turn the head left", "turn head dir=left"),
    ("turn the head to the left", "turn head dir=left"),
    ("turn left", "turn head dir=left"),
    ("turn the face to the right", "turn head dir=right"),
    ("rotate the head right", "turn head dir=right"),
    ("look up", "turn head dir=up"),
    ("look down a little", "turn head dir=down amt=<1"),
    ("tilt the head left", "tilt head dir=left"),
    ("tilt the head to the right slightly", "tilt head dir=right amt=<1"),
    ("lean the head to the left", "tilt head dir=left"),
    ("move the head up", "move head dir=up"),
    ("shift the face to the left", "move head dir=left"),
    ("make the head bigger", "enlarge head"),
    ("make the head smaller", "shrink head"),
    ("make the face longer", "lengthen head"),
    # implied actions and defaults
    ("raise the nose", "move nose dir=up"),
    ("lower the nose", "move nose dir=down"),
    ("raise the head", "move head dir=up"),
    ("the nose up", "move nose dir=up"),
    ("ears up", "move ears dir=up"),
    ("make him smile", "smile mouth"),
    ("make her frown", "frown mouth"),
    ("make the mouth wider", "widen mouth"),
    ("make the mouth wider please", "widen mouth"),
    ("make the mouth open", "open mouth"),
    ("make him look happy", "smile mouth"),
    ("look sad", "frown mouth"),
    ("give him a big smile", "smile mouth amt=>1"),
    ("have him smile", "smile mouth"),
    ("face the left", "turn head dir=left"),
    ("face right", "turn head dir=right"),
    ("glance left", "turn head dir=left"),
    ("put a smile on his face", "smile mouth"),
    ("make a sad face", "frown mouth"),
    ("shut your eyes", "close eyes"),
    ("lift the ears", "raise ears"),
    ("ears down", "move ears dir=down"),
    ("give him bigger ears", "enlarge ears"),
    ("wink", "close eyes"),
    ("blink", "close eyes"),
    ("raise an eyebrow", "raise brows"),
    ("open its mouth", "open mouth"),
    ("squint a little", "narrow eyes amt=<1"),
    ("make the ears perk up", "raise ears"),
    ("lower the jaw", "open mouth"),
    ("he should look happy", "smile mouth"),
    # amounts
    ("open the mouth wide", "open mouth amt=>1"),
    ("open the mouth a lot", "open mouth amt=>1"),
    ("open the mouth very wide", "open mouth amt=>1"),
    ("open the mouth slightly", "open mouth amt=<1"),
    ("open the mouth just a little bit", "open mouth amt=<1"),
    ("open the mouth all the way", "open mouth amt=2"),
    ("raise the ears way up", "raise ears amt=>1"),
    ("smile a lot", "smile mouth amt=>1"),
    ("smile much more", "smile mouth amt=>1"),
    ("close the eyes a tad", "close eyes amt=<1"),
    # ... with the article run into the word before by a recogniser ("eye tiny bit"): not "tiny" the size.
    ("close the right eye tiny bit", "close eyes side=right amt=0.3"),
    ("open the mouth little bit", "open mouth amt=0.5"),
    ("turn the head a little to the left", "turn head dir=left amt=<1"),
    ("tilt the head to the left a lot", "tilt head dir=left amt=>1"),
    ("open the mouth wider", "open mouth amt=>1"),
    ("move the nose down by 10 pixels", "move nose dir=down px=10"),
    ("move the nose left 6 pixels", "move nose dir=left px=6"),
    ("move the mouth down by twelve pixels", "move mouth dir=down px=12"),
    ("move the nose up 4", "move nose dir=up px=4"),
    # several clauses
    ("open the mouth, close the eyes", "open mouth; close eyes"),
    ("open the mouth then close the eyes", "open mouth; close eyes"),
    ("open the mouth and then raise the ears", "open mouth; raise ears"),
    ("close the left eye and raise the right ear", "close eyes side=left; raise ears side=right"),
    ("raise the left ear and the right", "raise ears side=left; raise ears side=right"),
    ("open the mouth and then close it", "open mouth; close mouth"),
    ("smile and turn the head left", "smile mouth; turn head dir=left"),
    ("open the mouth close the eyes", "open mouth; close eyes"),
    ("smile, raise the eyebrows and look left", "smile mouth; raise brows; turn head dir=left"),
    ("close the eyes. Open the mouth.", "close eyes; open mouth"),
    ("move the nose lower", "move nose dir=down"),
    ("Turn the head, right.", "turn head dir=right"),
    ("Open the mouth, a little.", "open mouth amt=<1"),
    ("raise the left ear, the right", "raise ears side=left; raise ears side=right"),
    ("raise the left ear, and the right", "raise ears side=left; raise ears side=right"),
    ("Move the nose up by four pixels.", "move nose dir=up px=4"),
    ("close the left eye and raise the right ear.", "close eyes side=left; raise ears side=right"),
    # filler and repeats
    ("um please open the mouth", "open mouth"),
    ("could you please close the eyes", "close eyes"),
    ("can you make him smile", "smile mouth"),
    ("I want you to raise the ears", "raise ears"),
    ("I'd like you to turn the head to the right", "turn head dir=right"),
    ("uh, okay, so, smile", "smile mouth"),
    ("go ahead and open the mouth", "open mouth"),
    ("open the mouth open the mouth", "open mouth"),
    ("open the mouth. Open the mouth. Open the mouth.", "open mouth"),
    ("smile smile", "smile mouth"),
    ("Close the eyes!", "close eyes"),
    ("OPEN THE MOUTH", "open mouth"),
    ("Please, open the mouth?", "open mouth"),
    ("close the left one", "err"),
    # sides and left/right as direction
    ("close the eye on the left", "close eyes side=left"),
    ("raise the left and right ears", "raise ears"),
    ("move the right eye to the left", "move eyes side=right dir=left"),
    ("close the left-hand eye", "close eyes side=left"),
    # a motion with a usual way, and determiners that are not amounts
    ("tilt the head", "tilt head dir=right"),
    ("tilt your head a little", "tilt head dir=right amt=<1"),
    ("lower more ears", "lower ears"),
    ("raise the ears more", "raise ears amt=>1"),
    ("open the mouth very wide", "open mouth amt=>1"),
]

NUMBERS = [
    ("drag 120,200 to 140,180", "drag h=120,200 t=140,180"),
    # ";" separates pairs, as in --points.
    ("drag 1,2 to 3,4; 5,6 to 7,8", "drag h=1,2 t=3,4 ; drag h=5,6 t=7,8"),
    ("open the mouth; close the eyes", "open mouth ; close eyes"),
    # A minus sign is a negative coordinate, refused; never a dropped sign.
    ("drag -5,-5 to 30,30", "err:negative coordinate"),
    ("drag 5, -5 to 30,30", "err:negative coordinate"),
    ("drag 10,20 to \u22123,4", "err:negative coordinate"),
    ("drag 3 - 4 to 5 - 6", "drag h=3,4 t=5,6"),
    # Styles, colours and objects are refused as said, never corrected into an edit.
    ("make it look like a van gogh painting", "err:cannot change its style"),
    ("add sunglasses", "err:cannot change its style"),
    ("make it black and white", "err:cannot change its style"),
    ("make it a cartoon", "err:this model can move: mouth"),
    # Words recognisers make of command words are refused too when nothing else reads as an edit.
    ("paint it red", "err:cannot change its style"),
    ("give him a hat", "err:cannot change its style"),
    ("make the hair brown", "err:cannot change its style"),
    ("turn the hat left", "turn head dir=left"),
    ("lower the brown", "lower brows"),
    ("drag 120, 200 to 140, 180", "drag h=120,200 t=140,180"),
    ("Drag 120, 200 to 140, 180.", "drag h=120,200 t=140,180"),
    ("move 64 64 to 70 60", "drag h=64,64 t=70,60"),
    ("drag point 1,2 to 3,4 and 5,6 to 7,8", "drag h=1,2 t=3,4; drag h=5,6 t=7,8"),
    ("move the point at 100, 50 up by 12 pixels", "drag h=100,50 t=100,38 dir=up px=12"),
    ("drag one twenty, two hundred to one forty, one eighty", "drag h=120,200 t=140,180"),
    ("drag one twenty two hundred to one forty one eighty", "drag h=120,200 t=140,180"),
    ("drag thirty forty to fifty sixty", "drag h=30,40 t=50,60"),
    ("drag thirty, forty to fifty, sixty", "drag h=30,40 t=50,60"),
    ("drag sixty four sixty four to seventy sixty", "drag h=64,64 t=70,60"),
    ("drag one hundred and twenty, fifty to one hundred, fifty", "drag h=120,50 t=100,50"),
    ("drag two hundred five, ten to two fifty, ten", "drag h=205,10 t=250,10"),
    ("drag 30 40 50 60", "drag h=30,40 t=50,60"),
    ("drag (30, 40) to (50, 60)", "drag h=30,40 t=50,60"),
    ("drag 30-40 to 50-60", "drag h=30,40 t=50,60"),
    ("drag from 10, 20 to 30, 40", "drag h=10,20 t=30,40"),
    ("drag the point at 10, 20 to 30, 40", "drag h=10,20 t=30,40"),
    ("pull 5 comma 6 to 7 comma 8", "drag h=5,6 t=7,8"),
    # Points as they are said: "x ... y ...", and what a recogniser writes for a spoken "comma".
    ("x 64 y 80 to x 70 y 90", "drag h=64,80 t=70,90"),
    ("drag x 64, y 80 to x 70, y 90", "drag h=64,80 t=70,90"),
    ("move the point at x 30 y 40 up by 5", "drag h=30,40 t=30,35 dir=up px=5"),
    ("drag 64 come 80 to 70 common 90", "drag h=64,80 t=70,90"),
    ("drag sixty four comma eighty to seventy comma ninety", "drag h=64,80 t=70,90"),
    ("move the point at 100 50 left by 7 pixels", "drag h=100,50 t=93,50 dir=left px=7"),
    ("move the point at 100, 50 down", "drag h=100,50 dir=down"),
    ("drag 30,40 to 50,60 and then smile", "drag h=30,40 t=50,60; smile mouth"),
    ("drag 30.40 to 50.60", "drag h=30,40 t=50,60"),
    ("drag 30,40 to", "err"),
    ("drag 30 to 50", "err"),
    ("drag to 50,60", "err"),
    ("drag 30,40", "err"),
]

CONTROL = [
    ("undo", "ctl:undo"),
    ("Undo.", "ctl:undo"),
    ("undo that", "ctl:undo"),
    ("undo the last edit", "ctl:undo"),
    ("go back", "ctl:undo"),
    ("redo", "ctl:redo"),
    ("redo that please", "ctl:redo"),
    ("reset", "ctl:reset"),
    ("start over", "ctl:reset"),
    ("reset the image", "ctl:reset"),
    ("save", "ctl:save"),
    ("save it", "ctl:save"),
    ("save the image please", "ctl:save"),
    ("stop", "ctl:stop"),
    ("cancel", "ctl:stop"),
    ("help", "ctl:help"),
    ("what can I say?", "ctl:help"),
    ("undo undo", "ctl:undo"),
    ("undo and open the mouth", "err"),
]

MISHEARINGS = [
    ("open the mouse", "open mouth"),
    ("open the mouths", "open mouth"),
    ("close the ice", "close eyes"),
    ("close the eyes.", "close eyes"),
    ("close the left I", "close eyes side=left"),
    ("close your I's", "close eyes"),
    ("raise the year", "raise ears"),
    ("raise both years", "raise ears"),
    ("race the ears", "raise ears"),
    ("rays the ears", "raise ears"),
    ("turn the hat left", "turn head dir=left"),
    ("turn the had to the right", "turn head dir=right"),
    ("move the knows up", "move nose dir=up"),
    ("whiten the mouth", "widen mouth"),
    ("close the lift eye", "close eyes side=left"),
    ("turn the head write", "turn head dir=right"),
    ("smell", "smile mouth"),
    ("smiled", "smile mouth"),
    ("tilled the head left", "tilt head dir=left"),
    ("safe the picture", "ctl:save"),
    ("drug 30,40 to 50,60", "drag h=30,40 t=50,60"),
    ("open the mouse a little", "open mouth amt=<1"),
    ("open the mouse and close the ice", "open mouth; close eyes"),
    ("lower the years", "lower ears"),
    ("move the knows down by four pixels", "move nose dir=down px=4"),
    ("clothes the eyes", "close eyes"),
    ("raise the left here", "raise ears side=left"),
    ("lower the right hear", "lower ears side=right"),
    ("pull the mouth cover up", "smile mouth"),
    ("open the right eye mid", "open eyes side=right amt=<1"),
    ("move the mouse down a mid", "move mouth dir=down amt=<1"),
    ("bush the nose left", "move nose dir=left"),
    ("make mid eyes bigger", "enlarge eyes"),
    ("console", "ctl:stop"),
]

UNKNOWN = [
    ("", "err:nothing was said"),
    ("   ", "err:nothing was said"),
    ("...", "err:nothing was said"),
    ("um", "err"),
    ("banana", "err"),
    ("open the", "err:did you mean"),
    ("turn the head", "err:which way"),
    ("move the nose", "err:which way"),
    ("tilt the head up", "err"),
    ("wag the tail", "err:no tail"),
    ("open the tail", "err:no tail"),
    ("raise the paws", "err:no paws"),
    ("tilt the nose", "err:no rule to tilt the nose"),
    ("close the nose", "err"),
    ("don't open the mouth", "err"),
    ("nod", "err"),
    ("the mouth", "err"),
    ("close", "err:close what"),
    ("paint it red", "err"),
    ("hello there", "err"),
    ("close them", "err"),
    ("turn away", "err:which way"),
    ("open wide", "err:open what"),
    ("move it", "err"),
    ("nod your head", "err:motion"),
    ("less", "err:needs an edit"),
    ("a lot more", "err:needs an edit"),
    # a one-beat word is not the two-beat "reset": never wipe the edits on a guess
    ("rest", "err"),
    # a word naming what moves was not understood: the mouth "cord" may be its corners
    ("pull the mouth cord up", "err:not understood"),
    ("well the mouth got us up", "err"),
    # the verb was lost and the head goes right in several ways
    ("deal to the head to the right", "err:turn or tilt or move"),
    # "look" said something about the right ear that was not understood; not "raise" again
    ("raise the left ear and look on the right ear", "err"),
    ("look at the right here", "err"),
    ("look at the door", "err"),
]

CASES = ACCEPTANCE + GRAMMAR + NUMBERS + CONTROL + MISHEARINGS + UNKNOWN


# What each command spoken in tests/data/whisper_mishearings.tsv means; a
# transcript of it must parse to the same thing.
SPOKEN = {
    "open the mouth": "open mouth",
    "open the mouth a little": "open mouth amt=<1",
    "open the mouth wide": "open mouth amt=>1",
    "close the mouth": "close mouth",
    "close the left eye": "close eyes side=left",
    "close the right eye": "close eyes side=right",
    "close the eyes": "close eyes",
    "open the eyes": "open eyes",
    "open the right eye a bit": "open eyes side=right amt=<1",
    "raise both ears": "raise ears",
    "raise the left ear": "raise ears side=left",
    "lower the right ear": "lower ears side=right",
    "lower both ears": "lower ears",
    "turn the head left": "turn head dir=left",
    "turn the head right": "turn head dir=right",
    "turn the head a little to the left": "turn head dir=left amt=<1",
    "tilt the head": "tilt head dir=right",
    "tilt the head to the right": "tilt head dir=right",
    "nod": "err",
    "move the nose up by 4 pixels": "move nose dir=up px=4",
    "move the nose down": "move nose dir=down",
    "move the left eye up by 10 pixels": "move eyes side=left dir=up px=10",
    "make the nose longer": "lengthen nose",
    "make the nose shorter": "shorten nose",
    "make the mouth wider": "widen mouth",
    "make the eyes bigger": "enlarge eyes",
    "make the ears smaller": "shrink ears",
    "smile": "smile mouth",
    "smile more": "smile mouth amt=>1",
    "frown": "frown mouth",
    "widen the mouth": "widen mouth",
    "narrow the eyes": "narrow eyes",
    "raise the eyebrows": "raise brows",
    "raise the chin": "move head dir=up",
    "lower the jaw": "open mouth",
    "open the mouth and close the eyes": "open mouth; close eyes",
    "raise the left ear and lower the right ear": "raise ears side=left; lower ears side=right",
    "drag 30,40 to 50,60": "drag h=30,40 t=50,60",
    "drag from 100 100 to 120 90": "drag h=100,100 t=120,90",
    "undo": "ctl:undo",
    "redo": "ctl:redo",
    "reset": "ctl:reset",
    "save the picture": "ctl:save",
    "save": "ctl:save",
    "stop": "ctl:stop",
    "cancel": "ctl:stop",
    "drop the jaw": "open mouth",
    "perk up the ears": "raise ears",
    "look to the right": "turn head dir=right",
    "look left": "turn head dir=left",
    "make him grin": "smile mouth",
    "make her smile": "smile mouth",
    "wink": "close eyes",
    "shut both eyes": "close eyes",
    "pull the mouth corners up": "smile mouth",
    "push the nose left": "move nose dir=left",
    "move the mouth down a bit": "move mouth dir=down amt=<1",
    "a lot more": "err",
    "less": "err",
    "again": "ctl:redo",
}


def _whisper_rows() -> list[dict[str, str]]:
    path = DATA / "whisper_mishearings.tsv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t"))


def _whisper_cases() -> list[tuple[str, str, str]]:
    """(transcript, expectation, row label) for every real recogniser output, with and without prompt."""
    cases = []
    for row in _whisper_rows():
        expect = SPOKEN.get(row["spoken"])
        if expect is None:
            continue
        for col in ("whisper_no_prompt", "whisper_with_prompt"):
            heard = row.get(col)
            if heard is not None:
                cases.append((heard, expect, f"{row['voice']}@{row['speed']}/{col[8:]}: {row['spoken']}"))
    return cases


def check(result: ParseResult, expect: str) -> None:
    js = result.to_json()
    if expect.startswith("ctl:"):
        assert result.error is None, js
        assert result.control == expect[4:], js
        assert result.edits == [], js
        return
    if expect.startswith("err"):
        assert result.error, js
        assert result.edits == [] and result.control is None, js
        if expect.startswith("err:"):
            assert expect[4:].lower() in result.error.lower(), js
        return
    assert result.error is None, js
    assert result.control is None, js
    specs = [s.strip() for s in expect.split(";")]
    assert len(result.edits) == len(specs), js
    for edit, spec in zip(result.edits, specs, strict=True):
        words = spec.split()
        keys = dict(w.split("=", 1) for w in words if "=" in w)
        names = [w for w in words if "=" not in w]
        # "move the ears up" asks for the same drag as "raise the ears".
        same_as_move = {"raise": "up", "lower": "down"}
        if names[0] in same_as_move and edit.action == "move" and edit.direction == same_as_move[names[0]]:
            keys.setdefault("dir", same_as_move[names[0]])
        else:
            assert edit.action == names[0], js
        if names[0] == "drag":
            assert edit.part is None, js
            assert edit.handle is not None and edit.handle.as_list() == [float(v) for v in keys["h"].split(",")], js
            if "t" in keys:
                assert edit.target is not None and edit.target.as_list() == [float(v) for v in keys["t"].split(",")], js
            else:
                assert edit.target is None, js
        else:
            assert edit.part == names[1], js
            assert edit.handle is None and edit.target is None, js
        assert edit.side == keys.get("side"), js
        assert edit.direction == keys.get("dir"), js
        amt = keys.get("amt", "1")
        if amt == "<1":
            assert edit.amount < 1.0, js
        elif amt == ">1":
            assert edit.amount > 1.0, js
        else:
            assert edit.amount == pytest.approx(float(amt)), js
        if "px" in keys:
            assert edit.pixels == pytest.approx(float(keys["px"])), js
        else:
            assert edit.pixels is None, js


@pytest.fixture(scope="module")
def grammar_parser() -> CommandParser:
    return CommandParser(use_embeddings=False)


def test_enough_cases() -> None:
    assert len(CASES) + len(PARAPHRASES) + len(SPOKEN) >= 150
    texts = [t for t, _ in CASES]
    for t, _ in ACCEPTANCE:
        assert t in texts


@pytest.mark.parametrize(("text", "expect"), CASES, ids=[f"{i:03d}:{t[:40]}" for i, (t, _) in enumerate(CASES)])
def test_grammar_and_corrections(grammar_parser: CommandParser, text: str, expect: str) -> None:
    check(grammar_parser.parse(text), expect)


def test_errors_carry_suggestions(grammar_parser: CommandParser) -> None:
    r = grammar_parser.parse("open the")
    assert r.suggestions and all(s.startswith("open") for s in r.suggestions)
    assert "open the mouth" in r.suggestions
    r = grammar_parser.parse("wag the tail")
    assert "mouth" in (r.error or "") and "eyes" in (r.error or "")


def test_corrected_text_and_corrections(grammar_parser: CommandParser) -> None:
    r = grammar_parser.parse("Open the mouse.")
    assert r.corrected == "open the mouth"
    assert ("mouse", "mouth") in r.corrections
    # A word that completes nothing is reported as heard, not "corrected" into something else.
    r = grammar_parser.parse("banana")
    assert r.corrected == "banana" and r.corrections == []


def test_parse_never_raises(grammar_parser: CommandParser) -> None:
    for text in [
        "",
        ",,,",
        "drag , to ,",
        "9" * 400,
        "and and and",
        "to to to by by",
        "one two three four five six",
        "drag 1e9 to 2",
        "\x00\x01",
        "left left left",
        "the the the",
    ]:
        r = grammar_parser.parse(text)
        assert isinstance(r, ParseResult)
        assert r.error or r.edits or r.control


def test_normalize_and_repeats() -> None:
    assert normalize("Drag 120,200 to 140,180.") == ["drag", "120", ",", "200", "to", "140", ",", "180", ","]
    assert collapse_repeats("open the mouth open the mouth".split()) == "open the mouth".split()
    # Repeated numbers are a point, not an echo.
    assert collapse_repeats("move 64 64 to 70 60".split()) == "move 64 64 to 70 60".split()


@pytest.mark.parametrize(
    ("words", "value"),
    [
        ("one twenty", 120),
        ("two hundred", 200),
        ("sixty four", 64),
        ("one hundred twenty", 120),
        ("two fifty five", 255),
        ("seven", 7),
        ("nineteen", 19),
        ("three thousand", 3000),
        ("ninety nine", 99),
    ],
)
def test_number_words(words: str, value: int) -> None:
    got = parse_number_words(words.split())
    assert got is not None and got[0] == value


def test_number_word_splits() -> None:
    assert split_number_words("one twenty two hundred".split(), 2) == [120, 200]
    assert split_number_words("one forty one eighty".split(), 2) == [140, 180]
    assert split_number_words("thirty forty".split(), 2) == [30, 40]
    assert split_number_words("hundred".split(), 1) is None


def test_vocabulary_lists_rule_words() -> None:
    from voicedrag.language.commands import vocabulary

    words = vocabulary()
    for w in ("mouth", "eyes", "ears", "nose", "head", "open", "close", "left", "undo"):
        assert w in words
    assert len(words) == len(set(words))


# ---------------------------------------------------------------- paraphrases (sentence model)

PARAPHRASES = [
    ("drop the jaw", "open mouth"),
    ("perk up the ears", "raise ears"),
    ("look to the right", "turn head dir=right"),
    ("make him grin", "smile mouth"),
    ("show me your teeth", "open mouth"),
    ("widen his jaw", "widen mouth"),
    ("let his jaw drop", "open mouth"),
    ("give me a big grin", "smile mouth amt=>1"),
    ("look surprised", "raise brows"),
    ("make him look sad", "frown mouth"),
    ("go to sleep", "close eyes"),
    ("make the ears stand up", "move ears dir=up"),
    ("prick up the ears", "raise ears"),
    ("look happy", "smile mouth"),
    ("look grumpy", "frown mouth"),
    ("keep the lips together", "close mouth"),
    ("the teeth should show", "open mouth"),
    ("let the ears flop", "lower ears"),
    ("bare the teeth", "open mouth"),
    ("look shocked", "raise brows"),
    ("make him look angry", "lower brows"),
]


@pytest.fixture(scope="module")
def full_parser() -> CommandParser:
    p = CommandParser()
    assert p.load(), p.embedding_error
    return p


@pytest.mark.parametrize(("text", "expect"), PARAPHRASES)
def test_paraphrases(full_parser: CommandParser, text: str, expect: str) -> None:
    check(full_parser.parse(text), expect)


@pytest.mark.parametrize(("text", "expect"), [c for c in CASES if not c[1].startswith("err")][:80])
def test_model_does_not_override_grammar(full_parser: CommandParser, text: str, expect: str) -> None:
    """With the sentence model loaded, everything the grammar understands comes out the same."""
    check(full_parser.parse(text), expect)


def test_ambiguous_half_command_is_not_guessed(full_parser: CommandParser) -> None:
    for text in ("open the", "close", "turn the head", "move it"):
        r = full_parser.parse(text)
        assert r.error and r.suggestions, r.to_json()


def test_paraphrase_warning_names_the_reading(full_parser: CommandParser) -> None:
    r = full_parser.parse("show me your teeth")
    assert r.matched and any("understood" in w for w in r.warnings)
    assert 0.0 < r.confidence <= 1.0


def test_model_missing_still_parses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VOICEDRAG_SENTENCE_MODEL", str(tmp_path / "nowhere"))
    p = CommandParser()
    assert not p.load()
    check(p.parse("open the mouth"), "open mouth")
    r = p.parse("show me your teeth wiggle")
    assert r.error
    assert any("paraphrase matching is off" in w for w in r.warnings), r.to_json()


def test_spoken_commands_parse(grammar_parser: CommandParser) -> None:
    """The commands the recorder speaks mean what SPOKEN says, typed exactly."""
    for text, expect in SPOKEN.items():
        check(grammar_parser.parse(text), expect)


def test_every_recorded_command_has_an_expectation() -> None:
    missing = sorted({r["spoken"] for r in _whisper_rows()} - set(SPOKEN))
    assert not missing, f"add these to SPOKEN: {missing}"


WHISPER = _whisper_cases()

# Real transcripts that still parse to a command other than the one spoken
# (garbled beyond what sound, spelling and context can undo). Listed so that a
# new wrong reading fails the test, and a fixed one is noticed (strict xfail).
KNOWN_MISREADINGS = {
    "Lower Than John": "'john' sounds like 'chin': lower the head",
    "turn the handle it all to the left.": "'a little' heard as 'it all': the amount is lost",
    "and lower the right here.": "the first half of the command is missing",
    "book up videos": "'book up' is read as 'look up'",
    "Open the right eye and mid.": "'a bit' heard as 'and mid', a clause of its own: the amount is lost",
    "open the right eye": "'a bit' was not transcribed: a complete command at the default amount",
    "wrist head": "'reset' heard as 'wrist head', as close to 'raise head' as 'rest the eyebrows' is to 'raise'",
    "look above": "'lower both' heard as 'look above', which asks to look up",
    "turn the ventilator left": "'head a little' heard as 'ventilator': only the head turns, the amount is lost",
}


def check_or_refuse(result: ParseResult, expect: str) -> bool:
    """True when the reading is right; an error (a refusal) is allowed, a wrong command is not."""
    try:
        check(result, expect)
        return True
    except AssertionError:
        assert result.error and not result.edits and result.control is None, (
            f"wrong command instead of {expect!r} or a refusal: {result.to_json()}"
        )
        return False


def _whisper_params() -> list[object]:
    params = []
    for heard, expect, label in WHISPER:
        marks = []
        if heard in KNOWN_MISREADINGS:
            marks = [pytest.mark.xfail(reason=KNOWN_MISREADINGS[heard], strict=True)]
        params.append(pytest.param(heard, expect, id=label, marks=marks))
    return params or [
        pytest.param("", "", marks=pytest.mark.skip(reason="tests/data/whisper_mishearings.tsv is not there yet"))
    ]


@pytest.mark.parametrize(("heard", "expect"), _whisper_params())
def test_real_whisper_outputs_are_right_or_refused(full_parser: CommandParser, heard: str, expect: str) -> None:
    check_or_refuse(full_parser.parse(heard), expect)


@pytest.mark.skipif(not WHISPER, reason="tests/data/whisper_mishearings.tsv is not there yet")
def test_real_whisper_accuracy(full_parser: CommandParser) -> None:
    """Most real transcripts give the spoken command; few give a different one."""
    right = wrong = 0
    for heard, expect, _ in WHISPER:
        result = full_parser.parse(heard)
        try:
            check(result, expect)
            right += 1
        except AssertionError:
            wrong += int(not result.error)
    n = len(WHISPER)
    assert right / n >= 0.70, f"{right}/{n} right"
    assert wrong / n <= 0.05, f"{wrong}/{n} wrong"
