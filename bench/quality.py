#!/usr/bin/env python
"""How many L-BFGS evaluations reach the loss that Adam (seed 000) and normalised descent (seed 002) reach?

  python bench/quality.py                                      # 1000 Adam steps, 1000 descent steps, L-BFGS
  python bench/quality.py --adam-steps 300 --descent-steps 300 # shorter
  nohup python bench/quality.py > quality.log 2>&1 &           # the full run takes a while on 2 shared cores

One objective for all three: the real shallow one, recipes.RECIPES["preview"] (content block3_conv2, mean;
style block1_conv1 .. block3_conv1, Gram ÷ C·H·W, sum, layer weights 1; content weight 1, style weight 0.1;
no TV), VGG19 blocks 1-3 from the genuine partial weights (vgg19_partial_block1-3.npz), Tübingen and Starry
Night from shared/images sized by the recipe (long side 320 px, Lanczos). Every optimiser starts from the
content image and is scored on the same total loss; only the optimiser fields of the recipe change (as the
job's overrides; each optimiser is one `legacy_nst.run(Job(...))`):

  Adam     seed 000's settings: learning rate 5, beta1 0.99, epsilon 0.1 (beta2 0.999), no clip, --adam-steps.
  descent  seed 002's update: x ← x − 10 · g / (std(g) + 1e-8), clipped to 0..255, --descent-steps (seed
           002's adaptive loss normalisation is not used: it would change the objective).
  L-BFGS   the preview recipe's: scipy L-BFGS-B, pixel bounds 0..255, no early stop, ONE fmin_l_bfgs_b call
           of up to --lbfgs-evals evaluations (no restarts).

Each optimiser's target is the lowest total loss it measured (the image every recipe keeps: seed 000 keeps
the best). Reported: for each target, the number of L-BFGS evaluations after which L-BFGS's best loss is at
or below it; and the other way round, the steps Adam and descent needed to reach L-BFGS's loss after 150
evaluations (if they ever did). Writes --json (default bench/results/quality.json) with the loss curves.
"""
import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
TARGET_EVALUATIONS = 150
LABELS = {"adam": "Adam (seed 000: lr 5, β1 0.99)", "descent": "normalised descent (seed 002)",
          "lbfgs": "L-BFGS-B (preview)"}


def overrides_for(args):
    """The recipe fields each optimiser's job changes in the preview recipe."""
    base = {"size": args.size, "init": "content", "result_image": "best"}
    return {
        "adam": dict(base, optimizer="adam", iterations=args.adam_steps, learning_rate=5.0, beta1=0.99,
                     beta2=0.999, epsilon=0.1, clip=False),
        "descent": dict(base, optimizer="descent", iterations=args.descent_steps, learning_rate=10.0,
                        descent_norm="std", descent_eps=1e-8, clip=True, adaptive_weights=False),
        "lbfgs": dict(base, optimizer="lbfgs", iterations=args.lbfgs_evals, lbfgs_maxfun=0, lbfgs_bounds=True,
                      lbfgs_stop_early=False),
    }


class _Reached(Exception):
    """Raised from the event callback to end the L-BFGS run once it is below every other optimiser's best."""


def optimise(args, name, stop_below=None, progress=100):
    """One run of the preview recipe with `name`'s overrides: every evaluation's total loss, in order."""
    from legacy_nst import Evaluation, Job, run

    job = Job(content=args.content, styles=[args.style], recipe="preview", overrides=overrides_for(args)[name],
              weights=args.weights, device="cpu")
    evaluations = []

    def on_event(event):
        if not isinstance(event, Evaluation):
            return
        evaluations.append(event)
        n = len(evaluations)
        if n % progress == 0:
            print(f"  {name}: {n} evaluations, best {min(e.total for e in evaluations):.6g}, "
                  f"{seconds_per_evaluation(evaluations):.3f} s/evaluation", flush=True)
        if stop_below is not None and n >= TARGET_EVALUATIONS and min(e.total for e in evaluations) <= stop_below:
            raise _Reached

    result = None
    try:
        result = run(job, on_event)
    except _Reached:
        pass
    totals = [e.total for e in evaluations]
    return {"overrides": overrides_for(args)[name], "shape": list(evaluations[0].image.shape), "totals": totals,
            "evaluations": len(totals), "best": float(np.min(totals)), "final": float(totals[-1]),
            "initial": float(totals[0]), "stopped": result.stopped if result else "reached both targets",
            "seconds": evaluations[-1].seconds, "seconds_per_evaluation": seconds_per_evaluation(evaluations)}


