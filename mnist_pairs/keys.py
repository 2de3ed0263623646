"""Every key of the configuration schema (mnist_pairs.config.schema): type, default, what is
allowed, whether it is part of a run's identity, one line of documentation.

    python -m mnist_pairs.keys            # the table, on stdout
    python -m mnist_pairs.keys --write    # docs/configuration.md's table, between its markers
    python -m mnist_pairs.keys --check    # exit 1 when docs/configuration.md's table differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mnist_pairs.config.schema import key_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"


def cell(value: Any) -> str:
    """A value as a table cell (YAML spelling; pipes escaped)."""
    if value is None or isinstance(value, bool):
        value = {None: "null", True: "true", False: "false"}[value]
    return f"`{value}`".replace("|", "\\|")


def escaped(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> str:
    """The Markdown table of every key, in the schema's order."""
    lines = [
        "| key | type | default | allowed | identity | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for row in key_table():
        kind, allowed, doc = (escaped(row[k]) for k in ("type", "allowed", "doc"))
        identity = "yes" if row["identity"] else "no"
        lines.append(f"| `{row['key']}` | {kind} | {cell(row['default'])} | {allowed} | {identity} | {doc} |")
    return "\n".join(lines)


def with_table(text: str) -> str:
    """``text`` with the table between its markers replaced by the schema's."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write the table into {DOC.name}")
    mode.add_argument("--check", action="store_true", help=f"exit 1 when {DOC.name}'s table differs")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(table())
        return
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"error: {DOC} has no {BEGIN} ... {END} markers")
    if args.write:
        DOC.write_text(with_table(text))
    elif with_table(text) != text:
        sys.exit(f"error: {DOC}'s key table differs from the schema: python -m mnist_pairs.keys --write")


if __name__ == "__main__":
    main()
