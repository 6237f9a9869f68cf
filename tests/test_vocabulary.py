"""The verb and control-word table is defined once, and every reader of words derives from it."""
from __future__ import annotations

from voicedrag.language import lexicon as lx
from voicedrag.language.commands import CommandParser
from voicedrag.intents import ACTIONS, CONTROL_TABLE, CONTROLS, VERB_TABLE
from voicedrag.planning.rules import default_rules
from voicedrag.speech.transcribe import DEFAULT_PROMPT_WORDS
from voicedrag.tui.localcmd import read_local


def test_every_word_of_the_table_reaches_the_lexicon_the_parser_the_prompt_and_the_tui() -> None:
    parser = CommandParser(default_rules(), use_embeddings=False)
    assert ACTIONS == tuple(v.action for v in VERB_TABLE) and CONTROLS == tuple(c.word for c in CONTROL_TABLE)
    for verb in VERB_TABLE:
        for word in verb.words.split():
            assert lx.VERBS[word] == verb.action, word
        assert verb.action in lx.CORRECTION_TARGETS and verb.action in DEFAULT_PROMPT_WORDS
        assert verb.action in parser.vocabulary()
        if verb.default_part:
            assert lx.DEFAULT_PART[verb.action] == verb.default_part
    for control in CONTROL_TABLE:
        for word in (control.word, *control.synonyms.split()):
            assert lx.CONTROL_WORDS[word] == control.word, word
            assert parser.parse(word).control == control.word, word
        for spelling in (control.word, *control.keys.split()):
            local = read_local(spelling)
            assert local is not None and local.kind == "control" and local.word == control.word
        assert control.word in DEFAULT_PROMPT_WORDS and control.word in parser.vocabulary()
