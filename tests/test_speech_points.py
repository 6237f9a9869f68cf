"""Spoken points (voicedrag/speech/points.py): the grammar of explicit drags, its search on the audio,
and the choice it makes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from voicedrag.speech import grammar as g
from voicedrag.speech import points as p
from voicedrag.speech.transcribe import Transcriber


@pytest.fixture(scope="module")
def tokenizer():
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(multilingual=False)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()


def test_the_grammar_says_points_as_they_are_spoken(tokenizer) -> None:
    graph = g.GraphTokens(p.point_graph(p.Limits.of((256, 128))), tokenizer)
    for text in (
        "drag 64, 80 to 70, 90",
        "drag 64 80 to 70 90",
        "from 64 comma 80 to 70 comma 90",
        "x 64 y 80 to x 70 y 90",
        "drag x 64, y 80 to x 70 y 90",
        "move the point at 30 40 up by 5",
        "move the point at 50 60 to the right by 10 pixels",
        "drag the point at 100 120 to 110 127",
        "move 255 0 to 0 127",
    ):
        assert graph.accepts(text), text
    for text in (
        "drag 6 4 80 to 70 90",  # three numbers for a point
        "drag 64 come 80 to 70 90",  # "come" is not a comma
        "drag 64 80 to 70 128",  # beyond the image's 128 rows
        "drag 256 80 to 70 90",  # and its 256 columns
        "move the point at 30 40 up by 0",  # no distance
        "drag 64 80 to",
    ):
        assert not graph.accepts(text), text
    assert p.Limits.of(None) == p.Limits(p.DEFAULT_LIMIT, p.DEFAULT_LIMIT)


def test_the_grammar_search_finds_the_likeliest_texts_with_exact_scores(transcriber: Transcriber) -> None:
    import torch
    from whisper.decoding import DecodingOptions, DecodingTask

    task = DecodingTask(transcriber.whisper, DecodingOptions(language="en", without_timestamps=True, fp16=False))
    tokenizer = task.tokenizer
    # A graph small enough to list: a verb, then one of three numbers (1, 12 and 120 share tokens'
    # beginnings), an optional comma, and another number.
    numbers = (" 1", " 12", " 120", " 7")
    graph = g.WordGraph(
        {
            0: ((" drag", 1), (" move", 1)),
            1: tuple((n, 2) for n in numbers),
            2: ((",", 3), *((n, 4) for n in numbers)),
            3: tuple((n, 4) for n in numbers),
        },
        frozenset({4}),
    )
    texts = [
        f"{v}{a}{c}{b}".strip() for v, a, c, b in itertools.product((" drag", " move"), numbers, ("", ","), numbers)
    ]
    tokens = g.GraphTokens(graph, tokenizer)
    assert all(tokens.accepts(t) for t in texts) and not tokens.accepts("drag 1")
    for seed in range(2):
        torch.manual_seed(seed)
        features = transcriber.whisper.embed_audio(torch.randn(1, 80, 600) * 0.5)
        exact = sorted(
            g.score_texts(transcriber.whisper, tokenizer, task.initial_tokens, features, texts), key=lambda s: -s.total
        )
        wide = g.decode_in_graph(
            transcriber.whisper, task.initial_tokens, features, tokens, beam=len(texts) * 4, best=5
        )
        assert [s.text for s in wide] == [s.text for s in exact[:5]]
        assert np.allclose([s.total for s in wide], [s.total for s in exact[:5]], atol=1e-3)
        narrow = g.decode_in_graph(transcriber.whisper, task.initial_tokens, features, tokens, beam=2, best=3)
        by_text = {s.text: s for s in exact}
        assert 1 <= len(narrow) <= 3 and all(abs(s.total - by_text[s.text].total) < 1e-3 for s in narrow)


def test_what_sounds_like_points() -> None:
    for text in (
        "drag 64 come 80 to 70 common high",
        "drag the point at 100",
        "brag 6488709",
        "x6 T4 Y AT tax 7190",
        "from sixty four eighty",
    ):
        assert p.sounds_like_points(text), text
    for text in ("move the nose up by 4 pixels", "open the mouth", "turn the head left", "", "I have 2 cats"):
        assert not p.sounds_like_points(text), text


def test_a_point_reading_needs_the_audio_to_support_it() -> None:
    settings = g.GrammarSettings(min_avg_logprob=-2.0, unsure_min_avg_logprob=-3.0)
    scored = [g.Scored("drag 64 80 to 70 90", -6.0, 7), g.Scored("drag 6 480 to 70 90", -7.0, 7)]
    choice = p.choose_points("drag 6 for 80 to 7 0 90", scored, settings)
    assert choice is not None and (choice.source, choice.text) == ("grammar", "drag 64 80 to 70 90")
    # The free transcript, where the grammar says it and the audio likes it best, is kept as heard.
    own = p.choose_points("Drag 64 80 to 70 90.", scored, settings)
    assert own is not None and (own.source, own.text) == ("free", "Drag 64 80 to 70 90.")
    weak = [g.Scored("drag 64 80 to 70 90", -17.5, 7)]  # -2.5 a token
    assert p.choose_points("call me at 5 30", weak, settings) is None
    assert p.choose_points("", weak, settings, heard_unsure=True) is not None
    assert p.choose_points("", [], settings) is None
