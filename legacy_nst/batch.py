"""Many runs: `run_jobs(jobs, out_dir)` runs Jobs on this machine (one by one in this process, or N worker
processes) or as tasks on a Ray cluster, and keeps a summary of every job.

- Outputs: a job without an output path writes `OUT/<name>/<name>.png` (+ its losses CSV, settings JSON,
  snapshots and checkpoint); a job with one keeps it. Every job saves checkpoints (`save_every` defaults to
  a quarter of its budget; L-BFGS checkpoints at each restart), so a cut job continues where it was.
- Faults: a job that fails (bad input, a non-finite loss) is recorded with its reason and the batch goes
  on. A worker that dies (killed, out of memory) has its job retried, at most `retries` times, from the
  job's last checkpoint. Ctrl-C (or SIGTERM) stops the batch: running jobs keep their checkpoint and
  partial image, finished ones are kept; the same call again skips the jobs done (same settings, result
  still there) and resumes the others.
- OUT/summary.csv and OUT/summary.json list every job (status, reason, final losses, evaluations, seconds,
  where it ran, attempts) and are rewritten, atomically, after every job.
- Local workers are processes (TensorFlow sessions in threads would share one thread pool), started once:
  each imports TensorFlow once and keeps the weights it read (weights.load_weights_cached).
- Threads: every job runs with `cpus_per_job` threads (Job.threads; default 1) in every mode, inline, in a
  worker process or as a Ray task, because oneDNN's float32 sums depend on the thread count (on an AVX2
  EPYC 2 threads and 1 gave final losses 3.793e6 and 3.776e6). So a job gives the same bytes in any mode on
  the same kind of machine (tests/test_batch.py compares them); on another CPU kind, the same image to
  float32 tolerance.
- Ray: each job is one task asking for `cpus_per_job` CPUs (or one GPU, for device "gpu", or "auto" on a
  cluster with GPUs). Tasks write through the same code into `out_dir`, so `out_dir` and the inputs must
  be on a filesystem every node sees (a node that cannot see `out_dir` fails the job saying so); the
  weights are resolved on each node as they are locally (weights.resolve). Retries are ours (Ray's
  max_retries=0), so that they resume from the checkpoint and count alike in both modes.
"""
import collections
import contextlib
import csv
import dataclasses
import glob
import io
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from . import identity, interrupts, runner
from .atomic import temp_stem, write_text
from .errors import ThreadsFixed, UserError
from .events import LevelFinished, LevelStarted
from .outputs import OutputPaths

STATUSES = ("done", "failed", "interrupted", "pending")
SUMMARY_COLUMNS = ("name", "status", "reason", "evaluations", "final_total", "seconds", "where", "attempts",
                   "resumed_from", "output")
CHECKPOINTS_PER_JOB = 4  # save_every = budget / this, for jobs whose recipe source saves nothing
INTERRUPT_GRACE = 60.0  # seconds running jobs get to keep their partial image and records after Ctrl-C
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")  # per worker: its jobs' threads
POLL = 0.5  # seconds between looks at the workers (a result wakes the driver at once)
RAY_INSTALL = "--ray needs Ray, which is not installed: pip install -e '.[ray]' (or pip install 'ray>=2.10')"


