#!/usr/bin/env python
"""How many L-BFGS evaluations reach the loss that Adam (seed 000) and normalised descent (seed 002) reach?

  python bench/quality.py                                  # 1000 Adam steps, 1000 descent steps, L-BFGS
  python bench/quality.py --adam-steps 300 --gd-steps 300  # shorter
  nohup python bench/quality.py > quality.log 2>&1 &       # the full run takes a while on 2 shared cores

One objective for all three: the real shallow one, recipes.RECIPES["preview"] (content block3_conv2, mean;
style block1_conv1 .. block3_conv1, Gram ÷ C·H·W, sum, layer weights 1; content weight 1, style weight 0.1;
no TV), VGG19 blocks 1-3 from the genuine partial weights (vgg19_partial_block1-3.npz), Tübingen and Starry
Night from shared/images sized by the recipe (long side 320 px, Lanczos). Every optimiser starts from the
content image and is scored on the same total loss; only the optimiser fields of the recipe change:

  Adam     seed 000's settings: learning rate 5, beta1 0.99, epsilon 0.1 (beta2 0.999), no clip, --adam-steps.
  descent  seed 002's update: x ← x − 10 · g / (std(g) + 1e-8), clipped to 0..255, --gd-steps (seed 002's
           adaptive loss normalisation is not used: it would change the objective).
  L-BFGS   the preview recipe's: scipy L-BFGS-B, pixel bounds 0..255, no early stop, ONE run of up to
           --lbfgs-evals evaluations (no restarts).

Each optimiser's target is the lowest total loss it measured (the image every recipe keeps: seed 000 keeps
the best). Reported: for each target, the number of L-BFGS evaluations after which L-BFGS's best loss is at
or below it; and the other way round, the steps Adam and descent needed to reach L-BFGS's loss after 150
evaluations (if they ever did). Writes --json (default bench/results/quality.json) with the loss curves.
"""
import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
TARGET_EVALUATIONS = 150


def recipes_for(args):
    from legacy_nst import recipes

    base = dataclasses.replace(recipes.get("preview"), size=args.size, init="content", keep="best")
    return {
        "adam": dataclasses.replace(base, optimizer="adam", iterations=args.adam_steps, learning_rate=5.0,
                                    beta1=0.99, beta2=0.999, epsilon=0.1, clip=False),
        "gd": dataclasses.replace(base, optimizer="gd", iterations=args.gd_steps, learning_rate=10.0,
                                  gd_norm="std", gd_eps=1e-8, clip=True, adaptive=False),
        "lbfgs": dataclasses.replace(base, optimizer="lbfgs", iterations=1, maxfun=args.lbfgs_evals,
                                     lbfgs_bounds=True, lbfgs_stop_early=False),
    }


def run(recipe, content, style, params, label, stop_below=None, progress=100):
    """Every evaluation's total loss, in order; stops early only when stop_below says so (L-BFGS)."""
    from legacy_nst.transfer import Transfer, size_images

    recipe = recipe.check()
    sized_content, sized_styles = size_images(recipe, content, [style])
    transfer = Transfer(recipe, sized_content, sized_styles, params, device="cpu")
    totals, t0 = [], time.perf_counter()
    try:
        for step in transfer.steps():
            if step.boundary and recipe.optimizer == "lbfgs":
                continue  # the end-of-run report repeats an evaluation already counted
            totals.append(step.total)
            if not math.isfinite(step.total):
                break
            if len(totals) % progress == 0:
                print(f"  {label}: {len(totals)} evaluations, best {min(totals):.6g}, "
                      f"{(time.perf_counter() - t0) / len(totals):.3f} s/evaluation", flush=True)
            if stop_below is not None and len(totals) >= TARGET_EVALUATIONS and min(totals) <= stop_below:
                break
    finally:
        transfer.close()
    seconds = time.perf_counter() - t0
    return {"recipe": dataclasses.asdict(recipe), "shape": list(sized_content.shape), "totals": totals,
            "evaluations": len(totals), "best": float(np.min(totals)), "final": float(totals[-1]),
            "initial": float(totals[0]), "seconds": seconds, "seconds_per_evaluation": seconds / len(totals)}


