"""The engine: for-durations, hysteresis, daylight harvesting, fail-safe, preferences, default rules."""

from __future__ import annotations

from dataclasses import replace

from drivers.ports import IndicatorColour
from rules import RuleMemory, RuleSet, evaluate, load_rules
from rules.engine import FAILSAFE_ID, NEVER_DARK_ID, NEVER_OFF_LEVEL
from rules.state import FloorState, Intent, IntentKind, Measure, Preference, Priority, SeatStatus
from tests.rules.floors import TOPOLOGY, UNHEALTHY, occupied_zone, seat, state, zone

DEFAULTS = load_rules(None)


def by_key(intents: list[Intent]) -> dict[tuple[str, IntentKind], Intent]:
    return {(i.target, i.kind): i for i in intents}


def run(rules: RuleSet, states: list[FloorState]) -> list[dict[tuple[str, IntentKind], Intent]]:
    memory, out = RuleMemory(), []
    for st in states:
        result = evaluate(rules, st, memory)
        memory = result.memory
        out.append(by_key(result.intents))
    return out


def test_for_duration_fires_only_after_condition_held_long_enough_and_resets() -> None:
    rules = RuleSet.parse('[[rules]]\nid = "hot"\nfor_s = 60\nwhen = { metric = "temperature", above = 25 }\n'
                          'then = [{ do = "setpoint", celsius = 20 }]\n')
    hot, cool = zone("z1", temperature=Measure(27.0)), zone("z1", temperature=Measure(22.0))
    seq = [state(0, zones={"z1": hot}), state(30, zones={"z1": hot}), state(61, zones={"z1": hot}),
           state(70, zones={"z1": cool}), state(80, zones={"z1": hot}), state(139, zones={"z1": hot}),
           state(141, zones={"z1": hot})]
    fired = [("ahu1", IntentKind.SETPOINT) in step for step in run(rules, seq)]
    assert fired == [False, False, True, False, False, False, True]


def test_co2_hysteresis_on_above_1000_off_below_800() -> None:
    levels = [600, 900, 1001, 950, 850, 801, 799, 900, 1100]
    seq = [state(float(i), zones={"z1": occupied_zone(co2=Measure(float(c)))}) for i, c in enumerate(levels)]
    vent = [step[("ahu1", IntentKind.VENTILATION)].value for step in run(DEFAULTS, seq)]
    # Demand control below the latch: 0 at 800 ppm, 0.5 at 900; full from above 1000 until under 800.
    assert vent == [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 0.0, 0.5, 1.0]


def test_hysteresis_latch_holds_through_unknown_co2() -> None:
    seq = [state(0, zones={"z1": zone(co2=Measure(1200.0))}), state(1, zones={"z1": zone(co2=UNHEALTHY)})]
    vent = [step[("ahu1", IntentKind.VENTILATION)].value for step in run(DEFAULTS, seq)]
    assert vent == [1.0, 1.0]


def simulate_daylight(daylight: float, lux_at_full_true: float, steps: int) -> list[float]:
    """Closed loop: lux = daylight + level * lux_at_full; the rule sees the lux its last level made."""
    level, seen = 0.0, []
    for i in range(steps):
        lux = daylight + level * lux_at_full_true
        seen.append(lux)
        st = state(float(i), zones={"z1": occupied_zone(lux=lux), "z2": zone("z2")},
                   levels={"L1": level, "L2": level})
        level = by_key(evaluate(DEFAULTS, st).intents)[("L1", IntentKind.LIGHT_LEVEL)].value or 0.0
    return seen


def test_daylight_harvesting_converges_to_target_with_a_wrong_gain_estimate() -> None:
    # The default rule estimates 500 lux at full; the real luminaires give 700 (or 380).
    for true_gain in (700.0, 380.0):
        seen = simulate_daylight(daylight=120.0, lux_at_full_true=true_gain, steps=12)
        assert abs(seen[-1] - 500.0) <= 25.0, seen
        assert abs(seen[-2] - 500.0) <= 25.0, seen


