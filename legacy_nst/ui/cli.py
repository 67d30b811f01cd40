"""The command line: parse arguments into a Job, call run(), print, map the outcome to an exit code.

Exit codes: 0 done; 1 a run whose loss became non-finite, a file that could not be written, or an
internal error; 2 bad input or usage; 130 interrupted (SIGINT); 143 terminated (SIGTERM). Bad input is one
line on stderr, no traceback (unless --debug). TensorFlow is imported only when a run starts.
"""
import argparse
import contextlib
import signal
import sys
import traceback
import warnings

from . import commands
from .arguments import (EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, PROG, count, finite_float, grid,
                        positive_int, schedule)
from .commands import COMMANDS
from .console import Console
from .other_tools import HINTS, gpu_hint, jcjohnson_hint
from .. import engine, recipes
from ..errors import UserError, WriteError
from ..runner.job import Job, Output, Style
from ..runner.loop import Terminated
from ..runner.loop import run as run_job

EXIT_CODES = {"finished": EXIT_OK, "interrupted": EXIT_SIGINT, "terminated": EXIT_SIGTERM,
              "non-finite": EXIT_FAILED, "write-failed": EXIT_FAILED}
# recipe fields with a flag of their own (argparse dest = field name)
FLAG_FIELDS = ("network", "pooling", "size", "iterations", "content_layers", "style_layers",
               "style_layer_weights", "content_weight", "style_weight", "tv_weight", "init", "optimizer",
               "learning_rate", "lbfgs_memory", "init_noise_blend")
FLAG_ALIASES = {"--print-iter": "--print-every", "--save-iter": "--save-every"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        for flag, hint in HINTS.items():
            if f"unrecognized arguments: {flag}" in message or f" {flag}" in message.split(":", 1)[-1].split():
                self.exit(EXIT_USAGE, f"{PROG}: error: {flag} is not a {PROG} flag: {hint} (see --help)\n")
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see --help)\n")


def _network(text):
    """vgg16 or vgg19; a file name here is a weight file given to the wrong flag (jcjohnson's -model_file)."""
    if text in ("vgg16", "vgg19"):
        return text
    if "." in text or "/" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a network: give the weight file with --weights "
                                         f"{text} (a Keras .h5 or .npz; --network is vgg16 or vgg19)")
    raise argparse.ArgumentTypeError(f"{text!r}: choose vgg16 or vgg19")


def _foreign_flags(argv):
    """A one-line hint for a command line written for another tool, or None."""
    hint = jcjohnson_hint(argv, PROG)
    if hint is None and "--gpu" in argv:
        at = argv.index("--gpu")
        hint = gpu_hint(argv[at + 1] if at + 1 < len(argv) else "0")
    return hint


def _init(text):
    return "noise" if text == "random" else text  # jcjohnson's -init random


