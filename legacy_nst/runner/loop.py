"""The one run loop: `run(job, on_event) -> Result`, used by the CLI, notebooks, benches and batches.

`prepare` (plan.py) checks everything a run depends on before any heavy work and raises UserError naming the
problem; `execute` builds one Transfer per level of the schedule, reports every evaluation and iteration as
events, saves what the job's output settings ask for, and returns a Result. An interrupt (KeyboardInterrupt,
or `Terminated` raised by a SIGTERM handler), a loss that becomes non-finite or a file that cannot be written
ends the run with its best image kept as STEM.partial.EXT (never under the final name) and the reason in
`Result.stopped`. Once the optimisation is over, an interrupt waits until the outputs are written
(interrupts.py): a run that has finished is finished.
"""
import dataclasses
import json
import math
import os
import signal
import time

import numpy as np

from . import checkpoint as checkpoints
from . import colour, interrupts
from .events import Evaluation, IterationFinished, LevelFinished, LevelStarted, Notice, Result, Saved
from .history import Tracker, history_row, log_text
from .plan import Plan, prepare
from .sizing import size_images
from .. import engine, images
from ..errors import WriteError
from ..pictures import plots
from ..pictures.sheets import grid_image
from ..recipes import term_weights

__all__ = ["Plan", "Terminated", "execute", "prepare", "run"]  # prepare and Plan (plan.py) are taken from here too


class Terminated(BaseException):
    """SIGTERM, turned into an exception (by the front end's handler) so the run can keep what it has."""


class _NonFinite(Exception):
    pass


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


@dataclasses.dataclass
class _Level:
    """The level being optimised, as the per-evaluation and per-iteration handlers need it."""

    index: int
    recipe: object  # the plan's recipe at this level's size and evaluation budget
    transfer: object  # its engine.Transfer or engine.TiledTransfer
    size_label: object  # the history's size column: the size, or WxH for a recipe keeping the image's own
    # L-BFGS with restarts checkpoints exactly at each one; only a run that never restarts (preview, gatys2016)
    # needs the warm kind, whose resume is not the uninterrupted run number for number
    warm_checkpoints: bool


