"""The figures of Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks" (CVPR
2016), each a grid of ordinary `Job`s of the gatys2016 recipe with the paper's settings per cell.

Numbering: 1, 2 and 3 as in the paper's preprint (arXiv:1508.06576) and pystiche's replication; the CVPR
version has the same Fig. 1, shows figure 2 as its Fig. 3 and figure 3 as its Fig. 4, and adds the
initialisation figure as Fig. 6 (here "init").
  1     what each layer represents, from white noise: content reconstructions from conv1_2 ... conv5_2
        (content loss only) and style reconstructions from conv1_1, conv1_1 + conv2_1, ... conv1_1 ...
        conv5_1 (style loss only, each layer weighted 1/n);
  2     one photograph in five styles, content conv4_2, style conv1_1 ... conv5_1, α/β = 10⁻³ for the
        Turner, van Gogh and Munch, 10⁻⁴ for the Picasso and the Kandinsky (the paper's caption);
  3     style layers (rows: conv1_1 up to conv1_1 ... conv5_1) × α/β (columns 10⁻⁵ ... 10⁻²), Composition VII;
  init  from the content, from the style, and from four white-noise seeds, α/β = 10⁻³.
α = content_weight = 1 and β = style_weight = 1 / (α/β); every other number is the recipe's. The paper's α/β
were set on its VGG rescaled to unit mean activations: `normalise_on` gives every cell that network.

Nothing is changed silently: cells whose layers the weights lack are left out and labelled ("not run:
needs block4 weights"); a content layer or style layers other than the paper's are the user's explicit
choice (Settings.content_layer / style_layers) and are written on the sheet, as is a style image that is
not the paper's painting.

`render` runs the cells one after another with `runner.run`, each writing DIR/cells/NAME.png with its
NAME.json and NAME_losses.csv; a cell whose image and JSON exist and whose JSON records the same job is
not run again, so an interrupted figure continues where it stopped. Then DIR/cells.csv (one row per cell)
and DIR/sheet.png (sheets.figure_sheet, with the user's copy of the paper's figure beside it).
"""
import csv
import io
import json
import os
import re
from dataclasses import dataclass, field, replace

from .batch import run_jobs
from .. import images, recipes
from ..atomic import write_text
from ..errors import UserError
from ..pictures.sheets import figure_sheet
from ..runner import identity, sizing
from ..runner.job import Job, Output
from ..runner.normalisation import image_files
from ..vgg.architecture import canonical_layer, conv_layers, deepest_layer, layer_depth

RECIPE = "gatys2016"
NETWORK = "vgg19"
CONTENT_LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
PAPER_CONTENT_LAYER = "conv4_2"
RATIO_EXPONENTS = (-5, -4, -3, -2)  # figure 3's columns: α/β = 10^e
NOISE_SEEDS = (0, 1, 2, 3)  # the init figure's white-noise samples (the paper shows four)
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class Painting:
    key: str
    letter: str  # its panel in figure 2
    title: str
    artist: str
    ratio_exponent: int  # α/β = 10^e in figure 2
    words: tuple  # a style file whose name contains one of these is taken to be this painting


PAINTINGS = (
    Painting("shipwreck", "B", "The Shipwreck of the Minotaur", "J. M. W. Turner, 1805", -3,
             ("shipwreck", "minotaur", "turner")),
    Painting("starry_night", "C", "The Starry Night", "Vincent van Gogh, 1889", -3, ("starry", "gogh")),
    Painting("the_scream", "D", "Der Schrei (The Scream)", "Edvard Munch, 1893", -3, ("scream", "schrei", "munch")),
    Painting("femme_nue_assise", "E", "Femme nue assise", "Pablo Picasso, 1910", -4, ("femme", "nude", "picasso")),
    Painting("composition_vii", "F", "Composition VII", "Wassily Kandinsky, 1913", -4, ("composition", "kandinsky")),
)
COMPOSITION_VII = PAINTINGS[-1]


