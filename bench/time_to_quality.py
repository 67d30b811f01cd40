#!/usr/bin/env python
"""Wall time to quality: how long each method takes to reach (a) the loss of seed 000's 1000 Adam steps and
(b) the loss of 1000 single-scale L-BFGS evaluations, on the real shallow objective, graph building included.

  python bench/time_to_quality.py --sizes 128 --adam-steps 30 --lbfgs-evals 30       # smoke (< 2 min)
  python bench/time_to_quality.py --sizes 512                                         # the issue's budgets
  python bench/time_to_quality.py --sizes 1024 --adam-steps 200 --lbfgs-evals 200     # reduced budgets

The objective is the preview recipe's (recipes.RECIPES["preview"]) at full resolution: content block3_conv2,
mean of squares; style block1_conv1, block2_conv1, block3_conv1, Gram ÷ C·H·W, sum of squared differences,
layer weights 1; content weight 1, style weight 0.1; VGG19 blocks 1-3 from the genuine partial weights
(../shared/weights/vgg19_partial_block1-3.npz); Tübingen × Starry Night from ../shared/images, both sized
to a long side of SIZE px (Lanczos, the preview recipe's own sizing). Every method starts from the content.

Methods (--methods; `eager` and `lbfgs` always run first: they set the targets):
  eager    seed 000's formulation, written here independently of the engine: Keras VGG19 layers under
           tf.GradientTape in eager mode, the image a tf.Variable in Caffe space, the preview losses in tf
           ops, tf.compat.v1.train.AdamOptimizer(lr 5, beta1 0.99, epsilon 0.1), no clip, --adam-steps steps.
  lbfgs    the engine, one scale, the preview recipe's L-BFGS-B (pixel bounds, one fmin_l_bfgs_b call of
           --lbfgs-evals evaluations).
  adam     the engine, one scale, Adam with seed 000's settings (--adam-steps).
  descent  the engine, one scale, seed 002's normalised step (10 · g / std(g), clip 0..255) without its
           adaptive weights (--adam-steps steps).
  auto     the engine coarse to fine, Job(schedule="auto") (job.auto_levels: size/4, size/2, size with 20/30/50 %
           of the budget), budget --c2f-evals (default: --lbfgs-evals), each level the preview L-BFGS-B.
  auto:N   the same with a budget of N evaluations.
  c2f:F×N,...   an explicit schedule: levels of F × SIZE px with N evaluations each, e.g. c2f:0.25x50,0.5x100,1x850.

Time runs from before the method builds anything (for the engine: before `legacy_nst.run(Job(...))`, so
loading, sizing, graph building and every level count). The loss is always the full-resolution objective on
the image the user gets: for coarse to fine only the last level's Evaluation events count (LevelStarted says
which level runs). A method's time to a target is the wall time of the first evaluation at or below it
(within --rtol, 1e-4: the engine's Adam follows seed 000's trajectory and ends a few float32 ulps apart).
Methods other than the two references stop (by raising from the event callback) once they have reached both
targets or run longer than --time-cap × the longer reference time; "> T" in the table means not reached.

--objective whole (issue 23): tf-eager-blog's objective, VGG19 to block5_conv2 on vgg19_full_q8.npz (content
block5_conv2, style block1..5_conv1, Gram ÷ H·W, means, weights 1e3 / 1e-2), against the PyTorch peer
(bench/peers.py's Torch, channels_last; needs the bench extra). Target (a) is still seed 000's Adam (its own
objective now); target (b) is the best loss of PyTorch's LBFGS (strong-Wolfe line search, --lbfgs-evals
evaluations: method torch-lbfgs); the default methods are the engine's L-BFGS-B (lbfgs) and PyTorch's Adam
with seed 000's settings (torch-adam), so each target has the peer's own time next to the engine's:
  python bench/time_to_quality.py --objective whole --sizes 512                 # the issue's budgets (hours)
  python bench/time_to_quality.py --objective whole --sizes 256 --adam-steps 100 --lbfgs-evals 100  # reduced
Writes --json (default bench/results/time_to_quality.json) with every method's (seconds, total) curve.
"""
import argparse
import gc
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
# --objective: the recipe, its losses as the eager reference writes them, and the weights it runs on
OBJECTIVES = {
    "shallow": {"recipe": "preview", "style_layers": ("block1_conv1", "block2_conv1", "block3_conv1"),
                "content_layer": "block3_conv2", "gram": "elements", "style_form": "sum", "style_layer_weight": 1.0,
                "content_weight": 1.0, "style_weight": 0.1, "weights": "vgg19_partial_block1-3.npz",
                "reference_b": "lbfgs"},
    "whole": {"recipe": "tf-eager-blog", "content_layer": "block5_conv2",
              "style_layers": ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
              "gram": "positions", "style_form": "mean", "style_layer_weight": 0.2, "content_weight": 1e3,
              "style_weight": 1e-2, "weights": "vgg19_full_q8.npz", "reference_b": "torch-lbfgs"},
}
PEER_METHODS = ("torch-lbfgs", "torch-adam")
TARGETS = {"size": 512, "a_vs_eager": 0.02, "b_vs_lbfgs": 0.35}  # coarse to fine (auto) ÷ the reference
ENGINE_METHODS = ("lbfgs", "adam", "descent")


