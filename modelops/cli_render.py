"""What the CLI prints, once as data and twice as output: plain text (pipes, files, logs, NO_COLOR, TERM=dumb; the
layout scripts and tests read) or rich tables and trees with coloured verdicts on a terminal.

Commands build a list of blocks (a line of text, a table, a tree); `plain_text` lays them out as the CLI always
has, `show` picks the form for stdout. rich is imported only to draw on a terminal: `modelops --help` and every
piped command stay without it."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Sequence, Union

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text

Node = tuple[str, list[Any]]  # a tree: its label and its children, each a Node


@dataclass
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    heading: str | None = None  # a line above the table ("== <heading>" in plain text)
    rule: bool = True  # plain text: dashes under the headers
    plain_headers: bool = True  # plain text: the header line (rich always shows it)
    indent: str = ""  # plain text: before every line
    # Lines under each row (plain text, indented); on a terminal, under the cell of `details_column`.
    details: Sequence[Sequence[str]] | None = None
    details_column: int = 0
    details_indent: str = "    "

    def cells(self) -> list[list[str]]:
        return [["" if value is None else str(value) for value in row] for row in self.rows]


@dataclass
class Tree:
    root: Node


@dataclass
class Lines:
    """Lines of text kept together (a stage's summary): coloured verdicts on a terminal, nothing else."""

    lines: list[str] = field(default_factory=list)


Block = Union[str, Table, Tree, Lines]

# Verdict words and their colour: good green, bad red, in between yellow. Whole words only ("validation_failed"
# is one word, so it is listed; "ok" inside "token" is not a verdict).
GOOD = ("ok", "passed", "approved", "promoted", "intact", "matched", "healthy")
BAD = ("breach", "breached", "fail", "failed", "validation_failed", "rejected", "broken", "error", "errors",
       "not computed", "crashed", "expired")
WARN = ("warn", "warning", "pending", "skipped", "stale")
VERDICT_STYLES = (("green", GOOD), ("bold red", BAD), ("yellow", WARN))
_PATTERNS = [(style, re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w-])", re.I))
             for style, words in VERDICT_STYLES]


# --- plain text -------------------------------------------------------------------------------------------------
def plain_table(table: Table) -> str:
    cells = ([[str(h) for h in table.headers]] if table.plain_headers else []) + table.cells()
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.headers))] if cells else []
    lines = [table.indent + "  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip()
             for row in cells]
    first_row = 1 if table.plain_headers else 0
    if table.rule and table.plain_headers:
        lines.insert(1, table.indent + "  ".join("-" * w for w in widths))
        first_row = 2
    if table.details:
        rows = lines[first_row:]
        lines = lines[:first_row]
        for line, extra in zip(rows, table.details):
            lines.append(line)
            lines += [table.indent + table.details_indent + item for item in extra]
    if table.heading is not None:
        lines.insert(0, f"== {table.heading}")
    return "\n".join(lines)


def plain_tree(root: Node) -> str:
    label, children = root
    lines = [label]

    def walk(nodes: list[Node], prefix: str) -> None:
        for position, (text, below) in enumerate(nodes):
            last = position == len(nodes) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{text}")
            walk(below, prefix + ("   " if last else "│  "))

    walk(children, "")
    return "\n".join(lines)


def plain_block(block: Block) -> str:
    if isinstance(block, Table):
        return plain_table(block)
    if isinstance(block, Tree):
        return plain_tree(block.root)
    if isinstance(block, Lines):
        return "\n".join(block.lines)
    return block


def plain_text(blocks: Sequence[Block], separator: str = "\n") -> str:
    return separator.join(plain_block(block) for block in blocks)


# --- on a terminal ----------------------------------------------------------------------------------------------
def styled(stream: IO[str] | None = None) -> bool:
    """Colour and tables for `stream` (stdout by default): a terminal, NO_COLOR unset, TERM not dumb."""
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def verdict_text(text: str) -> Text:
    """`text` with its verdict words coloured (taken literally: no rich markup)."""
    from rich.text import Text

    rendered = Text(text)
    for style, pattern in _PATTERNS:
        rendered.highlight_regex(pattern, style=style)
    return rendered


def rich_table(table: Table) -> RenderableType:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    out = RichTable(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for header in table.headers:
        out.add_column(str(header), overflow="fold")
    details = table.details or [[] for _ in table.rows]
    for row, extra in zip(table.cells(), details):
        cells = [verdict_text(value) for value in row]
        if extra:
            cells[table.details_column].append("\n" + "\n".join(extra), style="dim")
        out.add_row(*cells)
    drawn: RenderableType = out
    if table.indent:  # a table inside a summary stays under its line
        from rich.padding import Padding

        drawn = Padding(out, (0, 0, 0, len(table.indent)))
    if table.heading is None:
        return drawn
    from rich.console import Group

    return Group(Text(table.heading, style="bold cyan"), drawn)


def rich_tree(root: Node) -> RenderableType:
    from rich.tree import Tree as RichTree

    def grow(branch: RichTree, nodes: list[Node]) -> None:
        for label, below in nodes:
            grow(branch.add(verdict_text(label)), below)

    label, children = root
    tree = RichTree(verdict_text(label), guide_style="dim")
    grow(tree, children)
    return tree


def rich_block(block: Block) -> RenderableType:
    if isinstance(block, Table):
        return rich_table(block)
    if isinstance(block, Tree):
        return rich_tree(block.root)
    if isinstance(block, Lines):
        return verdict_text("\n".join(block.lines))
    return verdict_text(block)


def print_rich(blocks: Sequence[Block], console: Console, separator: str = "\n") -> None:
    """The blocks on `console`; a blank line between them where plain text has one."""
    for position, block in enumerate(blocks):
        if position and separator.count("\n") > 1:
            console.print()
        console.print(rich_block(block), soft_wrap=isinstance(block, (str, Lines)))


def terminal_console(stream: IO[str] | None = None) -> Console:
    from rich.console import Console

    return Console(file=sys.stdout if stream is None else stream, highlight=False)


def show(blocks: Sequence[Block], separator: str = "\n", stream: IO[str] | None = None) -> None:
    """Print the blocks on stdout (or `stream`): rich on a terminal, plain text elsewhere; nothing for none."""
    if not blocks:
        return
    if styled(stream):
        print_rich(blocks, terminal_console(stream), separator)
    else:
        print(plain_text(blocks, separator), file=sys.stdout if stream is None else stream)


def answer(args: Any, data: Any, blocks: Sequence[Block], separator: str = "\n") -> None:
    """What a command prints: `data` as JSON alone with --json, else the blocks for people."""
    if getattr(args, "json", False):
        from modelops.cli_output import as_json

        print(as_json(data))
    else:
        show(blocks, separator)