@dataclass(frozen=True)
class Settings:
    """What a user may choose for every cell of a figure; None or empty keeps the recipe's / the paper's."""

    size: int | None = None  # long side in pixels (the recipe's 512)
    iterations: int | None = None  # L-BFGS evaluations per cell (the recipe's 1000)
    weights: str | None = None  # VGG19 weight file
    normalise_on: tuple = ()  # images to rescale the VGG on (the paper's unit-mean network)
    device: str = "auto"
    content_layer: str | None = None  # figures 2, 3, init: instead of the paper's conv4_2 (labelled)
    style_layers: tuple = ()  # figures 2, init: instead of the paper's conv1_1 ... conv5_1 (labelled)
    # At a size other than the recipe's 512, α × (512 / size)² (labelled): the paper's content term
    # ½Σ(F − P)² sums over the M positions of a layer while its style term E_l is divided by M², so the
    # share of the two moves with the image's area. Measured on the whole VGG19 (Tübingen × Starry Night,
    # 128 px, 150 evaluations from noise): with α/β = 10⁻³ unchanged the weighted style term is 127 × the
    # content term at the start and the result a texture without the houses; with α × 16 it is 8 × and the
    # result has the paper's look, the houses in the painting's strokes. False: the paper's α as written.
    keep_balance: bool = True


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    name: str  # file stem under DIR/cells: "<row>-<column>"
    job: Job


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    row_labels: tuple
    col_labels: tuple
    inputs: tuple  # (label, image path) shown above the grid
    cells: tuple  # Cell, one per result the figure asks for
    notes: tuple = ()  # where this run differs from the paper, written on the sheet
    missing: dict = field(default_factory=dict)  # (row, col): why a cell of the paper is not in `cells`
    adjustable: tuple = ()  # the Settings fields this figure accepts: "content_layer", "style_layers"
    column_inputs: tuple = ()  # an image path (or None: not given) above each column (figure 2's paintings)

    @property
    def jobs(self):
        return {(cell.row, cell.col): cell.job for cell in self.cells}


def short(layer):
    """block4_conv2 -> conv4_2, the paper's names."""
    return re.sub(r"block(\d)_conv(\d)", r"conv\1_\2", layer)


def ratio_label(exponent):
    return f"α/β = 10{str(exponent).translate(SUPERSCRIPT)}"


def _layer_range(layers):
    return short(layers[0]) if len(layers) == 1 else f"{short(layers[0])} … {short(layers[-1])}"


def balance_factor(settings):
    """The factor on α that keeps the recipe's own size's balance at settings.size (Settings.keep_balance)."""
    recipe = recipes.get(RECIPE)
    if not (settings.keep_balance and settings.size) or settings.size == recipe.size:
        return 1.0
    return (recipe.size / settings.size) ** 2


def _job(settings, name, content, styles, seed=0, **overrides):
    if settings.size:
        overrides["size"] = settings.size
    factor = balance_factor(settings)
    recipe = recipes.get(RECIPE)
    if factor != 1.0 and overrides.get("style_weight", recipe.style_weight) != 0.0:  # content-only: no balance
        overrides["content_weight"] = overrides.get("content_weight", recipe.content_weight) * factor
    if settings.iterations:
        overrides["iterations"] = settings.iterations
    return Job(content=os.path.abspath(content), styles=tuple(os.path.abspath(s) for s in styles), recipe=RECIPE,
               overrides=overrides, seed=seed, weights=settings.weights and os.path.abspath(settings.weights),
               normalise_on=tuple(os.path.abspath(p) for p in settings.normalise_on), device=settings.device,
               name=name)


CHOICES = {"content_layer": ("--content-layer", "figures 2, 3 and init"),
           "style_layers": ("--style-layers", "figures 2 and init")}


def _refuse_choices(key, settings, allowed):
    for name, (flag, where) in CHOICES.items():
        if getattr(settings, name) and name not in allowed:
            raise UserError(f"figure {key} keeps the paper's layers: {flag} applies to {where}")


