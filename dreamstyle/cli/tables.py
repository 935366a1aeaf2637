"""Tables for the terminal: as wide as the terminal (80 columns in a pipe or a log), long cells folded
onto more lines, never cut (``--json`` gives every field in full)."""

from __future__ import annotations

from typing import Sequence

from rich import box
from rich.console import Console
from rich.table import Table


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None,
          caption: str | None = None, right: Sequence[str] = (), widths: dict | None = None) -> Table:
    """A table of text cells: the first column never wraps (it names the row) unless ``widths`` gives
    it a width, the others fold; ``widths``: the least width of some columns."""
    widths = widths or {}
    out = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left",
                caption_justify="left")
    for k, name in enumerate(columns):
        out.add_column(name, no_wrap=k == 0 and name not in widths, overflow="fold", min_width=widths.get(name),
                       justify="right" if name in right else "left")
    for row in rows:
        out.add_row(*row)
    return out


def show(*renderables) -> None:
    """Print to standard output at the terminal's width (80 columns when it is not a terminal)."""
    console = Console(highlight=False)
    for r in renderables:
        console.print(r)


def lines(pairs: Sequence[tuple[str, str]]) -> str:
    """"key value" lines for one cell (a term's options, a run's losses), the empty ones left out."""
    return "\n".join(f"{k} {v}" if k else v for k, v in pairs if v)
