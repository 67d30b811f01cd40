#!/usr/bin/env python
"""What L-BFGS adds to an evaluation (issue 13 point 0), in one run on one objective.

  python bench/lbfgs_overhead.py                 # preview objective, 320 × 240, genuine partial VGG19
  python bench/lbfgs_overhead.py --size 160 --evaluations 20

Per evaluation, interleaved: the bare session run (the Evaluator's loss(x) + grads(x), one session.run),
and scipy's fmin_l_bfgs_b driving the same Evaluator through the engine (Transfer.run, bounds 0..255 as the
preview recipe) with scipy's BLAS on one thread (the engine's default, optimisers.LBFGS) and on every core
(threadpoolctl lifted). The ratio L-BFGS ÷ bare is the overhead; the target is ≤ 1.1.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--evaluations", type=int, default=40)
    p.add_argument("--weights", default=str(SHARED / "weights" / "vgg19_partial_block1-3.npz"))
    args = p.parse_args()

    from threadpoolctl import threadpool_limits

    from legacy_nst import images, optimisers, recipes, weights
    from legacy_nst.sizing import size_images
    from legacy_nst.transfer import Transfer

    recipe = recipes.override(recipes.get("preview"), size=args.size, iterations=args.evaluations)
    content, styles = size_images(recipe, images.load_image(str(SHARED / "images" / "tubingen.jpg")),
                                  [images.load_image(str(SHARED / "images" / "starry_night.jpg"))])
    params = weights.load_weights(args.weights, "vgg19", recipe.layers)
    rows = {}
    with Transfer(recipe, content, styles, params, device="cpu") as transfer:
        evaluator = transfer.optimiser.evaluator
        x = content.astype(np.float64).ravel()
        evaluator.loss(x)  # warm
        for label, blas in (("one BLAS thread (engine)", 1), ("every core (scipy's default)", None)):
            bare = []
            for i in range(10):
                start = time.perf_counter()
                evaluator.loss(x + i)
                evaluator.grads(x + i)
                bare.append(time.perf_counter() - start)
            counted = []
            limits = optimisers.threadpool_limits
            optimisers.threadpool_limits = (lambda **kw: threadpool_limits(limits=blas, user_api="blas"))
            try:
                start = time.perf_counter()
                transfer.optimiser.run(lambda m: counted.append(1), lambda *a: None,
                                       {"iteration": 0, "evaluations": 0, "image": content.astype(np.float64)})
                per = (time.perf_counter() - start) / len(counted)
            finally:
                optimisers.threadpool_limits = limits
            rows[label] = (float(np.median(bare)), per)
    print(f"preview objective, {content.shape[1]}×{content.shape[0]}, {args.evaluations} L-BFGS-B evaluations")
    print(f"{'scipy BLAS':32} {'bare s/eval':>12} {'L-BFGS s/eval':>14} {'ratio':>7}")
    for label, (bare, per) in rows.items():
        print(f"{label:32} {bare:12.3f} {per:14.3f} {per / bare:7.2f}")


if __name__ == "__main__":
    main()
