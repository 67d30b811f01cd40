"""Calibrate legacy_nst.runner.memory: measure peak resident memory of the real engine and fit the model's constants.

    python bench/memory.py                  # all measurements and the fit (~25 min on 2 busy cores)
    python bench/memory.py --parts tiled    # only some of: optimisers, engine, tiled (results merged into
                                            # bench/results/memory.json)

1. Optimisers: the real LBFGS and ScaledStepDescent classes (legacy_nst.engine.optimisers) driven for 40
   evaluations by a stand-in session whose "network" is an ill-conditioned quadratic (so L-BFGS fills all
   m = 10 correction pairs) on a 1024 × 1024 image: (peak − peak before) / (8 · 3 · H · W) = float64 vectors.
   (Adam keeps its image, m and v in the graph: counted in legacy_nst.runner.memory, not measured.)
2. Engine: bench/tiling.py's children in fresh processes (VmHWM): Transfer + its Evaluator (no scipy state)
   for tf-eager-blog (VGG19 to block5_conv2, synthetic weights) and preview (to block3_conv2, genuine
   partial weights) at 128, 256, 512 and 1024 px (long side); least squares of
       peak − content targets = BASE + WEIGHT_COPIES · weights + ACTIVATION_COPIES · activations.
3. Tiled: TiledObjective children at 1024 and 2048 px (preview, 512 px tiles): what the model with one
   tile's activations leaves over, per float32 image-sized array.
4. Verify (`--parts verify`): whole user runs, `legacy_nst.run(Job(...))` with the result, its losses, plot
   and settings written, in fresh processes, over a grid of recipes (preview on the genuine partial VGG19,
   tf-eager-blog on the whole network), optimisers (L-BFGS with its history filled, Adam, descent), sizes
   and tiles; prints legacy_nst.runner.memory's estimate (the bound runs are accepted or refused on) beside the
   measured peak, and the address space it mapped beside the bound `ulimit -v` is judged by (memory.py's
   ADDRESS_* constants). Every row must read at most 1 in both.
tests/runner/test_memory.py checks the sum against whole runs (Transfer.steps, the real L-BFGS) at other sizes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PARTIAL = ROOT.parent / "shared" / "weights" / "vgg19_partial_block1-3.npz"
IMAGES = ROOT.parent / "shared" / "images"
GIB = 1024**3
SIDE = 1024  # image side of the optimiser measurement


def optimiser_child(kind):
    """Print the float64 image-sized vectors `kind` holds at its peak, measured on the real class."""
    import dataclasses

    import tensorflow as tf

    from legacy_nst import recipes
    from legacy_nst.engine import optimisers
    from legacy_nst.runner import memory

    shape = (SIDE, SIDE, 3)
    curvature = np.logspace(0, 4, int(np.prod(shape))).astype(np.float32).reshape(shape)
    x0 = np.random.default_rng(0).uniform(0, 255, shape)

    class Session:  # stands in for the graph: total, terms and gradient of Σ c (x − 100)² / 2
        def run(self, fetches, feed):
            image = next(iter(feed.values()))[0]
            gradient = curvature * (image - 100.0)
            return (np.float32(np.sum(gradient * (image - 100.0)) / 2), np.zeros(3, np.float32), np.ones(3, np.float32),
                    gradient[None])

    recipe = dataclasses.replace(recipes.get("preview"), optimizer="descent" if kind == "descent" else "lbfgs",
                                 lbfgs_bounds=kind == "lbfgs+bounds", iterations=40,
                                 learning_rate=1.0)
    with tf.Graph().as_default():
        optimiser = optimisers.OPTIMIZER_CLASSES[recipe.optimizer](recipe, x0)
        objective = type("Objective", (), {"total": None, "terms": None, "gradient": None, "adjust": None,
                                           "names": ("content", "style", "tv")})
        optimiser.attach(Session(), objective)
        before = memory.peak_rss_bytes()
        counted = []

        def on_evaluation(measurement):
            counted.append(1)
            if len(counted) >= 40:
                raise KeyboardInterrupt  # enough evaluations: stop from inside scipy

        try:
            optimiser.run(on_evaluation, lambda *a: None)
        except KeyboardInterrupt:
            pass
    print(json.dumps({"kind": kind, "vectors": (memory.peak_rss_bytes() - before) / (8 * x0.size)}))


def child(args):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{args}: failed\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_tiling_child(mode, recipe, size, weights_path, option, evaluations=2):
    with tempfile.TemporaryDirectory() as work:
        return child([str(ROOT / "bench" / "tiling.py"), "--child", mode, recipe, str(size), str(weights_path),
                      str(option), str(evaluations), str(Path(work) / "result.npz")])


def fit_engine(report):
    from legacy_nst import recipes
    from legacy_nst.runner import memory
    from legacy_nst.vgg import architecture

    rows = []
    for name, weights_path in {"tf-eager-blog": "synthetic", "preview": PARTIAL}.items():
        recipe = recipes.get(name).check()
        deepest = architecture.deepest_layer(recipe.network, recipe.layers)
        for size in (128, 256, 512, 1024):
            result = run_tiling_child("untiled", name, size, weights_path, 0)
            h, w = result["shape"]
            rows.append({"recipe": name, "size": size, "shape": [h, w], "peak_rss": result["peak_rss"],
                         "weights": memory.weight_bytes(recipe.network, deepest),
                         "activations": memory.activation_bytes(recipe.network, deepest, h, w),
                         "targets": sum(memory.feature_bytes(recipe.network, l, h, w)
                                        for l in recipe.content_layers)})
            print(f"untiled {name} {h}×{w}: peak {result['peak_rss'] / GIB:.3f} GiB", flush=True)
    design = np.array([[1.0, r["weights"], r["activations"]] for r in rows])
    target = np.array([r["peak_rss"] - r["targets"] for r in rows], np.float64)
    (base, weight_copies, activation_copies), *_ = np.linalg.lstsq(design, target, rcond=None)
    report["engine"] = rows
    report["engine_fit"] = {"BASE": base, "WEIGHT_COPIES": weight_copies, "ACTIVATION_COPIES": activation_copies}


def fit_tiled(report):
    """TILED_IMAGE_ARRAYS: what the engine's fit leaves over in tiled runs, per float32 image-sized array."""
    from legacy_nst import recipes
    from legacy_nst.runner import memory
    from legacy_nst.vgg import architecture

    fit = report["engine_fit"]
    recipe = recipes.get("preview").check()
    deepest = architecture.deepest_layer(recipe.network, recipe.layers)
    rows = []
    for size in (1024, 2048):
        result = run_tiling_child("tiled", "preview", size, PARTIAL, 512)
        h, w = result["shape"]
        tile = memory.tile_input(recipe.network, deepest, 512, h, w)
        model = (fit["BASE"] + fit["WEIGHT_COPIES"] * memory.weight_bytes(recipe.network, deepest)
                 + fit["ACTIVATION_COPIES"] * memory.activation_bytes(recipe.network, deepest, *tile)
                 + sum(memory.feature_bytes(recipe.network, l, h, w) for l in recipe.content_layers))
        rows.append({"size": size, "shape": [h, w], "peak_rss": result["peak_rss"], "model_without_arrays": model})
        print(f"tiled preview {h}×{w}: peak {result['peak_rss'] / GIB:.3f} GiB", flush=True)
    left = np.array([r["peak_rss"] - r["model_without_arrays"] for r in rows], np.float64)
    arrays = np.array([12.0 * r["shape"][0] * r["shape"][1] for r in rows])
    report["tiled"] = rows
    report["tiled_fit"] = {"TILED_IMAGE_ARRAYS": float(left @ arrays / (arrays @ arrays))}


