"""The one run loop: `run(job, on_event) -> Result`, used by the CLI, notebooks, benches and batches.

`prepare` checks everything a run depends on before any heavy work (inputs, sizes, output names, the
checkpoint, weights) and raises UserError naming the problem; `execute` builds one Transfer per level of the
schedule, reports every evaluation and iteration as events, saves what the job's output settings ask for,
and returns a Result. An interrupt (KeyboardInterrupt, or `Terminated` raised by a SIGTERM handler), a loss
that becomes non-finite or a file that cannot be written ends the run with its best image kept as
STEM.partial.EXT (never under the final name) and the reason in `Result.stopped`. Once the optimisation is
over, an interrupt waits until the outputs are written (interrupts.py): a run that has finished is finished.
"""
import dataclasses
import json
import math
import os
import re
import signal
import time

import numpy as np

from . import checkpoint as checkpoints
from . import colour, interrupts, memory
from .events import Evaluation, IterationFinished, LevelFinished, LevelStarted, Notice, Result, Saved
from .history import Tracker, history_row, log_text
from .normalisation import normalised_weights
from .outputs import OutputPaths
from .sizing import check_sizes, size_images, sized_shapes
from .. import engine, images
from ..errors import UserError, WriteError
from ..pictures import plots
from ..pictures.sheets import grid_image
from ..recipes import term_weights
from ..vgg import weights
from ..vgg.architecture import conv_layers, deepest_layer, halo, layer_depth

GIB = memory.GIB


class Terminated(BaseException):
    """SIGTERM, turned into an exception (by the front end's handler) so the run can keep what it has."""


class _NonFinite(Exception):
    pass


@dataclasses.dataclass
class Plan:
    """A job with everything checked and loaded: what `execute` needs and nothing it must still validate."""

    job: object
    recipe: object
    output: object
    paths: OutputPaths | None
    content: np.ndarray
    styles: list
    blend: list
    init_image: np.ndarray | None
    levels: tuple
    params: dict
    fingerprint: dict
    resume: checkpoints.Checkpoint | None
    original_content: np.ndarray  # before a colour mode changed it: the colours put back
    style_scales: list
    masks: list | None  # one (H, W) mask (or None) per style at the content's size, None without masks
    tiles: tuple  # per level: None (one graph), or (tile px, why) for tiling.TiledObjective
    notes: tuple = ()  # what the run says before it starts (events.Notice): inputs changed on the way in
    alpha: np.ndarray | None = None  # the content file's transparency (H, W, 0..1), put back on the result


def _load_image(image, what):
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or not np.isfinite(image).all():
            raise UserError(f"the {what} array must be finite RGB of shape (H, W, 3), got shape {image.shape}")
        return np.clip(image, 0, 255).astype(np.float32)
    return images.load_image(str(image))


def _inputs(job, level_sizes):
    if job.content is None and not job.styles:
        # drawn at the size the run needs, so its result is sharp (a 256 px drawing upscaled was blurry)
        side = max((s for s in level_sizes if s), default=256)
        content, style = images.demo_pair(side)
        return content, [style]
    if job.content is None or not job.styles:
        raise UserError("give both --content and --style (or neither, for the demo pair)")
    return _load_image(job.content, "content"), [_load_image(s.image, "style") for s in job.styles]


def _paths_of(job):
    paths = [job.content, job.init_image, job.resume] + [p for s in job.styles for p in (s.image, s.mask)]
    return [str(p) for p in paths if p is not None and not isinstance(p, np.ndarray)]


