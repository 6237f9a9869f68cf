"""Spoken commands in voices of two synthesizers (espeak-ng and CMU Flite), through the Listener that
`parse --audio`, `edit --audio` and the TUI use: the modifiers said (amounts, sides, "by N pixels")
reach the parsed edit, and spoken points are placed where they were said.

Each clip is made as benchmarks/spoken_commands.py makes its own: the synthesizer's output read at
16 kHz, with 0.3 s of silence before and after. A test that needs a synthesizer skips, naming it,
where it is not installed (.ci/run installs both).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from voicedrag.language.commands import CommandParser
from voicedrag.planning.rules import default_rules
from voicedrag.speech.audio import SAMPLE_RATE, load_audio
from voicedrag.speech.listen import Listener
from voicedrag.speech.transcribe import Transcriber

# (synthesizer, voice): espeak-ng's default English voice and two Flite voices (Debian `flite`).
VOICES = (("espeak-ng", "en"), ("flite", "slt"), ("flite", "awb"))
IMAGE_SIZE = (256, 256)  # the image the spoken points are pixels of, as the editor passes it

# One sentence per amount of the lexicon (voicedrag/language/lexicon.py: AMOUNTS and the amount
# PHRASES), both sides, and "by N pixels" in digits and in words. The third field names what
# Whisper tiny.en's free decoding makes of the modifier in some of the three voices (measured):
# no grammar scoring can keep a word that was not heard, so those reach the edit only once the
# recogniser hears them (issue #35, items 3 and 4), and are expected to fail until then.
MODIFIERS: tuple[tuple[str, str, str | None], ...] = (
    ("a bit", "shorten the nose a bit", None),
    ("a little", "open the mouth a little", None),
    ("a little bit", "close the eyes a little bit", None),
    ("a tiny bit", "close the right eye a tiny bit", None),
    ("slightly", "turn the head slightly to the left", None),
    ("a lot", "make her smile a lot", None),
    ("a tad", "lower the brows a tad", "'atard', 'it had', 'browser tad'"),
    ("a touch", "widen the mouth a touch", "'touch', 'at touch' without the article"),
    ("just a bit", "raise the brows just a bit", None),
    ("just a little", "open the eyes just a little", None),
    ("a smidge", "shrink the nose a smidge", "'as mid', 'as a image', 'is image'"),
    ("a hair", "move the mouth up a hair", "dropped, 'the hair', 'to her'"),
    ("a lot more", "open the mouth a lot more", None),
    ("a great deal", "enlarge the eyes a great deal", "'are great deal'; espeak-ng: 'and launch the izer'"),
    ("quite a bit", "lengthen the nose quite a bit", None),
    ("so much", "open the mouth so much", None),
    ("very much", "smile very much", None),
    ("all the way", "open the mouth all the way", "'oil the way', 'all the week'"),
    ("as far as possible", "turn the head to the right as far as possible", None),
    ("even more", "widen the eyes even more", None),
    ("a bit more", "open the eyes a bit more", None),
    ("a little more", "open the mouth a little more", None),
    ("a fair bit", "tilt the head to the left a fair bit", "'eye fan width', 'to fair bit', 'of the air bit'"),
    ("somewhat", "narrow the eyes somewhat", "espeak-ng: 'that would be I'm what'"),
    ("barely", "barely open the mouth", None),
    ("gently", "gently close the eyes", None),
    ("softly", "softly raise the brows", None),
    ("much", "smile much more", None),
    ("very", "open the mouth very wide", None),
    ("way", "turn the head way to the left", "espeak-ng: 'weight on the left'"),
    ("really", "open the mouth really wide", None),
    ("widely", "open the eyes widely", "awb: 'wide lip'"),
    ("more", "smile more", None),
    ("extra", "open the mouth extra wide", None),
    ("fully", "fully open the mouth", "slt: 'fill open the mouth'"),
    ("completely", "completely close the eyes", None),
    ("lots", "smile lots", "'smile loss', 'smile lotus'"),
    ("greatly", "greatly enlarge the eyes", None),
    ("further", "turn the head further to the right", None),
    ("farther", "move the nose farther up", None),
    ("hugely", "hugely enlarge the nose", None),
    ("super", "open the mouth super wide", "awb: 'soother wide'"),
    ("less", "smile less", None),
    ("twice", "raise the brows twice as much", None),
    ("left", "close the left eye", None),
    ("right", "raise the right ear", None),
    ("to the left", "move the nose to the left", None),
    ("to the right", "turn the head to the right", None),
    ("by 5 pixels", "move the nose up by 5 pixels", None),
    ("by eight pixels", "move the left eye down by eight pixels", None),
    ("by 12 pixels", "move the mouth to the left by 12 pixels", "espeak-ng: 'to the left eye 12 pixels'"),
)

# Ten ways to say explicit points, heard in two Flite voices. Measured on these ten in five voices
# (image 256 px): rms 10, kal16 9, awb 8, slt 8 and espeak-ng en-us 6 placed right; free
# decoding alone placed 4, 1, 2, 1 and 4 ("drag 6 for 80 to 7 0 90", "from 6 4 80 to 7 0 90").
POINT_COMMANDS = (
    "drag 64 80 to 70 90",
    "from 64, 80 to 70, 90",
    "x 64 y 80 to x 70 y 90",
    "move the point at 30 40 up by 5",
    "drag sixty four comma eighty to seventy comma ninety",
    "drag 120 45 to 150 60",
    "move the point at 200 100 to the left by 20 pixels",
    "drag the point at 25 75 to 35 90",
    "from 100, 50 to 90, 40",
    "move 12 200 to 40 180",
)
POINT_VOICES = (("flite", "rms"), ("flite", "kal16"))


def _skip_without(synthesizer: str) -> None:
    if shutil.which(synthesizer) is None:
        pytest.skip(f"{synthesizer} is not installed (apt-get install {synthesizer})")


@functools.cache
def _listener() -> tuple[CommandParser, Listener]:
    parser = CommandParser(default_rules(), use_embeddings=False)
    return parser, Listener(parser, Transcriber(prompt_words=parser.vocabulary()))


@functools.cache
def _spoken(text: str, synthesizer: str, voice: str) -> np.ndarray:
    """A sentence said by one voice, 16 kHz mono with 0.3 s of silence on each side."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "said.wav"
        if synthesizer == "espeak-ng":
            command = ["espeak-ng", "-v", voice, "-w", str(wav), text]
        else:
            command = ["flite", "-voice", voice, "-t", text, "-o", str(wav)]
        subprocess.run(command, check=True, capture_output=True)
        samples = load_audio(wav).samples
    pad = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([pad, samples, pad])


