"""How long a large jobs file takes to answer: reading and checking it, then the batch's work before its first job.

    python bench/large_jobs_file.py --jobs 20000     # JSON Lines: one preview job per line, seeds 0..N-1

Prints the seconds to load (parse, check every job) and from run_jobs' start to its first attempt (job names
checked against the file system, output settings, the summary written once), per job and in all. The attempt
itself is replaced by a stop: only the driver's own work is timed. Issue 20.10: 257 000 jobs had no answer in
5 minutes.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMAGES = ROOT.parent / "shared" / "images"


class _FirstAttempt(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20000)
    args = parser.parse_args()
    from legacy_nst.tools import batch, jobsfile

    def stop(*_, **__):
        raise _FirstAttempt

    batch.attempts.attempt = stop  # the pools call it through the module
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "jobs.jsonl"
        with open(path, "w") as f:
            for seed in range(args.jobs):
                f.write(json.dumps({"name": f"job{seed}", "content": str(IMAGES / "tubingen.jpg"),
                                    "style": str(IMAGES / "starry_night.jpg"), "recipe": "preview", "size": 64,
                                    "iterations": 10, "seed": seed}) + "\n")
        start = time.perf_counter()
        jobs = jobsfile.load_jobs(path)
        loaded = time.perf_counter()
        try:
            batch.run_jobs(jobs, Path(folder) / "out")
        except _FirstAttempt:
            pass
        first = time.perf_counter()
    flags = open("/proc/cpuinfo").read()
    print(f"{args.jobs} jobs ({'AVX-512' if ' avx512f' in flags else 'AVX2'} CPU): load {loaded - start:.2f} s "
          f"({(loaded - start) / args.jobs * 1e6:.0f} µs a job), to the first job {first - loaded:.2f} s "
          f"({(first - loaded) / args.jobs * 1e6:.0f} µs a job), in all {first - start:.2f} s")


if __name__ == "__main__":
    main()
