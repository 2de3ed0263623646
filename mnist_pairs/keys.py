"""Every key of the configuration schema (mnist_pairs.config.schema), as a Markdown table.

python -m mnist_pairs.keys            # the table, on stdout
python -m mnist_pairs.keys --write    # docs/configuration.md's table, between its markers
python -m mnist_pairs.keys --check    # exit 1 when docs/configuration.md's table differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_pairs.config.schema import key_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"
YAML = {None: "null", True: "true", False: "false"}


def table() -> str:
    """The Markdown table of every key, in the schema's order (pipes escaped)."""
    lines = ["| key | type | default | allowed | identity | what it does |", "|---|---|---|---|---|---|"]
    for row in key_table():
        default = YAML[row["default"]] if row["default"] is None or isinstance(row["default"], bool) else row["default"]
        cells = [f"`{row['key']}`", row["type"], f"`{default}`", row["allowed"], "yes" if row["identity"] else "no"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in [*cells, row["doc"]]) + " |")
    return "\n".join(lines)


def with_table(text: str) -> str:
    """``text`` with the table between its markers replaced by the schema's."""
    head, _, rest = text.partition(BEGIN)
    return f"{head}{BEGIN}\n{table()}\n{END}{rest.partition(END)[2]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write the table into {DOC.name}")
    mode.add_argument("--check", action="store_true", help=f"exit 1 when {DOC.name}'s table differs")
    args = parser.parse_args(argv)
    text = DOC.read_text() if args.write or args.check else ""
    if not (args.write or args.check):
        print(table())
    elif BEGIN not in text or END not in text:
        sys.exit(f"error: {DOC} has no {BEGIN} ... {END} markers")
    elif args.write:
        DOC.write_text(with_table(text))
    elif with_table(text) != text:
        sys.exit(f"error: {DOC}'s key table differs from the schema: python -m mnist_pairs.keys --write")


if __name__ == "__main__":
    main()
