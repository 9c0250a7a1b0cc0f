"""Rules: a validated rule model and a pure engine, floor state and time in, intents out.

The daemon's whole surface::

    rule_set = load_rules(path_or_None)           # RuleSet or RulesError, never half-loaded
    result = evaluate(rule_set, state, memory)    # intents, new memory, fired rule ids
"""

from rules.engine import Evaluation, RuleMemory, evaluate
from rules.model import DEFAULT_RULES, Rule, RuleSet, Settings, load_rules

__all__ = ["DEFAULT_RULES", "Evaluation", "Rule", "RuleMemory", "RuleSet", "Settings", "evaluate", "load_rules"]