def seconds_per_evaluation(evaluations):
    """Between the first and the last evaluation, so the graph build and the targets do not count."""
    if len(evaluations) < 2:
        return math.nan
    return (evaluations[-1].seconds - evaluations[0].seconds) / (len(evaluations) - 1)


def evaluations_to_reach(totals, target):
    """1-based count of evaluations after which the running best is at or below target (None: never)."""
    best = np.minimum.accumulate(np.asarray(totals, np.float64))
    hits = np.nonzero(best <= target)[0]
    return int(hits[0]) + 1 if hits.size else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adam-steps", type=int, default=1000)
    p.add_argument("--descent-steps", "--gd-steps", type=int, default=1000, dest="descent_steps")
    p.add_argument("--lbfgs-evals", type=int, default=1000,
                   help="L-BFGS budget; it stops once it is below every other optimiser's best (default 1000)")
    p.add_argument("--lbfgs-full", action="store_true", help="run all --lbfgs-evals even after both targets")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--content", default=str(SHARED / "images" / "tubingen.jpg"))
    p.add_argument("--style", default=str(SHARED / "images" / "starry_night.jpg"))
    p.add_argument("--weights", default=str(SHARED / "weights" / "vgg19_partial_block1-3.npz"))
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "quality.json"))
    args = p.parse_args(argv)

    results = {}
    for name, steps in (("adam", args.adam_steps), ("descent", args.descent_steps)):
        print(f"{LABELS[name]}: {steps} steps", flush=True)
        results[name] = optimise(args, name)
    stop = None if args.lbfgs_full else min(results[n]["best"] for n in ("adam", "descent"))
    print(f"{LABELS['lbfgs']}: up to {args.lbfgs_evals} evaluations", flush=True)
    results["lbfgs"] = optimise(args, "lbfgs", stop_below=stop, progress=25)

    lb = results["lbfgs"]["totals"]
    at_target = float(np.min(lb[:TARGET_EVALUATIONS]))
    summary = {"lbfgs_best_after_150": at_target}
    for name in ("adam", "descent"):
        r = results[name]
        r["lbfgs_evaluations_to_reach_best"] = evaluations_to_reach(lb, r["best"])
        r["lbfgs_evaluations_to_reach_final"] = evaluations_to_reach(lb, r["final"])
        r["steps_to_reach_lbfgs_150"] = evaluations_to_reach(r["totals"], at_target)
        summary[f"lbfgs_evaluations_to_{name}_best"] = r["lbfgs_evaluations_to_reach_best"]
    n = summary["lbfgs_evaluations_to_adam_best"]
    summary["target"] = (f"L-BFGS reaches Adam's {results['adam']['evaluations']}-step loss in <= "
                         f"{TARGET_EVALUATIONS} evaluations")
    summary["target_met"] = n is not None and n <= TARGET_EVALUATIONS

    shape = results["lbfgs"]["shape"]
    print(f"\nObjective: preview recipe on {Path(args.content).name} + {Path(args.style).name}, "
          f"{shape[1]} × {shape[0]} px, VGG19 blocks 1-3 (genuine partial weights); initial total "
          f"{results['lbfgs']['initial']:.6g} for all three")
    print(f"{'optimiser':34s} {'evals':>6s} {'best total':>12s} {'final':>12s} {'s/eval':>7s} "
          f"{'L-BFGS evals to its best':>25s} {'its steps to L-BFGS@150':>24s}")
    for name, label in LABELS.items():
        r = results[name]
        reach = r.get("lbfgs_evaluations_to_reach_best", "")
        back = r.get("steps_to_reach_lbfgs_150", "")
        print(f"{label:34s} {r['evaluations']:6d} {r['best']:12.6g} {r['final']:12.6g} "
              f"{r['seconds_per_evaluation']:7.3f} {('never' if reach is None else str(reach)):>25s} "
              f"{('never' if back is None else str(back)):>24s}")
    print(f"L-BFGS best after {min(len(lb), TARGET_EVALUATIONS)} evaluations: {at_target:.6g}")
    print(f"target ({summary['target']}): {'met' if summary['target_met'] else 'NOT met'}")
    out = {"args": vars(args), "summary": summary, "results": results}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