class _Stop(Exception):
    """Raised from the event callback: the method has reached every target or ran past the time cap."""


# ------------------------------------------------------------------------------------------- the inputs

def sized_inputs(args, size):
    """Content and style as the preview recipe sizes them (long side `size`, Lanczos), float32 RGB 0..255."""
    from legacy_nst import images, recipes
    from legacy_nst.runner.sizing import size_images

    recipe = recipes.override(recipes.get(OBJECTIVES[args.objective]["recipe"]), size=size)
    content, styles = size_images(recipe, images.load_image(args.content), [images.load_image(args.style)])
    return content, styles[0]


# ------------------------------------------------------------------------- seed 000's eager formulation

def eager_adam(args, size, steps, record):
    """Seed 000's loop (compute_grads under GradientTape, AdamOptimizer.apply_gradients, best loss kept) on
    the --objective's losses, its own code: Keras VGG19 layers loaded with the same weights, tf ops for the
    losses. record(total) is called with each step's loss (of the image before that step's update)."""
    import tensorflow as tf

    from legacy_nst.vgg import weights

    spec = OBJECTIVES[args.objective]
    style_layers, content_layer = spec["style_layers"], spec["content_layer"]
    content, style = sized_inputs(args, size)

    def load_and_process_img(img):
        return tf.keras.applications.vgg19.preprocess_input(np.expand_dims(img, axis=0).copy())

    def get_model():
        vgg = tf.keras.applications.vgg19.VGG19(include_top=False, weights=None)
        for name, (kernel, bias) in weights.load_weights(args.weights, "vgg19", [content_layer]).items():
            vgg.get_layer(name).set_weights([kernel, bias])
        vgg.trainable = False
        outputs = [vgg.get_layer(name).output for name in style_layers + (content_layer,)]
        return tf.keras.models.Model(vgg.input, outputs)

    def gram_matrix(features):  # ÷ C·H·W (shallow: preview's "elements") or ÷ H·W (whole: seed 000's own)
        channels = int(features.shape[-1])
        a = tf.reshape(features, [-1, channels])
        n = tf.shape(a)[0] * (channels if spec["gram"] == "elements" else 1)
        return tf.matmul(a, a, transpose_a=True) / tf.cast(n, tf.float32)

    style_reduce = tf.reduce_sum if spec["style_form"] == "sum" else tf.reduce_mean

    def compute_loss(model, image, gram_targets, content_target):
        outputs = model(image)
        style_score = tf.add_n([spec["style_layer_weight"] * style_reduce(tf.square(gram_matrix(out[0]) - target))
                                for out, target in zip(outputs[:-1], gram_targets)])
        content_score = tf.reduce_mean(tf.square(outputs[-1][0] - content_target))
        return spec["content_weight"] * content_score + spec["style_weight"] * style_score

    model = get_model()
    style_outputs = model(load_and_process_img(style))
    gram_targets = [gram_matrix(out[0]) for out in style_outputs[:-1]]
    content_target = model(load_and_process_img(content))[-1][0]
    image = tf.Variable(load_and_process_img(content), dtype=tf.float32)
    opt = tf.compat.v1.train.AdamOptimizer(learning_rate=5.0, beta1=0.99, epsilon=1e-1)
    best_loss, best_img = math.inf, None
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = compute_loss(model, image, gram_targets, content_target)
        grads = tape.gradient(loss, image)
        opt.apply_gradients([(grads, image)])
        total = float(loss)
        if total < best_loss:  # seed 000 keeps the best image (there: read after the update)
            best_loss, best_img = total, image.numpy()
        record(total)
    del model, opt
    return best_img


