"""Lines and statements of Python in mnist_pairs/ and hydra_plugins/, per area, at git revisions.

    python scripts/code_size.py                # the work tree
    python scripts/code_size.py 13e99d4 HEAD   # committed trees, side by side

Statements (``ast.stmt`` nodes) do not change when the formatter wraps a line; lines do. An area
is a subpackage, a plugin folder or a top-level module."""

from __future__ import annotations

import argparse
import ast
import subprocess
from collections import Counter
from pathlib import Path

FOLDERS = ("mnist_pairs", "hydra_plugins")
WORK_TREE = "work tree"


def sources(rev: str) -> dict[str, str]:
    """Path -> text of every .py file under FOLDERS at ``rev`` (the work tree's tracked files for WORK_TREE)."""
    if rev == WORK_TREE:
        names = subprocess.run(["git", "ls-files", *FOLDERS], capture_output=True, text=True, check=True).stdout
        return {n: Path(n).read_text() for n in names.split() if n.endswith(".py")}
    listing = ["git", "ls-tree", "-r", "--name-only", rev, "--", *FOLDERS]
    names = subprocess.run(listing, capture_output=True, text=True, check=True).stdout
    texts = {}
    for name in (n for n in names.split() if n.endswith(".py")):
        texts[name] = subprocess.run(
            ["git", "show", f"{rev}:{name}"], capture_output=True, text=True, check=True
        ).stdout
    return texts


def area(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) + ("/" if len(parts) > 2 else "")


def size(rev: str) -> tuple[Counter[str], Counter[str]]:
    """(lines, statements) per area at ``rev``."""
    lines, statements = Counter(), Counter()
    for path, text in sources(rev).items():
        lines[area(path)] += text.count("\n")
        statements[area(path)] += sum(isinstance(node, ast.stmt) for node in ast.walk(ast.parse(text)))
    return lines, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", default=[WORK_TREE], help="git revisions (default: the work tree)")
    revs = parser.parse_args().revs
    sizes = [size(rev) for rev in revs]
    areas = sorted(set().union(*(lines for lines, _ in sizes)))
    print(f"{'lines / statements':34s}" + "".join(f"{rev[:16]:>18s}" for rev in revs))
    for name in [*areas, "total"]:
        cells = []
        for lines, statements in sizes:
            n_lines = sum(lines.values()) if name == "total" else lines[name]
            n_statements = sum(statements.values()) if name == "total" else statements[name]
            cells.append(f"{n_lines:>9,d} / {n_statements:<6,d}")
        print(f"{name:34s}" + "".join(f"{c:>18s}" for c in cells))


if __name__ == "__main__":
    main()
