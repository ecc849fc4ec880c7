"""Count the places that branch on the data kind by its name (an AST scan).

A comparison is counted when one side is one of the kind names (`"series"`, `"panel"`,
`"sequences"`, `"text"`) or a tuple, list or set of them, with `==`, `!=`, `in` or `not in`:
`kind == "panel"`, `self.kind in ("sequences", "text")`. Dictionary keys and messages are not
comparisons and are not counted. The count is the measure the refactor of the data kinds
(one module per kind) drives to zero outside the kinds' own modules.

Usage:
    python benchmarks/kind_branches.py            # per file, then the total
    python benchmarks/kind_branches.py --list     # every comparison with its line

Example:
    >>> len(kind_comparisons("if kind == 'panel' or kind in ('text',): pass"))
    2
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

KINDS = frozenset({"series", "panel", "sequences", "text"})
PACKAGES = ("keras_lstm", "tflite_export", "tuning")
ROOT = Path(__file__).resolve().parents[1]


def _names_a_kind(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in KINDS
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) and all(
            isinstance(e, ast.Constant) and e.value in KINDS for e in node.elts
        )
    return False


def kind_comparisons(source: str) -> list[int]:
    """Line numbers of the comparisons against a kind name in `source`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not all(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
            continue
        if any(_names_a_kind(side) for side in [node.left, *node.comparators]):
            lines.append(node.lineno)
    return lines


def scan(root: Path = ROOT) -> dict[str, list[int]]:
    """`{file: [lines]}` for every package file with at least one comparison."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            lines = sorted(kind_comparisons(path.read_text()))
            if lines:
                found[str(path.relative_to(root))] = lines
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every line")
    args = parser.parse_args(argv)
    found = scan()
    for path, lines in sorted(found.items(), key=lambda item: -len(item[1])):
        where = f"  lines {', '.join(map(str, lines))}" if args.list else ""
        print(f"{len(lines):4d}  {path}{where}")
    print(f"{sum(map(len, found.values())):4d}  in all")


if __name__ == "__main__":
    main()
