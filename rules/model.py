"""The rule file: a TOML document of ``[settings]``, ``[scenes]`` and ``[[rules]]``.

:meth:`RuleSet.load` returns a complete, valid rule set or raises :class:`RulesError` listing
every problem as ``file: rule 'id': key.path: what is wrong, e.g. what to write``. There is no
partially loaded state, so the daemon can hot-reload by loading first and swapping the reference
only on success: a typo in a rule file never leaves a floor without rules.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from drivers.errors import RulesError
from rules.actions import SEAT_ACTIONS, Action, LightAction, parse_action
from rules.conditions import SEAT_METRICS, SEAT_ONLY, MetricTest, Node, Problems, parse_condition, readable
from rules.state import Priority

DEFAULT_RULES = Path(__file__).resolve().parent / "default.toml"
RULE_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PRIORITIES: dict[str, Priority] = {p.name.lower(): p for p in Priority}


class Settings(BaseModel):
    """Floor-wide safety settings; defaults are the safe choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    safe_level: float = Field(default=1.0, ge=0.5, le=1.0)  # lights when sensing fails (never off)
    occupied_min_level: float = Field(default=0.3, ge=0.05, le=1.0)  # floor for occupied, dark zones
    dark_fraction: float = Field(default=0.5, gt=0.0, le=1.0)  # "dark": lux below this share of target


