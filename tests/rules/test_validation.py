"""Rule-file validation: every broken variant names the file, the rule id and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import RulesError
from rules import DEFAULT_RULES, RuleSet, load_rules

GOOD = """
[[rules]]
id = "vent-co2-high"
when = { metric = "co2", above = 1000, release_below = 800 }
then = [{ do = "ventilation", level = 1.0 }]
"""

BROKEN = [
    # (rule text, expected fragment of one problem line)
    ('id = "vent-co2-high"\nwhen = { metric = "co2", above = "lots" }\nthen = [{ do = "ventilation", level = 1.0 }]',
     "rule 'vent-co2-high': when.above: must be a number, e.g. 1000"),
    ('id = "vent-co2-high"\nwhen = { metric = "co3", above = 1000 }\nthen = [{ do = "ventilation", level = 1.0 }]',
     "rule 'vent-co2-high': when.metric:"),
    ('id = "vent-co2-high"\nwhen = { metric = "co2", above = 800, release_below = 1000 }\n'
     'then = [{ do = "ventilation", level = 1.0 }]',
     "rule 'vent-co2-high': when: release_below must be lower than above"),
    ('id = "lights"\nwhen = { all = [{ open = true }, { motion_within_s = "soon" }] }\n'
     'then = [{ do = "light", level = 1 }]',
     "rule 'lights': when.all[1].motion_within_s: must be a number, e.g. 10"),
    ('id = "lights"\nthen = [{ do = "light", level = 1.5 }]',
     "rule 'lights': then[0].level: Input should be less than or equal to 1"),
    ('id = "lights"\nthen = [{ do = "lite", level = 1 }]',
     "rule 'lights': then[0].do: 'lite' is not an action"),
    ('id = "lights"\nthen = [{ do = "light", scene = "disco" }]',
     "rule 'lights': then[0].scene: unknown scene 'disco'"),
    ('id = "desk"\nthen = [{ do = "desk_height", preference = true }]',
     "rule 'desk': then[0]: do = 'desk_height' acts on a seat's desk; set scope = \"seat\""),
    ('id = "ghost"\nwhen = { status = "ghost" }\nthen = [{ do = "alert", message = "x" }]',
     "rule 'ghost': when: this test looks at a seat; set scope = \"seat\""),
    ('id = "lights"\nwhen = { time = ["8am", "10:00"] }\nthen = [{ do = "light", level = 1 }]',
     "rule 'lights': when.time: "),
    ('id = "lights"\nwhen = { weekdays = ["monday"] }\nthen = [{ do = "light", level = 1 }]',
     "rule 'lights': when.weekdays[0]:"),
    ('id = "lights"\npriorty = "safety"\nthen = [{ do = "light", level = 1 }]',
     "rule 'lights': priorty: unknown key"),
    ('id = "lights"\nwhen = { colour = "blue" }\nthen = [{ do = "light", level = 1 }]',
     "rule 'lights': when: no test recognised"),
    ('id = "lights"\nwhen = { not = { open = "yes" } }\nthen = [{ do = "light", level = 1 }]',
     "rule 'lights': when.not.open: must be true or false"),
    ('id = "Lights Up"\nthen = [{ do = "light", level = 1 }]',
     "rule 'Lights Up': id: use lower-case letters"),
    ('id = "lights"\nwhen = { open = true }',
     "rule 'lights': then: give a list of actions"),
    ('id = "lights"\nfor_s = -5\nthen = [{ do = "light", level = 1 }]',
     "rule 'lights': for_s:"),
    ('id = "desk"\nscope = "seat"\nthen = [{ do = "desk_lamp", level = 0.5, preference = true }]',
     "rule 'desk': then[0]: give exactly one of level = 0..1 or preference = true"),
]


@pytest.mark.parametrize(("body", "expected"), BROKEN)
def test_broken_rule_is_reported_with_file_rule_and_path(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "floor.toml"
    path.write_text("[[rules]]\n" + body + "\n")
    with pytest.raises(RulesError) as info:
        RuleSet.load(path)
    lines = info.value.problems
    assert any(line.startswith(f"{path}: ") and expected in line for line in lines), lines


def test_every_problem_is_listed_not_just_the_first(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(GOOD + '\n[[rules]]\nid = "a"\nthen = [{ do = "x" }]\n\n[[rules]]\nid = "b"\nfor_s = "x"\n'
                    'then = [{ do = "light", level = 1 }]\n')
    with pytest.raises(RulesError) as info:
        RuleSet.load(path)
    text = "\n".join(info.value.problems)
    assert "rule 'a': then[0].do" in text and "rule 'b': for_s" in text
    assert len(info.value.problems) == 2


def test_duplicate_ids_and_bad_toml_and_missing_file(tmp_path: Path) -> None:
    dup = tmp_path / "dup.toml"
    dup.write_text(GOOD + GOOD)
    with pytest.raises(RulesError, match="problem") as info:
        RuleSet.load(dup)
    assert any("'vent-co2-high' is used twice" in p for p in info.value.problems)
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]\nid=")
    with pytest.raises(RulesError, match="not valid TOML"):
        RuleSet.load(bad)
    with pytest.raises(RulesError, match="no such file"):
        RuleSet.load(tmp_path / "absent.toml")


def test_unknown_top_level_key_and_bad_scene_level(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[scenes]\nreading = 2\n[rule]\nid = "x"\n' + GOOD)
    with pytest.raises(RulesError) as info:
        RuleSet.load(path)
    text = "\n".join(info.value.problems)
    assert "scenes.reading: must be a level from 0 to 1" in text
    assert "rule: unknown top-level key" in text


def test_default_rules_load_and_are_found_without_a_path() -> None:
    rules = load_rules(None)
    assert rules.source == str(DEFAULT_RULES)
    ids = [r.id for r in rules.rules]
    assert len(ids) == len(set(ids)) >= 10
    assert {"vent-co2-high", "lights-daylight", "desk-preferences", "seat-indicator"} <= set(ids)


def test_check_against_floor_names_unknown_zone() -> None:
    rules = RuleSet.parse('[[rules]]\nid = "a"\nzones = ["z9"]\nthen = [{ do = "light", level = 1 }]\n', "x.toml")
    assert rules.check_against({"z1", "z2"}) == ["x.toml: rule 'a': zones: unknown zone 'z9'; known: z1, z2"]