def build_parser():
    p = _Parser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                usage=f"{PROG} [options] | {PROG} {{{','.join(COMMANDS)}}} ...",
                description="Classic (Gatys-style) neural style transfer. Each --recipe reproduces one "
                            "tutorial or the paper; any of its fields can be overridden. Other jobs: "
                            + "; ".join(f"'{name}' {what}" for name, what in COMMANDS.items())
                            + f" ({PROG} NAME --help).",
                epilog="Weights are looked for as: --weights PATH; $LEGACY_NST_WEIGHTS_DIR; the project's "
                       "weights/; ~/.keras/models/; otherwise downloaded into weights/ (md5-checked).\n"
                       "Outputs next to --output STEM.EXT: STEM_losses.csv, STEM_losses.png (its plot) and "
                       "STEM.json (every run), STEM_grid.png, STEM_at_evaluation_N.EXT (with --scales: "
                       "STEM_levelL_at_evaluation_N.EXT), STEM_at_restart_N.EXT, STEM_scaleS.EXT and "
                       "STEM.checkpoint.npz (when saving), STEM.partial.EXT (a stopped run's best image).\n"
                       "Exit codes: 0 done, 1 non-finite loss, unwritable file or internal error, "
                       "2 bad input, 130 interrupted, 143 terminated.")
    io_ = p.add_argument_group("images")
    io_.add_argument("--content", metavar="PATH", help="content photo (default: a demo image drawn by the project)")
    io_.add_argument("--style", metavar="PATH", nargs="+", action="extend",
                     help="one or more style images (default: a demo pattern drawn by the project)")
    io_.add_argument("--style-blend-weights", metavar="W", nargs="+", type=finite_float,
                     help="how much each style counts (one per --style; normalised to sum 1)")
    io_.add_argument("--style-scale", metavar="S", nargs="+", type=finite_float,
                     help="each style's long side as a multiple of the content's (one value, or one per --style)")
    io_.add_argument("--style-masks", metavar="PATH", nargs="+",
                     help="one mask per --style (white = paint this style there; Gatys et al. 2017 guided Grams)")
    io_.add_argument("--init-image", metavar="PATH", help="start from this image instead of the recipe's init")
    io_.add_argument("--preserve-colors", choices=("none", "post", "histogram", "luminance"), default="none",
                     help="keep the photo's colours: post (jcjohnson's original_colors), histogram (match the "
                          "style's colours first) or luminance (transfer on luminance only)")
    io_.add_argument("--original-colors", nargs="?", const="1", choices=("0", "1"),
                     help="jcjohnson's spelling: 1 is --preserve-colors post")
    out = p.add_argument_group("output")
    out.add_argument("--output", metavar="PATH", default="output.png",
                     help="where the result goes (.png, .jpg, ...; default output.png)")
    out.add_argument("--overwrite", action="store_true", help="replace existing output files")
    out.add_argument("--print-every", "--print-iter", type=count, metavar="N",
                     help="print the losses every N evaluations (default: the recipe source's; 0 never)")
    out.add_argument("--save-every", "--save-iter", type=count, metavar="N",
                     help="save the image and a checkpoint for --resume every N evaluations (0 never); the "
                          "resume is exact after an Adam or descent step (L-BFGS with restarts: at each "
                          "restart), and in an L-BFGS run that never restarts a warm restart from its last "
                          "accepted iterate")
    out.add_argument("--grid", type=grid, metavar="ROWS,COLS",
                     help="save STEM_grid.png of ROWS × COLS evenly spaced intermediate images")
    out.add_argument("--quiet", action="store_true", help="no progress bar or loss lines")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    rec = p.add_argument_group("recipe")
    rec.add_argument("--recipe", default=recipes.DEFAULT_RECIPE,
                     help=f"named algorithm (default {recipes.DEFAULT_RECIPE}); see --list-recipes")
    rec.add_argument("--list-recipes", action="store_true", help="print the recipes and exit")
    rec.add_argument("--show-recipe", metavar="NAME", help="print every field of one recipe and exit")
    rec.add_argument("--corrected", action="store_true",
                     help="switch every quirk of the recipe's source to the clean behaviour (see --show-recipe)")
    rec.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[],
                     help="override any recipe field (see --show-recipe), e.g. --set lbfgs_maxfun=50")
    net = p.add_argument_group("network")
    net.add_argument("--weights", metavar="PATH", help="VGG weight file (.h5 in Keras layout, or .npz)")
    net.add_argument("--network", type=_network, metavar="{vgg16,vgg19}", help="which VGG (a weight file: --weights)")
    net.add_argument("--pooling", choices=("max", "avg"), help="pooling between blocks")
    net.add_argument("--normalise-on", metavar="PATH", nargs="+",
                     help="rescale the VGG so every filter's mean activation over these images is 1, as the paper "
                          "did (gives gatys2016's α/β their meaning); cached beside the weights")
    net.add_argument("--device", choices=engine.DEVICES, default="auto",
                     help="auto: a GPU if TensorFlow sees one, else the CPU")
    loss = p.add_argument_group("losses")
    loss.add_argument("--content-layers", metavar="LAYER", nargs="+",
                      help="block4_conv2, conv4_2, relu4_2 or (VGG16) a conv index 0..12")
    loss.add_argument("--style-layers", metavar="LAYER", nargs="+",
                      help="as --content-layers (resets the per-layer weights unless given)")
    loss.add_argument("--style-layer-weights", metavar="W", nargs="+", type=finite_float,
                      help="one weight per style layer (default 1/number of layers)")
    loss.add_argument("--content-weight", type=finite_float, metavar="W", help="weight of the content term")
    loss.add_argument("--style-weight", type=finite_float, metavar="W", help="weight of the style term")
    loss.add_argument("--tv-weight", type=finite_float, metavar="W",
                      help="weight of the total-variation / denoise term (the recipe must have one: tv_form)")
    loss.add_argument("--content-weight-blend", type=finite_float, metavar="B",
                      help="anish's: the first of two content layers weighs B, the second 1 − B")
    loss.add_argument("--style-layer-weight-exp", type=finite_float, metavar="E",
                      help="anish's: style layer i weighs E^i (normalised to sum 1)")
    opt = p.add_argument_group("optimiser")
    opt.add_argument("--iterations", type=positive_int, metavar="N",
                     help="loss+gradient evaluations (L-BFGS restarts every lbfgs_maxfun, as the recipe's source)")
    opt.add_argument("--optimizer", choices=recipes.OPTIMIZERS, help="lbfgs, adam or descent")
    opt.add_argument("--learning-rate", type=finite_float, metavar="LR", help="Adam's rate or descent's step")
    opt.add_argument("--lbfgs-memory", type=positive_int, metavar="N",
                     help="corrections L-BFGS keeps (jcjohnson's -lbfgs_num_correction; scipy's m, default 10)")
    opt.add_argument("--normalize-gradients", action="store_true",
                     help="jcjohnson's: each layer term's gradient ÷ its L1 norm, × its weight")
    opt.add_argument("--init-noise-blend", type=finite_float, metavar="F",
                     help="anish's: start from (1 − F) · the init + F · noise")
    opt.add_argument("--init", type=_init, choices=recipes.INITS,
                     help="start from the content, noise (or 'random') or the style")
    opt.add_argument("--seed", type=int, default=0, help="seed for noise inits (default 0)")
    opt.add_argument("--resume", metavar="CHECKPOINT",
                     help="continue a run from its STEM.checkpoint.npz (the same flags; --iterations may grow, "
                          "a checkpoint past it is refused)")
    scale = p.add_argument_group("scale")
    scale.add_argument("--size", type=positive_int, metavar="N",
                       help="image size in pixels: the long side (or the recipe's own rule, see --show-recipe)")
    scale.add_argument("--scales", type=schedule, metavar="N,N,...",
                       help="multi-scale: optimise at each size in turn (256,512,1024, or 256:300,512:100 with "
                            "evaluations per level), each started from the previous result upsampled; auto: "
                            "--size/4, /2, full with 20/30/50 %% of --iterations")
    scale.add_argument("--tile", type=positive_int, metavar="PX",
                       help="evaluate in tiles of at most PX px (exact: the same loss and gradient, more time); "
                            "by default only when the untiled run would not fit in memory, which is then said")
    return p