def _style_choices(settings, allowed):
    """Overrides and sheet notes for the user's explicit layer choices (none: the paper's)."""
    overrides, notes = {}, []
    if settings.content_layer:
        layer = short(canonical_layer(NETWORK, settings.content_layer))
        overrides["content_layers"] = (layer,)
        if layer != PAPER_CONTENT_LAYER:
            notes.append(f"content layer {layer} (the paper: {PAPER_CONTENT_LAYER})")
    if settings.style_layers and "style_layers" in allowed:
        layers = tuple(short(canonical_layer(NETWORK, l)) for l in settings.style_layers)
        overrides["style_layers"] = layers
        if layers != STYLE_LAYERS:
            notes.append(f"style layers {', '.join(layers)} (the paper: {_layer_range(STYLE_LAYERS)})")
    return overrides, notes


def _one_style(key, styles):
    if len(styles) != 1:
        raise UserError(f"figure {key} uses one style image; got {len(styles)} (--style PATH)")
    return styles[0]


def _style_note(path, painting):
    """A note when the style file does not look like the paper's painting for this figure."""
    if painting_of(path) is painting:
        return []
    return [f"style {os.path.basename(path)} (the paper: {painting.title}, {painting.artist})"]


def painting_of(path):
    """The paper's painting a style file's name points to (see Painting.words), or None."""
    name = os.path.basename(str(path)).lower()
    found = [p for p in PAINTINGS if any(word in name for word in p.words)]
    return found[0] if len(found) == 1 else None


def figure_1(content, styles, settings=Settings()):
    """Content reconstructions (row 1) and style reconstructions (row 2) from white noise, layer by layer."""
    _refuse_choices("1", settings, ())
    style = _one_style("1", styles)
    cells, labels = [], []
    for k, (content_layer, style_layer) in enumerate(zip(CONTENT_LAYERS, STYLE_LAYERS)):
        # content only: the style term's weight is 0; its layer is the content layer so no deeper weights
        # are needed. Style only: the style image is also the "content" (weight 0), so the result has its shape.
        cells.append(Cell(0, k, f"content-{content_layer}", _job(
            settings, f"content-{content_layer}", content, [content], content_layers=(content_layer,),
            style_layers=(content_layer,), style_weight=0.0)))
        layers = STYLE_LAYERS[: k + 1]
        cells.append(Cell(1, k, f"style-{style_layer}", _job(
            settings, f"style-{style_layer}", style, [style], content_layers=(STYLE_LAYERS[0],),
            content_weight=0.0, style_layers=layers)))
        labels.append(f"({'abcde'[k]})\ncontent {content_layer}\nstyle {_layer_range(layers)}")
    return Figure("1", "Fig. 1: what each layer represents (reconstructions from white noise)",
                  ("content reconstructions", "style reconstructions"), tuple(labels),
                  (("content", content), ("style", style)), tuple(cells))


def style_path(text):
    """The file of a --style argument: PATH, or KEY=PATH with KEY one of the paintings' keys."""
    key, sep, rest = str(text).partition("=")
    return rest if sep and key in {p.key for p in PAINTINGS} else str(text)


def _matched_styles(styles):
    """{painting key: path} from the --style files: KEY=PATH, or a file named after the painting."""
    keys = {p.key: p for p in PAINTINGS}
    matched = {}
    for text in map(str, styles):
        key, sep, rest = text.partition("=")
        if sep and key in keys:
            painting, path = keys[key], style_path(text)
        else:
            painting, path = painting_of(text), text
            if painting is None:
                raise UserError(f"--style {text}: cannot tell which of the paper's paintings this is; name the "
                                f"file after it or write KEY=PATH with KEY one of {', '.join(keys)}")
        if painting.key in matched:
            raise UserError(f"--style {text}: a second image for {painting.title} "
                            f"(already {matched[painting.key]}); give one per painting")
        matched[painting.key] = path
    return matched


