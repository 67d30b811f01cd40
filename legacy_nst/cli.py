"""The command line: check everything before the heavy work, run the algorithm, print, save.

Exit codes: 0 done; 1 internal error or a run whose loss became non-finite; 2 bad input or usage;
130 interrupted (SIGINT); 143 terminated (SIGTERM). Bad input is one line on stderr, no traceback
(unless --debug).
"""
import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import time
import traceback

import numpy as np
from tqdm import tqdm

from . import images, recipes, weights
from .atomic import atomic_path
from .errors import UserError
from .reporting import Tracker, save_grid
from .transfer import DEVICES, Transfer, session_config, size_images

PROG = "legacy-nst"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143
FLAG_FIELDS = ("network", "size", "iterations", "content_layers", "style_layers", "style_layer_weights",
               "content_weight", "style_weight", "tv_weight", "pooling", "init", "save_every")


class Terminated(Exception):
    """SIGTERM, turned into an exception so the run can save what it has."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see --help)\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def _scales(text):
    try:
        sizes = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected sizes like 256,512,1024") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be a positive number of pixels")
    return sizes


def build_parser():
    p = _Parser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Classic (Gatys-style) neural style transfer. Each --recipe reproduces one "
                            "tutorial or the paper; any of its fields can be overridden.",
                epilog="Weights are looked for as: --weights PATH; $LEGACY_NST_WEIGHTS_DIR; the project's "
                       "weights/; ~/.keras/models/; otherwise downloaded into weights/ (md5-checked).\n"
                       "Outputs next to --output: STEM_losses.csv (every run), STEM_grid.png, "
                       "STEM_at_iteration_N.png and STEM.checkpoint.npz (with --save-every), "
                       "STEM.partial.EXT (an interrupted or failed run's best image).\n"
                       "Exit codes: 0 done, 1 internal error or non-finite loss, 2 bad input, "
                       "130 interrupted, 143 terminated.")
    io_ = p.add_argument_group("images")
    io_.add_argument("--content", metavar="PATH", help="content photo (default: a demo image drawn by the project)")
    io_.add_argument("--style", metavar="PATH", nargs="+",
                     help="one or more style images (default: a demo pattern drawn by the project)")
    io_.add_argument("--style-blend-weights", metavar="W", nargs="+", type=_finite_float,
                     help="how much each style counts (one per --style; normalised to sum 1)")
    io_.add_argument("--output", metavar="PATH", default="output.png",
                     help="where the result goes (.png, .jpg, ...; default output.png)")
    io_.add_argument("--overwrite", action="store_true", help="replace existing output files")
    rec = p.add_argument_group("recipe")
    rec.add_argument("--recipe", default=recipes.DEFAULT_RECIPE,
                     help=f"named algorithm (default {recipes.DEFAULT_RECIPE}); see --list-recipes")
    rec.add_argument("--list-recipes", action="store_true", help="print the recipes and exit")
    rec.add_argument("--show-recipe", metavar="NAME", help="print every field of one recipe and exit")
    rec.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[],
                     help="override any recipe field (see --show-recipe), e.g. --set maxfun=50")
    net = p.add_argument_group("network")
    net.add_argument("--weights", metavar="PATH", help="VGG weight file (.h5 in Keras layout, or .npz)")
    net.add_argument("--network", choices=("vgg16", "vgg19"), help="which VGG")
    net.add_argument("--pooling", choices=("max", "avg"), help="pooling between blocks")
    net.add_argument("--device", choices=DEVICES, default="auto",
                     help="auto: a GPU if TensorFlow sees one, else the CPU")
    loss = p.add_argument_group("losses")
    loss.add_argument("--content-layers", metavar="LAYER", nargs="+",
                      help="block4_conv2, conv4_2, relu4_2 or (VGG16) a conv index 0..12")
    loss.add_argument("--style-layers", metavar="LAYER", nargs="+", help="as --content-layers")
    loss.add_argument("--style-layer-weights", metavar="W", nargs="+", type=_finite_float,
                      help="one weight per style layer (default 1/number of layers)")
    loss.add_argument("--content-weight", type=_finite_float, metavar="W", help="weight of the content term")
    loss.add_argument("--style-weight", type=_finite_float, metavar="W", help="weight of the style term")
    loss.add_argument("--tv-weight", type=_finite_float, metavar="W",
                      help="weight of the total-variation / denoise term")
    run = p.add_argument_group("run")
    run.add_argument("--size", type=_positive_int, metavar="N",
                     help="image size in pixels: the long side (or the recipe's own rule, see --show-recipe)")
    run.add_argument("--iterations", type=_positive_int, metavar="N",
                     help="optimiser iterations (L-BFGS: outer restarts of maxfun evaluations each)")
    run.add_argument("--scales", type=_scales, metavar="N,N,...",
                     help="multi-scale: optimise at each size in turn (e.g. 256,512,1024), each started from "
                          "the previous result upsampled; --size is ignored")
    run.add_argument("--init", choices=recipes.INITS, help="start from the content, noise or the style")
    run.add_argument("--init-image", metavar="PATH", help="start from this image instead")
    run.add_argument("--seed", type=int, default=0, help="seed for noise inits (default 0)")
    run.add_argument("--save-every", type=int, metavar="N",
                     help="every N iterations save the image and a checkpoint for --resume (0: never)")
    run.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its STEM.checkpoint.npz")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def make_recipe(args):
    recipe = recipes.get(args.recipe)
    overrides = {name: getattr(args, name) for name in FLAG_FIELDS if getattr(args, name) is not None}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected FIELD=VALUE")
        overrides[name.strip()] = recipes.parse_field(name.strip(), value.strip())
    for name in ("content_layers", "style_layers", "style_layer_weights"):
        if name in overrides:
            overrides[name] = tuple(overrides[name])
    return dataclasses.replace(recipe, **overrides).check()


def print_recipes():
    print(f"{'recipe':16} {'network':8} {'optimizer':9} {'iters':>5}  source")
    for r in recipes.RECIPES.values():
        default = " (default)" if r.name == recipes.DEFAULT_RECIPE else ""
        print(f"{r.name:16} {r.network:8} {r.optimizer:9} {r.iterations:5d}  {r.source}{default}")


def show_recipe(name):
    recipe = recipes.get(name)
    for field in dataclasses.fields(recipe):
        print(f"{field.name:22} {getattr(recipe, field.name)}")


class Outputs:
    """Every path a run may write, derived from --output, checked before any heavy work."""

    def __init__(self, output, recipe):
        self.result = output
        stem, ext = os.path.splitext(output)
        self.stem, self.ext = stem, ext
        self.log = f"{stem}_losses.csv"
        self.grid = f"{stem}_grid.png"
        self.checkpoint = f"{stem}.checkpoint.npz"
        self.partial = f"{stem}.partial{ext}"
        self.recipe = recipe

    def at_scale(self, size):
        return f"{self.stem}_scale{size}{self.ext}"

    def at_iteration(self, i):
        return f"{self.stem}_at_iteration_{i}{self.ext}"

    def check(self, inputs, overwrite, resuming, scales=()):
        images.check_output_extension(self.result)
        directory = os.path.dirname(os.path.abspath(self.result))
        if not os.path.isdir(directory):
            raise UserError(f"--output {self.result}: directory {directory} does not exist; create it first")
        if not os.access(directory, os.W_OK):
            raise UserError(f"--output {self.result}: directory {directory} is not writable")
        for path in inputs:
            if path and os.path.realpath(path) == os.path.realpath(self.result):
                raise UserError(f"--output {self.result} is also an input; choose another output path")
        planned = [self.result] + [self.at_scale(size) for size in scales[:-1]]
        if self.recipe.grid:
            planned.append(self.grid)
        if not resuming:  # a resumed run continues its own log, checkpoint and snapshots
            planned += [self.log, self.partial]
            if self.recipe.save_every:
                planned += [self.checkpoint] + [self.at_iteration(i) for i in
                                                range(0, self.recipe.iterations, self.recipe.save_every)]
        for path in planned:
            if os.path.isdir(path):
                raise UserError(f"--output {self.result}: {path} is a directory; choose another --output")
        existing = [p for p in planned if os.path.exists(p)]
        if existing and not overwrite:
            raise UserError(f"{existing[0]} exists; pass --overwrite to replace it or choose another --output")


def _save_checkpoint(path, recipe, transfer, tracker, seed):
    meta, arrays = tracker.state()
    state = transfer.state()
    meta = {"recipe": dataclasses.asdict(recipe), "seed": seed, "tracker": meta,
            "state_keys": sorted(state)}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)),
                     **{f"state_{k}": np.asarray(v) for k, v in state.items()},
                     **{f"tracker_{k}": v for k, v in arrays.items() if v is not None})


def _load_checkpoint(path, recipe):
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            state = {k: data[f"state_{k}"] for k in meta["state_keys"]}
            arrays = {k[len("tracker_"):]: data[k] for k in data.files if k.startswith("tracker_")}
    except Exception as exc:  # numpy, zipfile and json raise many types for truncated or foreign files
        raise UserError(f"--resume {path}: not a readable legacy-nst checkpoint ({exc})") from None
    saved = dict(meta["recipe"], iterations=recipe.iterations)
    current = json.loads(json.dumps(dataclasses.asdict(recipe)))
    if json.loads(json.dumps(saved)) != current:
        diff = [k for k in current if current[k] != saved.get(k)]
        raise UserError(f"--resume {path}: made with different settings ({', '.join(diff)}); "
                        "resume with the same recipe and flags")
    state["iteration"] = int(state["iteration"])
    arrays.setdefault("best_image", None)
    arrays.setdefault("last_image", None)
    return state, meta, arrays


def _load_inputs(args):
    if args.content is None and args.style is None:
        content, style = images.demo_pair()
        return content, [style]
    if args.content is None or args.style is None:
        raise UserError("give both --content and --style (or neither, for the demo pair)")
    return images.load_image(args.content), [images.load_image(p) for p in args.style]


def run(args):
    recipe = make_recipe(args)
    outputs = Outputs(args.output, recipe)
    outputs.check([args.content, args.init_image, args.resume] + list(args.style or []), args.overwrite,
                  resuming=bool(args.resume), scales=args.scales or ())
    session_config(args.device)  # --device gpu without a GPU is refused before any heavy work
    if args.style_blend_weights is not None:
        if len(args.style_blend_weights) != len(args.style or [None]):
            raise UserError(f"--style-blend-weights has {len(args.style_blend_weights)} values for "
                            f"{len(args.style or [None])} style images; give one per --style")
        if min(args.style_blend_weights) < 0 or sum(args.style_blend_weights) <= 0:
            raise UserError("--style-blend-weights must be non-negative with a positive sum")
    if args.resume and not os.path.isfile(args.resume):
        raise UserError(f"--resume {args.resume}: no such checkpoint file")
    if args.resume and args.scales:
        raise UserError("--resume continues a single-scale run; drop --scales")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: must be 0 or a positive whole number")
    raw_content, raw_styles = _load_inputs(args)
    previous = images.load_image(args.init_image) if args.init_image else None
    resume = _load_checkpoint(args.resume, recipe) if args.resume else None
    scales = args.scales or [recipe.size]
    # Sized up front, so an image too small for the layers is refused before the weights are read.
    sized = [size_images(dataclasses.replace(recipe, size=size), raw_content, raw_styles) for size in scales]
    params = weights.load_weights(weights.resolve(recipe.network, args.weights), recipe.network, recipe.layers)
    rows = []
    start = time.perf_counter()
    for k, (size, (content, styles)) in enumerate(zip(scales, sized)):
        scaled = dataclasses.replace(recipe, size=size)
        init = None if previous is None else images.resize(previous, content.shape[:2], "lanczos").astype(np.float64)
        transfer = Transfer(scaled, content, styles, params, blend=args.style_blend_weights, seed=args.seed,
                            device=args.device, init_image=init)
        try:
            code, tracker, step = _optimise(args, scaled, transfer, outputs, resume, rows)
        finally:
            transfer.close()
        if code != EXIT_OK:
            return code
        rows, previous = tracker.rows, tracker.result
        if k < len(scales) - 1:
            images.save_image(previous, outputs.at_scale(size))
            print(f"scale {size}: saved {outputs.at_scale(size)}; continuing at {scales[k + 1]}")
    images.save_image(tracker.result, outputs.result)
    if recipe.grid:
        save_grid(tracker, *recipe.grid, outputs.grid)
    final = step.total if step else tracker.best_total  # no step: resumed from a finished run's checkpoint
    print(f"saved {outputs.result} ({step.evaluations if step else 0} evaluations, "
          f"{time.perf_counter() - start:.1f} s, final loss {final:.4g}); losses in {outputs.log}")
    return EXIT_OK


def _on_sigterm(signum, frame):
    raise Terminated()


def _optimise(args, recipe, transfer, outputs, resume, rows):
    """Run the optimiser to the end; returns (exit code, tracker, last step). A run stopped by a signal or
    a non-finite loss saves its best image as STEM.partial.EXT (never under the final name)."""
    grid_rows, grid_cols = recipe.grid or (0, 0)
    tracker = Tracker(recipe.keep, recipe.size,
                      grid_every=max(1, recipe.iterations // (grid_rows * grid_cols)) if grid_rows else 0)
    tracker.rows = list(rows)
    state = None
    if resume is not None:
        state, meta, arrays = resume
        tracker.restore(meta["tracker"], arrays)
    per_iteration = recipe.maxfun if recipe.optimizer == "lbfgs" else 1
    bar = tqdm(total=recipe.iterations * per_iteration, disable=True if args.quiet else None, unit="eval",
               dynamic_ncols=True, initial=(state["iteration"] * per_iteration if state else 0))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    start, step, code = time.perf_counter(), None, EXIT_OK
    steps = transfer.steps(state)
    try:
        for step in steps:
            if not tracker.add(step, time.perf_counter() - start):
                bar.close()
                print(f"{PROG}: the loss became {step.total} at iteration {step.iteration}; stopped. "
                      "Lower the weights or the learning rate.", file=sys.stderr)
                code = EXIT_FAILED
                break
            if not (step.boundary and recipe.optimizer == "lbfgs"):  # L-BFGS counts its evaluations
                bar.update(1)
            bar.set_postfix_str(f"total {step.total:.4g} content {step.terms['content']:.3g} "
                                f"style {step.terms['style']:.3g} tv {step.terms['tv']:.3g}", refresh=False)
            if step.boundary:
                _after_iteration(args, recipe, transfer, tracker, outputs, step)
    except KeyboardInterrupt:
        code = EXIT_SIGINT
    except Terminated:
        code = EXIT_SIGTERM
    finally:
        steps.close()
        signal.signal(signal.SIGTERM, previous)
        bar.close()
    tracker.write_log(outputs.log)
    if code != EXIT_OK:
        _save_partial(outputs, tracker, code, step)
    return code, tracker, step


def _after_iteration(args, recipe, transfer, tracker, outputs, step):
    i = step.iteration
    if i % recipe.print_every == 0 or i == recipe.iterations - 1:
        terms = ", ".join(f"{k} {v:.4e}" for k, v in step.terms.items())
        if not args.quiet:
            tqdm.write(f"iteration {i}: total {step.total:.4e}, {terms}", file=sys.stderr)
    if recipe.save_every and i % recipe.save_every == 0:
        images.save_image(transfer.state()["image"], outputs.at_iteration(i))
        _save_checkpoint(outputs.checkpoint, recipe, transfer, tracker, args.seed)


def _save_partial(outputs, tracker, code, step):
    what = {EXIT_SIGINT: "interrupted", EXIT_SIGTERM: "terminated"}.get(code, "stopped")
    if tracker.safest is None:
        print(f"{PROG}: {what} before any finite loss was measured; nothing to save", file=sys.stderr)
        return
    images.save_image(tracker.safest, outputs.partial)
    resume = (f"; resume with --resume {outputs.checkpoint}" if os.path.exists(outputs.checkpoint) else "")
    print(f"{PROG}: {what} at iteration {step.iteration if step else 0}: best image so far saved to "
          f"{outputs.partial} (not a finished result){resume}", file=sys.stderr)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.list_recipes:
            print_recipes()
            return EXIT_OK
        if args.show_recipe:
            show_recipe(args.show_recipe)
            return EXIT_OK
        return run(args)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before the optimisation started; nothing written", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as exc:  # a bug: say so in one line, the traceback with --debug
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED


def entry_point():
    sys.exit(main())