def evaluations_to_reach(totals, target):
    """1-based count of evaluations after which the running best is at or below target (None: never)."""
    best = np.minimum.accumulate(np.asarray(totals, np.float64))
    hits = np.nonzero(best <= target)[0]
    return int(hits[0]) + 1 if hits.size else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adam-steps", type=int, default=1000)
    p.add_argument("--gd-steps", type=int, default=1000)
    p.add_argument("--lbfgs-evals", type=int, default=1000,
                   help="L-BFGS budget; it stops once it is below every other optimiser's best (default 1000)")
    p.add_argument("--lbfgs-full", action="store_true", help="run all --lbfgs-evals even after both targets")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--content", default=str(SHARED / "images" / "tubingen.jpg"))
    p.add_argument("--style", default=str(SHARED / "images" / "starry_night.jpg"))
    p.add_argument("--weights", default=str(SHARED / "weights" / "vgg19_partial_block1-3.npz"))
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "quality.json"))
    args = p.parse_args(argv)

    import legacy_nst  # noqa: F401  (quiets TensorFlow's start-up)
    from legacy_nst import images, weights

    content, style = images.load_image(args.content), images.load_image(args.style)
    chosen = recipes_for(args)
    params = weights.load_weights(args.weights, "vgg19", chosen["lbfgs"].check().layers)
    results = {}
    for name, label in (("adam", "Adam (seed 000)"), ("gd", "normalised descent (seed 002)")):
        print(f"{label}: {chosen[name].iterations} steps", flush=True)
        results[name] = run(chosen[name], content, style, params, label)
    stop = None if args.lbfgs_full else min(results[n]["best"] for n in ("adam", "gd"))
    print(f"L-BFGS: up to {args.lbfgs_evals} evaluations", flush=True)
    results["lbfgs"] = run(chosen["lbfgs"], content, style, params, "L-BFGS", stop_below=stop, progress=25)

    lb = results["lbfgs"]["totals"]
    at_target = float(np.min(lb[:TARGET_EVALUATIONS]))
    summary = {"lbfgs_best_after_150": at_target}
    for name in ("adam", "gd"):
        r = results[name]
        r["lbfgs_evaluations_to_reach_best"] = evaluations_to_reach(lb, r["best"])
        r["lbfgs_evaluations_to_reach_final"] = evaluations_to_reach(lb, r["final"])
        r["steps_to_reach_lbfgs_150"] = evaluations_to_reach(r["totals"], at_target)
        summary[f"lbfgs_evaluations_to_{name}_best"] = r["lbfgs_evaluations_to_reach_best"]
    n = summary["lbfgs_evaluations_to_adam_best"]
    summary["target"] = f"L-BFGS reaches Adam's {results['adam']['evaluations']}-step loss in <= {TARGET_EVALUATIONS} evaluations"
    summary["target_met"] = n is not None and n <= TARGET_EVALUATIONS

    shape = results["lbfgs"]["shape"]
    print(f"\nObjective: preview recipe on {Path(args.content).name} + {Path(args.style).name}, "
          f"{shape[1]} × {shape[0]} px, VGG19 blocks 1-3 (genuine partial weights); initial total "
          f"{results['lbfgs']['initial']:.6g} for all three")
    print(f"{'optimiser':34s} {'evals':>6s} {'best total':>12s} {'final':>12s} {'s/eval':>7s} "
          f"{'L-BFGS evals to its best':>25s} {'its steps to L-BFGS@150':>24s}")
    for name, label in (("adam", "Adam (seed 000: lr 5, β1 0.99)"), ("gd", "normalised descent (seed 002)"),
                        ("lbfgs", "L-BFGS-B (preview)")):
        r = results[name]
        reach = r.get("lbfgs_evaluations_to_reach_best", "")
        back = r.get("steps_to_reach_lbfgs_150", "")
        print(f"{label:34s} {r['evaluations']:6d} {r['best']:12.6g} {r['final']:12.6g} "
              f"{r['seconds_per_evaluation']:7.3f} {('never' if reach is None else str(reach)):>25s} "
              f"{('never' if back is None else str(back)):>24s}")
    print(f"L-BFGS best after {TARGET_EVALUATIONS} evaluations: {at_target:.6g}")
    print(f"target ({summary['target']}): {'met' if summary['target_met'] else 'NOT met'}")
    out = {"args": vars(args), "summary": summary, "results": results}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
