"""Edit intents to drag pairs: the rules files (schema and loader) and the planner."""
