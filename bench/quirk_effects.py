#!/usr/bin/env python
"""Measure what each source quirk does to the final image: run the seed transcriptions (tests/seed_code.py)
with the quirk (the source's code) and with the corrected behaviour, and compare the uint8 results.

  python bench/quirk_effects.py [--weights ../shared/weights/vgg19_partial_block1-3.npz] [--size 64]

Genuine VGG19 blocks 1-3 (the partial weights), so every seed runs with its layers moved into blocks 1-3
(as bench/reproduce.py's shallow variants); seed 002's VGG16 ids 0-6 name layers VGG19 has too (the two
networks agree up to block3_conv3). Images: seed 000's turtle + Great Wave, the paper's Tübingen + Starry
Night for the others, long side --size (Lanczos). Iterations: the sources' own counts, except seed 000
(--adam-iterations, default 200 of its 1000) to keep the run within minutes. Prints a markdown table:
mean and largest |difference| in grey levels over all channel values, and the share of values that differ.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import seed_code as sc  # noqa: E402
from numpy_vgg import NumpyVGG, caffe_preprocess, single_threaded_blas  # noqa: E402

from legacy_nst import images
from legacy_nst.vgg import weights  # noqa: E402

SHARED = ROOT.parent / "shared"
SHALLOW_STYLE = ("block1_conv1", "block2_conv1", "block3_conv1")


def load(name, size):
    image = images.load_image(str(SHARED / "images" / name))
    return images.resize(image, images.target_shape(image.shape, size, "long-side"), "lanczos").astype(np.float64)


def compare(a, b):
    d = np.abs(a.astype(int) - b.astype(int))
    return f"{d.mean():.2f} | {d.max()} | {100 * (d > 0).mean():.1f} %"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default=str(SHARED / "weights" / "vgg19_partial_block1-3.npz"))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--adam-iterations", type=int, default=200)
    args = p.parse_args()
    params = weights.load_weights(args.weights, "vgg19", ["block3_conv3"])
    net = NumpyVGG("vgg19", params, "max")
    turtle, wave = load("Green_Sea_Turtle_grazing_seagrass.jpg", args.size), load("The_Great_Wave_off_Kanagawa.jpg", args.size)
    tubingen, starry = load("tubingen.jpg", args.size), load("starry_night.jpg", args.size)
    square = images.resize(tubingen.astype(np.float32), (args.size, args.size), "cv2-linear").astype(np.float64)
    square_style = images.resize(starry.astype(np.float32), (args.size, args.size), "cv2-linear").astype(np.float64)
    rows = []

    def row(seed, quirk, source, corrected):
        rows.append(f"| {seed} | {quirk} | {compare(source, corrected)} |")
        print(rows[-1], file=sys.stderr, flush=True)

    start = time.perf_counter()
    with single_threaded_blas():
        kw = dict(num_iterations=args.adam_iterations, content_layers=("block3_conv2",), style_layers=SHALLOW_STYLE)
        src = sc.run_seed000(net, turtle, wave, **kw)
        fixed = sc.run_seed000(net, turtle, wave, best_image_after_update=False, grid_after_update=False, **kw)
        row("000", f"best_image_after_update (best at {src.best} of {args.adam_iterations})", src.result, fixed.result)
        row("000", "grid_after_update (mean over the grid)", np.stack([im for _, im in src.shown]),
            np.stack([im for _, im in fixed.shown]))
        row("000", "save_cast", src.result, sc.to_uint8(src.image, "round"))

        kw = dict(s_layer_ids=range(7))
        src = sc.run_seed002(net, square, square_style, **kw)
        row("002", "adaptive_weights_lag", src.result,
            sc.run_seed002(net, square, square_style, adaptive_weights_lag=False, **kw).result)
        row("002", "result_after_last_update", src.result,
            sc.run_seed002(net, square, square_style, result_after_last_update=False, **kw).result)
        row("002", "save_cast", src.result, sc.to_uint8(src.image, "round"))

        shape = tubingen.shape[:2]  # the content's size; Keras load_img resizes the style to it (nearest)
        content = tubingen
        style = images.resize(starry.astype(np.float32), shape, "nearest").astype(np.float64)
        kw = dict(content_layer="block3_conv2", feature_layers=SHALLOW_STYLE)
        src = sc.run_seed003(net, content, style, **kw)
        row("003", "save_cast", src.result, sc.to_uint8(src.image, "round"))
        keras = sc.run_seed003(net, content, style, iterations=10, content_weight=0.025, style_weight=1.0, **kw)
        row("003", "weights 5/2/1 × 20 (article) vs 0.025/1/1 × 10 (Keras example)", src.result, keras.result)

        kw = dict(style_layers=("block3_conv1", "block2_conv1"))
        src = sc.run_seed004(net, tubingen, starry, **kw)
        x = caffe_preprocess(src.image)
        row("004", "deprocess_channel_slip", src.result, sc.seed004_save(x, deprocess_channel_slip=False))
        row("004", "save_cast", src.result, sc.seed004_save(x, save_cast="round"))
        row("004", "result_after_last_update", src.result,
            sc.run_seed004(net, tubingen, starry, result_after_last_update=False, **kw).result)
        row("004", "style_norm_literal_size", src.result,
            sc.run_seed004(net, tubingen, starry, norm_size=None, **kw).result)
    print(f"partial VGG19, long side {args.size}, {time.perf_counter() - start:.0f} s\n")
    print("| seed | quirk (source vs corrected) | mean abs diff | max | values differing |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
