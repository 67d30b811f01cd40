"""A run as data: what to stylise, with which recipe and overrides, at which sizes, and where outputs go.

A `Job` holds no open files and no TensorFlow objects, so the CLI, a jobs file, a notebook, a figure or a
Ray task can all build one and hand it to `run()`. Output settings are kept apart from the algorithm:
changing how often to print or save changes neither the recipe nor a checkpoint's fingerprint.
"""
import dataclasses
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import recipes
from ..errors import UserError


@dataclass(frozen=True)
class Style:
    """One style image (a path or an RGB array, 0..255) and its settings."""

    image: object
    weight: float = 1.0  # blend weight of its Gram targets (normalised over the styles to sum 1)
    scale: float = 1.0  # its long side as a multiple of the sized content's (1: the recipe's own rule)
    mask: object = None  # a path or (H, W) array, white = paint this style here (Gatys et al. 2017)


@dataclass(frozen=True)
class Level:
    """One size of a coarse-to-fine schedule and its evaluation budget (None: the recipe's iterations)."""

    size: int
    iterations: int | None = None


def parse_schedule(text):
    """A schedule as text (the CLI's --scales, a jobs file's scales): 256,512,1024, or with budgets
    256:300,512:100 (evaluations per level), or auto. ValueError names what is wrong."""
    if text.strip() == "auto":
        return "auto"
    levels = []
    try:
        for item in (t for t in text.replace(" ", "").split(",") if t):
            size, _, budget = item.partition(":")
            levels.append(Level(int(size), int(budget) if budget else None))
    except ValueError:
        raise ValueError(f"{text!r}: expected sizes like 256,512,1024 or 256:300,512:100") from None
    if not levels or any(l.size < 1 or (l.iterations is not None and l.iterations < 1) for l in levels):
        raise ValueError(f"{text!r}: every size and budget must be at least 1")
    return tuple(levels)


AUTO = "auto"
AUTO_SHARES = (0.2, 0.3, 0.5)  # of the evaluation budget, from the coarsest level to the requested size
AUTO_SMALLEST = 64  # px: below this a level's Grams say little about a painting's strokes