FULL = ROOT.parent / "shared" / "weights" / "vgg19_full_q8.npz"
# (recipe, weights, optimizer, long side px, tile px or 0, evaluations): L-BFGS runs 12 evaluations so that
# its m = 10 correction pairs are all held at the peak
VERIFY_GRID = [("preview", PARTIAL, "lbfgs", 256, 0, 12), ("preview", PARTIAL, "lbfgs", 1024, 0, 12),
               ("preview", PARTIAL, "adam", 1024, 0, 12), ("preview", PARTIAL, "descent", 1024, 0, 12),
               ("tf-eager-blog", FULL, "lbfgs", 256, 0, 12), ("tf-eager-blog", FULL, "lbfgs", 512, 0, 12),
               ("tf-eager-blog", FULL, "adam", 512, 0, 12), ("tf-eager-blog", FULL, "descent", 512, 0, 12),
               ("preview", PARTIAL, "adam", 2048, 0, 6),  # large and untiled: where Adam met the OOM killer
               ("preview", PARTIAL, "lbfgs", 2048, 512, 12)]


def verify_child(recipe_name, weights_path, optimizer, size, tile, evaluations):
    """One user run in this fresh process; prints its peak RSS and the estimate the run loop judged it by."""
    import tempfile

    from legacy_nst import Job, Output, Style, run
    from legacy_nst.runner import memory

    size, tile, evaluations = int(size), int(tile) or None, int(evaluations)
    judged = memory.available_bytes
    mapped_when_judged = []  # VmSize when the run loop asks what is available (after TensorFlow's import)

    def available_bytes():
        mapped_when_judged.append(memory.mapped_bytes())
        return judged()

    memory.available_bytes = available_bytes
    overrides = {"size": size, "optimizer": optimizer, "iterations": evaluations}
    if optimizer == "descent":
        overrides["learning_rate"] = 1.0
    with tempfile.TemporaryDirectory() as out:
        job = Job(content=str(IMAGES / "tubingen.jpg"), styles=[Style(str(IMAGES / "starry_night.jpg"))],
                  recipe=recipe_name, weights=str(weights_path), overrides=overrides, tile=tile,
                  output=Output(str(Path(out) / "result.png"), print_every=0))
        result = run(job)
    recipe = job.resolved_recipe()
    from legacy_nst import images
    from legacy_nst.runner import sizing

    shape, styles = sizing.sized_shapes(recipe, images.load_image(job.content).shape,
                                        [images.load_image(job.styles[0].image).shape])
    h, w = max([shape] + styles, key=lambda s: s[0] * s[1])  # as the run loop judges a level
    estimate = memory.estimate_bytes(recipe.network, recipe.layers, h, w, recipe.optimizer, tile,
                                     recipe.content_layers, recipe.lbfgs_bounds)
    print(json.dumps({"peak_rss": memory.peak_rss_bytes(), "estimate": estimate, "shape": [h, w],
                      "peak_mapped": memory.peak_mapped_bytes(), "mapped_when_judged": mapped_when_judged[0],
                      "evaluations": result.evaluations, "stopped": result.stopped}))


