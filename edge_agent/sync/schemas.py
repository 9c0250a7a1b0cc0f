"""JSON Schemas of every upstream payload and command, generated from the pydantic models.

``python -m edge_agent.sync.schemas --write`` regenerates docs/schemas/; ``--check`` (and a test)
fails when the checked-in files differ from the models, so the documentation cannot drift.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.sync.commands import COMMANDS, Request
from edge_agent.sync.messages import UPSTREAM_MODELS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def render() -> dict[str, str]:
    """File name -> JSON text for every schema."""
    docs: dict[str, dict[str, Any]] = {}
    for stem, model in UPSTREAM_MODELS.items():
        docs[f"{stem}.json"] = model.model_json_schema(mode="serialization")
    docs["command_request.json"] = Request.model_json_schema()
    for name, args in COMMANDS.items():
        docs[f"cmd_{name}.json"] = args.model_json_schema()
    return {name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in sorted(docs.items())}


def drift(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing, stale, or no longer generated."""
    wanted = render()
    problems = [n for n, text in wanted.items() if not (directory / n).is_file() or (directory / n).read_text() != text]
    problems += [p.name for p in directory.glob("*.json") if p.name not in wanted]
    return sorted(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_agent.sync.schemas")
    parser.add_argument("--write", action="store_true", help="regenerate docs/schemas/")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/schemas/ is stale")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)
    if args.write:
        args.dir.mkdir(parents=True, exist_ok=True)
        for stale in args.dir.glob("*.json"):
            stale.unlink()
        for name, text in render().items():
            (args.dir / name).write_text(text)
        print(f"wrote {len(render())} schemas to {args.dir}")
        return 0
    stale = drift(args.dir)
    if stale:
        print("stale schemas (run python -m edge_agent.sync.schemas --write): " + ", ".join(stale), file=sys.stderr)
        return 1
    print("schemas up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
