#!/usr/bin/env python
"""Throughput of a batch of small jobs, and where each job's time goes, in every mode a batch can run in.

  python bench/batch.py                   # 12 jobs: style weight {0.01, 0.1, 1} × seed {1..4}, 64 px
  python bench/batch.py --size 48 --iterations 30 --modes inline,workers

The jobs: the preview recipe on the genuine partial VGG19 (../shared/weights), Tübingen + Starry Night,
from noise (so the seeds matter), L-BFGS restarting every 10 evaluations (a checkpoint each). Modes, each
in a fresh child process so that each pays its own start-up:

  process     one `attempt` per fresh Python process, one after another: what a shell loop over
              `run_transfer.py` costs (TensorFlow imported and weights read once per job)
  inline      run_jobs(workers=1): one by one in the child's own process (one TensorFlow import)
  workers     run_jobs(workers=--workers): worker processes, TF_NUM_INTRAOP_THREADS = cores // workers
  ray         run_jobs on a one-machine Ray cluster on 127.0.0.1 (num_cpus = cores, 1 CPU per task); the
              cluster's start is timed apart (a batch normally finds its cluster running)
  cluster     run_jobs on a two-node cluster on loopback (head 127.0.0.2, worker 127.0.0.3, one CPU each,
              the worker in its own mount namespace that cannot see the driver's files; tests/tools/test_cluster.py
              starts it): every input, checkpoint and output through Ray's object store

Per job, from the Outcome timings (legacy_nst.tools.batch.attempts.attempt): start-up = the TensorFlow import (and, for
`process`, the whole interpreter start: the child's wall time minus the job's own timings), counted on the
job that paid it and averaged over all jobs; prepare = inputs, checkpoint and weights (read once per process,
then weights.load_weights_cached); graph = building the graph, the session and the targets; optimise =
the evaluations; write = result image, losses and settings; dispatch = the seconds the driver waited on a
job beyond the job's own (queueing, Ray's scheduling, moving inputs and files). Throughput = jobs / wall
seconds of the mode.
CPU s/job (the process CPU seconds of each attempt) is shown beside the wall times, as other work on a
shared machine inflates the wall times of whichever mode it overlaps.
Every mode's result images are compared byte for byte with the inline mode's. Writes --json.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
PHASES = ("startup", "prepare", "build", "optimise", "finish")


def make_jobs(args):
    from legacy_nst import Job, Style

    jobs = []
    for weight in (0.01, 0.1, 1.0):
        for seed in range(1, args.seeds + 1):
            name = f"tubingen-starry-style_weight={weight}-seed={seed}"
            jobs.append(Job(content=str(SHARED / "images" / "tubingen.jpg"),
                            styles=[Style(str(SHARED / "images" / "starry_night.jpg"))], recipe="preview",
                            weights=str(SHARED / "weights" / "vgg19_partial_block1-3.npz"), seed=seed, name=name,
                            overrides={"size": args.size, "iterations": args.iterations, "lbfgs_maxfun": 10,
                                       "init": "noise", "style_weight": weight}))
    return jobs


def child(args):
    """One mode, in this (fresh) process: prints a JSON record of its outcomes."""
    from legacy_nst.tools import batch

    jobs = make_jobs(args)
    extra = {}
    if args.child == "process":
        outcome, = batch.run_jobs([jobs[args.index]], args.out)
        print(json.dumps({"outcome": outcome.record()}))
        return
    if args.child == "cluster":
        sys.path.insert(0, str(ROOT / "tests"))
        from test_cluster import Cluster

        began = time.perf_counter()
        cluster = Cluster([tempfile.gettempdir() + "/pytest-of-root", str(ROOT), str(SHARED.resolve())])
        try:
            cluster.add_worker(isolated=True)
            extra["cluster_start"] = time.perf_counter() - began
            outcomes = batch.run_jobs(jobs, args.out, ray_address=cluster.address)
        finally:
            cluster.stop()
        print(json.dumps({"outcomes": [o.record() for o in outcomes], **extra}))
        return
    if args.child == "ray":
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # on 127.0.0.1 only (see batch.ray_pool.RayPool)
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        import ray

        began = time.perf_counter()
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                 runtime_env={"py_modules": [str(ROOT / "legacy_nst")]})
        extra["cluster_start"] = time.perf_counter() - began
    outcomes = batch.run_jobs(jobs, args.out, workers=args.workers if args.child == "workers" else 1,
                              ray_address="auto" if args.child == "ray" else None)
    print(json.dumps({"outcomes": [o.record() for o in outcomes], **extra}))


def run_child(args, mode, out, index=None):
    argv = [sys.executable, __file__, "--child", mode, "--out", str(out), "--size", str(args.size),
            "--iterations", str(args.iterations), "--seeds", str(args.seeds), "--workers", str(args.workers)]
    if index is not None:
        argv += ["--index", str(index)]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def measure(args, mode, out):
    if mode == "process":
        outcomes, wall = [], 0.0
        for index in range(3 * args.seeds):
            record, seconds = run_child(args, mode, out, index)
            outcome = record["outcome"]
            # everything the job's own timings do not cover is the process's start-up
            outcome["timings"]["startup"] = seconds - sum(outcome["timings"].get(p, 0.0) for p in PHASES[1:])
            outcomes.append(outcome)
            wall += seconds
        return {"outcomes": outcomes, "wall": wall}
    record, wall = run_child(args, mode, out)
    if "cluster_start" in record:  # timed apart: a batch normally finds its cluster running
        return {"outcomes": record["outcomes"], "wall": wall - record["cluster_start"],
                "cluster_start": record["cluster_start"]}
    return {"outcomes": record["outcomes"], "wall": wall}


def results_of(out, outcomes):
    return {o["name"]: Path(o["output"]).read_bytes() for o in outcomes if o["status"] == "done"}


def dispatch(mode, outcomes, jobs):
    """Seconds per job the driver waited beyond the job's own phases ("-" for `process`, which has no driver)."""
    if mode == "process":
        return "-"
    return f"{sum(o['seconds'] - sum(o['timings'].get(p, 0.0) for p in PHASES) for o in outcomes) / jobs:.2f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modes", default="process,inline,workers,ray,cluster")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--seeds", type=int, default=4, help="jobs = 3 style weights × this many seeds")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "batch.json"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    modes = args.modes.split(",")
    measured, reference = {}, None
    with tempfile.TemporaryDirectory() as scratch:
        for mode in modes:
            out = Path(scratch) / mode
            print(f"{mode} ...", file=sys.stderr, flush=True)
            measured[mode] = measure(args, mode, out)
            failed = [o["name"] for o in measured[mode]["outcomes"] if o["status"] != "done"]
            if failed:
                raise SystemExit(f"{mode}: jobs not done: {failed}")
            images = results_of(out, measured[mode]["outcomes"])
            reference = reference or images
            measured[mode]["identical"] = images == reference
    jobs = len(next(iter(measured.values()))["outcomes"])
    print(f"\n{jobs} jobs (preview, {args.size} px, {args.iterations} evaluations, partial VGG19), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, {platform.processor() or ''}")
    header = ("| mode | wall s | jobs/min | start-up | prepare | graph | optimise | write | overhead | dispatch | "
              "CPU s/job | same bytes |")
    print(header)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for mode, m in measured.items():
        per = {phase: sum(o["timings"].get(phase, 0.0) for o in m["outcomes"]) / jobs for phase in PHASES}
        overhead = sum(per[phase] for phase in PHASES if phase != "optimise")
        label = mode if mode != "workers" else f"workers={args.workers}"
        if "cluster_start" in m:
            label += f" (+{m['cluster_start']:.1f} s cluster start)"
        print(f"| {label} | {m['wall']:.1f} | {60 * jobs / m['wall']:.1f} | "
              + " | ".join(f"{per[phase]:.2f}" for phase in PHASES)
              + f" | {overhead:.2f} ({overhead / (overhead + per['optimise']):.0%}) | "
              f"{dispatch(mode, m['outcomes'], jobs)} | "
              f"{sum(o['timings'].get('cpu', 0.0) for o in m['outcomes']) / jobs:.2f} | "
              f"{'yes' if m['identical'] else 'NO'} |")
    print("(wall seconds per job, averaged over the jobs; overhead = all but optimise, and its share of the job's "
          "time; CPU s/job = the process CPU time of each job's attempt, TensorFlow import included, "
          "interpreter start not)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"args": vars(args), "measured": measured}, indent=1, default=str))


if __name__ == "__main__":
    main()