class RuleHead(BaseModel):
    """The scalar part of a rule; ``when`` and ``then`` are parsed separately for precise paths."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=RULE_ID)
    description: str = ""
    scope: Literal["zone", "seat"] = "zone"
    priority: Literal["schedule", "automation", "preference", "override", "safety"] = "automation"
    zones: list[str] = []
    enabled: StrictBool = True
    for_s: float = Field(default=0.0, ge=0.0, le=7 * 24 * 3600)
    when: Any = None
    then: Any = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated rule. ``order`` is its position in the file: the tie-break after priority."""

    id: str
    scope: Literal["zone", "seat"]
    priority: Priority
    when: Node | None
    then: tuple[Action, ...]
    order: int
    zones: frozenset[str] = frozenset()
    for_s: float = 0.0
    description: str = ""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A complete, valid rule set: what the engine evaluates, swapped whole on reload."""

    rules: tuple[Rule, ...]
    settings: Settings = field(default_factory=Settings)
    scenes: dict[str, float] = field(default_factory=dict)
    source: str = "<rules>"

    @classmethod
    def load(cls, path: str | Path) -> RuleSet:
        """Read and validate a rule file: a complete RuleSet or a RulesError, nothing between."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RulesError(f"{p}: no such file; start from the shipped rules/default.toml") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesError(f"{p}: cannot read it ({exc}); check the path and its permissions") from None
        return cls.parse(text, str(p))

    @classmethod
    def parse(cls, text: str, source: str = "<rules>") -> RuleSet:
        """Validate rule-file text; ``source`` names the file in every problem."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulesError(f"{source}: not valid TOML: {exc}", [f"{source}: {exc}"]) from None
        return cls.from_document(doc, source)

    @classmethod
    def from_document(cls, doc: dict[str, Any], source: str = "<rules>") -> RuleSet:
        problems: list[str] = []
        for key in sorted(set(doc) - {"settings", "scenes", "rules", "version"}):
            problems.append(f"{source}: {key}: unknown top-level key; use [settings], [scenes] or [[rules]]")
        settings = Settings()
        try:
            settings = Settings.model_validate(doc.get("settings", {}))
        except ValidationError as exc:
            problems.extend(f"{source}: {line}" for line in readable(exc, "settings"))
        scenes: dict[str, float] = {}
        for name, level in dict(doc.get("scenes", {})).items():
            if isinstance(level, int | float) and not isinstance(level, bool) and 0 <= level <= 1:
                scenes[name] = float(level)
            else:
                problems.append(f"{source}: scenes.{name}: must be a level from 0 to 1, e.g. 0.8")
        raw_rules = doc.get("rules", [])
        if not isinstance(raw_rules, list) or not raw_rules:
            problems.append(f"{source}: rules: no rules; add at least one [[rules]] table")
            raw_rules = []
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_rules):
            rule_problems = Problems()
            rule = _parse_rule(raw, i, scenes, rule_problems)
            name = f"rule '{raw['id']}'" if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"rules[{i}]"
            if rule is not None and rule.id in seen:
                rule_problems.append(f"id: {rule.id!r} is used twice; rule ids must be unique")
            problems.extend(f"{source}: {name}: {line}" for line in rule_problems)
            if rule is not None and not rule_problems:
                seen.add(rule.id)
                rules.append(rule)
        if problems:
            raise RulesError(f"{source}: {len(problems)} problem(s)", problems)
        return cls(rules=tuple(r for r in rules), settings=settings, scenes=scenes, source=source)

    def check_against(self, zones: set[str]) -> list[str]:
        """Problems between this rule set and a floor: zone filters naming zones the floor lacks."""
        out: list[str] = []
        for rule in self.rules:
            for z in sorted(rule.zones - zones):
                known = ", ".join(sorted(zones))
                out.append(f"{self.source}: rule '{rule.id}': zones: unknown zone {z!r}; known: {known}")
        return out


def _parse_rule(raw: Any, index: int, scenes: dict[str, float], problems: Problems) -> Rule | None:
    if not isinstance(raw, dict):
        problems.append("must be a table: write it as [[rules]] with id = \"...\"")
        return None
    try:
        head = RuleHead.model_validate(raw)
    except ValidationError as exc:
        for line in readable(exc, ""):
            line = line.lstrip(".")
            if line.startswith("id:") and "pattern" in line:
                line = "id: use lower-case letters, digits, '-' and '_', e.g. \"vent-co2-high\""
            problems.append(line)
        head = None
    when = None if raw.get("when") is None else parse_condition(raw["when"], "when", problems)
    then_raw = raw.get("then")
    actions: list[Action] = []
    if not isinstance(then_raw, list) or not then_raw:
        problems.append('then: give a list of actions, e.g. then = [{ do = "light", level = 0.8 }]')
    else:
        for j, item in enumerate(then_raw):
            action = parse_action(item, f"then[{j}]", problems)
            if action is not None:
                actions.append(action)
    if head is None or problems:
        return None
    for j, action in enumerate(actions):
        if head.scope != "seat" and isinstance(action, SEAT_ACTIONS):
            problems.append(f"then[{j}]: do = {action.do!r} acts on a seat's desk; set scope = \"seat\"")
        if isinstance(action, LightAction) and action.scene is not None and action.scene not in scenes:
            known = ", ".join(sorted(scenes)) or "none defined"
            problems.append(f"then[{j}].scene: unknown scene {action.scene!r}; define it in [scenes] (known: {known})")
    if when is not None and head.scope != "seat":
        for leaf in when.leaves():
            if isinstance(leaf, SEAT_ONLY) or (isinstance(leaf, MetricTest) and leaf.metric in SEAT_METRICS):
                problems.append("when: this test looks at a seat; set scope = \"seat\"")
                break
    if problems:
        return None
    return Rule(
        id=head.id, scope=head.scope, priority=PRIORITIES[head.priority], when=when, then=tuple(actions),
        order=index, zones=frozenset(head.zones), for_s=head.for_s, description=head.description,
    ) if head.enabled else Rule(
        id=head.id, scope=head.scope, priority=PRIORITIES[head.priority], when=when, then=(),
        order=index, zones=frozenset(head.zones), for_s=head.for_s, description="(disabled) " + head.description,
    )


def load_rules(path: Path | None = None) -> RuleSet:
    """The rule set at ``path``, or the shipped defaults when ``path`` is None."""
    return RuleSet.load(DEFAULT_RULES if path is None else path)
