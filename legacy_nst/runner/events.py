"""What a run reports while it works (one type per kind of event) and what it returns.

`run(job, on_event)` calls on_event with each of these as it happens; a front end picks the types it
cares about (`isinstance`), none of them is a flagged variant of another.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LevelStarted:
    """A level of the schedule (one size) begins; single-scale runs have one level."""

    level: int
    levels: int
    shape: tuple  # (H, W) of the image optimised at this level
    iterations: int  # this level's evaluation budget
    term_names: tuple
    term_weights: dict
    tile: int | None = None  # px: evaluated in tiles of at most this size (tiling.py), None: in one graph
    tiled_because: str = ""  # why (asked for, or what the untiled run would need against what is available)
    resumed: str = ""  # resumed from a checkpoint: how (checkpoint.resume_kind), else ""


@dataclass(frozen=True)
class Evaluation:
    """One loss+gradient evaluation: the raw terms, each term as weighted into the total, and the image."""

    level: int
    iteration: int  # the optimiser's iteration (an L-BFGS restart, an Adam or descent step)
    evaluations: int  # evaluations so far at this level, this one included
    total: float  # the weighted sum the optimiser minimises
    terms: dict  # raw term values
    weighted: dict  # weight × (adaptive factor) × raw: these add up to `total`
    seconds: float  # since the run started
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class IterationFinished:
    """An optimiser iteration ended (an Adam or descent step, an L-BFGS restart): a resume can start here."""

    level: int
    iteration: int
    evaluations: int
    image: np.ndarray = field(repr=False)  # the image the optimiser holds now (after the update)


@dataclass(frozen=True)
class LevelFinished:
    level: int
    shape: tuple
    evaluations: int
    seconds: float
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Saved:
    """A file was written (whole: every file is renamed into place)."""

    kind: str  # result | snapshot | checkpoint | scale | grid | log | plot | settings | partial
    path: str


@dataclass(frozen=True)
class Notice:
    """Something the run changed on the way in that a person should know (a transparent input, ...)."""

    text: str


STOP_REASONS = ("finished", "interrupted", "terminated", "non-finite", "write-failed")


@dataclass(repr=False)
class Result:
    """What a run returns. `image` is the recipe's result (best or last), None if nothing was measured."""

    recipe: object  # the Recipe that ran (its save_cast says how the sources wrote `image`)
    image: np.ndarray | None
    best_image: np.ndarray | None
    best_total: float
    history: list  # one dict per evaluation: size, iteration, evaluations, total, <term>_raw, <term>_weighted
    evaluations: int
    seconds: float
    stopped: str  # one of STOP_REASONS
    term_names: tuple = ()
    message: str = ""  # why it stopped, when it did not finish (a finished run: a signal that came at its end)
    files: dict = field(default_factory=dict)  # kind -> path of what was written (the last of each kind)

    @property
    def finished(self):
        return self.stopped == "finished"

    def __repr__(self):  # a summary: the history (thousands of rows) is in .history
        final = f", final loss {self.history[-1]['total']:.4g}" if self.history else ""
        return (f"<Result {getattr(self.recipe, 'name', self.recipe)}: {self.stopped}, {len(self.history)} "
                f"evaluations{final}, {self.seconds:.1f} s, files {sorted(self.files)}>")
