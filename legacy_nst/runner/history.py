"""The record of a run: one row per evaluation, the image to return, and evenly spaced snapshots."""
import csv
import io
import math


def log_columns(term_names):
    """CSV columns: raw and weighted value of every term the recipe has (the weighted ones add up to total)."""
    return (("size", "iteration", "evaluations", "total")
            + tuple(f"{t}_{kind}" for t in term_names for kind in ("raw", "weighted")) + ("seconds",))


class Tracker:
    """Per level: the image to return, the best finite measurement and the grid snapshots, each chosen the
    way the recipe's source chose them (its quirk fields; see recipes.py)."""

    def __init__(self, recipe, grid_cells=0):
        self.recipe = recipe
        self.grid_interval = recipe.iterations / grid_cells if grid_cells else 0
        if grid_cells and not recipe.grid_float_interval:
            self.grid_interval = max(1, recipe.iterations // grid_cells)
        # one L-BFGS call (preview, gatys2016, ...): its only iteration is the whole run, so the grid's
        # images are spaced over evaluations instead (the budget counts them); it showed one image before
        self.grid_by_evaluation = recipe.optimizer == "lbfgs" and recipe.restarts == 1
        self.snapshots = []
        self.best_total, self.best_image, self.last_image = math.inf, None, None
        self.best_measured = None  # the image the best loss was measured on: what a stopped run keeps
        self._measured = None  # the last measured image
        self._best_pending = False  # the best step's update is still to come (best_image_after_update)

    def measured(self, evaluation):
        """Record one Evaluation; False when its loss is not finite."""
        if not math.isfinite(evaluation.total):
            return False
        self._measured = evaluation.image
        self._best_pending = False
        if self.grid_by_evaluation and self.grid_interval and evaluation.evaluations % self.grid_interval == 0:
            self.snapshots.append((f"evaluation {evaluation.evaluations}", evaluation.image))
        if evaluation.total < self.best_total:
            self.best_total, self.best_image = evaluation.total, evaluation.image
            self.best_measured = evaluation.image
            self._best_pending = self.recipe.best_image_after_update
        return True

    def iterated(self, event):
        """Record an IterationFinished: the optimiser's image, and a grid snapshot when one is due."""
        self.last_image = event.image
        if self._best_pending:
            self.best_image, self._best_pending = event.image, False
        if self.grid_interval and not self.grid_by_evaluation and event.iteration % self.grid_interval == 0:
            tile = event.image if self.recipe.grid_after_update else self._measured
            self.snapshots.append((f"iteration {event.iteration}", tile))

    @property
    def result(self):
        image = {"best": self.best_image, "last": self.last_image,
                 "last-measured": self._measured}[self.recipe.result_image]
        return image if image is not None else self.best_image

    def state(self):
        """(JSON-able meta, arrays) to continue tracking after a resume (stored in checkpoints)."""
        return ({"best_total": self.best_total, "snapshots": [label for label, _ in self.snapshots]},
                {"best_image": self.best_image, "last_image": self.last_image, "measured_image": self._measured,
                 "best_measured": self.best_measured,
                 **{f"snapshot_{i}": image for i, (_, image) in enumerate(self.snapshots)}})

    def restore(self, meta, arrays):
        self.best_total = meta["best_total"]
        self.best_image, self.last_image = arrays.get("best_image"), arrays.get("last_image")
        self._measured, self.best_measured = arrays.get("measured_image"), arrays.get("best_measured")
        self.snapshots = [(label, arrays[f"snapshot_{i}"]) for i, label in enumerate(meta["snapshots"])]


def history_row(size, evaluation):
    row = {"size": size, "iteration": evaluation.iteration, "evaluations": evaluation.evaluations,
           "total": evaluation.total}
    for name, value in evaluation.terms.items():
        row[f"{name}_raw"] = value
        row[f"{name}_weighted"] = evaluation.weighted[name]
    row["seconds"] = round(evaluation.seconds, 3)
    return row


def log_text(rows, term_names):
    out = io.StringIO()
    writer = csv.DictWriter(out, log_columns(term_names))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
