"""`prepare(job) -> Plan`: everything a run depends on, checked and loaded before any heavy work.

The stages, in the order their problems are named (UserError on the first): the job's own values
(Job.check), the output names, the input images and their colours, their sizes at every level, the
checkpoint to resume, the depth of the weights, the tiles each level needs, then the weights (normalised
when asked) and the run's fingerprint. Everything but the weights is checked before TensorFlow is imported.
"""
import dataclasses
import os
import re

import numpy as np

from . import checkpoint as checkpoints
from . import colour, memory
from .job import Checked
from .normalisation import normalised_weights
from .outputs import OutputPaths
from .sizing import check_sizes, sized_shapes
from .. import engine, images
from ..errors import UserError
from ..vgg import weights
from ..vgg.architecture import conv_layers, deepest_layer, halo, layer_depth

GIB = memory.GIB


@dataclasses.dataclass
class Inputs:
    """The images a run optimises with, loaded and changed by the colour mode (what `execute` reads)."""

    content: np.ndarray
    styles: list
    init_image: np.ndarray | None
    original_content: np.ndarray  # before a colour mode changed it: the colours put back
    masks: list | None  # one (H, W) mask (or None) per style at the content's size, None without masks
    notes: tuple = ()  # what the run says before it starts (events.Notice): inputs changed on the way in
    alpha: np.ndarray | None = None  # the content file's transparency (H, W, 0..1), put back on the result


@dataclasses.dataclass
class Plan:
    """A job with everything checked and loaded: what `execute` needs and nothing it must still validate."""

    job: object
    checked: Checked  # the job's values: recipe, settled output, levels, blend weights, style scales
    paths: OutputPaths | None
    inputs: Inputs
    tiles: tuple  # per level: None (one graph), or (tile px, why) for tiling.TiledObjective
    resume: checkpoints.Checkpoint | None
    params: dict  # the VGG weights the run optimises through
    fingerprint: dict  # the run's identity, stored in its checkpoints


def prepare(job):
    """Check and load everything; UserError on the first problem, before any graph is built."""
    checked = job.check()
    paths = _output_paths(job, checked)
    inputs = _load_inputs(job, checked)
    recipe, levels = checked.recipe, checked.levels
    for level in levels:
        check_sizes(dataclasses.replace(recipe, size=level.size), inputs.content.shape,
                    [s.shape for s in inputs.styles], checked.style_scales)
    # the checkpoint before the weights: a damaged one is named even when the weights are missing too
    resume = _load_checkpoint(job, checked)
    fingerprint = _fingerprint_of_inputs(job, checked, inputs)
    shape = None if resume is None else _resumed_shape(checked, inputs, resume)
    if resume is not None:  # everything but the weights is compared before the weights are read
        checkpoints.check_matches(job.resume, resume, fingerprint, shape)
    if job.weights:  # after the images (their problems are named first), before TensorFlow is imported
        _check_depth(recipe, job.weights)
    # TensorFlow from here on (the inputs are good); before any session of this run: the float sums depend on it
    engine.fix_threads(job.threads)
    tiles = _tiles(recipe, levels, inputs.content.shape, [s.shape for s in inputs.styles], checked.style_scales,
                   inputs.masks, job.tile)
    engine.check_device(job.device)
    params = _network_weights(job, recipe)
    fingerprint = dict(fingerprint, weights=checkpoints.weights_digest(params))
    if resume is not None:
        checkpoints.check_matches(job.resume, resume, fingerprint, shape)
    return Plan(job, checked, paths, inputs, tiles, resume, params, fingerprint)


def _output_paths(job, checked):
    """The run's output names, checked against the inputs and what is already there (None: writes nothing)."""
    output, recipe, levels = checked.output, checked.recipe, checked.levels
    if not output.path:
        return None
    paths = OutputPaths(output.path, len(levels))
    resuming_own = bool(job.resume and _same_file(job.resume, paths.checkpoint))
    series = {}  # each numbered kind of file, and the largest number it can reach
    if output.save_every:
        series["snapshot"] = max(level.iterations for level in levels)
    if output.save_restarts and recipe.optimizer == "lbfgs":
        series["restart"] = max(dataclasses.replace(recipe, iterations=l.iterations).restarts for l in levels)
    if len(levels) > 1:
        series["scale"] = max(level.size for level in levels)
    paths.check(_paths_of(job), output.overwrite, resuming_own, series)
    return paths


def _paths_of(job):
    paths = [job.content, job.init_image, job.resume] + [p for s in job.styles for p in (s.image, s.mask)]
    return [str(p) for p in paths if p is not None and not isinstance(p, np.ndarray)]