def auto_levels(size, iterations):
    """Coarse to fine: the requested size halved twice (no level under 64 px), the budget split 20/30/50 %,
    so the whole schedule costs about 0.59 of one level at full size (a level at half the side costs a
    quarter per evaluation); each level starts from the previous result upsampled.

    Opt-in, no recipe's default: on the preview objective it reaches every loss later than one scale does,
    its upsampled result lacking the fine strokes (the measurements: bench/README.md, time_to_quality.py)."""
    if size is None:
        raise UserError("--scales auto needs a size (this recipe keeps each image's own size): give --size")
    sizes = [s for s in (size // 4, size // 2) if s >= AUTO_SMALLEST] + [size]
    shares = AUTO_SHARES[-len(sizes):]
    shares = [share / sum(shares) for share in shares]
    return tuple(Level(s, max(1, round(iterations * share))) for s, share in zip(sizes, shares))


# What each source printed and saved, as output defaults (evaluations; 0 = never). The recipes hold only
# the algorithm; these follow the posts so that a tutorial's run leaves the files its post leaves.
SOURCE_OUTPUTS = {
    "preview": {"print_every": 10},
    "tf-eager-blog": {"print_every": 100, "grid": (2, 5)},
    "hvass-vgg16": {"print_every": 10, "save_every": 10},
    "keras-lbfgs": {"print_every": 15, "save_restarts": True},
    "keras-gd-noise": {"print_every": 100},
    "gatys2016": {"print_every": 50},
    "jcjohnson": {"print_every": 50, "save_every": 100},  # -print_iter 50, -save_iter 100
    "gatys-code": {"print_every": 50},  # show_iter 50
}


@dataclass(frozen=True)
class Output:
    """Where a run writes and how often it reports; None values take the recipe source's own habits."""

    path: str | None = None  # the result image; None writes nothing (a notebook run)
    overwrite: bool = False
    print_every: int | None = None  # evaluations between printed loss lines
    save_every: int | None = None  # evaluations between snapshots (+ a checkpoint where resumable); 0 never
    save_restarts: bool | None = None  # L-BFGS: snapshot and checkpoint after every restart (seed 003)
    grid: tuple | None = None  # (rows, cols) of evenly spaced snapshots in STEM_grid.png; () none
    # save_every inside an L-BFGS run that never restarts: a checkpoint whose resume is a warm restart (its
    # result differs from an uninterrupted run's); False keeps only exact ones (the run's end)
    lbfgs_warm_checkpoints: bool = True

    def setting(self, name, recipe_name):
        """One setting as `settled` gives it, without the copy (a batch asks it of each of its jobs)."""
        value = getattr(self, name)
        return value if value is not None else SOURCE_OUTPUTS.get(recipe_name, {}).get(name, UNSET_OUTPUTS[name])

    def settled(self, recipe_name):
        """A copy with every None replaced by the source's default (or: print every 10, save never)."""
        return dataclasses.replace(self, **{name: self.setting(name, recipe_name) for name in UNSET_OUTPUTS
                                            if getattr(self, name) is None})


UNSET_OUTPUTS = {"print_every": 10, "save_every": 0, "save_restarts": False, "grid": ()}  # no source says


def _resolve(recipe, overrides, corrected):
    base = recipes.get(recipe) if isinstance(recipe, str) else recipe
    return recipes.override(recipes.corrected(base) if corrected else base, **overrides)


# Once per distinct recipe and overrides: checking a recipe costs 0.3-0.7 ms, and a batch asks it of each of
# its jobs several times (a jobs file of 257 000 jobs, issue 20.10). Recipes are frozen, so sharing is safe.
@functools.lru_cache(maxsize=1024)
def _resolved(recipe, overrides, corrected):
    return _resolve(recipe, dict(overrides), corrected)


PRESERVE_COLORS = ("none", "post", "histogram", "luminance")  # Job.preserve_colors: colour.py does each


def valid_blend_weights(weights):
    """Style blend weights a run can take (runs, jobs files and `compare` accept the same ones)."""
    return all(math.isfinite(w) and w >= 0 for w in weights) and sum(weights) > 0


@dataclass(frozen=True)
class Checked:
    """What a Job's values come to once checked (Job.check): everything a run needs that reads no file."""

    recipe: object  # the recipe with the overrides applied
    output: Output  # with every None settled to the recipe source's habit
    levels: tuple  # Level per size of the schedule, budgets filled in
    blend: list  # one blend weight per style ([1.0] for the demo pair)
    style_scales: list  # one size multiple per style ([1.0] for the demo pair)


def _normal(value, kind):
    """Whether a Job field is already a tuple of `kind`."""
    return type(value) is tuple and (not value or all(type(item) is kind for item in value))


@dataclass(frozen=True)
class Job:
    content: object = None  # a path or an RGB array; None with no styles: the demo pair
    styles: tuple = ()  # Style, or a bare path/array (weight 1)
    recipe: object = recipes.DEFAULT_RECIPE  # a recipe name or a Recipe
    overrides: dict = field(default_factory=dict)  # recipe field -> value
    seed: int = 0
    init_image: object = None  # a path or an RGB array to start from instead of the recipe's init
    schedule: tuple = ()  # Level, or a bare size; "auto": coarse to fine; empty: the recipe's own
    weights: str | None = None  # VGG weight file; None: the canonical file, found or downloaded
    normalise_on: tuple = ()  # images (files or directories) to rescale the VGG on, as the paper (normalise.py)
    device: str = "auto"
    threads: int | None = None  # CPU threads of the run's TensorFlow session; None: one per core. The bytes
    # of a result depend on it (float32 sums split over threads): same machine kind and threads, same bytes
    tile: int | None = None  # px: evaluate in tiles of at most this size; None: only where one graph won't fit
    output: Output = Output()
    resume: str | None = None  # a checkpoint to continue
    name: str = ""
    corrected: bool = False  # every quirk of the recipe's source switched to the clean behaviour
    preserve_colors: str = "none"  # none | post (jcjohnson's original_colors) | histogram | luminance

    def __post_init__(self):
        # Fields already in their normal form (a copy made by dataclasses.replace, a jobs file's jobs) are
        # kept as they are: a batch makes and copies 257 000 jobs (issue 20.10).
        if not _normal(self.styles, Style):
            styles = (self.styles,) if isinstance(self.styles, (str, Path, np.ndarray)) else self.styles
            object.__setattr__(self, "styles", tuple(s if isinstance(s, Style) else Style(s) for s in styles))
        if self.schedule != AUTO and not _normal(self.schedule, Level):
            object.__setattr__(self, "schedule", tuple(l if isinstance(l, Level) else Level(int(l))
                                                       for l in self.schedule))
        object.__setattr__(self, "overrides", dict(self.overrides))
        if not _normal(self.normalise_on, str):
            normalise_on = (self.normalise_on,) if isinstance(self.normalise_on, (str, Path)) else self.normalise_on
            object.__setattr__(self, "normalise_on", tuple(map(str, normalise_on)))
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise UserError(f"threads {self.threads!r}: must be a whole number of at least 1 (or None)")

    def check(self):
        """Every value checkable without reading a file, in the order a run names its problems (UserError on
        the first): the CLI, jobs files, figures and `run` all check a Job here."""
        recipe = self.resolved_recipe()
        output = self.output.settled(recipe.name)
        _check_output(output)
        if self.seed < 0:
            raise UserError(f"--seed {self.seed}: must be 0 or a positive whole number")
        blend = [s.weight for s in self.styles] or [1.0]
        if not valid_blend_weights(blend):
            raise UserError("--style-blend-weights must be finite and non-negative with a positive sum")
        if self.preserve_colors not in PRESERVE_COLORS:
            raise UserError(f"--preserve-colors {self.preserve_colors!r} is not one of: {', '.join(PRESERVE_COLORS)}")
        scales = [s.scale for s in self.styles] or [1.0]
        if any(not math.isfinite(x) or x <= 0 for x in scales):
            raise UserError(f"--style-scale must be positive numbers, got {scales}")
        if any(s.mask is not None for s in self.styles) and recipe.gram_norm == "raw":
            raise UserError(f"--style-masks need a normalised Gram (recipe {recipe.name} uses raw FᵀF, which "
                            "compares a region's sum with a whole image's): add --set gram_norm=elements")
        return Checked(recipe, output, self.levels(recipe), blend, scales)

    def resolved_recipe(self):
        """The recipe with the overrides applied and checked (UserError naming the field otherwise)."""
        try:
            return _resolved(self.recipe, tuple(sorted(self.overrides.items())), self.corrected)
        except TypeError:  # an unhashable override value (a list): resolved, not remembered
            return _resolve(self.recipe, self.overrides, self.corrected)

    def levels(self, recipe):
        """The schedule as Levels with budgets filled in: the one given, "auto" (or none given for a recipe
        that is coarse_to_fine), else one level at the recipe's size."""
        if self.schedule == AUTO or (not self.schedule and recipe.coarse_to_fine):
            return auto_levels(recipe.size, recipe.iterations)
        if not self.schedule and recipe.high_res_size:  # the authors' notebook's second, larger pass
            return (Level(recipe.size, recipe.iterations), Level(recipe.high_res_size, recipe.high_res_iterations))
        if not self.schedule:
            return (Level(recipe.size, recipe.iterations),)
        for level in self.schedule:
            if level.size < 1 or (level.iterations is not None and level.iterations < 1):
                raise UserError(f"schedule level {level}: size and iterations must be at least 1")
        return tuple(Level(l.size, l.iterations or recipe.iterations) for l in self.schedule)


def _check_output(output):
    for name in ("print_every", "save_every"):
        if getattr(output, name) < 0:
            raise UserError(f"{name} must be 0 (never) or positive, got {getattr(output, name)}")
    if output.grid and (len(output.grid) != 2 or min(output.grid) < 1 or output.grid[0] * output.grid[1] > 100):
        raise UserError(f"grid must be ROWS,COLS with both at least 1 and at most 100 images, got {output.grid}")