# ------------------------------------------------------------------------------------ the PyTorch peer

def torch_method(method, args, size, record):
    """The --objective in PyTorch (bench/peers.py's Torch: the same losses and weights, eager channels_last,
    its fastest eager formulation), from the content, as a PyTorch user would optimise it:
      torch-lbfgs  torch.optim.LBFGS as neural-style-pt sets it (history 100, tolerances off) with the
                   strong-Wolfe line search, max_iter = max_eval = --lbfgs-evals; no pixel bounds (it has none);
      torch-adam   torch.optim.Adam with seed 000's settings (lr 5, betas 0.99/0.999, eps 0.1: PyTorch adds
                   eps after the bias correction, TF1 before), --adam-steps steps.
    record(total) is called with every evaluation's loss."""
    import torch
    from peers import Problem, Torch  # bench/peers.py (bench/ is this script's path)

    from legacy_nst import recipes
    from legacy_nst.vgg import weights

    recipe = recipes.override(recipes.get(OBJECTIVES[args.objective]["recipe"]), size=size, optimizer="lbfgs")
    content, style = sized_inputs(args, size)
    peer = Torch(Problem(args.objective, size, recipe, weights.load_weights(args.weights, recipe.network,
                                                                            recipe.layers), content, style),
                 channels_last=True)
    image = torch.nn.Parameter(peer.image(content).contiguous())  # LBFGS flattens it: NCHW, viewed as channels_last

    def closure():
        opt.zero_grad()
        loss = peer.loss(image.contiguous(memory_format=torch.channels_last))
        loss.backward()
        record(loss.item())
        return loss

    if method == "torch-lbfgs":
        opt = torch.optim.LBFGS([image], lr=1, max_iter=args.lbfgs_evals, max_eval=args.lbfgs_evals,
                                tolerance_grad=-1, tolerance_change=-1, history_size=100,
                                line_search_fn="strong_wolfe")
        opt.step(closure)
    else:
        opt = torch.optim.Adam([image], lr=5.0, betas=(0.99, 0.999), eps=0.1)
        for _ in range(args.adam_steps):
            opt.step(closure)


# ------------------------------------------------------------------------------------------ the engine

def engine_overrides(name, size, args):
    """The recipe fields each single-scale engine method changes in the preview recipe."""
    base = {"size": size, "init": "content", "result_image": "best"}
    return {
        "lbfgs": dict(base, optimizer="lbfgs", iterations=args.lbfgs_evals),
        "adam": dict(base, optimizer="adam", iterations=args.adam_steps, learning_rate=5.0, beta1=0.99,
                     beta2=0.999, epsilon=0.1, clip=False),
        "descent": dict(base, optimizer="descent", iterations=args.adam_steps, learning_rate=10.0,
                        descent_norm="std", descent_eps=1e-8, clip=True, adaptive_weights=False),
    }[name]