class _Execution:
    """One execution of a Plan: its levels in turn, what each evaluation and iteration saves, then the result
    (or, for a run that stopped, what it kept)."""

    def __init__(self, plan, on_event):
        self.plan, self.checked, self.paths = plan, plan.checked, plan.paths
        self.emit = on_event or (lambda event: None)
        resume = plan.resume
        self.rows = list(resume.history) if resume else []
        self.offset = self.rows[-1]["seconds"] if self.rows else 0.0
        self.files = {}
        self.tracker = None
        self.level = None  # the _Level being optimised
        self.previous = None  # the last finished level's result
        self.evaluations = 0
        self.term_names = resume.term_names if resume else ()
        self.term_weights = term_weights(plan.checked.recipe)
        self.checkpoint_state = None  # the optimiser state of the last checkpoint this run wrote

    def run(self):
        self.start = time.perf_counter()
        for note in self.plan.inputs.notes:
            self.emit(Notice(note))
        stopped, message = "finished", ""
        try:
            self._levels()
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
        return self._result(stopped, message)

    def _result(self, stopped, message):
        tracker = self.tracker
        best = tracker.best_image if tracker and tracker.best_image is not None else self.previous
        safe = tracker.best_measured if tracker and tracker.best_measured is not None else self.previous
        image = self.previous if stopped == "finished" else safe  # a stopped run returns what it kept
        return Result(recipe=self.checked.recipe, image=self._present(image), best_image=self._present(best),
                      best_total=tracker.best_total if tracker else math.inf, history=self.rows,
                      evaluations=self.evaluations, seconds=time.perf_counter() - self.start, stopped=stopped,
                      term_names=self.term_names, message=message, files=self.files)

    # --- the levels of the schedule

    def _levels(self):
        resume = self.plan.resume
        for k, level in enumerate(self.checked.levels):
            if resume is None or k >= resume.level:  # a resumed run starts at its checkpoint's level
                self._level(k, level)

    def _level(self, k, level):
        plan, output = self.plan, self.checked.output
        recipe = dataclasses.replace(self.checked.recipe, size=level.size, iterations=level.iterations)
        content, styles, masks = self._level_images(recipe)
        state = plan.resume.state if plan.resume is not None and k == plan.resume.level else None
        init = self._start_image(k, recipe, content, styles, state)
        rows, cols = output.grid or (0, 0)
        self.tracker = Tracker(recipe, grid_cells=rows * cols)
        if state is not None:
            self.tracker.restore(plan.resume.tracker_meta, plan.resume.tracker_arrays)
        size_label = level.size if level.size is not None else f"{content.shape[1]}x{content.shape[0]}"
        tile, why = plan.tiles[k] or (None, "")
        with self._transfer(recipe, content, styles, masks, init, tile) as transfer:
            warm = recipe.optimizer == "lbfgs" and recipe.restarts == 1 and output.lbfgs_warm_checkpoints
            self.level = _Level(k, recipe, transfer, size_label, warm)
            self.term_names, self.term_weights = transfer.term_names, transfer.term_weights
            self.emit(LevelStarted(k, len(self.checked.levels), content.shape[:2], recipe.iterations,
                                   transfer.term_names, dict(transfer.term_weights), tile, why,
                                   "" if state is None else checkpoints.resume_kind(state)))
            transfer.run(self._on_evaluation, self._on_iteration, state)
            if self.paths and (output.save_every or output.save_restarts):
                self._checkpoint()  # the level's end: a later run may raise --iterations
        self.previous = self.tracker.result
        self.emit(LevelFinished(k, content.shape[:2], self.evaluations, time.perf_counter() - self.start,
                                self.previous))
        if self.paths and k < len(self.checked.levels) - 1:
            self._write_image("scale", self.paths.scale(level.size), self.previous)

    def _level_images(self, recipe):
        """(content, styles, masks) at the level's size, on the recipe's pixel scale."""
        inputs = self.plan.inputs
        content, styles = size_images(recipe, inputs.content, inputs.styles, self.checked.style_scales)
        # jcjohnson's preprocess multiplies by 256: the network sees every input that much brighter, and the
        # optimised image lives on that scale until _present (a no-op at the usual 255)
        scale = recipe.pixel_scale / 255.0
        content, styles = content * scale, [style * scale for style in styles]
        masks = None if inputs.masks is None else [None if m is None else images.resize_mask(m, content.shape[:2])
                                                   for m in inputs.masks]
        return content, styles, masks

    def _start_image(self, k, recipe, content, styles, state):
        """The level's first image (None: the recipe's own init): the checkpoint's, the previous level's result
        upsampled, or the job's init image, blended with noise at the first level when the recipe says so."""
        init_image = self.plan.inputs.init_image
        if state is not None:
            init = state["image"]
        elif self.previous is not None:
            init = images.resize(self.previous, content.shape[:2], "lanczos").astype(np.float64)
        elif init_image is not None:
            init = images.resize(init_image, content.shape[:2], "lanczos").astype(np.float64) * (
                recipe.pixel_scale / 255.0)
        else:
            init = None
        if k == 0 and state is None and recipe.init_noise_blend:
            seed = self.plan.job.seed
            start = init if init is not None else engine.initial_image(recipe, content, styles, seed)
            init = engine.blend_noise(recipe, start, content, seed)
        return init

    def _transfer(self, recipe, content, styles, masks, init, tile):
        plan, job = self.plan, self.plan.job
        common = dict(blend=self.checked.blend, seed=job.seed, device=job.device, threads=job.threads,
                      init_image=init)
        if tile is None:
            return engine.Transfer(recipe, content, styles, plan.params, masks=masks, **common)
        return engine.TiledTransfer(recipe, content, styles, plan.params, tile=tile, **common)

    # --- what each evaluation and iteration reports and saves

    def _on_evaluation(self, m):
        """One evaluation: its event and history row, the stop on a non-finite loss, a snapshot when due."""
        interrupts.check()  # a signal whose exception was dropped where it landed stops the run here
        level = self.level
        terms = dict(zip(level.transfer.term_names, map(float, m.terms)))
        weighted = {name: float(self.term_weights[name]) * float(a) * v  # Python floats: an overflow is inf
                    for (name, v), a in zip(terms.items(), m.adjust)}
        event = Evaluation(level.index, m.iteration, m.evaluations, m.total, terms, weighted,
                           self.offset + time.perf_counter() - self.start, m.image)
        self.rows.append(history_row(level.size_label, event))
        self.evaluations += 1
        if not self.tracker.measured(event):
            raise _NonFinite(f"the loss became {m.total} at evaluation {m.evaluations}; "
                             "lower the weights or the learning rate")
        self.emit(event)
        save_every = self.checked.output.save_every
        if self.paths and save_every and m.evaluations % save_every == 0:
            self._write_image("snapshot", self.paths.snapshot(m.evaluations, level.index), m.image)
            if level.warm_checkpoints:  # inside the one L-BFGS call: a warm checkpoint (optimisers.LBFGS)
                self._checkpoint()

    def _on_iteration(self, iteration, evaluations, image):
        """One optimiser iteration: its event, and the restart's snapshot and a checkpoint when due."""
        event = IterationFinished(self.level.index, iteration, evaluations, image)
        self.tracker.iterated(event)
        self.emit(event)
        if not self.paths:
            return
        output, lbfgs = self.checked.output, self.level.recipe.optimizer == "lbfgs"
        if lbfgs and output.save_restarts:
            self._write_image("snapshot", self.paths.restart(iteration, self.level.index), image)
        due = (output.save_every and (lbfgs or evaluations % output.save_every == 0)) or (
            lbfgs and output.save_restarts)
        if due:
            self._checkpoint()

    # --- the files

    def _saved(self, kind, path):
        self.files[kind] = path
        self.emit(Saved(kind, path))

    def _present(self, image):
        """The image as the user sees it: back on the 0..255 scale (pixel_scale), with the content's colours put
        back for --preserve-colors post and luminance (the optimisation itself, and the next level's start,
        stay as they are)."""
        mode = self.plan.job.preserve_colors
        if image is not None and self.checked.recipe.pixel_scale != 255.0:
            image = image * (255.0 / self.checked.recipe.pixel_scale)
        if image is None or mode not in ("post", "luminance"):
            return image
        restore = colour.preserve_colours_post if mode == "post" else colour.recombine_luminance
        return restore(image, self.plan.inputs.original_content)

    def _encoded(self, image):
        """8-bit as the user sees it and as the recipe's source saved it (save_cast, deprocess_channel_slip)."""
        recipe = self.checked.recipe
        return images.to_uint8(self._present(image), recipe.save_cast, recipe.deprocess_channel_slip)

    def _write_image(self, kind, path, image):
        alpha = self.plan.inputs.alpha
        if alpha is not None and kind in ("result", "partial"):
            alpha = images.resize_mask(alpha, image.shape[:2])
        else:
            alpha = None
        self._saved(kind, self.paths.write_image(path, self._encoded(image), alpha))

    def _checkpoint(self):
        meta, arrays = self.tracker.state()
        self.checkpoint_state = self.level.transfer.state()
        ckpt = checkpoints.Checkpoint(self.plan.fingerprint, self.level.index, self.checkpoint_state, self.rows,
                                      meta, arrays, self.term_names)
        self._saved("checkpoint", ckpt.save(lambda writer: self.paths.write_with(self.paths.checkpoint, writer)))

    def _write_records(self):
        """The loss log and the settings, written whether the run finished or not."""
        paths = self.paths
        self._saved("log", paths.write_text(paths.log, log_text(self.rows, self.term_names)))
        if self.rows:
            writer, _ = plots.loss_plot(self.rows, self.term_names, self.term_weights,
                                        title=f"{self.checked.recipe.name}: loss per evaluation")
            self._saved("plot", paths.write_with(paths.plot, writer))
        self._saved("settings", paths.write_text(paths.settings, json.dumps(self._settings(), indent=1)))

    def _settings(self):
        job, recipe = self.plan.job, self.checked.recipe

        def described(image):
            return "(array)" if isinstance(image, np.ndarray) else (None if image is None else str(image))

        return {"name": job.name, "content": described(job.content),
                "styles": [{"image": described(s.image), "weight": s.weight} for s in job.styles],
                "init_image": described(job.init_image), "seed": job.seed, "device": job.device,
                "threads": engine.threads_in_effect(),
                "weights": job.weights, "normalise_on": list(job.normalise_on),
                "schedule": [dataclasses.asdict(level) for level in self.checked.levels],
                "recipe": recipe.name, "overrides": dict(job.overrides),
                "algorithm": recipe.algorithm(), "evaluations": self.evaluations,
                "final": self.rows[-1] if self.rows else None}

    def _finish(self):
        paths = self.paths
        if not paths:
            return
        self._write_image("result", paths.result, self.previous)
        rows, cols = self.checked.output.grid or (0, 0)
        tiles = [(label, self._encoded(image)) for label, image in self.tracker.snapshots]
        sheet = grid_image(tiles, rows, cols) if rows else None
        if sheet is not None:  # tiles already encoded: the sheet itself gets no colour restoring or cast
            self._saved("grid", paths.write_image(paths.grid, images.to_uint8(sheet)))
        self._write_records()
        paths.remove_superseded()

    def _keep_partial(self, stopped, message):
        """Save the best image so far as the partial result; returns the message with where it went."""
        paths = self.paths
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