def test_daylight_dims_off_where_daylight_suffices() -> None:
    seen = simulate_daylight(daylight=800.0, lux_at_full_true=500.0, steps=4)
    # Daylight suffices, so the lights dim right down, but an occupied zone is never fully dark.
    assert seen == [800.0] + [800.0 + NEVER_OFF_LEVEL * 500.0] * 3  # the loop settles at the floor level
    # Dimming goes 0.1 per evaluation (neighbouring luminaires keep up); raising is not limited.
    levels = []
    level = 0.5
    for _ in range(6):
        st = state(0, zones={"z1": occupied_zone(lux=800.0)}, levels={"L1": level, "L2": level})
        level = by_key(evaluate(DEFAULTS, st).intents)[("L1", IntentKind.LIGHT_LEVEL)].value or 0.0
        levels.append(level)
    assert levels == [0.4, 0.3, 0.2, NEVER_OFF_LEVEL, NEVER_OFF_LEVEL, NEVER_OFF_LEVEL]  # 0.1 would be under it
    dark = state(0, zones={"z1": occupied_zone(lux=100.0)}, levels={"L1": 0.1, "L2": 0.1})
    assert by_key(evaluate(DEFAULTS, dark).intents)[("L1", IntentKind.LIGHT_LEVEL)].value == 0.9  # 0.1 + 400/500


def test_daylight_holds_darkest_occupied_seat_under_each_luminaire() -> None:
    seats = {"S1": seat("S1", "z1", SeatStatus.OCCUPIED, lux=300.0), "S2": seat("S2", "z1", lux=700.0),
             "S3": seat("S3", "z2"), "S4": seat("S4", "z2")}
    st = state(0, zones={"z1": occupied_zone(lux=600.0), "z2": zone("z2")}, seats=seats,
               levels={"L1": 0.2, "L2": 0.2})
    got = by_key(evaluate(DEFAULTS, st).intents)
    assert got[("L1", IntentKind.LIGHT_LEVEL)].value == 0.6  # 0.2 + (500 - 300)/500: the seat lux is a lower bound
    assert got[("L2", IntentKind.LIGHT_LEVEL)].value == 0.1  # its free seat has 700 lux, above ready: dim 0.1


def test_lights_off_after_five_empty_minutes_and_motion_relights_at_once() -> None:
    empty_long = zone("z1", empty_since=0.0, lux=Measure(50.0))
    out = by_key(evaluate(DEFAULTS, state(301.0, levels={"L1": 0.7})).intents)
    assert out[("L1", IntentKind.LIGHT_LEVEL)].value == 0.0
    grace = {"z1": zone("z1", empty_since=0.0, lux=Measure(510.0)), "z2": zone("z2")}
    out = by_key(evaluate(DEFAULTS, state(250.0, zones=grace, levels={"L1": 0.7, "L2": 0.7})).intents)
    assert out[("L1", IntentKind.LIGHT_LEVEL)].value == 0.7  # within the grace period: still harvesting
    moving = replace(empty_long, last_motion=1200.0)
    out = by_key(evaluate(DEFAULTS, state(1200.5, zones={"z1": moving, "z2": zone("z2")})).intents)
    assert (out[("L1", IntentKind.LIGHT_LEVEL)].value or 0.0) >= 0.9
    assert out[("L1", IntentKind.LIGHT_LEVEL)].rule_id == "lights-motion-empty-zone"


def test_closed_hours_lights_off_except_safety_minimum_where_motion_seen() -> None:
    z2_motion = replace(zone("z2"), last_motion=990.0)
    out = by_key(evaluate(DEFAULTS, state(1000.0, open_now=False, zones={"z1": zone(), "z2": z2_motion})).intents)
    assert out[("L1", IntentKind.LIGHT_LEVEL)].value == 0.0
    assert out[("L3", IntentKind.LIGHT_LEVEL)].value == 0.2
    assert out[("ahu1", IntentKind.VENTILATION)].value == 0.0  # the AHU's minimum airflow
    assert (out[("ahu1", IntentKind.SETPOINT)].value, out[("ahu1", IntentKind.COOLING_SETPOINT)].value) == (16.0, 28.0)


def test_failsafe_unhealthy_sensing_during_opening_hours_forces_full_light() -> None:
    bad_occ = replace(occupied_zone(lux=900.0), occupancy_healthy=False)
    out = by_key(evaluate(DEFAULTS, state(0, zones={"z1": bad_occ, "z2": zone("z2")})).intents)
    assert out[("L1", IntentKind.LIGHT_LEVEL)].value == 1.0
    assert out[("L1", IntentKind.LIGHT_LEVEL)].priority == Priority.SAFETY
    bad_lux = replace(occupied_zone(lux=0.0), lux=UNHEALTHY)
    result = evaluate(DEFAULTS, state(0, zones={"z1": bad_lux, "z2": zone("z2")}))
    assert by_key(result.intents)[("L2", IntentKind.LIGHT_LEVEL)].value == 1.0
    assert FAILSAFE_ID in result.fired
    # Unhealthy lux with nobody there is not a reason to light an empty zone.
    empty_bad_lux = replace(zone("z2"), lux=UNHEALTHY, empty_since=0.0)
    result = evaluate(DEFAULTS, state(2000.0, zones={"z1": zone(), "z2": empty_bad_lux}))
    assert by_key(result.intents)[("L3", IntentKind.LIGHT_LEVEL)].value == 0.0