def prepare(job):
    """Check and load everything; UserError on the first problem, before any graph is built."""
    recipe = job.resolved_recipe()
    output = job.output.settled(recipe.name)
    for name in ("print_every", "save_every"):
        if getattr(output, name) < 0:
            raise UserError(f"{name} must be 0 (never) or positive, got {getattr(output, name)}")
    if output.grid and (len(output.grid) != 2 or min(output.grid) < 1 or output.grid[0] * output.grid[1] > 100):
        raise UserError(f"grid must be ROWS,COLS with both at least 1 and at most 100 images, got {output.grid}")
    if job.seed < 0:
        raise UserError(f"--seed {job.seed}: must be 0 or a positive whole number")
    blend = [s.weight for s in job.styles] or [1.0]
    if any(not math.isfinite(w) or w < 0 for w in blend) or sum(blend) <= 0:
        raise UserError("--style-blend-weights must be finite and non-negative with a positive sum")
    if job.preserve_colors not in colour.MODES:
        raise UserError(f"--preserve-colors {job.preserve_colors!r} is not one of: {', '.join(colour.MODES)}")
    scales = [s.scale for s in job.styles] or [1.0]
    if any(not math.isfinite(x) or x <= 0 for x in scales):
        raise UserError(f"--style-scale must be positive numbers, got {scales}")
    masked = any(s.mask is not None for s in job.styles)
    if masked and recipe.gram_norm == "raw":
        raise UserError(f"--style-masks need a normalised Gram (recipe {recipe.name} uses raw FᵀF, which compares "
                        "a region's sum with a whole image's): add --set gram_norm=elements")
    levels = job.levels(recipe)
    paths = OutputPaths(output.path, len(levels)) if output.path else None
    resuming_own = bool(paths and job.resume and _same_file(job.resume, paths.checkpoint))
    if paths:
        series = {}
        if output.save_every:
            series["snapshot"] = max(level.iterations for level in levels)
        if output.save_restarts and recipe.optimizer == "lbfgs":
            series["restart"] = max(dataclasses.replace(recipe, iterations=l.iterations).restarts for l in levels)
        if len(levels) > 1:
            series["scale"] = max(level.size for level in levels)
        paths.check(_paths_of(job), output.overwrite, resuming_own, series)
    content, styles = _inputs(job, [level.size for level in levels])
    notes, alpha = _transparency(job, output)
    masks = [_load_mask(s.mask, content.shape[:2]) for s in job.styles] if masked else None
    init_image = None if job.init_image is None else _load_image(job.init_image, "init")
    original_content = content
    if job.preserve_colors == "histogram":  # Gatys et al. 2016: the style recoloured to the content's colours
        styles = [colour.match_colour_histogram(style, content) for style in styles]
    elif job.preserve_colors == "luminance":  # ... or the transfer on luminance alone
        styles = [colour.luminance_inputs(content, style)[1] for style in styles]
        content = colour.luminance_inputs(content, content)[0]
    for level in levels:
        check_sizes(dataclasses.replace(recipe, size=level.size), content.shape, [s.shape for s in styles],
                    scales)
    # the checkpoint before the weights: a damaged one is named even when the weights are missing too
    resume = checkpoints.load(job.resume) if job.resume else None
    if resume is not None and not 0 <= resume.level < len(levels):
        raise UserError(f"--resume {job.resume}: made for level {resume.level + 1} of a schedule, "
                        f"this run has {len(levels)}; give the same --scales")
    if resume is not None:
        checkpoints.check_budget(job.resume, resume, dataclasses.replace(recipe,
                                                                         iterations=levels[resume.level].iterations))
    inputs = checkpoints.fingerprint(recipe, content, styles, blend, init_image, job.seed,
                                     [level.size for level in levels],
                                     {"preserve_colors": job.preserve_colors, "style_scales": scales,
                                      "masks": [None if m is None else checkpoints.digest(m) for m in masks or []]})
    if resume is not None:  # everything but the weights is compared before the weights are read
        scaled = dataclasses.replace(recipe, size=levels[resume.level].size)
        shape, _ = sized_shapes(scaled, content.shape, [s.shape for s in styles], scales)
        checkpoints.check_matches(job.resume, resume, inputs, shape)
    if job.weights:  # after the images (their problems are named first), before TensorFlow is imported
        _check_depth(recipe, job.weights)
    engine.fix_threads(job.threads)  # TensorFlow from here on (the inputs are good)  # before any session of this run: the float sums depend on it

    tiles = _tiles(recipe, levels, content.shape, [s.shape for s in styles], scales, masks, job.tile)
    engine.check_device(job.device)
    path = weights.resolve(recipe.network, job.weights)
    params = weights.load_weights_cached(path, recipe.network, recipe.layers)
    if job.normalise_on:  # before the digest: a checkpoint is tied to the network it was optimised through
        # every layer the file holds: one measurement (cached beside it) then serves runs of any depth
        held = weights.load_weights(path, recipe.network, weights.present_conv_layers(path, recipe.network))
        params = normalised_weights(held, recipe.network, recipe.pooling, job.normalise_on, path,
                                    config=engine.session_config(job.device, job.threads))
    fingerprint = dict(inputs, weights=checkpoints.weights_digest(params))
    if resume is not None:
        checkpoints.check_matches(job.resume, resume, fingerprint, shape)
    return Plan(job, recipe, output, paths, content, styles, blend, init_image, levels, params, fingerprint,
                resume, original_content, scales, masks, tiles, tuple(notes), alpha)


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