def _same_file(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def _load_inputs(job, checked):
    """The images as the optimisation takes them: loaded, masks at the content's size, the colour mode's
    recolouring applied (the content's own colours kept to put back)."""
    content, styles = _content_and_styles(job, [level.size for level in checked.levels])
    notes, alpha = _transparency(job, checked.output)
    masked = any(s.mask is not None for s in job.styles)
    masks = [_load_mask(s.mask, content.shape[:2]) for s in job.styles] if masked else None
    init_image = None if job.init_image is None else _load_image(job.init_image, "init")
    original_content = content
    if job.preserve_colors == "histogram":  # Gatys et al. 2016: the style recoloured to the content's colours
        styles = [colour.match_colour_histogram(style, content) for style in styles]
    elif job.preserve_colors == "luminance":  # ... or the transfer on luminance alone
        styles = [colour.luminance_inputs(content, style)[1] for style in styles]
        content = colour.luminance_inputs(content, content)[0]
    return Inputs(content, styles, init_image, original_content, masks, tuple(notes), alpha)


def _load_image(image, what):
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or not np.isfinite(image).all():
            raise UserError(f"the {what} array must be finite RGB of shape (H, W, 3), got shape {image.shape}")
        return np.clip(image, 0, 255).astype(np.float32)
    return images.load_image(str(image))


def _content_and_styles(job, level_sizes):
    if job.content is None and not job.styles:
        # drawn at the size the run needs, so its result is sharp (a 256 px drawing upscaled was blurry)
        side = max((s for s in level_sizes if s), default=256)
        content, style = images.demo_pair(side)
        return content, [style]
    if job.content is None or not job.styles:
        raise UserError("give both --content and --style (or neither, for the demo pair)")
    return _load_image(job.content, "content"), [_load_image(s.image, "style") for s in job.styles]


def _transparency(job, output):
    """(notes, the content's alpha or None): transparent pixels are optimised as they look on white
    (images.load_image); said once, and the content's alpha goes back on a result that can hold it."""
    notes, alpha = [], None
    inputs = [("content", job.content)] + [("style", s.image) for s in job.styles]
    for what, image in inputs:
        if image is None or isinstance(image, np.ndarray):
            continue
        found = images.transparency(str(image))
        if found is None:
            continue
        if what == "style":
            notes.append(f"{image} has transparent pixels: the style is taken as it looks on white")
            continue
        keeps = bool(output.path) and images.check_output_extension(output.path) in images.ALPHA_FORMATS
        alpha = found if keeps else None
        notes.append(f"{image} has transparent pixels: the run sees them on white; "
                     + ("the result gets the content's transparency back" if keeps else
                        "the result has none (write a .png to keep it)"))
    return notes, alpha


def _load_mask(mask, shape):
    if mask is None:
        return None
    if isinstance(mask, np.ndarray):
        if mask.ndim != 2 or not np.isfinite(mask).all() or mask.max() <= 0:
            raise UserError(f"a style mask array must be finite (H, W) with some positive value, got {mask.shape}")
        return images.resize_mask(np.clip(mask, 0, 1).astype(np.float32), shape)
    return images.load_mask(str(mask), shape)


def _load_checkpoint(job, checked):
    """The checkpoint to resume (None: a fresh run), refused when made for another schedule or budget."""
    if not job.resume:
        return None
    resume, levels = checkpoints.load(job.resume), checked.levels
    if not 0 <= resume.level < len(levels):
        raise UserError(f"--resume {job.resume}: made for level {resume.level + 1} of a schedule, "
                        f"this run has {len(levels)}; give the same --scales")
    checkpoints.check_budget(job.resume, resume,
                             dataclasses.replace(checked.recipe, iterations=levels[resume.level].iterations))
    return resume


def _fingerprint_of_inputs(job, checked, inputs):
    """The run's identity without the weights (added once they are read)."""
    masks = [None if m is None else checkpoints.digest(m) for m in inputs.masks or []]
    return checkpoints.fingerprint(checked.recipe, inputs.content, inputs.styles, checked.blend, inputs.init_image,
                                   job.seed, [level.size for level in checked.levels],
                                   {"preserve_colors": job.preserve_colors, "style_scales": checked.style_scales,
                                    "masks": masks})


def _resumed_shape(checked, inputs, resume):
    """The image shape at the level the checkpoint was made in."""
    scaled = dataclasses.replace(checked.recipe, size=checked.levels[resume.level].size)
    shape, _ = sized_shapes(scaled, inputs.content.shape, [s.shape for s in inputs.styles], checked.style_scales)
    return shape


def _network_weights(job, recipe):
    """The VGG weights of the recipe's layers; with `normalise_on`, rescaled as the paper's unit-mean VGG.
    Normalised before the fingerprint's digest: a checkpoint is tied to the network it was optimised through."""
    path = weights.resolve(recipe.network, job.weights)
    params = weights.load_weights_cached(path, recipe.network, recipe.layers)
    if job.normalise_on:
        # every layer the file holds: one measurement (cached beside it) then serves runs of any depth
        held = weights.load_weights(path, recipe.network, weights.present_conv_layers(path, recipe.network))
        params = normalised_weights(held, recipe.network, recipe.pooling, job.normalise_on, path,
                                    config=engine.session_config(job.device, job.threads))
    return params


def _tiles(recipe, levels, content_shape, style_shapes, scales, masks, tile):
    """Per level, None (one graph) or (tile px, why): tiles when asked for (`tile`), or when the untiled run
    would not fit in this machine's memory (RAM, a cgroup limit, ulimit -v; memory.py's model). What fits
    neither way is refused now, naming the largest size that fits, instead of being killed halfway."""
    available = memory.available_bytes()
    reason = engine.untileable(recipe, masks)
    if tile is not None:
        align = halo(recipe.network, deepest_layer(recipe.network, recipe.layers))[1]
        if reason:
            raise UserError(f"--tile: {recipe.name} cannot run in tiles: {reason}")
        if tile < align:
            raise UserError(f"--tile {tile}: below {align} px, the pooling grid of this recipe's deepest layer; "
                            f"use --tile {align} or more")
    model = dict(content_layers=recipe.content_layers, bounds=recipe.lbfgs_bounds)
    chosen = []
    for level in levels:
        shape, styles = sized_shapes(dataclasses.replace(recipe, size=level.size), content_shape, style_shapes,
                                     scales)
        h, w = max([shape] + styles, key=lambda s: s[0] * s[1])
        need = memory.estimate_bytes(recipe.network, recipe.layers, h, w, recipe.optimizer, **model)
        if tile is None and memory.fits(need, available):
            chosen.append(None)
            continue
        why = ("asked for with --tile" if tile is not None else
               f"untiled, {w}×{h} px needs about {need / GIB:.1f} GiB and {available / GIB:.1f} GiB is available")
        if tile is None and reason:
            side = memory.largest_side_that_fits(recipe.network, recipe.layers, (h, w), recipe.optimizer,
                                                 available, **model)
            raise UserError(f"--size: a {w}×{h} px run of {recipe.name} needs about {need / GIB:.1f} GiB of "
                            f"memory and {available / GIB:.1f} GiB is available, and it cannot run in tiles "
                            f"({reason}); the largest long side that fits is about {side} px: use --size {side} "
                            "or less")
        tiles = (tile,) if tile is not None else (1024, 512, 256)
        chosen.append((memory.choose_tile(recipe.network, recipe.layers, h, w, recipe.optimizer,
                                          available=available, tiles=tiles, untiled=False, **model), why))
    return tuple(chosen)


def _check_depth(recipe, weights_path):
    """Weights that stop short of the recipe's deepest layer, refused in a second with the flags that fit
    them, rather than once TensorFlow and the weights are loaded (12-14 s for tf-eager-blog on blocks 1-3)."""
    network = recipe.network
    present = weights.present_conv_layers(weights.resolve(network, weights_path), network)
    missing = [layer for layer in recipe.layers if layer not in present]
    if not missing:
        return

    def paper(layer):
        return re.sub(r"block(\d)_conv(\d)", r"conv\1_\2", layer)

    block = int(present[-1][len("block")])
    content = f"block{block}_conv2" if f"block{block}_conv2" in present else present[-1]
    flags = []
    if any(layer not in present for layer in recipe.content_layers):
        flags.append(f"--content-layers {paper(content)}")
    if any(layer not in present for layer in recipe.style_layers):
        flags.append("--style-layers " + " ".join(paper(f"block{b}_conv1") for b in range(1, block + 1)
                                                  if f"block{b}_conv1" in present))
    first = conv_layers(network)[len(present)]
    raise UserError(f"{weights_path}: has no weights for {first}, which {deepest_layer(network, missing)} needs "
                    f"(its layers stop at {present[-1]}); recipe {recipe.name} reads "
                    f"{', '.join(map(paper, sorted(missing, key=lambda l: layer_depth(network, l))))}: give the "
                    f"full {network.upper()} weights, or run on these with {' '.join(flags)}")