def figure_2(content, styles, settings=Settings()):
    """The photograph in the style of each painting given (by file name or KEY=PATH); the others labelled."""
    allowed = ("content_layer", "style_layers")
    _refuse_choices("2", settings, allowed)
    if not styles:
        raise UserError("figure 2 needs at least one of its five paintings (--style PATH ...)")
    matched = _matched_styles(styles)
    overrides, notes = _style_choices(settings, allowed)
    cells, labels, missing = [], [], {}
    for k, painting in enumerate(PAINTINGS):
        labels.append(f"{painting.letter}: {painting.title}\n{ratio_label(painting.ratio_exponent)}")
        name = f"styled-{painting.letter}_{painting.key}"
        if painting.key not in matched:
            missing[0, k] = f"not run: no image of {painting.title} given"
            continue
        cells.append(Cell(0, k, name, _job(settings, name, content, [matched[painting.key]],
                                          style_weight=10.0 ** -painting.ratio_exponent, **overrides)))
    return Figure("2", "Fig. 2 (CVPR Fig. 3): the photograph in the style of five paintings",
                  ("the photograph A in the style of the painting above",), tuple(labels), (("A: content", content),),
                  tuple(cells), tuple(notes), missing, allowed, tuple(matched.get(p.key) for p in PAINTINGS))


def figure_3(content, styles, settings=Settings()):
    """Style layers (rows) × α/β (columns) with one style image, Composition VII in the paper."""
    allowed = ("content_layer",)
    _refuse_choices("3", settings, allowed)
    style = _one_style("3", styles)
    overrides, notes = _style_choices(settings, allowed)
    cells = []
    for r in range(len(STYLE_LAYERS)):
        for c, exponent in enumerate(RATIO_EXPONENTS):
            name = f"{STYLE_LAYERS[r]}-1e{exponent}"
            cells.append(Cell(r, c, name, _job(settings, name, content, [style], style_layers=STYLE_LAYERS[: r + 1],
                                               style_weight=10.0 ** -exponent, **overrides)))
    rows = tuple(_layer_range(STYLE_LAYERS[: r + 1]) for r in range(len(STYLE_LAYERS)))
    return Figure("3", "Fig. 3 (CVPR Fig. 4): style layers × the ratio α/β", rows,
                  tuple(ratio_label(e) for e in RATIO_EXPONENTS), (("content", content), ("style", style)),
                  tuple(cells), tuple(_style_note(style, COMPOSITION_VII) + notes), {}, allowed)


def figure_init(content, styles, settings=Settings(), seeds=NOISE_SEEDS):
    """From the content (A), from the style (B) and from white noise with each seed (C), α/β = 10⁻³."""
    allowed = ("content_layer", "style_layers")
    _refuse_choices("init", settings, allowed)
    style = _one_style("init", styles)
    overrides, notes = _style_choices(settings, allowed)
    starts = [("A: from the content", "content", "content", 0), ("B: from the style", "style", "style", 0)]
    starts += [(f"C: from noise, seed {s}", f"noise{s}", "noise", s) for s in seeds]
    cells = tuple(Cell(0, k, f"init-{key}", _job(settings, f"init-{key}", content, [style], seed=seed, init=init,
                                                 style_weight=1e3, **overrides))
                  for k, (_, key, init, seed) in enumerate(starts))
    return Figure("init", "Initialisation (CVPR Fig. 6): from the content, the style, white noise",
                  (ratio_label(-3),), tuple(label for label, *_ in starts),
                  (("content", content), ("style", style)), cells, tuple(notes), {}, allowed)


FIGURES = {"1": figure_1, "2": figure_2, "3": figure_3, "init": figure_init}


def build(key, content, styles, settings=Settings()):
    """The figure `key` ("1", "2", "3", "init") for these images; UserError for anything else."""
    if key not in FIGURES:
        raise UserError(f"figure {key!r}: no such figure; choose 1, 2, 3 or init (the initialisation figure, "
                        "CVPR Fig. 6; CVPR Figs. 3 and 4 are figures 2 and 3 here)")
    return FIGURES[key](content, list(styles), settings)


def _needs_blocks(job, present):
    """The blocks whose weights the job needs (every conv layer up to its deepest) and `present` lacks."""
    layers = job.resolved_recipe().layers
    deepest = max(layer_depth(NETWORK, layer) for layer in layers)
    return sorted({int(layer[5]) for layer in conv_layers(NETWORK)[: deepest + 1] if layer not in present})


