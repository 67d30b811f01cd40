"""What a run leaves behind besides its image: the loss log, the best image, grids and contact sheets."""
import csv
import io
import math

import numpy as np
from PIL import Image, ImageDraw

from .atomic import write_text
from .images import save_image, to_uint8
from .losses import TERMS

LOG_COLUMNS = ("size", "iteration", "evaluations", "total") + TERMS + ("seconds",)


class Tracker:
    """Keeps the log rows, the image to return (best finite loss, or last) and evenly spaced snapshots."""

    def __init__(self, keep="last", size=None, grid_every=0):
        self.keep, self.size, self.grid_every = keep, size, grid_every
        self.rows, self.snapshots = [], []
        self.best_total, self.best_image, self.last_image = math.inf, None, None

    def add(self, step, seconds):
        self.rows.append({"size": self.size, "iteration": step.iteration, "evaluations": step.evaluations, "total": step.total,
                          **step.terms, "seconds": round(seconds, 3)})
        if not math.isfinite(step.total):
            return False
        self.last_image = step.image
        if step.total < self.best_total:
            self.best_total, self.best_image = step.total, step.image
        if self.grid_every and step.boundary and step.iteration % self.grid_every == 0:
            self.snapshots.append((f"iteration {step.iteration}", step.image))
        return True

    @property
    def result(self):
        return self.best_image if self.keep == "best" else self.last_image

    @property
    def safest(self):
        """The image to save when a run stops early: the best finite one seen."""
        return self.best_image

    def state(self):
        """Everything needed to continue tracking after a resume (stored in checkpoints)."""
        return {"rows": self.rows, "best_total": self.best_total, "snapshots": [l for l, _ in self.snapshots]}, {
            "best_image": self.best_image, "last_image": self.last_image,
            **{f"snapshot_{i}": image for i, (_, image) in enumerate(self.snapshots)}}

    def restore(self, meta, arrays):
        self.rows, self.best_total = meta["rows"], meta["best_total"]
        self.best_image, self.last_image = arrays["best_image"], arrays["last_image"]
        self.snapshots = [(label, arrays[f"snapshot_{i}"]) for i, label in enumerate(meta["snapshots"])]

    def write_log(self, path):
        out = io.StringIO()
        writer = csv.DictWriter(out, LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(path, out.getvalue())


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


def save_grid(tracker, rows, cols, path):
    if tracker.snapshots:
        save_image(contact_sheet(tracker.snapshots[: rows * cols], cols), path)
