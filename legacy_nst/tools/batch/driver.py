"""The driver: run_jobs, which prepares the jobs, holds the batch lock, hands the jobs to a pool (inline,
worker processes or Ray), retries those whose worker died, and keeps the summary after every job."""
import collections
import contextlib
import glob
import os
import signal
import sys
import time
from pathlib import Path

from .inline import InlinePool
from .jobs import check_names, job_key, with_output
from .lock import BatchLock
from .outcomes import RECORDED, JobOutcome, Progress
from .pools import Died, Task
from .processes import ProcessPool
from .ray_pool import RayPool
from .summary import SummaryWriter, earlier_records
from ... import engine
from ...atomic import temp_stem
from ...errors import ThreadsFixed, UserError, WriteError
from ...runner import loop


def _remove_temporaries(job):
    """The temporary files a killed attempt left in the job's folder (`.STEM*.part*`), before a retry."""
    directory = glob.escape(os.path.dirname(os.path.abspath(job.output.path)))
    for path in glob.glob(os.path.join(directory, f".{glob.escape(temp_stem(job.output.path))}*.part*")):
        os.remove(path)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM stops a driver as Ctrl-C does (every job keeps its work); yields a list that holds the signal
    once one came, so the front end can exit 143 rather than 130. KeyboardInterrupt, not loop.Terminated:
    Ray's ray.wait lets only KeyboardInterrupt out of a signal handler (another exception came out as
    "SystemError: CoreWorker.wait returned a result with an exception set")."""
    received = []

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_jobs(jobs, out_dir, workers=1, ray_address=None, on_progress=None, *, retries=2, cpus_per_job=None):
    """Run `jobs`; returns one JobOutcome per job, in order. See the package's docstring (tools.batch).

    workers: 1 runs the jobs one by one in this process; N runs N worker processes (with ray_address: at
    most N tasks in flight, default what the cluster has room for). ray_address: "auto" (the cluster
    `ray start` made, or $RAY_ADDRESS), "HOST:PORT", "local" (a one-machine cluster started for this call on
    127.0.0.1), or None (no Ray); if Ray is already initialised in this process, that connection is used.
    on_progress(Progress) is called whenever a job starts or ends. retries: attempts after a worker died.
    cpus_per_job: each job's threads in every mode (a Job's own `threads` wins), and the CPUs each Ray task
    asks for (default 1). UserError for bad jobs, before anything runs."""
    if workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UserError(f"--retries {retries}: must be 0 (never retry) or more")
    if cpus_per_job is not None and (isinstance(cpus_per_job, bool) or not isinstance(cpus_per_job, int)
                                     or cpus_per_job < 1):
        raise UserError(f"--cpus-per-job {cpus_per_job}: must be at least 1")
    out_dir = Path(out_dir).absolute()  # the driver's: a Ray task never resolves a path of its own
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is not a directory")
    threads = max(1, int(cpus_per_job or 1))
    jobs = [with_output(job, i, out_dir, threads) for i, job in enumerate(jobs)]
    check_names(jobs, out_dir)  # before anything is made: a refused batch leaves nothing behind
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = BatchLock(out_dir)
    try:
        lock.acquire()
        try:
            return _run(jobs, out_dir, workers, ray_address, on_progress, retries, cpus_per_job, lock)
        finally:
            lock.release()
    except (UserError, WriteError):
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()  # refused before the start: nothing left behind
        raise


def _run(jobs, out_dir, workers, ray_address, on_progress, retries, cpus_per_job, lock):
    # A job's key (its inputs' digests, its resolved recipe) is computed when it is needed: to skip one an
    # earlier call finished, or as it starts. Up front, for every job, it kept a 257 000-job file from
    # starting its first job for minutes (issue 20.10).
    outcomes = [JobOutcome(job.name, output=job.output.path) for job in jobs]
    earlier = earlier_records(out_dir)
    tasks = collections.deque()
    for i, (job, outcome) in enumerate(zip(jobs, outcomes)):
        record = earlier.get(job.name)
        if record and record.get("status") == "done" and os.path.isfile(job.output.path):
            outcome.key = job_key(job)
        if outcome.key and record.get("key") == outcome.key:
            outcomes[i] = JobOutcome(**{**{k: v for k, v in record.items() if k in RECORDED}, "skipped": True})
        else:
            tasks.append(Task(i, job))
    counts = collections.Counter(o.status for o in outcomes)
    report = on_progress or (lambda progress: None)

    def progress(running, **what):
        report(Progress(len(jobs), counts["done"], counts["failed"], running, **what))

    progress(0)
    summary = SummaryWriter(out_dir)
    summary.write(outcomes)  # disk full before the start: WriteError naming summary.json
    if not tasks:
        return outcomes
    pool = _pool(workers, ray_address, cpus_per_job, len(tasks), lock.add_worker, retries)
    running = {}

    def finish(task, outcome):
        running.pop(task.index, None)
        task.seconds += time.monotonic() - task.started
        if isinstance(outcome, Died):
            reason = outcome.reason if stopping else f"{outcome.reason}; gave up after {task.attempts} attempts"
            outcome = JobOutcome(task.job.name, status="interrupted" if stopping else "failed", reason=reason,
                              output=task.job.output.path)
        outcome.attempts, outcome.seconds, outcome.key = task.attempts, task.seconds, outcomes[task.index].key
        outcomes[task.index] = outcome
        counts.clear()
        counts.update(o.status for o in outcomes)
        summary.after_job(outcomes)
        progress(len(running), outcome=outcome)

    stopping = False
    try:
        while tasks or running:
            while tasks and len(running) < pool.slots:
                task = tasks.popleft()
                task.attempts += 1
                task.started = time.monotonic()
                running[task.index] = task
                outcomes[task.index].key = outcomes[task.index].key or job_key(task.job)  # its inputs as it starts
                os.makedirs(os.path.dirname(os.path.abspath(task.job.output.path)), exist_ok=True)
                pool.submit(task)
                progress(len(running), started=task.job.name)
            for task, outcome in pool.wait():
                if isinstance(outcome, Died) and task.attempts <= retries:
                    running.pop(task.index)
                    task.seconds += time.monotonic() - task.started
                    _remove_temporaries(task.job)
                    tasks.appendleft(task)  # continues from its checkpoint
                    continue
                finish(task, outcome)
    except (KeyboardInterrupt, loop.Terminated):
        stopping = True
        try:
            for task, outcome in pool.interrupt():
                finish(task, outcome)
        except (KeyboardInterrupt, loop.Terminated):
            pass  # a second Ctrl-C: stop waiting for the running jobs to keep their work
        for task in list(running.values()):
            finish(task, JobOutcome(task.job.name, status="interrupted", output=task.job.output.path,
                                 reason="interrupted before it could stop cleanly; its last checkpoint is kept"))
    finally:
        pool.close()
        summary.flush(outcomes)
    return outcomes


def inline_can_run(cpus_per_job):
    """Whether this process can run jobs with `cpus_per_job` threads: yes until its TensorFlow has run
    with another count (a notebook's or a test's earlier run), which TensorFlow cannot change; then the jobs
    go to one worker process, so that they give the bytes they give in every other mode."""
    if "tensorflow" not in sys.modules:
        return True
    try:
        engine.fix_threads(max(1, int(cpus_per_job or 1)))
    except ThreadsFixed:
        return False
    return True


def _pool(workers, ray_address, cpus_per_job, count, on_worker, retries):
    if ray_address is not None:
        return RayPool(ray_address, cpus_per_job, retries, slots=workers if workers > 1 else None)
    if workers == 1:
        return InlinePool() if inline_can_run(cpus_per_job) else ProcessPool(1, max(1, int(cpus_per_job or 1)),
                                                                             on_worker)
    return ProcessPool(min(workers, count), max(1, int(cpus_per_job or 1)), on_worker)