@dataclasses.dataclass
class Outcome:
    """What became of one job."""

    name: str
    status: str = "pending"  # done | failed | interrupted | pending (never started)
    reason: str = ""  # why it failed or stopped
    stopped: str = ""  # the Result's stop reason, when the run started
    evaluations: int = 0
    final: dict = dataclasses.field(default_factory=dict)  # the last history row (total, terms raw/weighted)
    seconds: float = 0.0  # wall seconds of all its attempts (this batch call), start-up included
    where: str = ""  # host:pid (and Ray node) of the last attempt
    attempts: int = 0
    resumed_from: int = 0  # evaluations its last attempt found in the checkpoint (0: started afresh)
    output: str = ""  # the result image's path
    files: dict = dataclasses.field(default_factory=dict)  # kind -> path written (Result.files)
    timings: dict = dataclasses.field(default_factory=dict)  # startup, prepare, build, optimise, finish, cpu (s)
    skipped: bool = False  # done by an earlier call with the same settings: not run again
    key: str = ""  # digest of the job's settings (what "the same job" means for skipping)
    result: object = dataclasses.field(default=None, repr=False)  # the Result (None when skipped)

    def record(self):
        """The JSON-able summary entry (no arrays)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "result"}


@dataclasses.dataclass(frozen=True)
class Progress:
    """Passed to on_progress whenever a job starts or ends."""

    total: int
    done: int
    failed: int
    running: int
    outcome: Outcome | None = None  # the job that just ended (None: one started)
    started: str = ""  # the job that just started


# ---------------------------------------------------------------- one attempt (in whichever process runs it)

_TF_IMPORT_SECONDS = None


def _warm():
    """Import TensorFlow once per process; returns the seconds it took now (0 when already imported)."""
    global _TF_IMPORT_SECONDS
    if _TF_IMPORT_SECONDS is not None:
        return 0.0
    start = time.perf_counter()
    from . import runtime  # noqa: F401  (TensorFlow)

    _TF_IMPORT_SECONDS = time.perf_counter() - start
    return _TF_IMPORT_SECONDS


def attempt(job, where=""):
    """Run one job once, continuing its own checkpoint if one exists; never raises for a job's problem."""
    start, cpu = time.perf_counter(), time.process_time()
    timings = {"startup": _warm()}
    paths = OutputPaths(job.output.path)
    resumed = os.path.isfile(paths.checkpoint)
    if resumed:
        job = dataclasses.replace(job, resume=paths.checkpoint)
    outcome = Outcome(job.name, output=paths.result, where=where or f"{socket.gethostname()}:{os.getpid()}",
                      timings=timings)
    marks = {"level_start": None, "level_end": time.perf_counter()}

    def on_event(event):
        now = time.perf_counter()
        if isinstance(event, LevelStarted):
            timings["build"] = timings.get("build", 0.0) + now - marks["level_end"]
            marks["level_start"] = now
        elif isinstance(event, LevelFinished):
            timings["optimise"] = timings.get("optimise", 0.0) + now - marks["level_start"]
            marks["level_end"] = now

    try:
        prepared = time.perf_counter()
        plan = runner.prepare(job)
        timings["prepare"] = time.perf_counter() - prepared
        if plan.resume is not None:
            outcome.resumed_from = int(plan.resume.state["evaluations"])
        marks["level_end"] = time.perf_counter()
        result = runner.execute(plan, on_event)
    except UserError as exc:
        hint = (f" (its checkpoint {paths.checkpoint} is from other settings: delete it, or use another "
                "output folder)") if resumed and "--resume" in str(exc) else ""
        outcome.status, outcome.reason = "failed", f"{exc}{hint}"
    except (KeyboardInterrupt, runner.Terminated):  # before the run loop, which handles them itself
        outcome.status, outcome.reason = "interrupted", "interrupted before the optimisation started"
    except Exception as exc:  # a bug: recorded for this job, the batch goes on
        outcome.status, outcome.reason = "failed", f"internal error: {type(exc).__name__}: {exc}"
    else:
        timings["finish"] = time.perf_counter() - marks["level_end"]
        outcome.result, outcome.stopped, outcome.files = result, result.stopped, dict(result.files)
        outcome.evaluations = int(result.history[-1]["evaluations"]) if result.history else 0
        outcome.final = {k: v for k, v in (result.history[-1] if result.history else {}).items()
                         if k not in ("size", "iteration", "evaluations", "seconds")}
        outcome.status = {"finished": "done", "interrupted": "interrupted", "terminated": "interrupted"}.get(
            result.stopped, "failed")
        outcome.reason = result.message
    interrupts.hold()  # the outcome is decided (a finished run held signals already): it must be reported
    outcome.seconds = time.perf_counter() - start
    timings["cpu"] = time.process_time() - cpu  # this process's CPU seconds (all its threads): load-proof
    return outcome


# ---------------------------------------------------------------- where attempts run

