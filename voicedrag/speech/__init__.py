"""Speech to text, offline: Whisper model lookup and conversion, transcription, audio and voice activity."""
