"""Words to edit intents: tokens, mishearing correction, numbers, paraphrases and the grammar."""
