"""The mishearing corrector and the sentence encoder (fast numpy/torch paths vs sentence-transformers)."""
from __future__ import annotations

import numpy as np
import pytest

from voicedrag.language.correct import Corrector, edit_distance, phonetic_key, syllables
from voicedrag.language.paraphrase import MiniLMEncoder, ParaphraseIndex, reference_encode

SENTENCES = ["open the mouth", "drop the jaw", "perk up the ears", "look to the right", "make him grin",
             "undo the last edit", "a much longer sentence asking to turn the whole head a little to the left"]


@pytest.mark.parametrize(("a", "b"), [("mouse", "mouth"), ("ice", "eyes"), ("year", "ear"), ("hat", "head"),
                                      ("knows", "nose"), ("write", "right"), ("whiten", "widen")])
def test_misheard_words_sound_alike(a: str, b: str) -> None:
    ka, kb = phonetic_key(a), phonetic_key(b)
    assert edit_distance(ka, kb, near=True) <= 0.5, (ka, kb)


@pytest.mark.parametrize(("heard", "meant"), [("mouse", "mouth"), ("ice", "eyes"), ("year", "ear"),
                                              ("hat", "head"), ("rays", "raise"), ("lift", "left")])
def test_corrector_proposes_the_meant_word(heard: str, meant: str) -> None:
    c = Corrector(["mouth", "eyes", "ear", "ears", "head", "nose", "raise", "left", "right", "move", "open"])
    assert meant in [x.word for x in c.candidates(heard)]


def test_corrector_leaves_unrelated_words() -> None:
    c = Corrector(["mouth", "eyes", "ears", "head", "nose", "open", "close"])
    for w in ("banana", "computer", "sky", "chair"):
        assert c.candidates(w) == []


def test_edit_distance_basics() -> None:
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("abc", "acb") == 1  # adjacent swap
    assert edit_distance("", "abc") == 3
    assert syllables("banana") == 3 and syllables("close") == 1 and syllables("eyes") == 1


@pytest.fixture(scope="module")
def encoders() -> tuple[MiniLMEncoder, MiniLMEncoder]:
    return MiniLMEncoder(backend="numpy"), MiniLMEncoder(backend="torch")


def test_numpy_and_torch_paths_agree(encoders: tuple[MiniLMEncoder, MiniLMEncoder]) -> None:
    a = encoders[0].encode(SENTENCES)
    b = encoders[1].encode(SENTENCES)
    assert a.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=2e-5)
    # A batch gives the same vectors as one sentence at a time (padding is masked).
    one = np.stack([encoders[0].encode([s])[0] for s in SENTENCES])
    np.testing.assert_allclose(one, a, atol=2e-5)


@pytest.mark.slow
def test_fast_encoder_matches_sentence_transformers(encoders: tuple[MiniLMEncoder, MiniLMEncoder]) -> None:
    ref = reference_encode(SENTENCES)
    np.testing.assert_allclose(encoders[0].encode(SENTENCES), ref, atol=1e-4)


def test_index_search_and_cache(encoders: tuple[MiniLMEncoder, MiniLMEncoder], tmp_path) -> None:
    entries = [("open the mouth", 1), ("close the eyes", 2), ("raise the ears", 3)]
    idx = ParaphraseIndex(encoders[0], entries, cache=tmp_path / "c.npy")
    assert len(list(tmp_path.glob("c-*.npy"))) == 1
    again = ParaphraseIndex(encoders[0], entries, cache=tmp_path / "c.npy")
    np.testing.assert_array_equal(idx.vectors, again.vectors)
    best = idx.search("perk up the ears")[0]
    assert best.item == 3
    hidden = idx.search("perk up the ears", allowed=[True, True, False])
    assert all(m.item != 3 for m in hidden)