def engine_job(method, size, args):
    """The Job for an engine method (single scale, "auto", "auto:N" or "c2f:F×N,...")."""
    from legacy_nst import Job, Level

    common = dict(content=args.content, styles=[args.style], recipe=OBJECTIVES[args.objective]["recipe"],
                  weights=args.weights, device="cpu")
    if method in ENGINE_METHODS:  # one level named explicitly: preview alone would run coarse to fine
        overrides = engine_overrides(method, size, args)
        return Job(overrides=overrides, schedule=[Level(size, overrides["iterations"])], **common)
    overrides = {"size": size, "init": "content", "result_image": "best"}  # preview's L-BFGS-B as it is
    if method == "auto" or method.startswith("auto:"):
        budget = int(method.split(":")[1]) if ":" in method else args.c2f_evals
        return Job(overrides=dict(overrides, iterations=budget), schedule="auto", **common)
    if method.startswith("c2f:"):
        levels = []
        for part in method[4:].split(","):
            fraction, n = part.lower().replace("×", "x").split("x")
            levels.append(Level(max(1, round(float(fraction) * size)), int(n)))
        return Job(overrides=dict(overrides, iterations=levels[-1].iterations), schedule=levels, **common)
    raise SystemExit(f"--methods: unknown method {method!r}")


def run_method(method, size, args, targets=None, cap=math.inf):
    targets = None if targets is None else [t * (1 + args.rtol) for t in targets]
    """One method: its (seconds since its start, total) at each full-resolution evaluation, and the schedule."""
    from legacy_nst import Evaluation, LevelStarted, run

    curve, schedule, level = [], [], {"k": 0, "last": 0}
    best = [math.inf]

    def keep(seconds, total):
        curve.append((seconds, total))
        best[0] = min(best[0], total)
        if targets is not None and (all(best[0] <= t for t in targets) or seconds > cap):
            raise _Stop

    start = time.perf_counter()
    if method == "eager":
        eager_adam(args, size, args.adam_steps, lambda total: keep(time.perf_counter() - start, total))
        schedule = [{"shape": None, "iterations": args.adam_steps}]
        stopped = "finished"
    elif method in PEER_METHODS:
        iterations = args.lbfgs_evals if method == "torch-lbfgs" else args.adam_steps
        schedule = [{"shape": None, "iterations": iterations}]
        try:
            torch_method(method, args, size, lambda total: keep(time.perf_counter() - start, total))
            stopped = "finished"
        except _Stop:
            stopped = "reached the targets" if all(best[0] <= t for t in targets) else "time cap"
    else:
        def on_event(event):
            if isinstance(event, LevelStarted):
                level.update(k=event.level, last=event.levels - 1)
                schedule.append({"shape": list(event.shape), "iterations": event.iterations,
                                 "started": time.perf_counter() - start})
            elif isinstance(event, Evaluation) and event.level == level["last"]:
                keep(time.perf_counter() - start, event.total)

        try:
            stopped = run(engine_job(method, size, args), on_event).stopped
        except _Stop:
            stopped = "reached the targets" if all(best[0] <= t for t in targets) else "time cap"
    seconds = time.perf_counter() - start
    gc.collect()
    return {"method": method, "curve": curve, "schedule": schedule, "seconds": seconds, "stopped": stopped,
            "best": min(t for _, t in curve), "initial": curve[0][1], "final_evaluations": len(curve)}


def time_to(curve, target, rtol):
    """Wall seconds of the first evaluation at or below target × (1 + rtol) (None: never)."""
    return next((s for s, total in curve if total <= target * (1 + rtol)), None)


def seconds_per_evaluation(curve):
    """Between the first and the last full-resolution evaluation (building and coarse levels left out)."""
    return (curve[-1][0] - curve[0][0]) / (len(curve) - 1) if len(curve) > 1 else math.nan


# ------------------------------------------------------------------------------------------- reporting