def test_never_dark_guard_overrides_a_rule_that_turns_off_an_occupied_dark_zone() -> None:
    rules = RuleSet.parse('[[rules]]\nid = "all-off"\nthen = [{ do = "light", level = 0.0 }]\n')
    st = state(0, zones={"z1": occupied_zone(lux=60.0), "z2": zone("z2", lux=Measure(60.0))})
    out = by_key(evaluate(rules, st).intents)
    assert out[("L1", IntentKind.LIGHT_LEVEL)].value == 0.3
    assert out[("L3", IntentKind.LIGHT_LEVEL)].value == 0.0  # z2 is empty
    silent = RuleSet.parse('[[rules]]\nid = "noop"\nthen = [{ do = "alert", message = "x" }]\n')
    out = by_key(evaluate(silent, st).intents)
    assert out[("L1", IntentKind.LIGHT_LEVEL)].rule_id == NEVER_DARK_ID


def test_preferences_apply_only_with_consent_and_after_sitting_time() -> None:
    prefs = {"tag-a": Preference(desk_height_mm=740, lamp_level=0.4)}
    sitting = seat("S1", "z1", SeatStatus.OCCUPIED, consented_tag="tag-a", tag_since=100.0)
    seats = {"S1": sitting, "S2": seat("S2", "z1")}
    early = by_key(evaluate(DEFAULTS, state(125.0, seats=seats, preferences=prefs)).intents)
    assert ("D1", IntentKind.DESK_HEIGHT) not in early  # 25 s at the seat: not yet (30 s)
    later = by_key(evaluate(DEFAULTS, state(150.0, seats=seats, preferences=prefs)).intents)
    assert later[("D1", IntentKind.DESK_HEIGHT)].value == 740
    assert later[("D1", IntentKind.DESK_LAMP)].value == 0.4
    assert later[("D1", IntentKind.DESK_LAMP)].priority == Priority.PREFERENCE
    # Consent withdrawn: the registry no longer lists the tag's preferences, nothing personal happens.
    withdrawn = by_key(evaluate(DEFAULTS, state(150.0, seats=seats, preferences={})).intents)
    assert ("D1", IntentKind.DESK_HEIGHT) not in withdrawn  # occupied: no neutral either, the desk stays
    assert withdrawn[("D1", IntentKind.DESK_LAMP)].value == 0.0  # only the impersonal default: lamp off
    assert withdrawn[("D1", IntentKind.DESK_LAMP)].rule_id == "lamp-off"


def test_indicators_follow_seat_status_and_ghosts_wait_for_staff() -> None:
    seats = {"S1": seat("S1", "z1", SeatStatus.OCCUPIED), "S2": seat("S2", "z1", SeatStatus.GHOST, since=0.0),
             "S3": seat("S3", "z2", SeatStatus.AWAY), "S4": seat("S4", "z2")}
    steps = run(DEFAULTS, [state(0.0, seats=seats), state(61.0, seats=seats)])
    first, second = steps
    assert first[("D1", IntentKind.INDICATOR)].value == IndicatorColour.OCCUPIED
    assert first[("D2", IntentKind.INDICATOR)].text == "ghost"
    assert first[("D3", IntentKind.INDICATOR)].text == "occupied"
    assert first[("D4", IntentKind.INDICATOR)].value == IndicatorColour.FREE
    assert ("S2", IntentKind.RELEASE_SEAT) not in first
    assert ("S2", IntentKind.RELEASE_SEAT) not in second  # its belongings are there: staff release it
    assert second[("D2", IntentKind.INDICATOR)].text == "ghost"  # and it keeps blinking until then


def test_forecast_flushes_an_empty_zone_before_it_fills_but_does_not_light_it() -> None:
    busy_soon = zone("z2", forecast={15: 1.0, 30: 12.0, 60: 15.0}, lux=Measure(100.0))
    out = by_key(evaluate(DEFAULTS, state(5000.0, zones={"z1": zone(), "z2": busy_soon})).intents)
    assert out[("ahu1", IntentKind.VENTILATION)].rule_id == "vent-prefill-forecast"
    assert out[("ahu1", IntentKind.VENTILATION)].value == 0.2
    assert out[("L3", IntentKind.LIGHT_LEVEL)].value == 0.0  # PIR motion lights it in well under a second
    later_only = zone("z2", forecast={60: 15.0})
    out = by_key(evaluate(DEFAULTS, state(5000.0, zones={"z1": zone(), "z2": later_only})).intents)
    assert out[("ahu1", IntentKind.VENTILATION)].value == 0.0