def recipe_overrides(args):
    overrides = {name: getattr(args, name) for name in FLAG_FIELDS if getattr(args, name) is not None}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected FIELD=VALUE")
        overrides[name.strip()] = recipes.parse_field(name.strip(), value.strip())
    if args.normalize_gradients:
        overrides["normalize_gradients"] = True
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    if args.content_weight_blend is not None or args.style_layer_weight_exp is not None:
        layers = recipes.override(recipes.get(args.recipe), **overrides)  # the layers the shorthands apply to
        if args.content_weight_blend is not None:
            if len(layers.content_layers) != 2:
                raise UserError(f"--content-weight-blend needs two content layers, the run has "
                                f"{len(layers.content_layers)}: add --content-layers conv4_2 conv5_2 (anish's)")
            overrides["content_layer_weights"] = recipes.content_blend_weights(args.content_weight_blend)
        if args.style_layer_weight_exp is not None:
            overrides["style_layer_weights"] = recipes.exponent_weights(args.style_layer_weight_exp,
                                                                        len(layers.style_layers))
    return overrides


def _per_style(values, flag, count, default):
    """One value per style: none (the default), one for all, or exactly one each."""
    if values is None:
        return [default] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise UserError(f"{flag} has {len(values)} values for {count} style images; give one, or one per --style")
    return list(values)


