"""Tiled against untiled evaluation: the same loss and gradient, the time it costs, the memory it saves.

    python bench/tiling.py                     # 1024 px, 512 px tiles: tf-eager-blog on synthetic VGG19,
                                               # preview on the genuine partial VGG19
    python bench/tiling.py --big 4096          # + a whole preview run at a 4096 px long side (--big-evaluations)
    python bench/tiling.py --only big --big 4096 --big-evaluations 6

Every measurement runs in its own child process (a warm-up evaluation, then the timed ones), which reports
its peak RSS (VmHWM) and writes total, terms and gradient to an .npz the parent compares. Untiled:
legacy_nst.engine.level.Transfer (the recipe's optimizer set to lbfgs) evaluated through its L-BFGS Evaluator as
scipy drives it (loss(x) then grads(x)), targets computed untiled. Tiled: legacy_nst.engine.tiling.TiledObjective
with its own tiled targets. Content Tübingen and style Starry Night at the size asked (Lanczos), the image
0.75 · content + 0.25 · U(0, 255) noise (seed 0) so that every term and its gradient are non-zero. The scipy
L-BFGS state is not part of these figures (legacy_nst.runner.memory adds it). bench/memory.py runs the same
children to fit its model.

--big SIZE is a user's run, not a measurement of the objective: `legacy_nst.run(Job(...))` of the preview
recipe at a SIZE px long side with --big-evaluations L-BFGS-B evaluations and the result written to a PNG,
no tile size given, so the run loop decides from legacy_nst.runner.memory's estimate whether and how to tile (and the
LevelStarted event says what it chose); the child reports its peak RSS, the time to the first evaluation
(loading, sizing, the tiled targets) and the seconds per evaluation after it.
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support.py: the synthetic weights
IMAGES = ROOT.parent / "shared" / "images"
PARTIAL = ROOT.parent / "shared" / "weights" / "vgg19_partial_block1-3.npz"
GIB = 1024**3


def setup(recipe_name, size, weights_path):
    """(recipe, params, content, style, x) at a long side of `size` px; weights 'synthetic' or a path."""
    from support import synthetic_weights

    from legacy_nst import images, recipes
    from legacy_nst.runner import sizing
    from legacy_nst.vgg import architecture, weights

    recipe = dataclasses.replace(recipes.get(recipe_name), size=size, size_mode="long-side",
                                 optimizer="lbfgs").check()
    if weights_path == "synthetic":  # only the layers a run reads, as load_weights returns them
        names = architecture.conv_layers(recipe.network)
        deepest = max(names.index(layer) for layer in recipe.layers)
        params = synthetic_weights(recipe.network, seed=0, layers=names[: deepest + 1])
    else:
        params = weights.load_weights(weights_path, recipe.network, recipe.layers)
    content, styles = sizing.size_images(recipe, images.load_image(IMAGES / "tubingen.jpg"),
                                           [images.load_image(IMAGES / "starry_night.jpg")])
    noise = np.random.default_rng(0).uniform(0.0, 255.0, content.shape)
    x = (0.75 * content + 0.25 * noise).astype(np.float32)
    return recipe, params, content, styles[0], x


def child(argv):
    from legacy_nst.engine import level as transfer
    from legacy_nst.engine.tiling import TiledObjective
    from legacy_nst.runner import memory

    mode, recipe_name, size, weights_path, tile, evaluations, out = argv
    size, evaluations = int(size), int(evaluations)
    start = time.perf_counter()
    recipe, params, content, style, x = setup(recipe_name, size, weights_path)
    if mode == "untiled":
        run = transfer.Transfer(recipe, content, [style], params, device="cpu")
        evaluator = run.optimiser.evaluator
        seen = {}
        evaluator.on_evaluation = lambda m: seen.update(total=m.total, terms=list(m.terms))

        def evaluate():
            evaluator.loss(x.ravel().astype(np.float64))
            return seen["total"], seen["terms"], evaluator.grads(x.ravel().astype(np.float64)).reshape(x.shape)
    else:
        objective = TiledObjective(recipe, params, tile=int(tile), config=transfer.session_config("cpu"))
        objective.hold(*objective.targets(content, [style]))

        def evaluate():
            total, terms, _, gradient = objective.evaluate(x)
            return total, terms, gradient
    evaluate()  # warm-up: the first run of each tile shape creates its oneDNN primitives
    built = time.perf_counter() - start
    walls, cpus = [], []
    for _ in range(evaluations):
        wall, cpu = time.perf_counter(), time.process_time()
        total, terms, gradient = evaluate()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    np.savez(out, total=total, terms=np.asarray(terms, np.float64), gradient=gradient)
    print(json.dumps({"peak_rss": memory.peak_rss_bytes(), "shape": x.shape[:2], "build_seconds": built,
                      "seconds": float(np.median(walls)), "cpu_seconds": float(np.median(cpus)),
                      "all_seconds": walls}))


def whole_run(size, evaluations, out):
    """The preview at `size` px through the run loop, tiling left to it; prints what it chose and cost."""
    from legacy_nst import Evaluation, Job, LevelStarted, Output, run
    from legacy_nst.runner import memory

    start = time.perf_counter()
    seen = {"evaluations": []}

    def on_event(event):
        if isinstance(event, LevelStarted):
            seen.update(shape=event.shape, tile=event.tile, why=event.tiled_because,
                        started=time.perf_counter() - start)
        elif isinstance(event, Evaluation):
            seen["evaluations"].append((time.perf_counter() - start, event.total))
            print(f"evaluation {event.evaluations}: total {event.total:.6g} at {seen['evaluations'][-1][0]:.0f} s",
                  file=sys.stderr, flush=True)

    result = run(Job(content=str(IMAGES / "tubingen.jpg"), styles=[str(IMAGES / "starry_night.jpg")],
                     recipe="preview", overrides={"size": size, "iterations": evaluations}, weights=str(PARTIAL),
                     device="cpu", output=Output(out, overwrite=True, print_every=0)), on_event)
    times = [t for t, _ in seen["evaluations"]]
    print(json.dumps({"peak_rss": memory.peak_rss_bytes(), "shape": seen["shape"], "tile": seen["tile"],
                      "why": seen["why"], "stopped": result.stopped, "evaluations": result.evaluations,
                      "first_evaluation_seconds": times[0],
                      "seconds": (times[-1] - times[0]) / max(1, len(times) - 1), "wall_seconds": result.seconds,
                      "totals": [total for _, total in seen["evaluations"]], "file": result.files.get("result")}))


def measure(mode, recipe, size, weights_path, tile, evaluations, work):
    out = work / f"{mode}_{recipe}_{size}.npz"
    proc = subprocess.run([sys.executable, __file__, "--child", mode, recipe, str(size), str(weights_path),
                           str(tile), str(evaluations), str(out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"mode": mode, "exit": proc.returncode, "stderr": proc.stderr.strip().splitlines()[-3:]}
    return {"mode": mode, "exit": 0, "file": str(out), **json.loads(lines[-1])}


def compare(tiled, untiled):
    a, b = np.load(tiled["file"]), np.load(untiled["file"])
    return {"total": float(abs(a["total"] - b["total"]) / abs(b["total"])),
            "terms": [float(abs(x - y) / abs(y)) if y else float(abs(x)) for x, y in zip(a["terms"], b["terms"])],
            "gradient_max": float(np.max(np.abs(a["gradient"] - b["gradient"])) / np.max(np.abs(b["gradient"]))),
            "gradient_l2": float(np.linalg.norm(a["gradient"] - b["gradient"]) / np.linalg.norm(b["gradient"]))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--evaluations", type=int, default=3)
    parser.add_argument("--big", type=int, default=0, help="long side of a whole preview run (0: none)")
    parser.add_argument("--big-evaluations", type=int, default=6)
    parser.add_argument("--big-output", default=str(ROOT / "bench" / "results" / "tiling_big.png"))
    parser.add_argument("--only", choices=("compare", "big"))
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "tiling.json"))
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--run-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    if args.run_child:
        return whole_run(int(args.run_child[0]), int(args.run_child[1]), args.run_child[2])
    work = Path(tempfile.mkdtemp(prefix="nst_tiling_"))
    report = {"size": args.size, "tile": args.tile, "rows": [], "big": None}
    if args.only != "big":
        for recipe, weights_path in (("tf-eager-blog", "synthetic"), ("preview", PARTIAL)):
            untiled = measure("untiled", recipe, args.size, weights_path, 0, args.evaluations, work)
            tiled = measure("tiled", recipe, args.size, weights_path, args.tile, args.evaluations, work)
            row = {"recipe": recipe, "weights": str(weights_path), "untiled": untiled, "tiled": tiled}
            if untiled["exit"] == 0 and tiled["exit"] == 0:
                row["relative_error"] = compare(tiled, untiled)
                print(f"{recipe:14} {untiled['shape']}: untiled {untiled['seconds']:.2f} s/eval "
                      f"(CPU {untiled['cpu_seconds']:.2f}), peak {untiled['peak_rss'] / GIB:.2f} GiB | tiled "
                      f"{tiled['seconds']:.2f} s/eval (CPU {tiled['cpu_seconds']:.2f}), peak "
                      f"{tiled['peak_rss'] / GIB:.2f} GiB | time ×{tiled['seconds'] / untiled['seconds']:.2f} "
                      f"| rel. error {json.dumps(row['relative_error'])}", flush=True)
            else:
                print(recipe, "failed:", untiled, tiled, flush=True)
            report["rows"].append(row)
    if args.big and args.only != "compare":
        proc = subprocess.run([sys.executable, __file__, "--run-child", str(args.big), str(args.big_evaluations),
                               args.big_output], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines = proc.stdout.strip().splitlines()
        big = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"exit": proc.returncode}
        report["big"] = big
        if proc.returncode == 0:
            how = f"in {big['tile']} px tiles ({big['why']})" if big["tile"] else "untiled"
            print(f"preview run {big['shape'][1]}×{big['shape'][0]} px {how}: {big['stopped']} after "
                  f"{big['evaluations']} evaluations; first evaluation at {big['first_evaluation_seconds']:.0f} s "
                  f"(loading, sizing, targets), then {big['seconds']:.0f} s per evaluation; peak RSS "
                  f"{big['peak_rss'] / GIB:.2f} GiB; wrote {big['file']}", flush=True)
        else:
            print("big run failed:", big, flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