def test_schedule_tests_time_window_weekdays_day_type() -> None:
    rules = RuleSet.parse(
        '[[rules]]\nid = "night"\nwhen = { all = [{ time = ["22:00", "06:00"] }, { weekdays = ["tue"] }, '
        '{ day_type = ["exam"] }] }\nthen = [{ do = "light", level = 0.1 }]\n')
    from datetime import datetime
    late_tue, noon_tue = datetime(2025, 3, 4, 23, 0), datetime(2025, 3, 4, 12, 0)
    assert evaluate(rules, state(0, wall=late_tue, day_type="exam")).fired == ["night"]
    assert evaluate(rules, state(0, wall=noon_tue, day_type="exam")).fired == []
    assert evaluate(rules, state(0, wall=late_tue, day_type="term")).fired == []


def test_overridden_condition_sees_state_overrides() -> None:
    rules = RuleSet.parse('[[rules]]\nid = "a"\nwhen = { overridden = false }\nthen = [{ do = "light", level = 1 }]')
    out = by_key(evaluate(rules, state(0, overrides=frozenset({"L1"}))).intents)
    assert ("L3", IntentKind.LIGHT_LEVEL) in out and ("L1", IntentKind.LIGHT_LEVEL) not in out


def test_overlapping_luminaires_plan_in_turn_instead_of_each_making_up_the_whole_error() -> None:
    """A cloud darkens both desks of a zone; each gets light from both luminaires.

    Alone, each luminaire would make up its desk's whole 100 lx, and together they would overshoot
    by the neighbour's share (and dim back next time: the levels would ring). Planned in turn, L2
    sees what L1's step gives its desk and only makes up the rest.
    """
    topo = replace(TOPOLOGY, light_gain={"S1": {"L1": 400.0, "L2": 300.0}, "S2": {"L1": 300.0, "L2": 400.0}})
    seats = {"S1": seat("S1", "z1", SeatStatus.OCCUPIED, lux=400.0),
             "S2": seat("S2", "z1", SeatStatus.OCCUPIED, lux=405.0), "S3": seat("S3", "z2"), "S4": seat("S4", "z2")}
    zones = {"z1": occupied_zone(lux=450.0), "z2": zone("z2")}
    out = by_key(evaluate(DEFAULTS, state(0, zones=zones, seats=seats, topology=topo,
                                          levels={"L1": 0.5, "L2": 0.5})).intents)
    assert out[("L1", IntentKind.LIGHT_LEVEL)].value == 0.75  # (500 - 400) / 400, its own gain at S1
    assert out[("L2", IntentKind.LIGHT_LEVEL)].value == 0.55  # (500 - 405 - 0.25 * 300) / 400
    alone = by_key(evaluate(DEFAULTS, state(0, zones=zones, seats=seats, levels={"L1": 0.5, "L2": 0.5})).intents)
    assert alone[("L2", IntentKind.LIGHT_LEVEL)].value == 0.69  # without the light model: 0.5 + 95 / 500


def test_a_seat_with_failed_sensing_keeps_its_light_on_in_an_empty_looking_zone() -> None:
    # Zone z1 looks empty (its working sensor sees nobody), but S1's thermopile has failed:
    # S1 may well be taken, so its luminaire goes to the safe level during opening hours.
    seats = {"S1": seat("S1", "z1", SeatStatus.UNKNOWN), "S2": seat("S2", "z1"),
             "S3": seat("S3", "z2"), "S4": seat("S4", "z2")}
    empty_long = zone("z1", empty_since=0.0, lux=Measure(900.0))
    got = by_key(evaluate(DEFAULTS, state(5000.0, zones={"z1": empty_long, "z2": zone("z2")}, seats=seats,
                                          levels={"L1": 0.0, "L2": 0.0, "L3": 0.0})).intents)
    assert got[("L1", IntentKind.LIGHT_LEVEL)].value == DEFAULTS.settings.safe_level
    assert got[("L1", IntentKind.LIGHT_LEVEL)].priority == Priority.SAFETY
    closed = by_key(evaluate(DEFAULTS, state(5000.0, zones={"z1": empty_long, "z2": zone("z2")}, seats=seats,
                                             levels={"L1": 0.0, "L2": 0.0, "L3": 0.0}, open_now=False)).intents)
    assert (closed.get(("L1", IntentKind.LIGHT_LEVEL)) is None
            or closed[("L1", IntentKind.LIGHT_LEVEL)].value != DEFAULTS.settings.safe_level
            or closed[("L1", IntentKind.LIGHT_LEVEL)].rule_id != "builtin-failsafe-lights")