def verify(report):
    import platform

    flags = open("/proc/cpuinfo").read()
    kind = "AVX-512" if " avx512f" in flags else "AVX2"
    from legacy_nst import engine
    from legacy_nst.runner import memory

    rows = []
    per_byte = memory.ADDRESS_SHARED + memory.ADDRESS_PER_THREAD * engine.default_threads()
    print(f"{'recipe':<14} {'optimizer':<8} {'px':>9} {'tile':>5} {'estimate GiB':>12} {'measured GiB':>12} "
          f"{'measured/estimate':>17} {'mapped/address bound':>20}", flush=True)
    for recipe_name, weights_path, optimizer, size, tile, evaluations in VERIFY_GRID:
        result = child([__file__, "--verify-child", recipe_name, str(weights_path), optimizer, str(size), str(tile),
                        str(evaluations)])
        ratio = result["peak_rss"] / result["estimate"]
        mapped = (result["peak_mapped"] - result["mapped_when_judged"]) / (
            per_byte * result["estimate"] + memory.ADDRESS_OFFSET)
        h, w = result["shape"]
        rows.append({"recipe": recipe_name, "optimizer": optimizer, "size": size, "tile": tile, **result,
                     "ratio": ratio, "mapped_ratio": mapped})
        print(f"{recipe_name:<14} {optimizer:<8} {f'{w}x{h}':>9} {tile or '-':>5} {result['estimate'] / GIB:12.3f} "
              f"{result['peak_rss'] / GIB:12.3f} {ratio:17.3f}{'' if ratio <= 1 else '  OVER'} {mapped:20.3f}"
              f"{'' if mapped <= 1 else '  OVER'}", flush=True)
    worst = max(rows, key=lambda r: r["ratio"])
    print(f"CPU: {platform.processor() or platform.machine()} ({kind}); worst measured/estimate {worst['ratio']:.3f} "
          f"({worst['recipe']} {worst['optimizer']} {worst['size']} px)")
    report.setdefault("verify", {})[kind] = rows


PARTS = {"optimisers": None, "engine": fit_engine, "tiled": fit_tiled, "verify": verify}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help="which measurements (comma-separated)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "memory.json"))
    parser.add_argument("--optimiser-child", help=argparse.SUPPRESS)
    parser.add_argument("--verify-child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.optimiser_child:
        return optimiser_child(args.optimiser_child)
    if args.verify_child:
        return verify_child(*args.verify_child)
    path = Path(args.json)
    report = json.loads(path.read_text()) if path.is_file() else {}
    parts = args.parts.split(",")
    if "optimisers" in parts:
        report["optimisers"] = {}
        for kind in ("lbfgs", "lbfgs+bounds", "descent"):
            report["optimisers"][kind] = child([__file__, "--optimiser-child", kind])["vectors"]
    for part in parts:
        if PARTS[part] is not None:
            PARTS[part](report)
    print(json.dumps({k: v for k, v in report.items() if k in ("optimisers", "engine_fit", "tiled_fit")}, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
