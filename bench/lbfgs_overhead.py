#!/usr/bin/env python
"""What L-BFGS adds to an evaluation (issue 13 point 0), in one run on one objective.

  python bench/lbfgs_overhead.py                 # preview objective, 320 × 240, genuine partial VGG19
  python bench/lbfgs_overhead.py --size 160 --evaluations 20 --rounds 1

Per evaluation, in --rounds interleaved rounds (medians reported): the bare evaluation (the Evaluator's
loss(x) + grads(x): one session.run, the float32/float64 copies), and scipy's fmin_l_bfgs_b driving the same
Evaluator through the engine (the optimiser's own run(), bounds 0..255 as the preview recipe) with scipy's
BLAS on one thread (the engine's default, optimisers.LBFGS); once, with BLAS on every core (threadpoolctl
lifted). The ratio L-BFGS ÷ bare is the overhead; the issue's target is ≤ 1.1.

What is left of it is scipy's own work, measured here apart and exactly: the first round records every
(loss, gradient) the engine's run computed, then fmin_l_bfgs_b runs again with the same x0, m, bounds and
budget on a function that hands back the recorded values in turn. scipy is deterministic, so it walks the
same path (checked: the same points asked for), and that replay's seconds per evaluation are scipy's own
cost on this problem: L-BFGS-B's setulb walking its 2·m·n history (37 MB of float64 at 320 × 240 × 3,
m = 10) and, with bounds, the Cauchy point and subspace step every iteration, plus the one-time conversion
of the bounds. It grows with n as the session run does, so `floor` = (bare + replay) ÷ bare is the least
ratio any driver of scipy's L-BFGS-B reaches on this machine.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


class Recording:
    """Stands in for the optimiser's evaluation and keeps what each evaluation returned (float64, as scipy
    receives it)."""

    def __init__(self, evaluation):
        self.evaluation, self.calls = evaluation, []

    def evaluate(self, image, adjust=None):
        total, terms, adjust, gradient = self.evaluation.evaluate(image, adjust)
        self.calls.append((image.astype(np.float64).ravel(), total, gradient.ravel().astype(np.float64)))
        return total, terms, adjust, gradient


def replay(calls, x0, recipe, maxfun):
    """Seconds per evaluation of scipy's fmin_l_bfgs_b handed the recorded values (one BLAS thread)."""
    from scipy.optimize import fmin_l_bfgs_b
    from threadpoolctl import threadpool_limits

    answers = iter(calls)
    asked = []

    def f(x):
        point, total, gradient = next(answers, (None, None, None))
        if point is None:
            raise SystemExit(f"replay: scipy asked for more than the {len(calls)} recorded; mismatches at "
                             f"{[i for i, same in enumerate(asked) if not same][:5]}")
        asked.append(np.array_equal(np.float32(x), np.float32(point)))
        return total, gradient

    with threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        fmin_l_bfgs_b(f, x0, m=recipe.lbfgs_memory, maxfun=maxfun, factr=0.0, pgtol=0.0,
                      bounds=[(0.0, 255.0)] * x0.size if recipe.lbfgs_bounds else None)
        seconds = time.perf_counter() - start
    if len(asked) != len(calls) or not all(asked):
        raise SystemExit("the replay left the recorded path: scipy's cost cannot be separated this way")
    return seconds / len(asked)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--evaluations", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--weights", default=str(SHARED / "weights" / "vgg19_partial_block1-3.npz"))
    args = p.parse_args()

    from threadpoolctl import threadpool_limits

    from legacy_nst import images, recipes
    from legacy_nst.engine import optimisers
    from legacy_nst.engine.level import Transfer
    from legacy_nst.runner.sizing import size_images
    from legacy_nst.vgg import weights

    recipe = recipes.override(recipes.get("preview"), size=args.size, iterations=args.evaluations)
    content, styles = size_images(recipe, images.load_image(str(SHARED / "images" / "tubingen.jpg")),
                                  [images.load_image(str(SHARED / "images" / "starry_night.jpg"))])
    params = weights.load_weights(args.weights, "vgg19", recipe.layers)
    start_state = {"iteration": 0, "evaluations": 0, "image": content.astype(np.float64)}
    bare, engine, every_core = [], [], []
    with Transfer(recipe, content, styles, params, device="cpu") as transfer:
        evaluator = transfer.optimiser.evaluator
        x = content.astype(np.float64).ravel()
        evaluator.loss(x)  # warm

        def lbfgs_run(blas):
            counted = []
            limits = optimisers.threadpool_limits
            optimisers.threadpool_limits = (lambda **kw: threadpool_limits(limits=blas, user_api="blas"))
            try:
                start = time.perf_counter()
                transfer.optimiser.run(lambda m: counted.append(1), lambda *a: None, start_state)
                return (time.perf_counter() - start) / len(counted)
            finally:
                optimisers.threadpool_limits = limits

        recording = Recording(evaluator.evaluation)
        for round_ in range(args.rounds):
            evaluator.evaluation = recording if round_ == 0 else recording.evaluation
            for i in range(10):
                start = time.perf_counter()
                evaluator.loss(x + i)
                evaluator.grads(x + i)
                bare.append(time.perf_counter() - start)
            if round_ == 0:
                recording.calls.clear()  # only the L-BFGS run's evaluations are replayed
            engine.append(lbfgs_run(1))
            if round_ == 0:
                evaluator.evaluation = recording.evaluation
                every_core.append(lbfgs_run(None))
    alone = replay(recording.calls, content.astype(np.float64).ravel(), recipe, args.evaluations)
    b = float(np.median(bare))
    print(f"preview objective, {content.shape[1]}×{content.shape[0]} (n = {x.size}), {args.evaluations} L-BFGS-B "
          f"evaluations per run, m = {recipe.lbfgs_memory}, {args.rounds} interleaved rounds (medians)")
    print(f"{'':44} {'s/eval':>8} {'÷ bare':>7}")
    print(f"{'bare evaluation (one session.run)':44} {b:8.3f} {1:7.2f}")
    for label, values in (("L-BFGS-B, scipy's BLAS on one thread (engine)", engine),
                          ("L-BFGS-B, scipy's BLAS on every core", every_core)):
        print(f"{label:44} {np.median(values):8.3f} {np.median(values) / b:7.2f}")
    print(f"{'scipy alone (the run replayed, no network)':44} {alone:8.3f} {alone / b:7.2f}")
    print(f"floor for any driver of scipy's L-BFGS-B: (bare + scipy alone) ÷ bare = {(b + alone) / b:.2f}; "
          f"the engine's ratio {np.median(engine) / b:.2f}, target 1.10")


if __name__ == "__main__":
    main()