def _load_mask(mask, shape):
    if mask is None:
        return None
    if isinstance(mask, np.ndarray):
        if mask.ndim != 2 or not np.isfinite(mask).all() or mask.max() <= 0:
            raise UserError(f"a style mask array must be finite (H, W) with some positive value, got {mask.shape}")
        return images.resize_mask(np.clip(mask, 0, 1).astype(np.float32), shape)
    return images.load_mask(str(mask), shape)


def _same_file(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def run(job, on_event=None):
    """The whole run. Returns a Result; raises UserError for bad input (before any heavy work)."""
    return execute(prepare(job), on_event)


def execute(plan, on_event=None):
    """Run a prepared Plan (its outputs claimed while it works); returns the Result."""
    with interrupts.scope() as held:
        if plan.paths:
            plan.paths.claim()
        try:
            result = _Execution(plan, on_event).run()
        finally:
            if plan.paths:
                plan.paths.release()
    if held.came and result.finished:
        name = signal.Signals(held.came[0]).name
        result.message = f"{name} came while the result was being written; the run is complete"
    return result


class _Execution:
    def __init__(self, plan, on_event):
        self.plan = plan
        self.emit = on_event or (lambda event: None)
        resume = plan.resume
        self.rows = list(resume.history) if resume else []
        self.offset = self.rows[-1]["seconds"] if self.rows else 0.0
        self.files = {}
        self.tracker = None
        self.previous = None  # the last finished level's result
        self.evaluations = 0
        self.term_names = resume.term_names if resume else ()
        self.term_weights = term_weights(plan.recipe)
        self.checkpoint_state = None  # the optimiser state of the last checkpoint this run wrote

    def _saved(self, kind, path):
        self.files[kind] = path
        self.emit(Saved(kind, path))

    def _present(self, image):
        """The image as the user sees it: back on the 0..255 scale (pixel_scale), with the content's colours put
        back for --preserve-colors post and luminance (the optimisation itself, and the next level's start,
        stay as they are)."""
        mode = self.plan.job.preserve_colors
        if image is not None and self.plan.recipe.pixel_scale != 255.0:
            image = image * (255.0 / self.plan.recipe.pixel_scale)
        if image is None or mode not in ("post", "luminance"):
            return image
        restore = colour.preserve_colours_post if mode == "post" else colour.recombine_luminance
        return restore(image, self.plan.original_content)

    def _encoded(self, image):
        """8-bit as the user sees it and as the recipe's source saved it (save_cast, deprocess_channel_slip)."""
        recipe = self.plan.recipe
        return images.to_uint8(self._present(image), recipe.save_cast, recipe.deprocess_channel_slip)

    def _write_image(self, kind, path, image):
        alpha = self.plan.alpha
        if alpha is not None and kind in ("result", "partial"):
            alpha = images.resize_mask(alpha, image.shape[:2])
        else:
            alpha = None
        self._saved(kind, self.plan.paths.write_image(path, self._encoded(image), alpha))

    def run(self):
        plan, start = self.plan, time.perf_counter()
        self.start = start
        for note in plan.notes:
            self.emit(Notice(note))
        stopped, message = "finished", ""
        try:
            for k, level in enumerate(plan.levels):
                if plan.resume is not None and k < plan.resume.level:
                    continue
                self._level(k, level)
            interrupts.hold()  # the optimisation is over: nothing stops the result being written now
            self._finish()
        except KeyboardInterrupt:
            stopped, message = "interrupted", f"interrupted at evaluation {self.evaluations}"
        except Terminated:
            stopped, message = "terminated", f"terminated at evaluation {self.evaluations}"
        except _NonFinite as exc:
            stopped, message = "non-finite", str(exc)
        except WriteError as exc:
            stopped, message = "write-failed", str(exc)
        interrupts.hold()  # a stopped run keeps what it has, whatever else comes
        if stopped != "finished":
            message = self._keep_partial(stopped, message)
        tracker = self.tracker
        best = tracker.best_image if tracker and tracker.best_image is not None else self.previous
        safe = tracker.best_measured if tracker and tracker.best_measured is not None else self.previous
        image = self.previous if stopped == "finished" else safe  # a stopped run returns what it kept
        image, best = self._present(image), self._present(best)
        return Result(recipe=plan.recipe, image=image, best_image=best,
                      best_total=tracker.best_total if tracker else math.inf, history=self.rows,
                      evaluations=self.evaluations, seconds=time.perf_counter() - start, stopped=stopped,
                      term_names=self.term_names, message=message, files=self.files)

    def _level(self, k, level):
        plan, output = self.plan, self.plan.output
        recipe = dataclasses.replace(plan.recipe, size=level.size, iterations=level.iterations)
        content, styles = size_images(recipe, plan.content, plan.styles, plan.style_scales)
        # jcjohnson's preprocess multiplies by 256: the network sees every input that much brighter, and the
        # optimised image lives on that scale until _present (a no-op at the usual 255)
        scale = recipe.pixel_scale / 255.0
        content, styles = content * scale, [style * scale for style in styles]
        masks = None if plan.masks is None else [None if m is None else images.resize_mask(m, content.shape[:2])
                                                 for m in plan.masks]
        state = plan.resume.state if plan.resume is not None and k == plan.resume.level else None
        if state is not None:
            init = state["image"]
        elif self.previous is not None:
            init = images.resize(self.previous, content.shape[:2], "lanczos").astype(np.float64)
        elif plan.init_image is not None:
            init = images.resize(plan.init_image, content.shape[:2], "lanczos").astype(np.float64) * scale
        else:
            init = None
        if k == 0 and state is None and recipe.init_noise_blend:
            start = init if init is not None else engine.initial_image(recipe, content, styles, plan.job.seed)
            init = engine.blend_noise(recipe, start, content, plan.job.seed)
        rows, cols = output.grid or (0, 0)
        self.tracker = tracker = Tracker(recipe, grid_cells=rows * cols)
        if state is not None:
            tracker.restore(plan.resume.tracker_meta, plan.resume.tracker_arrays)
        size_label = level.size if level.size is not None else f"{content.shape[1]}x{content.shape[0]}"
        common = dict(blend=plan.blend, seed=plan.job.seed, device=plan.job.device, threads=plan.job.threads,
                      init_image=init)
        tile, why = plan.tiles[k] or (None, "")
        if tile is None:
            transfer = engine.Transfer(recipe, content, styles, plan.params, masks=masks, **common)
        else:
            transfer = engine.TiledTransfer(recipe, content, styles, plan.params, tile=tile, **common)
        with transfer:
            self.term_names = transfer.term_names
            self.term_weights = weights_ = transfer.term_weights
            self.emit(LevelStarted(k, len(plan.levels), content.shape[:2], recipe.iterations,
                                   transfer.term_names, dict(weights_), tile, why,
                                   "" if state is None else checkpoints.resume_kind(state)))

            # L-BFGS with restarts checkpoints exactly at each one; only a run that never restarts (preview,
            # gatys2016) needs the warm kind, whose resume is not the uninterrupted run number for number
            warm_checkpoints = (recipe.optimizer == "lbfgs" and recipe.restarts == 1
                                and output.lbfgs_warm_checkpoints)

            def on_evaluation(m):
                interrupts.check()  # a signal whose exception was dropped where it landed stops the run here
                terms = dict(zip(transfer.term_names, map(float, m.terms)))
                weighted = {name: float(weights_[name]) * float(a) * v  # Python floats: an overflow is inf
                            for (name, v), a in zip(terms.items(), m.adjust)}
                event = Evaluation(k, m.iteration, m.evaluations, m.total, terms, weighted,
                                   self.offset + time.perf_counter() - self.start, m.image)
                self.rows.append(history_row(size_label, event))
                self.evaluations += 1
                if not tracker.measured(event):
                    raise _NonFinite(f"the loss became {m.total} at evaluation {m.evaluations}; "
                                     "lower the weights or the learning rate")
                self.emit(event)
                if plan.paths and output.save_every and m.evaluations % output.save_every == 0:
                    self._write_image("snapshot", plan.paths.snapshot(m.evaluations, k), m.image)
                    if warm_checkpoints:  # inside the one L-BFGS call: a warm checkpoint (optimisers.LBFGS)
                        self._checkpoint(k, transfer)

            def on_iteration(iteration, evaluations, image):
                event = IterationFinished(k, iteration, evaluations, image)
                tracker.iterated(event)
                self.emit(event)
                if not plan.paths:
                    return
                lbfgs = recipe.optimizer == "lbfgs"
                if lbfgs and output.save_restarts:
                    self._write_image("snapshot", plan.paths.restart(iteration, k), image)
                due = (output.save_every and (lbfgs or evaluations % output.save_every == 0)) or (
                    lbfgs and output.save_restarts)
                if due:
                    self._checkpoint(k, transfer)

            transfer.run(on_evaluation, on_iteration, state)
            if plan.paths and (output.save_every or output.save_restarts):
                self._checkpoint(k, transfer)  # the level's end: a later run may raise --iterations
        self.previous = tracker.result
        self.emit(LevelFinished(k, content.shape[:2], self.evaluations,
                                time.perf_counter() - self.start, self.previous))
        if plan.paths and k < len(plan.levels) - 1:
            self._write_image("scale", plan.paths.scale(level.size), self.previous)

    def _checkpoint(self, level, transfer):
        meta, arrays = self.tracker.state()
        self.checkpoint_state = transfer.state()
        ckpt = checkpoints.Checkpoint(self.plan.fingerprint, level, self.checkpoint_state, self.rows, meta, arrays,
                                      self.term_names)
        self._saved("checkpoint", ckpt.save(lambda writer: self.plan.paths.write_with(
            self.plan.paths.checkpoint, writer)))

    def _write_records(self):
        """The loss log and the settings, written whether the run finished or not."""
        paths = self.plan.paths
        self._saved("log", paths.write_text(paths.log, log_text(self.rows, self.term_names)))
        if self.rows:
            writer, _ = plots.loss_plot(self.rows, self.term_names, self.term_weights,
                                        title=f"{self.plan.recipe.name}: loss per evaluation")
            self._saved("plot", paths.write_with(paths.plot, writer))
        self._saved("settings", paths.write_text(paths.settings, json.dumps(self._settings(), indent=1)))

    def _settings(self):
        plan = self.plan
        job = plan.job

        def described(image):
            return "(array)" if isinstance(image, np.ndarray) else (None if image is None else str(image))

        return {"name": job.name, "content": described(job.content),
                "styles": [{"image": described(s.image), "weight": s.weight} for s in job.styles],
                "init_image": described(job.init_image), "seed": job.seed, "device": job.device,
                "threads": engine.threads_in_effect(),
                "weights": job.weights, "normalise_on": list(job.normalise_on),
                "schedule": [dataclasses.asdict(level) for level in plan.levels],
                "recipe": plan.recipe.name, "overrides": dict(job.overrides),
                "algorithm": plan.recipe.algorithm(), "evaluations": self.evaluations,
                "final": self.rows[-1] if self.rows else None}

    def _finish(self):
        plan = self.plan
        if not plan.paths:
            return
        self._write_image("result", plan.paths.result, self.previous)
        rows, cols = plan.output.grid or (0, 0)
        tiles = [(label, self._encoded(image)) for label, image in self.tracker.snapshots]
        sheet = grid_image(tiles, rows, cols) if rows else None
        if sheet is not None:  # tiles already encoded: the sheet itself gets no colour restoring or cast
            self._saved("grid", plan.paths.write_image(plan.paths.grid, images.to_uint8(sheet)))
        self._write_records()
        plan.paths.remove_superseded()

    def _keep_partial(self, stopped, message):
        """Save the best image so far as the partial result; returns the message with where it went."""
        paths = self.plan.paths
        tracker = self.tracker
        # the image whose finite loss was measured (a best step's update may be what made the loss explode)
        best = tracker.best_measured if tracker is not None and tracker.best_measured is not None else self.previous
        if paths is None:
            return message
        notes = [message]
        try:
            self._write_records()
        except WriteError as exc:
            notes.append(str(exc))
        if best is None:
            notes.append("no finite loss was measured; nothing to keep")
        else:
            try:
                self._write_image("partial", paths.partial, best)
                notes.append(f"best image so far saved to {paths.partial} (not a finished result)")
            except WriteError as exc:
                notes.append(f"{exc}; the best image could not be kept")
        if self.checkpoint_state is not None:
            notes.append(f"to continue, rerun the same command with --resume {paths.checkpoint} (it "
                         f"{checkpoints.resume_kind(self.checkpoint_state, future=True)})")
        elif best is not None and os.path.exists(paths.partial):
            notes.append(f"no checkpoint was saved (--save-every N saves one); to keep going from the kept image, "
                         f"rerun with --init-image {paths.partial} (a fresh start of the optimiser from it)")
        return "; ".join(notes)
