"""``edge-agent rules check FILE`` and ``edge-agent rules replay FILE --trace TRACE``.

``check`` validates a rule file exactly as the daemon's hot reload does (exit 0 with a one-line
summary, or exit 2 listing every problem). ``replay`` runs a rule set over a recorded trace of
floor states (JSON lines, see :mod:`rules.trace`) and prints what it would have asked for, step by
step or as a summary; it never touches hardware.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import click

from drivers.errors import ConfigError, RulesError
from rules import RuleMemory, RuleSet, evaluate
from rules.state import FloorState, Intent, IntentKind


@click.group()
def rules() -> None:
    """Check a rule file; replay it over a recorded trace."""


def _load(file: Path, config: Path | None) -> tuple[RuleSet, FloorState | None, list[str]]:
    """The rule set, and (with --config) a template state carrying the floor's topology."""
    try:
        rule_set = RuleSet.load(file)
    except RulesError as exc:
        click.echo(str(exc), err=True)
        for line in exc.problems:
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    if config is None:
        return rule_set, None, []
    from edge_agent.actuation.topology import topology_from_config
    from edge_agent.config import load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        for line in exc.problems:
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    from datetime import datetime

    template = FloorState(t=0.0, wall=datetime(2000, 1, 1), seats={}, zones={}, topology=topology_from_config(cfg))
    return rule_set, template, rule_set.check_against({z.id for z in cfg.zones})


@rules.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--config", type=click.Path(path_type=Path), help="Also check zone names against this site config.")
def check(file: Path, config: Path | None) -> None:
    """Exit 0 when FILE is a valid rule file; otherwise list every problem and exit 2."""
    rule_set, _, problems = _load(file, config)
    if problems:
        click.echo(f"{file}: {len(problems)} problem(s)", err=True)
        for line in problems:
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    scopes = Counter(r.scope for r in rule_set.rules)
    disabled = sum(1 for r in rule_set.rules if not r.then)
    click.echo(f"{file}: valid: {len(rule_set.rules)} rules ({scopes['zone']} zone, {scopes['seat']} seat, "
               f"{disabled} disabled), {len(rule_set.scenes)} scenes")


def _show(intent: Intent) -> str:
    value = intent.text if intent.kind in (IntentKind.ALERT,) else (
        f"{intent.value:g}" if intent.value is not None else "-")
    if intent.kind == IntentKind.INDICATOR and intent.text:
        value = intent.text
    return f"{intent.target:<22} {intent.kind.value:<12} {value:<10} {intent.rule_id} [{intent.priority.name.lower()}]"


@rules.command("replay")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--trace", "trace", required=True, type=click.Path(path_type=Path), help="JSON-lines floor-state trace.")
@click.option("--config", type=click.Path(path_type=Path), help="Use this site config's wiring instead of the trace's.")
@click.option("--summary", is_flag=True, help="Print a table per rule and actuator instead of every step.")
@click.option("--all", "show_all", is_flag=True, help="Print every intent at every step, not only changes.")
def replay(file: Path, trace: Path, config: Path | None, summary: bool, show_all: bool) -> None:
    """Show what FILE would have asked for over TRACE, without touching hardware."""
    from edge_agent.actuation.recorder import read_trace

    rule_set, template, problems = _load(file, config)
    for line in problems:
        click.echo(f"warning: {line}", err=True)
    memory = RuleMemory()
    last: dict[tuple[str, IntentKind], Intent] = {}
    fired: Counter[str] = Counter()
    changes: Counter[str] = Counter()
    steps = 0
    try:
        for state in read_trace(trace):
            if template is not None:
                state = replace(state, topology=template.topology)
            result = evaluate(rule_set, state, memory)
            memory = result.memory
            steps += 1
            fired.update(result.fired)
            now = {(i.target, i.kind): i for i in result.intents}
            changed = [i for k, i in now.items() if show_all or k not in last or last[k].value != i.value
                       or last[k].text != i.text]
            for intent in changed:
                changes[intent.rule_id] += 1
            if not summary and changed:
                click.echo(f"t={state.t:.0f} {state.wall:%Y-%m-%d %H:%M:%S} open={state.open_now}")
                for intent in changed:
                    click.echo(f"  {_show(intent)}")
            last.update(now)
    except FileNotFoundError:
        click.echo(f"{trace}: no such file; record one with the daemon's trace recorder", err=True)
        sys.exit(2)
    except ValueError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if summary:
        click.echo(f"{steps} steps from {trace}")
        click.echo(f"{'rule':<28} {'fired':>7} {'changes':>8}")
        for rule in [*(r.id for r in rule_set.rules), *sorted(set(fired) - {r.id for r in rule_set.rules})]:
            click.echo(f"{rule:<28} {fired[rule]:>7} {changes[rule]:>8}")
    else:
        click.echo(f"{steps} steps, {sum(changes.values())} changes")