def measure_size(args, size):
    reference_b = OBJECTIVES[args.objective]["reference_b"]
    print(f"\n=== {size} px: seed 000 eager Adam, {args.adam_steps} steps", flush=True)
    results = {"eager": run_method("eager", size, args)}
    target_a = results["eager"]["best"]
    print(f"    {results['eager']['seconds']:.1f} s, best {target_a:.6g}", flush=True)
    print(f"=== {size} px: {reference_b}, {args.lbfgs_evals} evaluations", flush=True)
    results[reference_b] = run_method(reference_b, size, args)
    target_b = results[reference_b]["best"]
    print(f"    {results[reference_b]['seconds']:.1f} s, best {target_b:.6g}", flush=True)
    ref_a = results["eager"]["seconds"]
    ref_b = time_to(results[reference_b]["curve"], target_b, 0.0)
    cap = args.time_cap * max(ref_a, ref_b)
    for method in args.methods:
        if method in results:
            continue
        print(f"=== {size} px: {method} (stops at both targets or after {cap:.0f} s)", flush=True)
        results[method] = run_method(method, size, args, targets=(target_a, target_b), cap=cap)
        r = results[method]
        print(f"    {r['seconds']:.1f} s, best {r['best']:.6g}, {r['stopped']}", flush=True)
    for r in results.values():
        r["time_to_a"] = time_to(r["curve"], target_a, args.rtol)
        r["time_to_b"] = time_to(r["curve"], target_b, args.rtol)
        r["a_ratio"] = None if r["time_to_a"] is None else r["time_to_a"] / ref_a
        r["b_ratio"] = None if r["time_to_b"] is None else r["time_to_b"] / ref_b
        r["seconds_per_evaluation"] = seconds_per_evaluation(r["curve"])
    return {"size": size, "objective": args.objective, "reference_b": reference_b,
            "target_a": target_a, "target_b": target_b, "reference_a_seconds": ref_a,
            "reference_b_seconds": ref_b, "cap_seconds": cap, "methods": results}


def describe(r):
    if r["method"] == "eager":
        return "seed 000 eager Adam"
    if r["method"] in PEER_METHODS:
        return f"{r['method']} (PyTorch, channels_last)"
    shapes = [f"{s['shape'][1]}:{s['iterations']}" for s in r["schedule"]]
    return f"{r['method']} ({', '.join(shapes)})"


