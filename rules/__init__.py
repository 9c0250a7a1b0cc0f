"""Rules: a validated rule model and a pure engine, floor state and time in, intents out."""
