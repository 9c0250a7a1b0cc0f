"""Actuation: arbitration of intents into output commands, staff overrides, personal preferences."""
