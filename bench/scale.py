"""Multi-scale: the largest output that completes here, with its peak resident memory.

Runs `legacy-nst --scales ...` (each scale started from the previous result upsampled) in a fresh child
process per configuration and reads the child's own peak RSS, so nothing else in this process counts.
Default: the default recipe (keras-lbfgs, VGG19 to block5_conv2) on synthetic VGG19 weights in the Keras
layout (the real ones are not needed to measure memory and time), Tübingen + Starry Night, chains
256 → 512 → 1024 → 2048 with a few L-BFGS evaluations per scale.

    python bench/scale.py                       # chains ending at 512, 1024 and 2048
    python bench/scale.py --finals 3072 --maxfun 2
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"


def child(argv):
    """Run the CLI in this process and print its peak RSS (ru_maxrss is in KiB on Linux)."""
    from legacy_nst.cli import main

    start = time.perf_counter()
    code = main(argv)
    print(json.dumps({"exit": code, "seconds": time.perf_counter() - start,
                      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def chain(final):
    sizes = [256]
    while sizes[-1] < final:
        sizes.append(min(sizes[-1] * 2, final))
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finals", default="512,1024,2048", help="largest size of each chain")
    parser.add_argument("--recipe", default="keras-lbfgs")
    parser.add_argument("--maxfun", type=int, default=3, help="L-BFGS evaluations per scale")
    parser.add_argument("--weights", help="weight file (default: synthetic VGG19 in the Keras layout)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "scale.json"))
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)
    from legacy_nst import weights

    work = Path(tempfile.mkdtemp(prefix="nst_scale_"))
    weight_file = args.weights
    if weight_file is None:
        weight_file = work / weights.CANONICAL["vgg19"].filename
        weights.save_keras_h5(weight_file, "vgg19", weights.synthetic_weights("vgg19", seed=0))
    rows = []
    for final in [int(t) for t in args.finals.split(",")]:
        scales = chain(final)
        argv = ["--recipe", args.recipe, "--weights", str(weight_file), "--content", str(IMAGES / "tubingen.jpg"),
                "--style", str(IMAGES / "starry_night.jpg"), "--scales", ",".join(map(str, scales)),
                "--iterations", "1", "--set", f"maxfun={args.maxfun}", "--output", str(work / f"out{final}.png"),
                "--quiet", "--overwrite"]
        proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines = proc.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"exit": proc.returncode}
        row = {"scales": scales, "final_long_side": final, **result}
        if result.get("exit") != 0:
            row["stderr"] = proc.stderr.strip().splitlines()[-1:] or ["killed"]
        rows.append(row)
        print(f"{'→'.join(map(str, scales)):28} exit {row.get('exit')}  {row.get('seconds', 0):7.1f} s  "
              f"peak RSS {row.get('peak_rss_gib', float('nan')):.2f} GiB", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"recipe": args.recipe, "maxfun_per_scale": args.maxfun, "rows": rows},
                                          indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
