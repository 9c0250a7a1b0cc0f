"""Ventilation and temperature: demand control, purge, pre-ventilation, setback and recovery.

The floors of ``tests.rules.floors`` have two zones on one AHU (``ahu1``), as on floor 3 where
every AHU serves two zones.
"""

from __future__ import annotations

import pytest

from drivers.errors import RulesError
from rules import RuleSet, evaluate, load_rules
from rules.actions import VentilationAction
from rules.state import FloorState, Intent, IntentKind, Measure
from tests.rules.floors import UNHEALTHY, occupied_zone, state, zone

DEFAULTS = load_rules(None)
T = 10_000.0  # the zones' empty_since is 0 unless said: empty for hours


def hvac(st: FloorState, rules: RuleSet = DEFAULTS) -> dict[IntentKind, Intent]:
    return {i.kind: i for i in evaluate(rules, st).intents if i.target == "ahu1"}


def setpoints(st: FloorState) -> tuple[float | None, float | None]:
    out = hvac(st)
    return out[IntentKind.SETPOINT].value, out[IntentKind.COOLING_SETPOINT].value


def test_demand_control_rises_with_co2_across_its_band_and_never_below_its_level() -> None:
    dcv = VentilationAction(do="ventilation", level=0.0, co2_ppm=(800.0, 1000.0), unknown_level=0.2)
    assert [dcv.level_for(c) for c in (600.0, 800.0, 850.0, 900.0, 1000.0, 1400.0)] == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert dcv.level_for(None) == 0.2  # CO2 sensing failed: a safe amount of air
    floor = VentilationAction(do="ventilation", level=0.3, co2_ppm=(800.0, 1000.0))
    assert floor.level_for(500.0) == 0.3 and floor.level_for(950.0) == 0.75
    assert VentilationAction(do="ventilation", level=0.4).level_for(2000.0) == 0.4  # no band: a fixed level


def test_sensor_noise_does_not_move_the_ahu_but_a_real_change_does() -> None:
    dcv = VentilationAction(do="ventilation", level=0.0, co2_ppm=(800.0, 1000.0))
    assert dcv.level_for(905.0, holding=0.5) == 0.5  # asks 0.53: within the 0.1 deadband of what it holds
    assert dcv.level_for(895.0, holding=0.5) == 0.5
    assert dcv.level_for(930.0, holding=0.5) == 0.65  # 0.15 more: move
    assert dcv.level_for(790.0, holding=0.05) == 0.0  # under the band: straight back to the minimum
    purge = VentilationAction(do="ventilation", level=0.3, co2_ppm=(800.0, 1000.0))
    assert purge.level_for(820.0, holding=0.05) == 0.3  # a higher floor applies at once
    seq = [state(T, zones={"z1": occupied_zone(co2=Measure(c)), "z2": zone("z2", co2=Measure(450.0))},
                 levels={"ahu1": held}) for c, held in ((900.0, 0.45), (908.0, 0.45), (960.0, 0.45))]
    assert [hvac(st)[IntentKind.VENTILATION].value for st in seq] == [0.45, 0.45, 0.8]


def test_default_ventilation_follows_co2_in_an_occupied_zone() -> None:
    quiet = zone("z2", co2=Measure(450.0))
    for co2, level in ((650.0, 0.0), (850.0, 0.25), (940.0, 0.7)):
        out = hvac(state(T, zones={"z1": occupied_zone(people=12, co2=Measure(co2)), "z2": quiet}))
        assert out[IntentKind.VENTILATION].value == level
        assert out[IntentKind.VENTILATION].rule_id == "vent-demand"
    unknown = hvac(state(T, zones={"z1": occupied_zone(co2=UNHEALTHY), "z2": zone("z2", co2=Measure(450.0))}))
    assert unknown[IntentKind.VENTILATION].value == 0.2


def test_an_ahu_follows_the_zone_that_needs_the_most_whatever_the_rule_order() -> None:
    rules = RuleSet.parse(
        '[[rules]]\nid = "little"\nzones = ["z2"]\nthen = [{ do = "ventilation", level = 0.1 }]\n'
        '[[rules]]\nid = "more"\nzones = ["z1"]\nthen = [{ do = "ventilation", level = 0.6 }]\n'
        '[[rules]]\nid = "warm"\nzones = ["z2"]\nthen = [{ do = "setpoint", heating_c = 22, cooling_c = 25 }]\n'
        '[[rules]]\nid = "cool"\nzones = ["z1"]\nthen = [{ do = "setpoint", heating_c = 20, cooling_c = 23 }]\n')
    out = hvac(state(T), rules)
    assert out[IntentKind.VENTILATION].value == 0.6  # before: the earlier rule won, whatever it asked
    assert out[IntentKind.SETPOINT].value == 22.0 and out[IntentKind.COOLING_SETPOINT].value == 23.0
    # Within one zone the rule order still decides: an earlier rule is not overridden by a later one.
    ordered = RuleSet.parse('[[rules]]\nid = "a"\nthen = [{ do = "ventilation", level = 0.1 }]\n'
                            '[[rules]]\nid = "b"\nthen = [{ do = "ventilation", level = 0.9 }]\n')
    assert hvac(state(T, zones={"z1": zone()}), ordered)[IntentKind.VENTILATION].value == 0.1