def print_table(m):
    ra, rb = m["reference_a_seconds"], m["reference_b_seconds"]
    print(f"\n{m['objective']} objective, {m['size']} px long side: target (a) = {m['target_a']:.6g} (seed 000's best "
          f"of its steps, {ra:.1f} s), target (b) = {m['target_b']:.6g} ({m['reference_b']}'s best, reached at "
          f"{rb:.1f} s)")
    print("| method (long side:evaluations per level) | s/eval (last level) | best total | to (a) s | ÷ seed 000 "
          f"| to (b) s | ÷ {m['reference_b']} to (b) | ended |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in m["methods"].values():
        def cell(seconds, ratio, r=r):
            if seconds is None:
                return f"> {r['seconds']:.0f}", "never"
            return f"{seconds:.1f}", f"{ratio:.3f}"

        ta, a = cell(r["time_to_a"], r["a_ratio"])
        tb, b = cell(r["time_to_b"], r["b_ratio"])
        print(f"| {describe(r)} | {r['seconds_per_evaluation']:.3f} | {r['best']:.6g} | {ta} | {a} | {tb} | {b} "
              f"| {r['stopped']}, {r['final_evaluations']} evals, {r['seconds']:.0f} s |")
    print("initial total (the content image): " + ", ".join(f"{name} {r['initial']:.6g}" for name, r in
                                                             m["methods"].items()) + " (the same objective)")
    auto = m["methods"].get("auto")
    if auto is not None:
        for key, limit, what in (("a_ratio", TARGETS["a_vs_eager"], "(a) in ≤ 2 % of seed 000's time"),
                                 ("b_ratio", TARGETS["b_vs_lbfgs"], "(b) in ≤ 35 % of L-BFGS's time to (b)")):
            ratio = auto[key]
            verdict = "met" if ratio is not None and ratio <= limit else "NOT met"
            print(f"target at {m['size']} px, auto reaches {what}: "
                  f"{'never' if ratio is None else f'{ratio:.3f}'} -> {verdict}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="512,1024", help="long sides, comma-separated (default 512,1024)")
    p.add_argument("--adam-steps", type=int, default=1000, help="seed 000's steps (and engine Adam/descent's)")
    p.add_argument("--lbfgs-evals", type=int, default=1000, help="single-scale L-BFGS evaluations: target (b)")
    p.add_argument("--c2f-evals", type=int, help="the budget `auto` splits over its levels (--lbfgs-evals)")
    p.add_argument("--objective", choices=OBJECTIVES, default="shallow",
                   help="shallow: the preview recipe's (default); whole: tf-eager-blog's VGG19 to block5_conv2, "
                        "with the PyTorch peer (target (b) then from torch-lbfgs)")
    p.add_argument("--methods", help="methods besides the two references (see the docstring); c2f levels keep "
                                     "their commas (default: shallow adam,descent,auto,auto:300,"
                                     "c2f:0.25x100,0.5x100,1x800; whole lbfgs,torch-adam)")
    p.add_argument("--time-cap", type=float, default=1.0,
                   help="stop a method after this × the longer reference time (seed 000's run, L-BFGS to (b))")
    p.add_argument("--rtol", type=float, default=1e-4,
                   help="a target counts as reached within this relative tolerance: the engine's Adam follows "
                        "seed 000's trajectory, and float32 sums of the two formulations differ in the 5th digit")
    p.add_argument("--content", default=str(SHARED / "images" / "tubingen.jpg"))
    p.add_argument("--style", default=str(SHARED / "images" / "starry_night.jpg"))
    p.add_argument("--weights", help="default: ../shared/weights/vgg19_partial_block1-3.npz (shallow), "
                                     "vgg19_full_q8.npz (whole)")
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "time_to_quality.json"))
    args = p.parse_args(argv)
    args.weights = args.weights or str(SHARED / "weights" / OBJECTIVES[args.objective]["weights"])
    args.methods = split_methods(args.methods or ("lbfgs,torch-adam" if args.objective == "whole" else
                                                  "adam,descent,auto,auto:300,c2f:0.25x100,0.5x100,1x800"))
    args.c2f_evals = args.c2f_evals or args.lbfgs_evals
    sizes = [int(s) for s in args.sizes.split(",")]

    from speed import machine  # bench/speed.py's description of the machine (bench/ is this script's path)

    from legacy_nst.engine import runtime  # noqa: F401  (TensorFlow imported, quietly, before any clock starts)

    if args.objective == "whole":
        import torch  # noqa: F401  (before any clock starts, like TensorFlow)

    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, TF {info['tensorflow']}; load average "
          f"{info['load_average_at_start']}")
    measured = []
    for size in sizes:
        measured.append(measure_size(args, size))
        print_table(measured[-1])
    info["load_average_at_end"] = os.getloadavg()
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    args.methods = ";".join(args.methods)
    path.write_text(json.dumps({"args": vars(args), "machine": info, "sizes": measured}, indent=1))
    for m in measured:
        print_table(m)
    print(f"load average at the end {info['load_average_at_end']}; wrote {path}")


def split_methods(text):
    """Comma-separated methods; a c2f schedule's own comma-separated levels stay with it."""
    methods = []
    for part in text.split(","):
        if methods and methods[-1].startswith("c2f:") and not part.startswith(("c2f:", "auto")) \
                and part not in ENGINE_METHODS + PEER_METHODS and part != "eager":
            methods[-1] += "," + part
        else:
            methods.append(part)
    return methods


if __name__ == "__main__":
    sys.exit(main())
