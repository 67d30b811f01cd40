#!/usr/bin/env python
"""What a batch job leaves behind when SIGTERM reaches its worker at a random moment.

  python bench/interrupts.py                  # 150 trials
  python bench/interrupts.py --trials 300 --seed 2

The job is test_batch.py's "victim": the preview recipe on the genuine partial VGG19 (../shared/weights),
32 px, 150 L-BFGS evaluations restarting every 5, a checkpoint every few (as the batch sets). It runs in one warm
worker process of the batch (batch.processes.ProcessPool, the pool `run_transfer.py batch --workers N` uses). The
bench first times one uninterrupted job (T). Each trial then submits the job to a fresh folder, waits a
uniformly random 0..1.2 T, and stops it as the batch's driver does on Ctrl-C (SIGTERM to the worker, then
wait for its report). Every outcome is checked against what a user must be able to count on:

  done          the result is on disk and no partial image beside it
  interrupted   no result; a partial image exactly when an evaluation was measured; a checkpoint never
                without a partial image

A SIGTERM that finds the job finished (held through its commit by interrupts.py, or come while the worker
waited for its next job) ends the worker once it has reported the job; the bench then warms a fresh one.
The workers' stderr is kept aside and searched for the SIGTERM exceptions Python reports as "Exception
ignored": a handler that ran inside a weakref callback, whose exception was dropped there.
Prints the counts and every wrong outcome; --json writes them.
"""
import argparse
import collections
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def victim_job(folder, weights):
    from legacy_nst import Job, Output, Style

    return Job(name="victim", content=str(SHARED / "images" / "tubingen.jpg"),
               styles=[Style(str(SHARED / "images" / "starry_night.jpg"))], recipe="preview", seed=1,
               weights=str(weights),
               overrides={"size": 32, "iterations": 150, "lbfgs_maxfun": 5, "init": "noise"},
               output=Output(path=str(Path(folder) / "victim.png")))


def verdict(outcome, folder):
    """'ok' or what is wrong with this outcome and the files it left."""
    names = {p.name for p in Path(folder).iterdir()}
    result, partial, checkpoint = ("victim.png" in names, "victim.partial.png" in names,
                                   "victim.checkpoint.npz" in names)
    status = getattr(outcome, "status", "lost")
    if status == "done":
        return "ok" if result and not partial else f"done, but result={result} partial={partial}"
    if status == "interrupted":
        measured = (outcome.evaluations or 0) > 0 or checkpoint
        if result:
            return "interrupted, with a result on disk"
        if partial != measured:
            return f"interrupted after {outcome.evaluations} evaluations, partial={partial}"
        return "ok"
    return f"{status}: {getattr(outcome, 'reason', '')}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--weights", default=str(SHARED / "weights" / "vgg19_partial_block1-3.npz"))
    parser.add_argument("--json", help="write the counts and the wrong outcomes here")
    args = parser.parse_args()
    from legacy_nst.tools import batch

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="interrupts-"))
    # the workers' stderr (inherited): where Python reports an exception it dropped ("Exception ignored")
    workers_stderr = open(work / "workers_stderr.txt", "w+")
    own_stderr = os.dup(2)
    os.dup2(workers_stderr.fileno(), 2)  # until the end: replacement workers inherit it too
    pool = batch.processes.ProcessPool(1, 2)
    trial = iter(range(10 ** 9))

    def submit():
        folder = work / f"trial{next(trial)}"
        folder.mkdir()
        job = batch.jobs.with_output(victim_job(folder, args.weights), 0, folder)
        pool.submit(batch.pools.Task(0, job))
        return folder

    def finished(timeout):
        got = list(pool.wait(timeout=timeout))
        return got[0][1] if got else None

    def warm():
        """One uninterrupted job on a fresh worker; its wall time."""
        start = time.perf_counter()
        submit()
        while (outcome := finished(1.0)) is None:
            pass
        assert outcome.status == "done", outcome.reason
        return time.perf_counter() - start

    try:
        warm()  # the TensorFlow import
        job_seconds = warm()
        print(f"one job, uninterrupted: {job_seconds:.2f} s; {args.trials} trials, SIGTERM at 0..1.2 of it")
        counts, wrong = collections.Counter(), []
        for i in range(args.trials):
            folder = submit()
            after = rng.uniform(0, 1.2 * job_seconds)
            time.sleep(after)
            outcome = finished(0)
            signalled = outcome is None
            if signalled:
                outcome = next(iter(pool.interrupt()))[1]
            verdict_ = verdict(outcome, folder)
            counts[(getattr(outcome, "status", "lost"), verdict_ == "ok")] += 1
            if verdict_ != "ok":
                wrong.append({"trial": i, "after_s": round(after, 3), "verdict": verdict_,
                              "files": sorted(p.name for p in folder.iterdir())})
                print(f"  wrong, trial {i} at {after:.3f} s: {verdict_}")
            # A SIGTERM that found the job finished (held through the commit, or come while the worker
            # waited for its next job) ends the worker once the job is reported: a fresh, warm one then.
            if signalled and getattr(outcome, "status", None) == "done":
                worker, connection = pool.idle.pop()
                worker.join(timeout=60)
                if worker.is_alive():  # the signal was lost (before interrupts.py, a dropped one was)
                    pool.idle.append((worker, connection))
                    counts["worker went on after a signal"] += 1
                else:
                    counts["worker ended after its report"] += 1
                    warm()
    finally:
        pool.close()
        os.dup2(own_stderr, 2)
    rows = [(f"{status} ({'ok' if ok else 'WRONG'})", n) for (status, ok), n in sorted(
        (k, v) for k, v in counts.items() if isinstance(k, tuple))]
    rows += [(label, counts[label]) for label in ("worker ended after its report", "worker went on after a signal")]
    workers_stderr.seek(0)
    dropped = sum(line.startswith("legacy_nst.runner.loop.Terminated") for line in workers_stderr)
    rows.append(("SIGTERM dropped where it landed (Exception ignored)", dropped))
    width = max(len(label) for label, _ in rows)
    for label, n in rows:
        print(f"{label:{width}}  {n}")
    if args.json:
        Path(args.json).write_text(json.dumps({"trials": args.trials, "seed": args.seed,
                                               "job_seconds": job_seconds,
                                               "counts": {label: n for label, n in rows}, "wrong": wrong},
                                              indent=1))


if __name__ == "__main__":
    main()
