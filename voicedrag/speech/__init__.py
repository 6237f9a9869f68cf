"""Speech to text, offline: Whisper model lookup and conversion, transcription, noise suppression,
grammar scoring, audio and voice activity."""
