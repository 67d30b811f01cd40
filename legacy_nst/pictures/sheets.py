"""Labelled sheets of images: contact sheets (a run's progress grid, galleries) and figure sheets laid out like
the paper's figures: a grid of results, rows labelled on the left and columns on top, the input images in a
strip above, a title, and the user's copy of the paper's figure beside.

Layout, top to bottom, every band separated by `pad` pixels and the whole framed by a `pad` margin:
title (if any) · inputs strip (if any: labels, then the images at `tile_height`) · column labels · the rows
of tiles, each `tile_height` tall. Left to right: row labels (wrapped to at most `tile_height` px) · the
columns, each as wide as its widest tile · a 3 `pad` gap · the reference panel (if any): "paper" at the top
of the body, the figure below it, scaled to end level with the last row.
"""
import math
import os
import statistics

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..images import load_image, to_uint8

PAPER, INK = (255, 255, 255), (20, 20, 20)
MISSING_FILL, MISSING_INK = (232, 232, 232), (90, 90, 90)
DEFAULT_REASON = "not run"


class _Text:
    """One font: measure, wrap to a pixel width at word boundaries, draw lines centred in a box."""

    def __init__(self, size):
        try:  # DejaVu Sans where the system has it: Pillow's bundled font has no glyphs beyond ASCII (ü, α, β)
            self.font = ImageFont.truetype("DejaVuSans.ttf", size)
        except OSError:
            self.font = ImageFont.load_default(size=size)
        ascent, descent = self.font.getmetrics()
        self.line_height = ascent + descent

    def wrap(self, text, width):
        lines = []
        for paragraph in str(text).split("\n"):
            line = ""
            for word in paragraph.split():
                candidate = f"{line} {word}" if line else word
                if line and self.font.getlength(candidate) > width:
                    lines.append(line)
                    candidate = word
                line = candidate
            lines.append(line)
        return lines

    def width(self, lines):
        return max((round(self.font.getlength(line)) for line in lines), default=0)

    def height(self, lines):
        return len(lines) * self.line_height

    def draw(self, draw, lines, box, fill=INK, valign="middle"):
        """Centre each line horizontally in box (x0, y0, x1, y1); the block is centred or bottom-aligned."""
        x0, y0, x1, y1 = box
        top = y1 - self.height(lines) if valign == "bottom" else (y0 + y1 - self.height(lines)) // 2
        for i, line in enumerate(lines):
            x = (x0 + x1 - self.font.getlength(line)) / 2
            draw.text((x, top + i * self.line_height), line, font=self.font, fill=fill)


def _scaled(image, height):
    """A float (0..255) or uint8 image as a Pillow RGB image `height` tall, aspect ratio kept."""
    im = Image.fromarray(to_uint8(np.asarray(image))).convert("RGB")
    width = max(1, round(im.width * height / im.height))
    return im.resize((width, height), Image.Resampling.LANCZOS)


