#!/usr/bin/env python3
"""Print, check or rewrite the settings table of README.md from ``notibot.settings.Settings``.

The table sits between the markers ``<!-- settings:start -->`` and ``<!-- settings:end -->``.

Usage (with the project's venv)::

    .venv/bin/python scripts/settings_table.py           # print the table
    .venv/bin/python scripts/settings_table.py --write   # rewrite README.md's table
    .venv/bin/python scripts/settings_table.py --check   # exit 1 when README.md is out of date
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- settings:start -->"
END = "<!-- settings:end -->"


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choices(annotation: object) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(arg) for arg in typing.get_args(annotation)]
    return []


def settings_table() -> str:
    """Return the Markdown table of every setting: name, default, meaning."""
    from notibot.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        meaning = field.description or ""
        choices = _choices(field.annotation)
        if choices and not all(choice in meaning for choice in choices):
            listed = "one of " + ", ".join(choices)
            meaning = f"{meaning}; {listed}" if meaning else listed
        meaning = meaning.replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | `{_default(field.default)}` | {meaning} |")
    return "\n".join(rows) + "\n"


def _replace(text: str, table: str) -> str:
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{README}: markers {START} / {END} not found")
    return f"{head}{START}\n{table}{END}{tail}"


def main() -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="fail when README.md is stale")
    group.add_argument("--write", action="store_true", help="rewrite README.md's table")
    args = parser.parse_args()
    table = settings_table()
    if not (args.check or args.write):
        sys.stdout.write(table)
        return 0
    text = README.read_text(encoding="utf-8")
    updated = _replace(text, table)
    if args.write:
        README.write_text(updated, encoding="utf-8")
        return 0
    if updated != text:
        print("README.md's settings table is out of date: run "
              ".venv/bin/python scripts/settings_table.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
