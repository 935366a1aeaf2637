"""Tables and lists for the terminal: as wide as the terminal (80 columns in a pipe or a log), long
cells folded onto more lines, never cut (``--json`` gives every field in full)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    caption: str | None = None,
    right: Sequence[str] = (),
    widths: dict | None = None,
) -> Table:
    """A table of text cells: the first column never wraps (it names the row) unless ``widths`` gives
    it a width, the others fold; ``widths``: the least width of some columns."""
    widths = widths or {}
    out = Table(
        title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left", caption_justify="left"
    )
    for k, name in enumerate(columns):
        out.add_column(
            name,
            no_wrap=k == 0 and name not in widths,
            overflow="fold",
            min_width=widths.get(name),
            justify="right" if name in right else "left",
        )
    for row in rows:
        out.add_row(*row)
    return out


def show(*renderables) -> None:
    """Print to standard output at the terminal's width (80 columns when it is not a terminal)."""
    console = Console(highlight=False)
    for r in renderables:
        console.print(r)


def lines(pairs: Sequence[tuple[str, str]]) -> str:
    """ "key value" lines for one cell (a term's options, a run's losses), the empty ones left out."""
    return "\n".join(f"{k} {v}" if k else v for k, v in pairs if v)


def entries(items: Sequence[tuple[str, Sequence[str]]], indent: int = 4, wrap: bool = True) -> None:
    """A list on standard output: each item's first line (its name first), then its details indented
    under it; every line wrapped at the terminal's width between words, so a name, a file name or a
    URL is never broken (one longer than the width overflows rather than being cut). ``wrap=False``:
    heads as they are (a folder after a word that must stay beside it)."""
    console = Console(highlight=False)
    width, pad = max(40, console.width), " " * indent

    def fill(text: str, first: str, then: str) -> str:
        lead = len(text) - len(text.lstrip(" "))  # a head's own indent is kept on its continued lines
        return textwrap.fill(
            text.strip(" "),
            width=width,
            initial_indent=first + " " * lead,
            subsequent_indent=then + " " * lead,
            break_long_words=False,
            break_on_hyphens=False,
        )

    for head, details in items:
        console.print(fill(head, "", pad) if head.strip() and wrap else head, markup=False, soft_wrap=True)
        for detail in details:
            if detail:
                console.print(fill(detail, pad, pad + "  "), markup=False, soft_wrap=True)