def figure_sheet(cells, row_labels, col_labels, inputs=(), title="", reference=None, missing=(),
                 tile_height=256, font_size=None, pad=None, column_inputs=()):
    """The labelled grid as an RGB uint8 array (H, W, 3).

    cells: {(row index, col index): RGB image, float 0..255 or uint8}; an absent cell is drawn as a grey tile
    with its reason from `missing` ({(row, col): "not run: needs block4 weights"} or pairs), else "not run".
    inputs: (label, image) pairs shown in a strip above the grid. column_inputs: one image (or None: a grey
    "not given" box) per column, half a tile high, centred above its column (figure 2's paintings, so each
    stands over its own result whichever are missing). reference: the paper's figure (an image
    array or a file path), shown on the right labelled "paper", as tall as the inputs and grid together.
    font_size defaults to tile_height / 12 (at least 12 px), pad to tile_height / 32 (at least 4 px).
    """
    n_rows, n_cols = len(row_labels), len(col_labels)
    if not n_rows or not n_cols:
        raise ValueError("figure_sheet needs at least one row label and one column label")
    outside = [key for key in cells if not (0 <= key[0] < n_rows and 0 <= key[1] < n_cols)]
    if outside:
        raise ValueError(f"cells {outside} lie outside the {n_rows} x {n_cols} grid")
    size = tile_height
    pad = max(4, size // 32) if pad is None else pad
    text = _Text(font_size or max(12, size // 12))
    title_text = _Text(round((font_size or max(12, size // 12)) * 1.4))
    reasons = dict(missing)

    tiles = {key: _scaled(image, size) for key, image in cells.items()}
    # a column with no result at all takes the typical tile width (4:3 when there are no tiles)
    typical = round(statistics.median(t.width for t in tiles.values())) if tiles else round(size * 4 / 3)
    col_w = [max((tiles[r, c].width for r in range(n_rows) if (r, c) in tiles), default=typical)
             for c in range(n_cols)]
    row_lines = [text.wrap(label, size) for label in row_labels]
    col_lines = [text.wrap(label, w) for label, w in zip(col_labels, col_w)]
    label_w = max(text.width(lines) for lines in row_lines)
    left = pad + (label_w + pad if label_w else 0)
    grid_w = sum(col_w) + pad * (n_cols - 1)

    strip = [(text.wrap(label, im.width), im) for label, im in ((l, _scaled(i, size)) for l, i in inputs)]
    strip_w = sum(im.width for _, im in strip) + pad * (len(strip) - 1)
    strip_label_h = max((text.height(lines) for lines, _ in strip), default=0)
    body_right = left + max(grid_w, strip_w)

    col_band = max(text.height(lines) for lines in col_lines) + pad
    small = size // 2
    above = [None if image is None else _scaled(image, small) for image in column_inputs]
    above = [im if im is None or im.width <= w else im.resize((w, max(1, round(im.height * w / im.width))))
             for im, w in zip(above, col_w)]
    above_h = small + pad if column_inputs else 0
    body_h = (strip_label_h + size + pad if strip else 0) + above_h + col_band + n_rows * size + (n_rows - 1) * pad
    panel = None
    if reference is not None:
        ref = load_image(os.fspath(reference)) if isinstance(reference, (str, os.PathLike)) else reference
        panel = _scaled(ref, max(1, body_h - text.line_height - pad))
    width = body_right + (3 * pad + panel.width if panel else 0) + pad

    title_lines = title_text.wrap(title, width - 2 * pad) if title else []
    body_top = pad + (title_text.height(title_lines) + pad if title_lines else 0)
    sheet = Image.new("RGB", (width, body_top + body_h + pad), PAPER)
    draw = ImageDraw.Draw(sheet)
    if title_lines:
        title_text.draw(draw, title_lines, (pad, pad, width - pad, body_top - pad))

    y = body_top
    if strip:
        x = left
        for lines, im in strip:
            text.draw(draw, lines, (x, y, x + im.width, y + strip_label_h), valign="bottom")
            sheet.paste(im, (x, y + strip_label_h))
            x += im.width + pad
        y += strip_label_h + size + pad
    if column_inputs:
        x = left
        for im, w in zip(above, col_w):
            if im is None:
                box_w = min(w, round(small * 4 / 3))
                x0 = x + (w - box_w) // 2
                draw.rectangle((x0, y, x0 + box_w - 1, y + small - 1), fill=MISSING_FILL)
                text.draw(draw, text.wrap("not given", box_w - 2 * pad), (x0, y, x0 + box_w, y + small),
                          fill=MISSING_INK)
            else:
                sheet.paste(im, (x + (w - im.width) // 2, y + small - im.height))
            x += w + pad
        y += above_h
    x = left
    for lines, w in zip(col_lines, col_w):
        text.draw(draw, lines, (x, y, x + w, y + col_band - pad), valign="bottom")
        x += w + pad
    y += col_band
    for r in range(n_rows):
        text.draw(draw, row_lines[r], (pad, y, pad + label_w, y + size))
        x = left
        for c in range(n_cols):
            if (r, c) in tiles:
                sheet.paste(tiles[r, c], (x + (col_w[c] - tiles[r, c].width) // 2, y))
            else:
                draw.rectangle((x, y, x + col_w[c] - 1, y + size - 1), fill=MISSING_FILL)
                reason = text.wrap(reasons.get((r, c), DEFAULT_REASON), col_w[c] - 2 * pad)
                text.draw(draw, reason, (x, y, x + col_w[c], y + size), fill=MISSING_INK)
            x += col_w[c] + pad
        y += size + pad

    if panel:
        x = body_right + 3 * pad
        text.draw(draw, ["paper"], (x, body_top, x + panel.width, body_top + text.line_height))
        sheet.paste(panel, (x, body_top + text.line_height + pad))
    return np.asarray(sheet)


def contact_sheet(tiles, columns, tile_height=200, label_height=18):
    """Tiles (label, RGB float image) in rows of `columns`, each scaled to `tile_height`, labelled below."""
    scaled = []
    for label, image in tiles:
        h, w = image.shape[:2]
        width = max(1, round(w * tile_height / h))
        scaled.append((label, Image.fromarray(to_uint8(image)).resize((width, tile_height), Image.Resampling.LANCZOS)))
    cell_w = max(im.width for _, im in scaled) + 8
    rows = math.ceil(len(scaled) / columns)
    sheet = Image.new("RGB", (cell_w * columns, rows * (tile_height + label_height + 8)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(scaled):
        x, y = (i % columns) * cell_w + 4, (i // columns) * (tile_height + label_height + 8) + 4
        sheet.paste(im, (x, y))
        draw.text((x, y + tile_height + 2), label, fill="black")
    return np.asarray(sheet, np.float32)


def grid_image(snapshots, rows, cols):
    """The first rows × cols (label, image) snapshots as one labelled sheet (None when there are none)."""
    return contact_sheet(snapshots[: rows * cols], cols) if snapshots else None
