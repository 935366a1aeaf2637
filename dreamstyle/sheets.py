"""Labelled grids of images (contact sheets) drawn with Pillow: a panel per image, a caption under each."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
FAILED = (225, 225, 225)


@dataclass
class Panel:
    """One cell: an image and caption lines under it (the first dark, the others grey). Without an
    image the cell is a grey box with ``note`` (e.g. why it failed) written in it."""

    image: Image.Image | None
    lines: Sequence[str] = field(default_factory=list)
    note: str = "no image"


def font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size only
        return ImageFont.load_default()


def fit_into(img: Image.Image, size: tuple[int, int], background=BACKGROUND) -> Image.Image:
    """``img`` scaled to fit ``size`` (width, height), aspect kept, centred on ``background``."""
    w, h = size
    scale = min(w / img.width, h / img.height)
    nw, nh = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    out = Image.new("RGB", (w, h), background)
    resized = img.convert("RGB") if (nw, nh) == img.size else img.convert("RGB").resize((nw, nh), Image.LANCZOS)
    out.paste(resized, ((w - nw) // 2, (h - nh) // 2))
    return out


def wrap(text: str, draw: ImageDraw.ImageDraw, fnt, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to ``width`` px; a word longer than a line is cut."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if draw.textlength(candidate, font=fnt) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while draw.textlength(word, font=fnt) > width and len(word) > 1:
                cut = len(word)
                while cut > 1 and draw.textlength(word[:cut], font=fnt) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def grid_shape(n: int, columns: int | None = None) -> tuple[int, int]:
    """(columns, rows) for ``n`` panels: all in one row up to 6, else near-square."""
    if n < 1:
        raise ValueError("a grid needs at least one panel")
    if columns is None:
        columns = n if n <= 6 else math.ceil(math.sqrt(n))
    columns = max(1, min(columns, n))
    return columns, math.ceil(n / columns)


def contact_sheet(
    panels: Sequence[Panel],
    cell: tuple[int, int],
    columns: int | None = None,
    title: str | None = None,
    pad: int = 8,
    font_size: int | None = None,
    max_lines: int = 4,
    min_width: int = 160,
) -> Image.Image:
    """Panels in a grid of ``cell``-sized (width, height) images, each with its caption below.

    Images are fitted into the cell with their aspect kept; a cell narrower than ``min_width`` is
    scaled up so captions stay readable. Every caption gets the same height (the longest, at most
    ``max_lines`` lines), so the grid is regular: the sheet is exactly ``columns * (cell_w + pad) + pad``
    wide.
    """
    cw, ch = cell
    if cw < min_width:
        cw, ch = min_width, max(1, round(ch * min_width / cw))
        cell = (cw, ch)
    cols, rows = grid_shape(len(panels), columns)
    size = font_size or max(11, min(18, cw // 16))
    fnt = font(size)
    line_h = size + max(2, size // 4)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    captions = []
    for panel in panels:
        lines: list[str] = []
        for i, text in enumerate(panel.lines):
            lines.extend((i, part) for part in wrap(text, probe, fnt, cw))
        captions.append(lines[:max_lines])
    caption_h = max((len(c) for c in captions), default=0) * line_h + (pad // 2 if any(captions) else 0)
    sheet_w = cols * (cw + pad) + pad
    title_font = font(size + 2)
    title_lines = wrap(title, probe, title_font, sheet_w - 2 * pad) if title else []
    title_h = len(title_lines) * (size + 2 + max(2, size // 4)) + (pad // 2 if title else 0)
    sheet_h = title_h + rows * (ch + caption_h + pad) + pad
    sheet = Image.new("RGB", (sheet_w, sheet_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, text in enumerate(title_lines):
        draw.text((pad, pad + i * (size + 2 + max(2, size // 4))), text, fill=INK, font=title_font)
    for k, (panel, lines) in enumerate(zip(panels, captions)):
        r, c = divmod(k, cols)
        x = pad + c * (cw + pad)
        y = title_h + pad + r * (ch + caption_h + pad)
        if panel.image is not None:
            sheet.paste(fit_into(panel.image, cell), (x, y))
        else:
            _failed_cell(draw, panel.note, (x, y), cell, fnt, line_h, pad)
        ty = y + ch + pad // 2
        for index, text in lines:
            _centred(draw, text, x, ty, cw, fnt, INK if index == 0 else MUTED)
            ty += line_h
    return sheet


def _centred(draw, text: str, x: float, y: float, width: int, fnt, fill) -> None:
    """``text`` centred in the ``width`` from ``x`` (left-aligned where it is wider)."""
    draw.text((x + max(0, (width - draw.textlength(text, font=fnt)) / 2), y), text, fill=fill, font=fnt)


def _failed_cell(draw, note: str, at: tuple[int, int], cell: tuple[int, int], fnt, line_h: int, pad: int) -> None:
    """A cell whose image failed: shaded, its note centred in it."""
    (x, y), (cw, ch) = at, cell
    draw.rectangle([x, y, x + cw - 1, y + ch - 1], fill=FAILED)
    note_lines = wrap(note, draw, fnt, cw - 2 * pad)[: max(1, (ch - pad) // line_h)]
    ny = y + (ch - len(note_lines) * line_h) / 2
    for text in note_lines:
        _centred(draw, text, x, ny, cw, fnt, MUTED)
        ny += line_h


def labelled_grid(
    cells: Sequence[tuple],
    row_names: Sequence[str],
    column_names: Sequence[str],
    columns: int,
    title: str | None = None,
    pad: int = 8,
    min_width: int = 160,
) -> Image.Image:
    """A grid whose rows and columns are named: ``cells`` are (image or None, caption, note if no image),
    ``columns`` to a row, row by row; each column's name above it, each row's name to its left."""
    panels = [Panel(image, [caption] if caption else [], note=note) for image, caption, note in cells]
    first = next((p.image for p in panels if p.image is not None), None)
    cell = first.size if first is not None else (min_width, min_width)
    body = contact_sheet(panels, cell, columns=columns, pad=pad, max_lines=2, min_width=min_width)
    cw = (body.width - pad) // columns - pad
    rows = max(1, math.ceil(len(cells) / columns))
    row_h = (body.height - pad) // rows
    size = max(11, min(18, cw // 16))
    fnt, head = font(size), font(size + 2)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = (
        min(max((int(probe.textlength(n, font=fnt)) for n in row_names), default=0) + 2 * pad, 3 * cw)
        if any(row_names)
        else 0
    )
    top_lines = wrap(title, probe, head, left + body.width - 2 * pad) if title else []
    title_h = len(top_lines) * (size + 6) + (pad if title else 0)
    header_h = size + 2 * pad
    sheet = Image.new("RGB", (left + body.width, title_h + header_h + body.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, text in enumerate(top_lines):
        draw.text((pad, pad + i * (size + 6)), text, fill=INK, font=head)
    for c, name in enumerate(column_names[:columns]):
        x = left + pad + c * (cw + pad)
        text = wrap(name, probe, fnt, cw)[0]
        draw.text((x + max(0, (cw - draw.textlength(text, font=fnt)) / 2), title_h + pad), text, fill=INK, font=fnt)
    for r, name in enumerate(row_names[:rows]):
        lines = wrap(name, probe, fnt, max(1, left - 2 * pad))[:4]
        y = title_h + header_h + pad + r * row_h + (row_h - pad - len(lines) * (size + 4)) / 2
        for k, text in enumerate(lines):
            draw.text((pad, y + k * (size + 4)), text, fill=INK, font=fnt)
    sheet.paste(body, (left, title_h + header_h))
    return sheet