def fit_to_weights(figure, present, source="the weights"):
    """The figure with the cells the weights (their conv layers `present`) cannot serve moved to `missing`,
    labelled "not run: needs blockN weights". UserError when no cell is left, naming the flags that help."""
    present = set(present)
    kept, missing = [], dict(figure.missing)
    for cell in figure.cells:
        blocks = _needs_blocks(cell.job, present)
        if not blocks:
            kept.append(cell)
        else:
            span = f"{blocks[0]}-{blocks[-1]}" if len(blocks) > 1 else blocks[0]
            missing[cell.row, cell.col] = f"not run: needs block{span} weights"
    if figure.cells and not kept:
        deepest = deepest_layer(NETWORK, present)
        block = int(deepest[5])
        needed = sorted({short(l) for cell in figure.cells for l in cell.job.resolved_recipe().layers
                         if l not in present})
        hint = []
        if "content_layer" in figure.adjustable:
            hint.append(f"--content-layer conv{block}_2")
        if "style_layers" in figure.adjustable:
            hint.append("--style-layers " + " ".join(STYLE_LAYERS[:block]))
        how = f", or run it on these with {' '.join(hint)} (written on the sheet)" if hint else ""
        raise UserError(f"{source}: its layers stop at {short(deepest)}; every cell of figure {figure.key} needs "
                        f"{', '.join(needed)}: give the full VGG19 weights (--weights){how}")
    return replace(figure, cells=tuple(kept), missing=missing)


def check_inputs(figure, reference=None):
    """Every image the figure reads, and the size each cell runs at (UserError naming the problem)."""
    loaded = {}
    for cell in figure.cells:
        job = cell.job
        for path in (job.content,) + tuple(s.image for s in job.styles):
            if path not in loaded:
                loaded[path] = images.load_image(path).shape
        sizing.check_sizes(job.check().recipe, loaded[job.content], [loaded[s.image] for s in job.styles])
    if reference is not None:
        images.load_image(str(reference))
    if figure.cells and figure.cells[0].job.normalise_on:
        image_files(figure.cells[0].job.normalise_on)


OUTPUTS = ("sheet.png", "cells.csv")  # in DIR, beside DIR/cells/


