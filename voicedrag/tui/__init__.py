"""The terminal UI (Textual). `voicedrag` with no arguments, or `voicedrag tui`, opens it."""
