"""`run_transfer.py batch JOBS --out DIR [--workers N] [--ray [ADDRESS]]`: every job of a jobs file (TOML or
JSON Lines, see legacy_nst.tools.jobsfile), on this machine or on a Ray cluster; DIR/summary.csv lists them all.
Exit codes: 0 every job done, 1 some failed, 2 a bad jobs file or usage, 130 interrupted (rerun the same
command to continue), 143 terminated."""
import os
import sys

from tqdm import tqdm

from ..arguments import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM
from ...tools import batch, jobsfile


def build_parser(p):
    p.add_argument("jobs", metavar="JOBS", help="jobs file: .toml ([defaults], [sweep], [[job]]) or .jsonl")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="outputs go to DIR/<job name>/, the summary to DIR/summary.csv and summary.json")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run N jobs at a time in worker processes, the CPU cores shared between them "
                        "(default 1: one by one, in this process); with --ray: at most N tasks in flight. They "
                        "help only with cores one job leaves idle: on 2 cores 12 small jobs ran at 24.1 jobs/min "
                        "with 2 workers against 22.4 one by one (bench/README.md)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run each job as a task on a Ray cluster: auto (default: the cluster `ray start` "
                        "made, or $RAY_ADDRESS), HOST:PORT, or local (a one-machine cluster for this batch, about "
                        "9 s to start; on one 2-core machine no faster than --workers). Worth it across machines")
    p.add_argument("--cpus-per-job", type=int, default=1, metavar="N",
                   help="CPUs each Ray task asks for (default 1; GPU nodes: one GPU per job)")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="times a job is retried, from its last checkpoint, when its worker process or Ray "
                        "node dies (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the final count")


class _Display:
    """on_progress: on a terminal a tqdm bar of jobs finished (with how many run and failed); anywhere
    else (a log, CI) no bar; a line per finished job either way."""

    def __init__(self, quiet, stream=None):
        self.quiet, self.stream = quiet, stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.bar = None

    def __call__(self, progress):
        if self.quiet:
            return
        if self.interactive:
            if self.bar is None:
                self.bar = tqdm(total=progress.total, unit="job", dynamic_ncols=True, file=self.stream)
            self.bar.n = progress.done + progress.failed
            self.bar.set_postfix_str(f"running {progress.running}, failed {progress.failed}", refresh=False)
            self.bar.refresh()
        outcome = progress.outcome
        if outcome is not None and not outcome.skipped:
            line = f"[{progress.done + progress.failed}/{progress.total}] {_line(outcome)}"
            if self.bar is not None:
                self.bar.write(line, file=self.stream)
            else:
                print(line, file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _line(outcome):
    if outcome.status == "done":
        resumed = f", resumed at evaluation {outcome.resumed_from}" if outcome.resumed_from else ""
        return (f"done {outcome.name}: {outcome.evaluations} evaluations, final loss "
                f"{outcome.final.get('total', float('nan')):.4g}, {outcome.seconds:.1f} s on {outcome.where}"
                f"{resumed}")
    return f"{outcome.status} {outcome.name}: {outcome.reason}"


def main(args):

    jobs = jobsfile.load_jobs(args.jobs)
    display = _Display(args.quiet)
    with batch.sigterm_as_interrupt() as received:
        try:
            outcomes = batch.run_jobs(jobs, args.out, workers=args.workers, ray_address=args.ray,
                                      on_progress=display, retries=args.retries, cpus_per_job=args.cpus_per_job)
        except KeyboardInterrupt:  # before the jobs started
            return EXIT_SIGTERM if received else EXIT_SIGINT
        finally:
            display.close()
    counts = {status: sum(o.status == status for o in outcomes) for status in batch.STATUSES}
    skipped = sum(o.skipped for o in outcomes)
    print(f"{len(outcomes)} jobs: {counts['done']} done ({skipped} by an earlier run), {counts['failed']} failed, "
          f"{counts['interrupted']} interrupted, {counts['pending']} not started; summary in "
          f"{os.path.join(args.out, 'summary.csv')}")
    if counts["interrupted"] or counts["pending"]:
        print("interrupted: rerun the same command to continue", file=sys.stderr)
        return EXIT_SIGTERM if received else EXIT_SIGINT
    return EXIT_FAILED if counts["failed"] else EXIT_OK