def make_job(args):
    """The Job the arguments describe (checks that need no files; the rest happens in run())."""
    styles = args.style or []
    if args.style_blend_weights is not None and len(args.style_blend_weights) != len(styles or [None]):
        raise UserError(f"--style-blend-weights has {len(args.style_blend_weights)} values for "
                        f"{len(styles or [None])} style images; give one per --style")
    blend = args.style_blend_weights or [1.0] * len(styles)
    scales = _per_style(args.style_scale, "--style-scale", len(styles), 1.0)
    if args.style_masks is not None and len(args.style_masks) != len(styles):
        raise UserError(f"--style-masks has {len(args.style_masks)} paths for {len(styles)} style images; "
                        "give one per --style")
    masks = args.style_masks or [None] * len(styles)
    colours = "post" if args.original_colors == "1" else args.preserve_colors
    job = Job(content=args.content, styles=tuple(Style(*settings) for settings in zip(styles, blend, scales, masks)),
              recipe=args.recipe, overrides=recipe_overrides(args), seed=args.seed, init_image=args.init_image,
              schedule=args.scales or (), weights=args.weights, device=args.device, tile=args.tile, resume=args.resume,
              corrected=args.corrected, preserve_colors=colours, normalise_on=tuple(args.normalise_on or ()),
              output=Output(args.output, args.overwrite, args.print_every, args.save_every, None, args.grid))
    job.resolved_recipe()  # field problems are reported now, before any file is read
    return job


def print_recipes():
    print(f"{'recipe':16} {'network':8} {'optimizer':9} {'budget':>17}  source")
    for r in recipes.RECIPES.values():
        default = " (default)" if r.name == recipes.DEFAULT_RECIPE else ""
        budget = f"{r.iterations} evals" if r.optimizer == "lbfgs" else f"{r.iterations} steps"
        if r.restarts > 1:
            budget = f"{r.restarts}×{r.lbfgs_maxfun} evals"
        print(f"{r.name:16} {r.network:8} {r.optimizer:9} {budget:>17}  {r.source}{default}")


def show_recipe(name):
    """Every field, section by section; a source quirk also shows what --corrected makes of it."""
    recipe = recipes.get(name)
    clean = recipes.corrected(recipe)
    for section, names in recipes.SECTIONS.items():
        print(f"[{section}]")
        for field in names:
            value, fixed = getattr(recipe, field), getattr(clean, field)
            print(f"  {field:22} {value}" + (f"   (--corrected: {fixed})" if value != fixed else ""))


@contextlib.contextmanager
def sigterm_raises():
    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args):
    job = make_job(args)
    console = Console(job.check().output.print_every, quiet=args.quiet)  # a bad value is named before any work
    with sigterm_raises():
        try:
            result = run_job(job, console)
        finally:
            console.close()
    if result.stopped != "finished":
        print(f"{PROG}: {result.message}", file=sys.stderr)
        return EXIT_CODES[result.stopped]
    if result.message:  # a signal came while the result was being written
        print(f"{PROG}: {result.message}", file=sys.stderr)
    final = result.history[-1]["total"] if result.history else float("nan")
    print(f"saved {result.files['result']} ({result.evaluations} evaluations, {result.seconds:.1f} s, "
          f"final loss {final:.4g}); losses in {result.files['log']}")
    return EXIT_OK


def _command(argv):
    """(parsed arguments, the function to call): a subcommand (figure, compare, ...) or the default run."""
    if argv and argv[0] in COMMANDS:
        module = commands.module(argv[0])
        parser = _Parser(prog=f"{PROG} {argv[0]}", description=COMMANDS[argv[0]])
        module.build_parser(parser)
        parser.add_argument("--debug", action="store_true", help="show tracebacks")
        return parser.parse_args(argv[1:]), module.main
    args = build_parser().parse_args(argv)
    if args.list_recipes:
        return args, lambda args: print_recipes() or EXIT_OK
    if args.show_recipe:
        return args, lambda args: show_recipe(args.show_recipe) or EXIT_OK
    return args, run


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=file or sys.stderr)


def main(argv=None):
    for stream in (sys.stdout, sys.stderr):  # a file name the terminal's encoding cannot show is escaped,
        if hasattr(stream, "reconfigure"):  # not a crash after the work is done (PYTHONIOENCODING=ascii)
            stream.reconfigure(errors="backslashreplace")
    argv = [FLAG_ALIASES.get(a, a) for a in (sys.argv[1:] if argv is None else argv)]
    hint = None if argv and argv[0] in COMMANDS else _foreign_flags(argv)
    if hint:
        print(f"{PROG}: error: {hint}", file=sys.stderr)
        return EXIT_USAGE
    args, command = _command(argv)
    try:
        with warnings.catch_warnings():  # the library's warnings as one line each, like its errors
            warnings.showwarning = _one_line_warning
            return command(args)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WriteError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILED
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
