"""`run_transfer.py compare RESULT --content C --style S [S ...] [--reference R] --out DIR`: the same
yardstick for any image, this project's or another implementation's or a paper figure's."""
from ... import engine, recipes
from ...errors import UserError
from ...tools import compare
from ...vgg import weights


def build_parser(p):
    p.add_argument("result", metavar="RESULT", help="the image to score (any image, not only this project's)")
    p.add_argument("--content", metavar="PATH", required=True, help="the content photo it was made from")
    p.add_argument("--style", metavar="PATH", nargs="+", action="extend", required=True, help="its style image(s)")
    p.add_argument("--style-blend-weights", metavar="W", nargs="+", type=float, help="one weight per --style")
    p.add_argument("--reference", metavar="PATH", help="a reference result (a paper figure, another tool's)")
    p.add_argument("--out", metavar="DIR", required=True, help="writes DIR/comparison.png, metrics.json, metrics.md")
    p.add_argument("--weights", metavar="PATH", help="VGG19 weight file (default: found or downloaded)")
    p.add_argument("--recipe", metavar="NAME", help="score at the layers this recipe uses (its network and "
                                                    "pooling too); default: the paper's on the whole VGG19")
    p.add_argument("--pooling", choices=("max", "avg"), default=None, help="default max (or the recipe's)")
    p.add_argument("--content-layers", metavar="LAYER", nargs="+", help="default: conv4_2, or conv3_2 (partial)")
    p.add_argument("--style-layers", metavar="LAYER", nargs="+", help="default: conv1_1..conv5_1 (or ..conv3_1)")
    p.add_argument("--size", type=int, default=compare.DEFAULT_SIZE, help="working long side (default 512)")
    p.add_argument("--device", choices=engine.DEVICES, default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier comparison in --out")


def main(args):

    if args.size < 16:
        raise UserError(f"--size {args.size}: must be at least 16 px")
    recipe = recipes.get(args.recipe) if args.recipe else None
    inputs = [("RESULT", args.result), ("--content", args.content), ("--reference", args.reference)]
    inputs += [("--style", s) for s in args.style]
    compare.check_outputs(args.out, inputs, args.overwrite)  # before any work
    network = recipe.network if recipe else "vgg19"
    path = weights.resolve(network, args.weights)
    params = weights.load_weights(path, network, weights.present_conv_layers(path, network))
    pooling = args.pooling or (recipe.pooling if recipe else "max")
    metrics = compare.score(args.result, args.content, args.style, args.reference, params=params, network=network,
                            pooling=pooling, content_layers=args.content_layers, style_layers=args.style_layers,
                            style_weights=args.style_blend_weights, size=args.size,
                            config=engine.session_config(args.device), recipe=recipe)
    sheet = compare.comparison_sheet(args.content, args.style, args.result, args.reference)
    out = compare.write_comparison(args.out, metrics, sheet, args.overwrite, inputs)
    print(compare.metrics_markdown(metrics))
    print(f"scored on {path} ({metrics['network']}, layers {metrics['layers_from']}); wrote "
          f"{out / 'comparison.png'}, {out / 'metrics.json'} and {out / 'metrics.md'}")
    return 0