def test_free_seats_of_an_occupied_zone_are_held_ready_but_not_once_it_is_empty() -> None:
    # S1 is taken and lit; S2 is free and dim (300 lux). A newcomer walking to S2 must find it lit
    # at once, so while anyone is in the zone L2 holds S2 at 85 % of the target.
    seats = {"S1": seat("S1", "z1", SeatStatus.OCCUPIED, lux=510.0), "S2": seat("S2", "z1", lux=300.0),
             "S3": seat("S3", "z2"), "S4": seat("S4", "z2")}
    busy = by_key(evaluate(DEFAULTS, state(0, zones={"z1": occupied_zone(lux=500.0), "z2": zone("z2")}, seats=seats,
                                           levels={"L1": 0.5, "L2": 0.2})).intents)
    assert busy[("L2", IntentKind.LIGHT_LEVEL)].value == 0.45  # 0.2 + (0.85*500 - 300)/500
    assert busy[("L2", IntentKind.LIGHT_LEVEL)].rule_id == "lights-daylight-occupied"
    assert busy[("L1", IntentKind.LIGHT_LEVEL)].value == 0.5  # 510 is inside 500 +- 15: held
    # Everyone left a minute ago and nothing moves: the free seat is no longer held ready.
    left = zone("z1", empty_since=0.0, lux=Measure(510.0))
    free = {**seats, "S1": seat("S1", "z1", lux=530.0)}
    empty = by_key(evaluate(DEFAULTS, state(60.0, zones={"z1": left, "z2": zone("z2")}, seats=free,
                                            levels={"L1": 0.5, "L2": 0.2})).intents)
    assert empty[("L2", IntentKind.LIGHT_LEVEL)].rule_id == "lights-daylight"
    assert empty[("L2", IntentKind.LIGHT_LEVEL)].value == 0.2  # the sensor's 510 is inside 500 +- 15


def test_daylight_aims_above_the_target_so_the_held_band_never_dips_under_it() -> None:
    rules = RuleSet.parse('[[rules]]\nid = "d"\nthen = [{ do = "daylight", deadband_lux = 20, margin_lux = 25 }]\n')
    for lux, level in ((506.0, 0.3), (544.0, 0.3), (499.0, 0.352), (560.0, 0.23)):
        seats = {"S1": seat("S1", "z1", SeatStatus.OCCUPIED, lux=lux), "S2": seat("S2", "z1", SeatStatus.OCCUPIED,
                                                                               lux=900.0),
                 "S3": seat("S3", "z2"), "S4": seat("S4", "z2")}
        got = by_key(evaluate(rules, state(0, zones={"z1": occupied_zone(), "z2": zone("z2")}, seats=seats,
                                           levels={"L1": 0.3})).intents)
        assert got[("L1", IntentKind.LIGHT_LEVEL)].value == level, lux


def test_a_desk_its_luminaires_cannot_light_enough_gets_its_lamp_after_a_minute_and_loses_it_when_freed() -> None:
    dim = seat("S1", "z1", SeatStatus.OCCUPIED, lux=450.0)
    seats = {"S1": dim, "S2": seat("S2", "z1", lux=600.0), "S3": seat("S3", "z2"), "S4": seat("S4", "z2")}
    lit = {**seats, "S1": replace(dim, lux=480.0)}
    freed = {**seats, "S1": seat("S1", "z1", lux=450.0)}
    zones = {"z1": occupied_zone(), "z2": zone("z2")}
    steps = run(DEFAULTS, [state(t, zones=zones, seats=s, levels={"L1": 1.0})
                           for t, s in ((0.0, seats), (59.0, seats), (60.0, seats), (70.0, lit), (80.0, freed))])
    lamp = [step[("D1", IntentKind.DESK_LAMP)] for step in steps]
    assert [i.value for i in lamp] == [0.0, 0.0, 0.5, 0.5, 0.0]  # 480 lux: under 97 % of the target, still on
    assert lamp[2].rule_id == "lamp-top-up" and lamp[4].rule_id == "lamp-off"
    assert all(step[("D2", IntentKind.DESK_LAMP)].value == 0.0 for step in steps)  # a free desk's lamp stays off