def _edits(parser: CommandParser, text: str) -> object:
    """What a text asks for, modifiers and points included."""
    r = parser.parse(text)
    return r.control or tuple(
        (
            e.action,
            e.part,
            e.side,
            e.direction,
            round(e.amount, 3),
            e.pixels,
            None if e.handle is None else e.handle.as_list(),
            None if e.target is None else e.target.as_list(),
        )
        for e in r.edits
    )


@functools.cache
def _heard(text: str, synthesizer: str, voice: str) -> tuple[object, object, str, str]:
    """(the edits of the free transcript, the edits of the choice, the free transcript, the choice)."""
    parser, listener = _listener()
    transcript, choice = listener.hear(_spoken(text, synthesizer, voice), IMAGE_SIZE)
    return _edits(parser, choice.free_text), _edits(parser, choice.text), choice.free_text, choice.text


def _modifier_params() -> list[object]:
    out = []
    for modifier, sentence, misheard in MODIFIERS:
        marks = [pytest.mark.xfail(reason=f"Whisper tiny.en mishears it: {misheard}", strict=False)] if misheard else []
        out.append(pytest.param(sentence, id=modifier, marks=marks))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sentence", [pytest.param(s, id=m) for m, s, _ in MODIFIERS])
def test_a_modifier_heard_is_never_dropped(sentence: str) -> None:
    """Where the free transcript holds the modifier (its parse is the sentence's), the command
    chosen from it and the grammar holds it too: grammar scoring used to put "turn the head to the
    left" for "turn the head slightly to the left" heard exactly."""
    parser, _ = _listener()
    want = _edits(parser, sentence)
    for synthesizer, voice in VOICES:
        _skip_without(synthesizer)
        free, chosen, free_text, text = _heard(sentence, synthesizer, voice)
        if free == want:
            assert chosen == want, (voice, free_text, text)


@pytest.mark.slow
@pytest.mark.parametrize("sentence", _modifier_params())
def test_every_modifier_reaches_the_edit_in_three_voices(sentence: str) -> None:
    parser, _ = _listener()
    want = _edits(parser, sentence)
    assert want and all(e[4] != 1.0 or e[2] or e[3] or e[5] for e in want)  # the sentence has its modifier
    for synthesizer, voice in VOICES:
        _skip_without(synthesizer)
        _, chosen, free_text, text = _heard(sentence, synthesizer, voice)
        assert chosen == want, (voice, free_text, text)


@pytest.mark.slow
@pytest.mark.parametrize(("synthesizer", "voice"), POINT_VOICES, ids=[v for _, v in POINT_VOICES])
def test_spoken_points_are_placed_where_they_were_said(synthesizer: str, voice: str) -> None:
    _skip_without(synthesizer)
    parser, _ = _listener()
    missed = []
    for command in POINT_COMMANDS:
        want = _edits(parser, command)
        assert want and all(e[6] is not None for e in want)  # typed, each command places its points
        _, chosen, free_text, text = _heard(command, synthesizer, voice)
        if chosen != want:
            missed.append((command, free_text, text))
    # One of the ten may be misheard in a voice (measured: kal16 hears "twenty five seventy five" as
    # "2575" and the search takes it for 250, 75); two would be a regression.
    assert len(missed) <= 1, missed