@dataclasses.dataclass
class _Task:
    index: int
    job: object
    attempts: int = 0
    seconds: float = 0.0
    started: float = 0.0


class _Died:
    """A worker died while it held a task (killed, out of memory, a crashed node)."""

    def __init__(self, reason):
        self.reason = reason


class _Inline:
    """This process, one job at a time (workers=1): no start-up beyond this process's own."""

    slots = 1

    def __init__(self):
        self.queue = collections.deque()
        self.stopped = []  # the job Ctrl-C cut, reported by interrupt()

    def submit(self, task):
        self.queue.append(task)

    def wait(self):
        task = self.queue.popleft()
        with interrupts.scope() as held:
            outcome = attempt(task.job)
        if outcome.status == "interrupted" or held.came:  # Ctrl-C reached this process: stop the batch
            self.stopped = [(task, outcome)]
            held.deliver()  # one that came as the job finished goes to the handler (SIGTERM: exit 143)
            raise KeyboardInterrupt
        return [(task, outcome)]

    def interrupt(self):
        yield from self.stopped

    def close(self):
        pass


def _worker_main(connection):
    """A local worker process: TensorFlow imported once, then one job per message until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it sends SIGTERM

    def on_sigterm(signum, frame):
        raise runner.Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        cpu = time.process_time()
        startup = _warm()
        startup_cpu = time.process_time() - cpu
        while True:
            job = connection.recv()
            if job is None:
                return
            with interrupts.scope() as held:  # a SIGTERM at the job's end waits until it is reported
                outcome = attempt(job)
                outcome.timings["startup"] = startup  # the import is the first job's overhead
                outcome.timings["cpu"] += startup_cpu
                startup = startup_cpu = 0.0
                connection.send(outcome)
            held.deliver()
    except (runner.Terminated, EOFError, BrokenPipeError):
        return


class _Processes:
    """N worker processes (spawned, so no TensorFlow state is inherited); a dead one is replaced."""

    def __init__(self, workers, threads):
        self.slots, self.threads = workers, threads
        self.context = multiprocessing.get_context("spawn")
        self.idle, self.busy = [], {}  # busy: process -> (connection, task)
        for _ in range(workers):
            self.idle.append(self._start())

    def _start(self):
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(theirs,), daemon=True)
        # Each worker's thread pools get its share of the cores, read once when the libraries load (before
        # any code of ours runs in the child): TensorFlow's intra-op pool, and OpenMP/OpenBLAS', which
        # otherwise spin 2 threads per worker: 12 jobs at 64 px, 2 workers on 2 cores, took 2.8 CPU s
        # per job without OMP_NUM_THREADS=1 and 2.1 with it (bench/batch.py; Ray sets it for its tasks).
        threads = str(self.threads)
        saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
        os.environ.update(dict.fromkeys(THREAD_VARIABLES, threads))
        try:
            process.start()  # spawn: the child gets the environment as it is now
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name)
                else:
                    os.environ[name] = value
        theirs.close()
        return process, ours

    def submit(self, task):
        while self.idle and not self.idle[-1][0].is_alive():  # died while idle: its job was not lost
            process, connection = self.idle.pop()
            process.join()
            connection.close()
        process, connection = self.idle.pop() if self.idle else self._start()
        connection.send(task.job)
        self.busy[process] = (connection, task)

    def wait(self, timeout=POLL):
        waited = [connection for connection, _ in self.busy.values()] + [p.sentinel for p in self.busy]
        ready = multiprocessing.connection.wait(waited, timeout)
        finished = []
        for process in [p for p in self.busy if p.sentinel in ready or self.busy[p][0] in ready]:
            connection, task = self.busy.pop(process)
            try:
                outcome = connection.recv() if connection.poll() else None
            except (EOFError, OSError):
                outcome = None
            if outcome is None:  # it died holding the task
                process.join()
                connection.close()
                finished.append((task, _Died(f"its worker process {process.pid} died "
                                             f"(exit code {process.exitcode})")))
            else:
                self.idle.append((process, connection))
                finished.append((task, outcome))
        return finished

    def interrupt(self):
        """SIGTERM every busy worker (each keeps its job's partial image and records); yields what they return."""
        for process in self.busy:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + INTERRUPT_GRACE
        while self.busy and time.monotonic() < deadline:
            yield from self.wait(timeout=1.0)

    def close(self):
        for process, connection in self.idle:
            try:
                connection.send(None)
            except OSError:
                pass
        for process, (connection, _) in self.busy.items():  # still working after an interrupt: stopped
            process.kill()
        for process, connection in self.idle + [(p, c) for p, (c, _) in self.busy.items()]:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
            connection.close()
        self.idle.clear()
        self.busy.clear()


def _ray_attempt(job):
    """One job as a Ray task (retries are the driver's, so Ray's max_retries is 0)."""
    import ray

    if threading.current_thread() is threading.main_thread():
        # Ray cancels a task by simulating SIGINT in its worker, which does nothing where SIGINT is ignored
        # (inherited: a cluster started from a background job of a script); the run must see Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)
    node = ray.get_runtime_context().get_node_id()[:8]
    where = f"ray node {node} {socket.gethostname()}:{os.getpid()}"
    directory = os.path.dirname(os.path.abspath(job.output.path))
    if not os.path.isdir(directory):
        return Outcome(job.name, status="failed", where=where, output=job.output.path,
                       reason=f"{directory} is not on this node's filesystem: --ray needs the output folder "
                              "on a filesystem every node shares")
    return attempt(job, where)


class _Ray:
    """Tasks on a Ray cluster; as many in flight as it has room for (or `slots`)."""

    def __init__(self, address, cpus_per_job, slots=None):
        if address == "local":
            # a one-machine cluster on 127.0.0.1, not this host's network address (ray.init's
            # _node_ip_address="127.0.0.1" is replaced by that address): Ray's single-node mode, read when
            # ray is imported; and no usage report sent anywhere
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError:
            raise UserError(RAY_INSTALL) from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            options = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False,
                       # the driver's own copy of the package runs on every node
                       "runtime_env": {"py_modules": [os.path.dirname(os.path.abspath(__file__))]}}
            options["address"] = address
            handler = signal.getsignal(signal.SIGTERM)
            try:
                ray.init(**options)
            except ConnectionError as exc:
                raise UserError(f"--ray {address}: no Ray cluster there ({exc}); start one with "
                                "`ray start --head`, or use --ray local") from None
            if callable(handler) and threading.current_thread() is threading.main_thread():
                # ray.init installs its own SIGTERM handler (it logs and exits 1, the batch's summary
                # unwritten); the front end's handler, which stops the batch cleanly, is put back
                signal.signal(signal.SIGTERM, handler)
        resources = ray.cluster_resources()
        self.gpus = resources.get("GPU", 0) > 0
        self.cpus = max(1, int(cpus_per_job or 1))
        room = int(resources.get("GPU", 0)) if self.gpus else int(resources.get("CPU", 1)) // self.cpus
        self.slots = slots or max(1, room)
        self.remote = ray.remote(_ray_attempt)
        self.refs = {}

    def submit(self, task):
        gpu = task.job.device == "gpu" or (task.job.device == "auto" and self.gpus)
        options = {"num_cpus": 1 if gpu else self.cpus, "num_gpus": 1 if gpu else 0, "max_retries": 0,
                   "runtime_env": {"env_vars": dict.fromkeys(THREAD_VARIABLES, str(self.cpus))}}
        self.refs[self.remote.options(**options).remote(task.job)] = task

    def wait(self, timeout=POLL):
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref):
        task = self.refs.pop(ref)
        exceptions = self.ray.exceptions
        try:
            return task, self.ray.get(ref)
        except exceptions.TaskCancelledError:
            return task, Outcome(task.job.name, status="interrupted", reason="interrupted (task cancelled)")
        except exceptions.RayTaskError as exc:  # raised by our code outside attempt(): a bug, not retried
            return task, Outcome(task.job.name, status="failed", reason=f"internal error: {exc}")
        except exceptions.RayError as exc:  # the worker or its node died
            return task, _Died(f"its Ray worker died ({type(exc).__name__})")

    def interrupt(self):
        for ref in self.refs:
            self.ray.cancel(ref)  # KeyboardInterrupt in the task: the run keeps its partial image
        deadline = time.monotonic() + INTERRUPT_GRACE
        while self.refs and time.monotonic() < deadline:
            yield from self.wait(timeout=1.0)

    def close(self):
        for ref in self.refs:  # still running after an interrupt: stopped
            self.ray.cancel(ref, force=True)
        self.refs.clear()
        if self.started_here:
            self.ray.shutdown()


