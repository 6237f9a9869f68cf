"""Spoken audio -> the text to parse, the same way for every front end.

Whisper's free transcript is kept where the command parser can read it as heard; otherwise the
command of the parser's grammar that the audio makes likeliest replaces it (grammar scoring,
`voicedrag.speech.grammar`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from voicedrag.events import Heard

if TYPE_CHECKING:
    from voicedrag.language.commands import CommandParser
    from voicedrag.speech.grammar import GrammarChoice
    from voicedrag.speech.transcribe import Transcriber, Transcript


class Listener:
    """A transcriber and the command grammar of one parser (its spoken forms built once)."""

    def __init__(self, parser: CommandParser, transcriber: Transcriber) -> None:
        self.parser = parser
        self.transcriber = transcriber
        self._spoken_forms: dict[str, str] | None = None

    def hear(self, samples: np.ndarray, size: tuple[int, int] | None = None) -> tuple[Transcript, GrammarChoice]:
        """Whisper's free transcript and the choice made from it and the grammar; `size` (width,
        height) is the image the command is for, whose pixels spoken points must name."""
        from voicedrag.speech.grammar import command_phrases, parser_reading

        if self._spoken_forms is None:
            self._spoken_forms = command_phrases(self.parser)
        return self.transcriber.transcribe_command(samples, self._spoken_forms, parser_reading(self.parser), size=size)

    def listen(self, samples: np.ndarray, size: tuple[int, int] | None = None) -> Heard:
        transcript, choice = self.hear(samples, size)
        return Heard(
            text=choice.text.strip(), free_text=choice.free_text or "", source=choice.source, seconds=transcript.elapsed
        )
