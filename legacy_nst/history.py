"""The record of a run: one row per evaluation, the image to return, and evenly spaced snapshots."""
import csv
import io
import math



def log_columns(term_names):
    """CSV columns: raw and weighted value of every term the recipe has (the weighted ones add up to total)."""
    return (("size", "iteration", "evaluations", "total")
            + tuple(f"{t}_{kind}" for t in term_names for kind in ("raw", "weighted")) + ("seconds",))


class Tracker:
    """Per level: the best finite measurement, the optimiser's last image and the grid snapshots."""

    def __init__(self, result_image="last", grid_every=0):
        self.result_image, self.grid_every = result_image, grid_every
        self.snapshots = []
        self.best_total, self.best_image, self.last_image = math.inf, None, None

    def measured(self, evaluation):
        """Record one Evaluation; False when its loss is not finite."""
        if not math.isfinite(evaluation.total):
            return False
        if evaluation.total < self.best_total:
            self.best_total, self.best_image = evaluation.total, evaluation.image
        return True

    def iterated(self, event):
        """Record an IterationFinished: the optimiser's image, and a grid snapshot when one is due."""
        self.last_image = event.image
        if self.grid_every and event.iteration % self.grid_every == 0:
            self.snapshots.append((f"iteration {event.iteration}", event.image))

    @property
    def result(self):
        image = self.best_image if self.result_image == "best" else self.last_image
        return image if image is not None else self.best_image

    def state(self):
        """(JSON-able meta, arrays) to continue tracking after a resume (stored in checkpoints)."""
        return ({"best_total": self.best_total, "snapshots": [label for label, _ in self.snapshots]},
                {"best_image": self.best_image, "last_image": self.last_image,
                 **{f"snapshot_{i}": image for i, (_, image) in enumerate(self.snapshots)}})

    def restore(self, meta, arrays):
        self.best_total = meta["best_total"]
        self.best_image, self.last_image = arrays.get("best_image"), arrays.get("last_image")
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
