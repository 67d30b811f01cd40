"""`run_transfer.py figure N --content PATH --style PATH [PATH ...] --out DIR`: one figure of Gatys, Ecker &
Bethge (CVPR 2016) with the paper's settings per cell (legacy_nst.tools.figures): DIR/cells/NAME.png per cell,
DIR/cells.csv and DIR/sheet.png. Rerunning the same command continues an interrupted figure."""
import argparse
import dataclasses
import sys

from ..arguments import EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, PROG, positive_int
from ...tools import batch, figures
from ...vgg import weights


def build_parser(p):
    p.add_argument("figure", metavar="FIGURE", help="1, 2, 3 or init (numbered as arXiv:1508.06576; "
                                                    "CVPR 2016 Figs. 3, 4 and 6 are 2, 3 and init)")
    p.add_argument("--content", metavar="PATH", required=True, help="the photograph (Tübingen in the paper)")
    p.add_argument("--style", metavar="PATH", nargs="+", action="extend", required=True,
                   help="the painting; figure 2 takes up to five, recognised by file name (shipwreck, "
                        "starry_night, scream, femme/nude, composition) or given as KEY=PATH")
    p.add_argument("--out", metavar="DIR", required=True, help="writes DIR/sheet.png, DIR/cells.csv, DIR/cells/")
    p.add_argument("--size", type=positive_int, metavar="N", help="long side in pixels (default: the recipe's 512)")
    p.add_argument("--iterations", type=positive_int, metavar="N",
                   help="L-BFGS evaluations per cell (default: the recipe's 1000)")
    p.add_argument("--keep-balance", action=argparse.BooleanOptionalAction, default=True,
                   help="at a --size other than 512, multiply α by (512/size)^2 so content and style keep "
                        "the balance they have at the paper's 512 px (its content term grows with the image's "
                        "area, its style term does not; on the sheet); --no-keep-balance: α as the paper's")
    p.add_argument("--weights", metavar="PATH", help="VGG19 weight file (default: found or downloaded)")
    p.add_argument("--reference", metavar="PATH", help="your copy of the paper's figure, shown beside the sheet")
    p.add_argument("--normalise-on", metavar="PATH", nargs="+", default=[],
                   help="images (or a directory) to rescale the VGG on so every filter's mean activation is "
                        "1, as the paper (ImageNet validation images there); cached beside the weights")
    p.add_argument("--content-layer", metavar="LAYER",
                   help="figures 2, 3, init: match content here instead of the paper's conv4_2 (on the sheet)")
    p.add_argument("--style-layers", metavar="LAYER", nargs="+", default=[],
                   help="figures 2, init: instead of the paper's conv1_1 ... conv5_1 (on the sheet)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    p.add_argument("--overwrite", action="store_true", help="run every cell again, even those already done")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="run N cells at once in worker processes (the batch runner; default one by one); "
                        "this helps only with cores one cell leaves idle (see batch --help)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run the cells as Ray tasks on a cluster (auto, HOST:PORT or local; pip install -e .[ray])")
    p.add_argument("--quiet", action="store_true", help="no per-cell lines")


def main(args):
    settings = figures.Settings(size=args.size, iterations=args.iterations, normalise_on=tuple(args.normalise_on),
                                device=args.device, content_layer=args.content_layer,
                                style_layers=tuple(args.style_layers), keep_balance=args.keep_balance)
    figure = figures.build(args.figure, args.content, args.style, settings)  # usage errors before any file
    path = weights.resolve("vgg19", args.weights)
    figure = figures.build(args.figure, args.content, args.style,
                           dataclasses.replace(settings, weights=str(path)))
    figure = figures.fit_to_weights(figure, weights.present_conv_layers(path, "vgg19"), str(path))
    figures.check_inputs(figure, args.reference)
    figures.check_out(args.out, [("--content", args.content), ("--reference", args.reference)]
                      + [("--style", s) for s in args.style] + [("--normalise-on", p) for p in args.normalise_on],
                      args.overwrite)
    say = (lambda text: None) if args.quiet else print
    subtitle = figures.describe_run(figure, settings)
    with batch.sigterm_as_interrupt() as received:
        outcome = figures.render(figure, args.out, args.overwrite, say, args.workers, args.ray)
    if outcome.stopped is not None:
        print(f"{PROG}: figure {figure.key} stopped: {outcome.stopped.reason or 'interrupted'}; "
              f"{len(outcome.records)} of {len(figure.cells)} cells finished (kept): rerun the same command to "
              "continue", file=sys.stderr)
        return EXIT_SIGTERM if received else EXIT_SIGINT
    table, sheet = figures.write_outputs(figure, args.out, outcome, subtitle, args.reference)
    print(f"wrote {sheet} and {table} ({len(outcome.records)} cells done, {len(figure.missing)} left out)")
    for name, message in outcome.failed.items():  # the sheet is written and shows it: the figure succeeded
        print(f"{PROG}: cell {name} did not finish ({message}); the sheet shows it as \"not finished\"",
              file=sys.stderr)
    return EXIT_OK
