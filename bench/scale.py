#!/usr/bin/env python
"""Multi-scale: the largest output that completes here, with its peak resident memory.

Each chain is one `legacy_nst.run(Job(..., schedule=[Level(256, N), Level(512, N), ...]))` (each level started
from the previous result upsampled, as `legacy-nst --scales`), run in a fresh child process that reports its
own peak RSS, so nothing else in this process counts. Nothing is written but the JSON. Default: the default
recipe (keras-lbfgs, VGG19 to block5_conv2) on synthetic VGG19 weights in the Keras layout (the real ones
are not needed to measure memory and time), Tübingen + Starry Night, chains 256 → 512 → 1024 → 2048 px on
the long side (--size-mode overrides the recipe's: keras-lbfgs sizes by height, which would make a 2048 chain
end at 2731 × 2048) with a few L-BFGS evaluations per level.

    python bench/scale.py                                 # chains ending at 512, 1024 and 2048
    python bench/scale.py --finals 3072 --evaluations 2
    python bench/scale.py --finals 128 --first 64 --evaluations 2 --json /tmp/scale.json   # smoke test
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support.py: the synthetic weight file
IMAGES = ROOT.parent / "shared" / "images"

from legacy_nst.images import SIZE_MODES  # noqa: E402  (no TensorFlow)


def child(spec):
    """Run one chain in this process and print its outcome and peak RSS (ru_maxrss is in KiB on Linux)."""
    from legacy_nst import Job, Level, run

    job = Job(content=spec["content"], styles=[spec["style"]], recipe=spec["recipe"], weights=spec["weights"],
              overrides={"size_mode": spec["size_mode"]}, device="cpu", schedule=[Level(size, spec["evaluations"]) for size in spec["scales"]])
    result = run(job)
    print(json.dumps({"stopped": result.stopped, "message": result.message, "seconds": result.seconds,
                      "evaluations": result.evaluations, "final_shape": list(result.image.shape[:2]),
                      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def chain(first, final):
    sizes = [first]
    while sizes[-1] < final:
        sizes.append(min(sizes[-1] * 2, final))
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finals", default="512,1024,2048", help="largest size of each chain")
    parser.add_argument("--size-mode", default="long-side", choices=SIZE_MODES,
                        help="what a size means (default long-side)")
    parser.add_argument("--first", type=int, default=256, help="smallest size of every chain (default 256)")
    parser.add_argument("--recipe", default="keras-lbfgs")
    parser.add_argument("--evaluations", type=int, default=3, help="loss+gradient evaluations per level")
    parser.add_argument("--weights", help="weight file (default: synthetic VGG19 in the Keras layout)")
    parser.add_argument("--content", default=str(IMAGES / "tubingen.jpg"))
    parser.add_argument("--style", default=str(IMAGES / "starry_night.jpg"))
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "scale.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(json.loads(args.child))
    from support import save_keras_h5, synthetic_weights

    from legacy_nst.vgg import weights

    with tempfile.TemporaryDirectory(prefix="nst_scale_") as work:
        weight_file = args.weights
        if weight_file is None:
            weight_file = Path(work) / weights.CANONICAL["vgg19"].filename
            save_keras_h5(weight_file, "vgg19", synthetic_weights("vgg19", seed=0))
        rows = []
        for final in [int(t) for t in args.finals.split(",")]:
            spec = {"recipe": args.recipe, "weights": str(weight_file), "content": args.content,
                    "style": args.style, "scales": chain(args.first, final), "evaluations": args.evaluations,
                    "size_mode": args.size_mode}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                  text=True)
            lines = proc.stdout.strip().splitlines()
            result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"stopped": "crashed"}
            row = {"scales": spec["scales"], "final_size": final, "exit": proc.returncode, **result}
            if proc.returncode != 0:
                row["stderr"] = proc.stderr.strip().splitlines()[-1:] or ["killed"]
            rows.append(row)
            print(f"{'→'.join(map(str, spec['scales'])):28} {row['stopped']:9} {row.get('seconds', 0):7.1f} s  "
                  f"final {'×'.join(map(str, row.get('final_shape', [])[::-1]))}  "
                  f"peak RSS {row.get('peak_rss_gib', float('nan')):.2f} GiB", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"recipe": args.recipe, "size_mode": args.size_mode,
                                           "evaluations_per_level": args.evaluations,
                                           "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
