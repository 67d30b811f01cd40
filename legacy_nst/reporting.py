"""Pictures of a run besides its image: the progress grid, and contact sheets of labelled tiles."""
import math

import numpy as np
from PIL import Image, ImageDraw

from .images import to_uint8


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