def check_out(out_dir, inputs, overwrite=False):
    """Refuse (UserError) an --out that is a file, an input (flag, path) that is one of the figure's outputs
    (DIR/sheet.png, DIR/cells.csv, anything under DIR/cells), or a sheet or table the figure did not make
    (no DIR/cells beside it) unless `overwrite`."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out {out_dir}: is a file; give a directory (it is created if absent)")
    outputs = {os.path.realpath(os.path.join(out_dir, name)) for name in OUTPUTS}
    cells = os.path.realpath(os.path.join(out_dir, "cells"))
    for flag, path in inputs:
        if path is None:
            continue
        real = os.path.realpath(style_path(path) if flag == "--style" else str(path))
        if real in outputs or real.startswith(cells + os.sep):
            raise UserError(f"{flag} {path}: is one of the figure's outputs in --out {out_dir}; copy it elsewhere "
                            "or choose another --out")
    present = [name for name in OUTPUTS if os.path.lexists(os.path.join(out_dir, name))]
    if present and not overwrite and not os.path.isdir(os.path.join(out_dir, "cells")):
        raise UserError(f"--out {out_dir}: holds {', '.join(present)} that no figure run made (there is no "
                        f"{os.path.join(out_dir, 'cells')}); pass --overwrite to replace, or choose another --out")


def cell_paths(out_dir, cell):
    base = os.path.join(out_dir, "cells", cell.name)
    return f"{base}.png", f"{base}.json"


def identity_path(out_dir, cell):
    return os.path.join(out_dir, "cells", f"{cell.name}.identity.json")


def recorded_as(job):
    """What a finished cell's DIR/cells/NAME.identity.json must hold to be this job's result (identity.of_job:
    the inputs' bytes, not their paths)."""
    return identity.of_job(job).record()


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read ({exc}); remove it or pass --overwrite") from None


def finished_cells(figure, out_dir, say=print):
    """{name: its NAME.json} for the cells already done: image, JSON and identity present, made by the same
    job. A cell whose input files changed (or with no identity, from an older version) is run again, saying
    so; a cell made with other settings is refused (UserError) rather than shown as if it were this run's."""
    done, stale = {}, []
    for cell in figure.cells:
        image, settings = cell_paths(out_dir, cell)
        if not (os.path.isfile(image) and os.path.isfile(settings)):
            continue
        recorded = identity_path(out_dir, cell)
        differ = identity.differences(_read_json(recorded), recorded_as(cell.job)) if os.path.isfile(recorded) \
            else list(identity.INPUTS)
        settings_differ = [k for k in differ if k not in identity.INPUTS]
        if settings_differ:
            raise UserError(f"{out_dir}: cell {cell.name} was made with other settings "
                            f"({', '.join(settings_differ)}); pass --overwrite to redo the figure, or choose "
                            "another --out")
        if differ:
            stale.append(cell.name)
        else:
            done[cell.name] = _read_json(settings)
    if stale:
        say(f"{len(stale)} cell{'s' * (len(stale) > 1)} made from other input files (changed since, or not "
            f"recorded): {', '.join(stale)}; running {'them' if len(stale) > 1 else 'it'} again")
    return done


@dataclass
class FigureRun:
    """What one render() of a figure left: the finished cells, the failed ones, and what stopped it."""

    records: dict  # {cell name: its NAME.json} of every finished cell, earlier runs' included
    failed: dict  # {cell name: message} of cells whose loss became non-finite (the figure went on)
    stopped: object = None  # the batch JobOutcome of the first cell an interrupt cut (or never started)


CSV_COLUMNS = ("row", "column", "cell", "status", "content_layers", "style_layers", "content_weight",
               "style_weight", "init", "seed", "size", "iterations", "normalised", "evaluations", "total",
               "content_raw", "content_weighted", "style_raw", "style_weighted", "seconds", "image")


def reasons(figure, outcome):
    """{(row, col): why there is no image} for every cell of the paper's figure without a result."""
    missing = dict(figure.missing)
    for cell in figure.cells:
        if cell.name in outcome.failed:
            missing[cell.row, cell.col] = "not finished: the loss became non-finite"
        elif cell.name not in outcome.records:
            missing[cell.row, cell.col] = "not finished"
    return missing


def cells_table(figure, out_dir, outcome):
    """DIR/cells.csv's text: one row per cell of the paper's figure, run or not."""
    rows, missing = [], reasons(figure, outcome)
    by_position = {(cell.row, cell.col): cell for cell in figure.cells}
    for r, row_label in enumerate(figure.row_labels):
        for c, col_label in enumerate(figure.col_labels):
            row = {"row": row_label.replace("\n", " "), "column": col_label.replace("\n", " ")}
            cell = by_position.get((r, c))
            record = outcome.records.get(cell.name) if cell else None
            if record is None:
                row["status"] = missing[r, c]
                if cell:
                    row["cell"] = cell.name
                rows.append(row)
                continue
            algorithm, final = record["algorithm"], record.get("final") or {}
            row.update(cell=cell.name, status="done", seed=record["seed"], normalised=bool(record["normalise_on"]),
                       image=cell_paths(out_dir, cell)[0], evaluations=record["evaluations"],
                       **{k: " ".join(map(short, algorithm[k])) for k in ("content_layers", "style_layers")},
                       **{k: algorithm[k] for k in ("content_weight", "style_weight", "init", "size", "iterations")},
                       **{k: final.get(k) for k in ("total", "content_raw", "content_weighted", "style_raw",
                                                    "style_weighted", "seconds")})
            rows.append(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def describe_run(figure, settings):
    """The line under the title: size, budget, network, and where the run departs from the paper."""
    normalise_count = len(image_files(settings.normalise_on)) if settings.normalise_on else 0
    recipe = recipes.get(RECIPE)
    size = settings.size or recipe.size
    iterations = settings.iterations or recipe.iterations
    network = (f"VGG19 normalised on {normalise_count} image{'s' * (normalise_count != 1)}" if normalise_count
               else "VGG19 as Keras ships it (not normalised: α/β weigh differently from the paper's)")
    factor = balance_factor(settings)
    balanced = factor != 1.0 and any((r := cell.job.resolved_recipe()).content_weight and r.style_weight
                                     for cell in figure.cells)
    balance = ([f"α × {factor:g} = ({recipe.size}/{size})², the balance of {recipe.size} px (the content term grows "
                "with the image's area, the style term does not)"] if balanced else [])
    return "; ".join([f"{size} px, {iterations} L-BFGS evaluations per cell, {network}"] + balance
                     + list(figure.notes))


def sheet(figure, out_dir, outcome, subtitle="", reference=None):
    """The labelled grid (RGB uint8 array) from the cells' images on disk."""
    cells = {(cell.row, cell.col): images.load_image(cell_paths(out_dir, cell)[0])
             for cell in figure.cells if cell.name in outcome.records}
    # tiles at the cells' own height (no blur from upscaling), between 128 px (legible labels) and 256
    tile = max(128, min(256, max((im.shape[0] for im in cells.values()), default=256)))
    return figure_sheet(cells, figure.row_labels, figure.col_labels,
                        inputs=[(label, images.load_image(path)) for label, path in figure.inputs],
                        column_inputs=[path and images.load_image(path) for path in figure.column_inputs],
                        title=f"Gatys, Ecker & Bethge 2016, {figure.title}\n{subtitle}".strip(),
                        reference=reference, missing=reasons(figure, outcome), tile_height=tile)


def write_outputs(figure, out_dir, outcome, subtitle="", reference=None):
    """DIR/cells.csv and DIR/sheet.png, each written whole; returns their paths."""
    table, path = os.path.join(out_dir, "cells.csv"), os.path.join(out_dir, "sheet.png")
    write_text(table, cells_table(figure, out_dir, outcome))
    images.save_image(sheet(figure, out_dir, outcome, subtitle, reference), path)
    return table, path


def render(figure, out_dir, overwrite=False, say=print, workers=1, ray_address=None):
    """Run every cell not finished yet (all with `overwrite`) through the batch runner (batch.run_jobs: one
    by one in this process, `workers` processes, or Ray tasks at `ray_address`), into DIR/cells.

    A cell is one run of its job, its result DIR/cells/NAME.png. The paper's single L-BFGS call has no point
    to resume from (restarting it would change the algorithm), so a cell cut short runs again from its start;
    finished cells are kept and skipped. An interrupt stops the figure (FigureRun.stopped: the batch JobOutcome of
    the first cell it cut); a cell that failed (its loss became non-finite) is recorded and the figure goes
    on."""
    records = {} if overwrite else finished_cells(figure, out_dir, say)
    todo = [cell for cell in figure.cells if cell.name not in records]
    wanted = {cell.name: recorded_as(cell.job) for cell in todo}  # before the run: the files it read
    if figure.missing:
        say(f"figure {figure.key}: {len(figure.missing)} of {len(figure.cells) + len(figure.missing)} cells left "
            f"out ({'; '.join(sorted(set(figure.missing.values())))}); the sheet shows them as such")
    if records:
        say(f"{len(records)} of {len(figure.cells)} cells already done in {out_dir}; running the other {len(todo)}")
    jobs = [replace(cell.job, name=cell.name, output=Output(cell_paths(out_dir, cell)[0], overwrite=True,
                                                            print_every=0, save_every=0, save_restarts=False,
                                                            grid=())) for cell in todo]

    def progress(event):
        done = event.outcome
        if done is not None and done.status in ("done", "failed"):
            final = done.final.get("total", float("nan"))
            say(f"cell {event.done + event.failed}/{event.total} {done.name}: {done.stopped or done.status}, "
                f"{done.evaluations} evaluations, {done.seconds:.1f} s, loss {final:.4g}")

    outcome = FigureRun(records, {})
    for cell, done in zip(todo, run_jobs(jobs, os.path.join(out_dir, "cells"), workers, ray_address, progress,
                                         retries=0) if jobs else []):
        if done.status == "done":
            records[cell.name] = _read_json(done.files["settings"])
            write_text(identity_path(out_dir, cell), json.dumps(wanted[cell.name], indent=1))
        elif done.status == "failed":
            outcome.failed[cell.name] = done.reason
        elif outcome.stopped is None:
            outcome.stopped = done
    return outcome