def test_a_busy_zone_is_not_starved_by_its_empty_neighbour() -> None:
    stuffy = occupied_zone(people=20, co2=Measure(960.0))
    out = hvac(state(T, zones={"z1": stuffy, "z2": zone("z2", co2=Measure(430.0))}))
    assert out[IntentKind.VENTILATION].value == 0.8


def test_purge_after_a_zone_empties_then_minimum_airflow() -> None:
    just_left = zone("z1", empty_since=T - 300.0, co2=Measure(880.0))
    out = hvac(state(T, zones={"z1": just_left, "z2": zone("z2", co2=Measure(450.0))}))
    assert (out[IntentKind.VENTILATION].rule_id, out[IntentKind.VENTILATION].value) == ("vent-purge-after-empty", 0.3)
    clean = zone("z1", empty_since=T - 300.0, co2=Measure(650.0))
    out = hvac(state(T, zones={"z1": clean, "z2": zone("z2", co2=Measure(450.0))}))
    assert out[IntentKind.VENTILATION].value == 0.0
    long_gone = zone("z1", empty_since=T - 1200.0, co2=Measure(880.0))
    out = hvac(state(T, zones={"z1": long_gone, "z2": zone("z2", co2=Measure(450.0))}))
    assert out[IntentKind.VENTILATION].value == 0.4  # demand control again (880 ppm)


def test_pre_ventilation_only_before_the_zone_fills() -> None:
    coming = zone("z1", forecast={15: 4.0, 30: 14.0}, co2=Measure(430.0))
    out = hvac(state(T, zones={"z1": coming, "z2": zone("z2", co2=Measure(430.0))}))
    assert (out[IntentKind.VENTILATION].rule_id, out[IntentKind.VENTILATION].value) == ("vent-prefill-forecast", 0.2)
    filling = occupied_zone(people=8, forecast={30: 14.0}, co2=Measure(600.0))
    out = hvac(state(T, zones={"z1": filling, "z2": zone("z2", co2=Measure(430.0))}))
    assert out[IntentKind.VENTILATION].value == 0.0  # people are here: CO2 decides now
    out = hvac(state(T, open_now=False, zones={"z1": coming, "z2": zone("z2", co2=Measure(430.0))}))
    assert out[IntentKind.VENTILATION].value == 0.0


def test_setpoints_comfort_while_occupied_setback_while_empty_night_when_closed() -> None:
    assert setpoints(state(T, zones={"z1": occupied_zone(), "z2": zone("z2")})) == (21.0, 24.0)
    assert setpoints(state(T, zones={"z1": zone(), "z2": zone("z2")})) == (20.0, 26.0)
    moved = zone("z1", last_motion=T - 120.0)  # someone walked in; the thermopile has not confirmed them yet
    assert setpoints(state(T, zones={"z1": moved, "z2": zone("z2")})) == (21.0, 24.0)
    assert setpoints(state(T, open_now=False, zones={"z1": zone(), "z2": zone("z2")})) == (16.0, 28.0)


def test_forecast_recovers_the_comfort_setpoints_before_patrons_come() -> None:
    expected = zone("z2", forecast={15: 0.2, 30: 0.4, 60: 1.3})
    assert setpoints(state(T, zones={"z1": zone(), "z2": expected})) == (21.0, 24.0)
    assert setpoints(state(T, open_now=False, zones={"z1": zone(), "z2": expected})) == (21.0, 24.0)  # before opening
    later = zone("z2", forecast={60: 0.3, 120: 6.0})
    assert setpoints(state(T, zones={"z1": zone(), "z2": later})) == (20.0, 26.0)
    assert hvac(state(T, zones={"z1": zone(), "z2": expected}))[IntentKind.SETPOINT].rule_id == "temp-recover-forecast"


@pytest.mark.parametrize(("action", "message"), [
    ('{ do = "ventilation", level = 0, co2_ppm = [1000, 800] }', "co2_ppm must be [low, high]"),
    ('{ do = "setpoint", celsius = 21, heating_c = 21 }', "give celsius = 21.5, or heating_c"),
    ('{ do = "setpoint", heating_c = 22, cooling_c = 22.5 }', "cooling_c must be at least 1 K above heating_c"),
    ('{ do = "setpoint" }', "give celsius = 21.5, or heating_c"),
])
def test_bad_air_actions_say_what_to_write(action: str, message: str) -> None:
    with pytest.raises(RulesError) as err:
        RuleSet.parse(f'[[rules]]\nid = "x"\nthen = [{action}]\n', "site.toml")
    assert any(line.startswith("site.toml: rule 'x': then[0]") and message in line for line in err.value.problems), \
        err.value.problems