# ---------------------------------------------------------------- the driver

def job_key(job):
    """Digest of everything that decides a job's outputs (identity.of_job, budget included): a done job
    with the same key is not run again."""
    return identity.of_job(job).key()


def _with_output(job, index, out_dir):
    """The job with its output path (kept if it has one) and a checkpoint interval."""
    name = job.name or f"job-{index + 1}"
    output = job.output
    if output.path is None:
        folder = Path(out_dir) / name
        output = dataclasses.replace(output, path=str(folder / f"{name}.png"), overwrite=True)
    recipe = job.resolved_recipe()
    settled = output.settled(recipe.name)
    if output.save_every is None and not settled.save_every and not settled.save_restarts:
        budget = sum(level.iterations for level in job.levels(recipe))
        output = dataclasses.replace(output, save_every=max(1, math.ceil(budget / CHECKPOINTS_PER_JOB)))
    return dataclasses.replace(job, name=name, output=output, resume=None)


def _earlier(out_dir):
    """{name: record} of the summary an earlier call left in out_dir."""
    try:
        with open(Path(out_dir) / "summary.json", encoding="utf-8") as f:
            return {r["name"]: r for r in json.load(f)["jobs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write_summary(out_dir, outcomes):
    """OUT/summary.json (every field) and OUT/summary.csv (one row per job, final losses as columns)."""
    out_dir = Path(out_dir)
    records = [o.record() for o in outcomes]
    write_text(out_dir / "summary.json", json.dumps({"jobs": records}, indent=1, default=str))
    terms = list(dict.fromkeys(k for o in outcomes for k in o.final if k != "total"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS[:5] + tuple(f"final_{t}" for t in terms) + SUMMARY_COLUMNS[5:])
    for o in outcomes:
        writer.writerow([o.name, o.status, o.reason, o.evaluations, o.final.get("total", "")]
                        + [o.final.get(t, "") for t in terms]
                        + [f"{o.seconds:.2f}", o.where, o.attempts, o.resumed_from, o.output])
    write_text(out_dir / "summary.csv", buffer.getvalue())


def _remove_temporaries(job):
    """The temporary files a killed attempt left in the job's folder (`.STEM*.part*`), before a retry."""
    directory = glob.escape(os.path.dirname(os.path.abspath(job.output.path)))
    for path in glob.glob(os.path.join(directory, f".{glob.escape(temp_stem(job.output.path))}*.part*")):
        os.remove(path)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM stops a driver as Ctrl-C does (every job keeps its work); yields a list that holds the signal
    once one came, so the front end can exit 143 rather than 130. KeyboardInterrupt, not runner.Terminated:
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
    """Run `jobs`; returns one Outcome per job, in order. See the module docstring.

    workers: 1 runs the jobs one by one in this process; N runs N worker processes (with ray_address: at
    most N tasks in flight, default what the cluster has room for). ray_address: "auto" (the cluster
    `ray start` made, or $RAY_ADDRESS), "HOST:PORT", "local" (a one-machine cluster started for this call on
    127.0.0.1), or None (no Ray); if Ray is already initialised in this process, that connection is used.
    on_progress(Progress) is called whenever a job starts or ends. retries: attempts after a worker died.
    cpus_per_job: each job's threads in every mode (a Job's own `threads` wins), and the CPUs each Ray task
    asks for (default 1). UserError for bad jobs, before anything runs."""
    if workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = max(1, int(cpus_per_job or 1))
    jobs = [_with_output(job if job.threads else dataclasses.replace(job, threads=threads), i, out_dir)
            for i, job in enumerate(jobs)]
    seen = {}
    for job in jobs:
        if job.name in seen:
            raise UserError(f"two jobs are named {job.name!r}; job names must be unique (they name the outputs)")
        seen[job.name] = job
    outcomes = [Outcome(job.name, output=job.output.path, key=job_key(job)) for job in jobs]
    earlier = _earlier(out_dir)
    tasks = collections.deque()
    for i, (job, outcome) in enumerate(zip(jobs, outcomes)):
        record = earlier.get(job.name)
        if record and record.get("status") == "done" and record.get("key") == outcome.key and \
                os.path.isfile(job.output.path):
            fields = {f.name for f in dataclasses.fields(Outcome)}
            outcomes[i] = Outcome(**{**{k: v for k, v in record.items() if k in fields}, "skipped": True})
        else:
            os.makedirs(os.path.dirname(os.path.abspath(job.output.path)), exist_ok=True)
            tasks.append(_Task(i, job))
    counts = collections.Counter(o.status for o in outcomes)
    report = on_progress or (lambda progress: None)

    def progress(running, **what):
        report(Progress(len(jobs), counts["done"], counts["failed"], running, **what))

    progress(0)
    write_summary(out_dir, outcomes)
    if not tasks:
        return outcomes
    pool = _pool(workers, ray_address, cpus_per_job, len(tasks))
    running = {}

    def finish(task, outcome):
        running.pop(task.index, None)
        task.seconds += time.monotonic() - task.started
        if isinstance(outcome, _Died):
            reason = outcome.reason if stopping else f"{outcome.reason}; gave up after {task.attempts} attempts"
            outcome = Outcome(task.job.name, status="interrupted" if stopping else "failed", reason=reason,
                              output=task.job.output.path)
        outcome.attempts, outcome.seconds, outcome.key = task.attempts, task.seconds, outcomes[task.index].key
        outcomes[task.index] = outcome
        counts.clear()
        counts.update(o.status for o in outcomes)
        write_summary(out_dir, outcomes)
        progress(len(running), outcome=outcome)

    stopping = False
    try:
        while tasks or running:
            while tasks and len(running) < pool.slots:
                task = tasks.popleft()
                task.attempts += 1
                task.started = time.monotonic()
                running[task.index] = task
                pool.submit(task)
                progress(len(running), started=task.job.name)
            for task, outcome in pool.wait():
                if isinstance(outcome, _Died) and task.attempts <= retries:
                    running.pop(task.index)
                    task.seconds += time.monotonic() - task.started
                    _remove_temporaries(task.job)
                    tasks.appendleft(task)  # continues from its checkpoint
                    continue
                finish(task, outcome)
    except (KeyboardInterrupt, runner.Terminated):
        stopping = True
        try:
            for task, outcome in pool.interrupt():
                finish(task, outcome)
        except (KeyboardInterrupt, runner.Terminated):
            pass  # a second Ctrl-C: stop waiting for the running jobs to keep their work
        for task in list(running.values()):
            finish(task, Outcome(task.job.name, status="interrupted", output=task.job.output.path,
                                 reason="interrupted before it could stop cleanly; its last checkpoint is kept"))
    finally:
        pool.close()
    return outcomes


def _inline_can_run(cpus_per_job):
    """Whether this process can run jobs with `cpus_per_job` threads: yes until its TensorFlow has run
    with another count (a notebook's or a test's earlier run), which TensorFlow cannot change; then the jobs
    go to one worker process, so that they give the bytes they give in every other mode."""
    if "tensorflow" not in sys.modules:
        return True
    from .runtime import fix_threads

    try:
        fix_threads(max(1, int(cpus_per_job or 1)))
    except ThreadsFixed:
        return False
    return True


def _pool(workers, ray_address, cpus_per_job, count):
    if ray_address is not None:
        return _Ray(ray_address, cpus_per_job, slots=workers if workers > 1 else None)
    if workers == 1:
        return _Inline() if _inline_can_run(cpus_per_job) else _Processes(1, max(1, int(cpus_per_job or 1)))
    return _Processes(min(workers, count), max(1, int(cpus_per_job or 1)))
