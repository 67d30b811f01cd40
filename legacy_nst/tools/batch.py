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
  cluster with GPUs; a worker that ran a GPU task is not reused). Nothing travels as a path: the driver
  reads and checks every input once and puts it in the object store (decoded images, mask files, the
  weight file's bytes, which each node caches once on its local disk under its content's digest); a task
  runs its job in a scratch folder on its node and returns every file it wrote as bytes, and streams its
  checkpoints and snapshots to a small actor on the driver's node as it saves them. Only the driver writes
  under `out_dir` (a relative one is the driver's). A task whose worker or node died is retried by Ray
  (`retries` times) from the last checkpoint it streamed, on any node. Tasks in flight follow the live
  cluster's resources, re-read as nodes join and leave.
- Locks: OUT/.batch.lock holds the driver's host, boot id and pid and its workers' pids: a second batch on
  the same --out is refused while the first lives, and takes over once it and its workers are gone.
  Worker processes die with their driver (PR_SET_PDEATHSIG).
"""
import collections
import contextlib
import csv
import ctypes
import dataclasses
import functools
import glob
import hashlib
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

import numpy as np

from .. import engine
from ..atomic import atomic_path, temp_stem, write_text
from ..errors import ThreadsFixed, UserError, WriteError
from ..runner import checkpoint as checkpoints
from ..runner import identity, interrupts, loop
from ..runner.events import LevelFinished, LevelStarted, Saved
from ..runner.outputs import OutputPaths, _pid_alive

STATUSES = ("done", "failed", "interrupted", "pending")
SUMMARY_COLUMNS = ("name", "status", "reason", "evaluations", "final_total", "seconds", "where", "attempts",
                   "resumed_from", "output")
CHECKPOINTS_PER_JOB = 4  # save_every = budget / this, for jobs whose recipe source saves nothing
INTERRUPT_GRACE = 60.0  # seconds running jobs get to keep their partial image and records after Ctrl-C
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")  # per worker: its jobs' threads
POLL = 0.5  # seconds between looks at the workers (a result wakes the driver at once)
RAY_INSTALL = "--ray needs Ray, which is not installed: pip install -e '.[ray]' (or pip install 'ray>=2.10')"
LOCK_NAME = ".batch.lock"  # OUT/.batch.lock: the batch writing OUT (host, boot id, pid, its workers' pids)
BATCH_FILES = ("summary.json", "summary.csv", LOCK_NAME)  # OUT's own files: no job may be named so
WORKERS_GONE_WAIT = 10.0  # s a new batch waits for a killed batch's workers to die (they get SIGKILL at once)
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
PACKAGE_DIR = str(Path(__file__).resolve().parents[1])  # legacy_nst/, shipped to Ray's nodes


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

@functools.lru_cache(maxsize=256)
def _resolved(recipe, overrides, corrected):
    from ..runner.job import Job

    return Job(recipe=recipe, overrides=dict(overrides), corrected=corrected).resolved_recipe()


def _recipe_of(job):
    """job.resolved_recipe(), once per distinct recipe and overrides: the driver asks it of every job several
    times, and checking a recipe costs 0.3-0.7 ms (a jobs file of 257 000 jobs)."""
    try:
        return _resolved(job.recipe, tuple(sorted(job.overrides.items())), job.corrected)
    except TypeError:  # an unhashable override value
        return job.resolved_recipe()


_TF_IMPORT_SECONDS = None


def _warm():
    """Import TensorFlow once per process; returns the seconds it took now (0 when already imported)."""
    global _TF_IMPORT_SECONDS
    if _TF_IMPORT_SECONDS is not None:
        return 0.0
    start = time.perf_counter()
    engine.tf  # noqa: B018  (imports TensorFlow)

    _TF_IMPORT_SECONDS = time.perf_counter() - start
    return _TF_IMPORT_SECONDS


def _past_budget(job, path):
    """Whether the checkpoint at `path` went further than the job's budget (a rerun with fewer evaluations):
    continuing it would present the longer run's image as this one's (issue 20.1)."""
    try:
        saved = checkpoints.load(path)
    except UserError:
        return False  # unreadable: the run itself refuses it, naming the file
    levels = job.levels(_recipe_of(job))
    return saved.level >= len(levels) or saved.state["evaluations"] > levels[saved.level].iterations


def _start_afresh(paths):
    """Remove what an earlier, longer run of this batch-made output left (its checkpoint, numbered
    snapshots and partial image), so that nothing of it is presented as the new run's."""
    for path in [paths.checkpoint, paths.partial] + [p for pattern in paths._series() for p in glob.glob(pattern)]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def attempt(job, where="", on_saved=None):
    """Run one job once, continuing its own checkpoint if one exists; never raises for a job's problem.
    on_saved(kind, path) is called after each file the run writes."""
    start, cpu = time.perf_counter(), time.process_time()
    timings = {"startup": _warm()}
    paths = OutputPaths(job.output.path)
    resumed = os.path.isfile(paths.checkpoint)
    if resumed and _past_budget(job, paths.checkpoint):
        if job.output.overwrite:  # a folder of this batch's own: the longer run's files go
            _start_afresh(paths)
        resumed = False
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
        elif isinstance(event, Saved) and on_saved is not None:
            on_saved(event.kind, event.path)

    try:
        prepared = time.perf_counter()
        plan = loop.prepare(job)
        timings["prepare"] = time.perf_counter() - prepared
        if plan.resume is not None:
            outcome.resumed_from = int(plan.resume.state["evaluations"])
        marks["level_end"] = time.perf_counter()
        result = loop.execute(plan, on_event)
    except UserError as exc:
        hint = (f" (its checkpoint {paths.checkpoint} is from other settings: delete it, or use another "
                "output folder)") if resumed and "--resume" in str(exc) else ""
        outcome.status, outcome.reason = "failed", f"{exc}{hint}"
    except (KeyboardInterrupt, loop.Terminated):  # before the run loop, which handles them itself
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


def _die_with(parent):
    """This process gets SIGKILL when its parent (the driver) dies, however it dies: a SIGKILLed driver
    left its workers computing and writing with parent 1 (issue 20.6). Linux only (prctl); elsewhere the
    worker notices its closed pipe when it next reads a job."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)


def _worker_main(connection, parent=None):
    """A local worker process: TensorFlow imported once, then one job per message until told to stop."""
    if parent is not None:
        _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it sends SIGTERM

    def on_sigterm(signum, frame):
        raise loop.Terminated()

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
    except (loop.Terminated, EOFError, BrokenPipeError):
        return


@contextlib.contextmanager
def _environment(values, replace=True):
    """`values` in os.environ for the duration, then the environment as it was; with replace=False a
    variable that is already set (the user's) is left as it is."""
    if not replace:
        values = {name: value for name, value in values.items() if name not in os.environ}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Processes:
    """N worker processes (spawned, so no TensorFlow state is inherited); a dead one is replaced."""

    def __init__(self, workers, threads, on_start=lambda pid: None):
        self.slots, self.threads, self.on_start = workers, threads, on_start
        self.context = multiprocessing.get_context("spawn")
        self.idle, self.busy = [], {}  # busy: process -> (connection, task)
        for _ in range(workers):
            self.idle.append(self._start())

    def _start(self):
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(theirs, os.getpid()), daemon=True)
        # Each worker's thread pools get its share of the cores, read once when the libraries load (before
        # any code of ours runs in the child): TensorFlow's intra-op pool, and OpenMP/OpenBLAS', which
        # otherwise spin 2 threads per worker: 12 jobs at 64 px, 2 workers on 2 cores, took 2.8 CPU s
        # per job without OMP_NUM_THREADS=1 and 2.1 with it (bench/batch.py; Ray sets it for its tasks).
        with _environment(dict.fromkeys(THREAD_VARIABLES, str(self.threads))):
            process.start()  # spawn: the child gets the environment as it is now
        theirs.close()
        self.on_start(process.pid)
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


# Ray: the driver reads every input once and puts it in the object store; a task runs its job in a scratch
# folder on its node's local disk and returns every file it wrote as bytes; only the driver writes under
# --out. Checkpoints and snapshots travel through a small actor on the driver's node as the task saves
# them, so a retry (Ray's, on any node) continues from the last one, and an interrupted job's work is kept.

WEIGHTS_CACHE = "legacy_nst-weights"  # under the node's temporary directory: <sha256><suffix>, written once
STREAMED = ("checkpoint", "snapshot", "scale")  # files sent to the driver as soon as they are saved


class _FileStore:
    """A Ray actor on the driver's node: the latest checkpoint of each running job (what an attempt starts
    from) and the files tasks saved that the driver has not written yet. Each call is one message, so a
    task's put returns only once the store has its bytes."""

    def __init__(self):
        self.checkpoints, self.pending, self.attempts = {}, [], collections.Counter()

    def seed(self, name, data):
        """Before a job's first attempt: the checkpoint the driver has on disk (None: start afresh)."""
        self.checkpoints[name] = data
        self.attempts[name] = 0

    def begin(self, name):
        """An attempt starts (the driver's or one of Ray's retries): its number and the checkpoint to continue."""
        self.attempts[name] += 1
        return self.attempts[name], self.checkpoints.get(name)

    def put(self, name, filename, data, is_checkpoint):
        if is_checkpoint:
            self.checkpoints[name] = data
        self.pending.append((name, filename, data))

    def drain(self):
        pending, self.pending = self.pending, []
        return pending

    def forget(self, name):
        self.checkpoints.pop(name, None)


def _node_weights(digest, suffix, data):
    """The weight file on this node's local disk, written once per content (`data`: [object ref])."""
    import tempfile

    import ray

    folder = Path(tempfile.gettempdir()) / WEIGHTS_CACHE
    path = folder / f"{digest}{suffix}"
    if not path.is_file():
        folder.mkdir(exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another task on this node wrote it first
            with atomic_path(str(path), overwrite=False) as tmp:
                with open(tmp, "wb") as f:
                    f.write(ray.get(data[0]))
    return str(path)


SCRATCH_PREFIX = "legacy_nst-task-"  # a Ray task's folder in its node's temporary directory
SCRATCH_OWNER = ".owner"  # in it: the pid of the worker process whose task it is


def _remove_orphaned_scratch(directory):
    """Scratch folders of tasks whose worker died (a SIGKILL, a node's crash: no `finally` ran), removed by
    the next task on the node, so that a cluster's disks do not fill with dead tasks' checkpoints. Their
    work is not lost: what a task saves is streamed to the driver as it is written (STREAMED)."""
    import shutil

    for folder in Path(directory).glob(f"{SCRATCH_PREFIX}*"):
        try:
            pid = int((folder / SCRATCH_OWNER).read_text())
        except (OSError, ValueError):  # being made, or not ours
            continue
        if not _pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _ray_attempt(job, inputs, store):
    """One job as a Ray task: returns (Outcome, {file name: bytes}, attempt number). `inputs` holds object
    refs (nested, so that each is fetched only when needed): decoded images, mask files, the weight file."""
    import shutil
    import tempfile

    import ray

    if threading.current_thread() is threading.main_thread():
        # Ray cancels a task by simulating SIGINT in its worker, which does nothing where SIGINT is ignored
        # (inherited: a cluster started from a background job of a script); the run must see Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)
    number, saved = ray.get(store.begin.remote(job.name))
    node = ray.get_runtime_context().get_node_id()[:8]
    where = f"ray node {node} {socket.gethostname()}:{os.getpid()}"
    _remove_orphaned_scratch(tempfile.gettempdir())
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
    try:
        with open(os.path.join(scratch, SCRATCH_OWNER), "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
        output = os.path.join(scratch, os.path.basename(job.output.path))
        if saved is not None:
            with open(OutputPaths(output).checkpoint, "wb") as f:
                f.write(saved)
        masks = []
        for i, (style, mask) in enumerate(zip(job.styles, inputs["masks"])):
            if mask is not None:
                path = os.path.join(scratch, f"mask-{i}{Path(str(style.mask)).suffix}")
                with open(path, "wb") as f:
                    f.write(ray.get(mask[0]))
                mask = path
            masks.append(mask)
        images_ = {key: None if ref is None else ray.get(ref[0]) for key, ref in inputs["images"].items()}
        styles = tuple(dataclasses.replace(style, image=images_[f"style-{i}"], mask=mask)
                       for i, (style, mask) in enumerate(zip(job.styles, masks)))
        weights_path = job.weights if inputs["weights"] is None else _node_weights(*inputs["weights"])
        local = dataclasses.replace(job, content=images_["content"], styles=styles,
                                    init_image=images_["init_image"], weights=weights_path,
                                    output=dataclasses.replace(job.output, path=output, overwrite=True))

        def on_saved(kind, path):
            if kind in STREAMED:
                with open(path, "rb") as f:
                    ray.get(store.put.remote(job.name, os.path.basename(path), f.read(), kind == "checkpoint"))

        outcome = attempt(local, where, on_saved)
        files = {}
        for name in sorted(os.listdir(os.path.dirname(output))):
            path = os.path.join(scratch, name)
            if os.path.isfile(path) and not name.startswith(".") and not name.startswith("mask-"):
                with open(path, "rb") as f:
                    files[name] = f.read()
        return outcome, files, number
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Ray:
    """Tasks on a Ray cluster; as many in flight as the live cluster has room for (or `slots`)."""

    RESOURCES_EVERY = 1.0  # s between looks at the cluster's resources (nodes come and go)

    def __init__(self, address, cpus_per_job, retries, slots=None):
        # --ray local: a one-machine cluster on 127.0.0.1, not this host's network address (ray.init's
        # _node_ip_address="127.0.0.1" is replaced by that address): Ray's single-node mode, read when ray
        # is imported; and no usage report sent anywhere. Only while Ray starts: left in this process's
        # environment, it was inherited by every `ray start` the process ran later, whose nodes then
        # refused to join a cluster ("multi-node clusters are not supported").
        local = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        with _environment(local if address == "local" else {}, replace=False):
            self._start(address)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        self.cpus = max(1, int(cpus_per_job or 1))
        self.retries, self.fixed_slots = retries, slots
        self.looked, self.room, self.gpus = -math.inf, 1, False
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.store = ray.remote(_FileStore).options(num_cpus=0, scheduling_strategy=here).remote()
        self.remote = ray.remote(_ray_attempt)
        self.refs = {}
        self.inputs = {}  # what was put in the object store: (kind, path) -> [ref] (or an error)
        self.ready = []  # (task, Outcome) decided on the driver (an unreadable input): returned by wait()

    def _start(self, address):
        """Ray imported, and connected to `address` (or started there) unless this process already is."""
        try:
            import ray
        except ImportError:
            raise UserError(RAY_INSTALL) from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        self.scratch = None
        if self.started_here:
            options = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
            if not os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):  # not a `ray job submit` job (its own env)
                import tempfile

                # The driver's own copy of the package runs on every node (py_modules), and an empty working
                # directory keeps Ray from putting the driver's script directory and current directory
                # first on the workers' sys.path, where a node's other copy of the package would win.
                self.scratch = tempfile.mkdtemp(prefix="legacy_nst-ray-")
                options["runtime_env"] = {"py_modules": [PACKAGE_DIR],
                                          "working_dir": self.scratch}
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

    @property
    def slots(self):
        """Tasks to keep in flight: what the live cluster's nodes can run at once, re-read as nodes join and
        leave (read once at the start, a node that joined mid-batch got no work, and a head started with
        --num-cpus 0 capped the batch at 1); at least 1, so that an autoscaler sees the demand."""
        if self.fixed_slots:
            return self.fixed_slots
        now = time.monotonic()
        if now - self.looked >= self.RESOURCES_EVERY:
            self.looked = now
            resources = self.ray.cluster_resources()
            self.gpus = resources.get("GPU", 0) > 0
            self.room = int(resources.get("GPU", 0)) if self.gpus else int(resources.get("CPU", 0)) // self.cpus
        return max(1, self.room)

    def _put(self, kind, path, read):
        key = (kind, str(path))
        if key not in self.inputs:
            try:
                self.inputs[key] = [self.ray.put(read(path))]
            except UserError as exc:
                self.inputs[key] = exc
        if isinstance(self.inputs[key], UserError):
            raise self.inputs[key]
        return self.inputs[key]

    def _weights(self, job):
        from ..vgg import weights

        path = weights.resolve(_recipe_of(job).network, job.weights)
        stat = path.stat()
        key = ("weights", str(path))
        if key not in self.inputs or self.inputs[key][0] != (stat.st_size, stat.st_mtime_ns):
            data = path.read_bytes()
            self.inputs[key] = ((stat.st_size, stat.st_mtime_ns),
                                (hashlib.sha256(data).hexdigest(), path.suffix, [self.ray.put(data)]))
        return self.inputs[key][1]

    def _inputs(self, job):
        """The job's inputs as object refs, each file read and checked once per batch (UserError: a bad one)."""
        from ..images import load_image

        def image(value):
            if value is None or isinstance(value, np.ndarray):
                return None if value is None else [self.ray.put(value)]
            return self._put("image", value, lambda path: load_image(str(path)))

        if job.normalise_on:
            raise UserError("normalise_on: not supported with --ray (its images would be read on each node)")
        if job.content is None and not job.styles:
            images_ = {"content": None, "init_image": image(job.init_image)}  # the demo pair, drawn by the task
        else:
            images_ = {"content": image(job.content), "init_image": image(job.init_image)}
        images_.update({f"style-{i}": image(style.image) for i, style in enumerate(job.styles)})
        masks = [None if s.mask is None or isinstance(s.mask, np.ndarray) else
                 self._put("mask", s.mask, lambda path: Path(path).read_bytes()) for s in job.styles]
        return {"images": images_, "masks": masks, "weights": self._weights(job)}

    def submit(self, task):
        job = task.job
        try:
            inputs = self._inputs(job)
        except (UserError, OSError) as exc:
            reason = str(exc) if isinstance(exc, UserError) else f"{exc.filename}: {exc.strerror}"
            self.ready.append((task, Outcome(job.name, status="failed", reason=reason, output=job.output.path)))
            return
        paths = OutputPaths(job.output.path)
        if os.path.isfile(paths.checkpoint) and _past_budget(job, paths.checkpoint):
            _start_afresh(paths)
        saved = Path(paths.checkpoint).read_bytes() if os.path.isfile(paths.checkpoint) else None
        self.ray.get(self.store.seed.remote(job.name, saved))  # in the store before the task asks for it
        gpu = job.device == "gpu" or (job.device == "auto" and self.gpus)
        # one task holds one GPU (TensorFlow keeps the GPU it first saw for the worker's life: a worker
        # that ran a GPU task is not reused, max_calls=1); Ray retries a task whose worker or node died,
        # from the last checkpoint the store has
        options = {"num_cpus": 1 if gpu else self.cpus, "num_gpus": 1 if gpu else 0, "max_retries": self.retries,
                   "retry_exceptions": False,
                   "runtime_env": {"env_vars": dict.fromkeys(THREAD_VARIABLES, str(self.cpus))}}
        if gpu:
            options["max_calls"] = 1
        self.refs[self.remote.options(**options).remote(job, inputs, self.store)] = task

    def _write(self, job, filename, data):
        """A file a task made, written on the driver beside the job's result (atomically)."""
        path = os.path.join(os.path.dirname(os.path.abspath(job.output.path)), filename)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
        return path

    def _drain(self):
        by_name = {task.job.name: task.job for task in self.refs.values()}
        for name, filename, data in self.ray.get(self.store.drain.remote()):
            if name in by_name:
                self._write(by_name[name], filename, data)

    def wait(self, timeout=POLL):
        if self.ready:
            ready, self.ready = self.ready, []
            return ready
        done, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        self._drain()  # every file a finished task streamed is in the store before its result: written first
        return [self._collect(ref) for ref in done]

    def _collect(self, ref):
        task = self.refs.pop(ref)
        job = task.job
        exceptions = self.ray.exceptions
        try:
            outcome, files, number = self.ray.get(ref)
        except exceptions.TaskCancelledError:
            return task, Outcome(job.name, status="interrupted", reason="interrupted (task cancelled)")
        except exceptions.RayTaskError as exc:  # raised by our code outside attempt(): a bug, not retried
            return task, Outcome(job.name, status="failed", reason=f"internal error: {exc}")
        except exceptions.RayError as exc:  # its worker or node died, and Ray's retries are spent
            return task, Outcome(job.name, status="failed", output=job.output.path,
                                 reason=f"its Ray worker died ({type(exc).__name__}); gave up after "
                                        f"{self.retries + 1} attempts")
        finally:
            self.store.forget.remote(job.name)
        paths = OutputPaths(job.output.path)
        settings = os.path.basename(paths.settings)
        if settings in files:
            files[settings] = _described_as_given(files[settings], job)
        written = {name: self._write(job, name, data) for name, data in files.items()}
        if outcome.status == "done":
            with contextlib.suppress(FileNotFoundError):
                os.remove(paths.partial)  # superseded by the result, as a run in place removes it
        outcome.files = {kind: written.get(os.path.basename(path), path) for kind, path in outcome.files.items()}
        outcome.output = job.output.path
        task.attempts += number - 1  # Ray's own retries, counted as the driver counts its own
        return task, outcome

    def interrupt(self):
        for ref in self.refs:
            self.ray.cancel(ref)  # KeyboardInterrupt in the task: the run keeps its partial image
        deadline = time.monotonic() + INTERRUPT_GRACE
        while self.refs and time.monotonic() < deadline:
            yield from self.wait(timeout=1.0)

    def close(self):
        for ref in self.refs:  # still running after an interrupt: stopped
            self.ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            self._drain()  # what the stopped tasks saved (their checkpoints) is kept
        self.refs.clear()
        if self.started_here:
            self.ray.shutdown()
        if self.scratch:
            os.rmdir(self.scratch)


def _described_as_given(data, job):
    """A task's settings file (bytes) naming the inputs as the job gave them: the task read them from the
    object store, as arrays, and the weights from its node's cache; the file reads as a run in place
    writes it (loop._Execution._settings)."""
    def described(image):
        return "(array)" if isinstance(image, np.ndarray) else (None if image is None else str(image))

    settings = json.loads(data)
    settings["content"] = described(job.content)
    settings["styles"] = [{"image": described(s.image), "weight": s.weight} for s in job.styles]
    settings["init_image"] = described(job.init_image)
    settings["weights"] = job.weights
    return json.dumps(settings, indent=1).encode("utf-8")


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
    recipe = _recipe_of(job)
    settled = output.settled(recipe.name)
    if output.save_every is None and not settled.save_every and not settled.save_restarts:
        budget = sum(level.iterations for level in job.levels(recipe))
        output = dataclasses.replace(output, save_every=max(1, math.ceil(budget / CHECKPOINTS_PER_JOB)))
    return dataclasses.replace(job, name=name, output=output, resume=None)


def _boot_id():
    """This boot of this machine (pids are comparable only within one host and one boot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


class _BatchLock:
    """OUT/.batch.lock: one batch writes an --out at a time. It records the driver's host, boot id and pid
    and its workers' pids, so a later batch can tell a live batch (refused) from a killed one (taken over,
    once the killed one's workers are gone: two batches on one --out marked each other's finished jobs
    failed, issue 20.6)."""

    def __init__(self, out_dir):
        self.path = Path(out_dir) / LOCK_NAME
        self.record = {"host": socket.gethostname(), "boot_id": _boot_id(), "pid": os.getpid(), "workers": []}
        self.held = False

    def acquire(self):
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over(self._read())
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(json.dumps(self.record))
            except OSError as exc:  # a full disk: the lock is the batch's first write
                with contextlib.suppress(OSError):
                    os.remove(self.path)
                raise WriteError(f"could not write {self.path}: {exc.strerror or exc}") from None
            self.held = True
            return
        raise UserError(f"{self.path}: could not take the batch lock; remove it if no batch writes there")

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                record = json.load(f)
            return record if isinstance(record, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # torn by a crash mid-write: nobody holds it

    def _take_over(self, other):
        """Remove the lock of a batch that is gone; UserError if it may still be running."""
        if other is None:
            return  # released meanwhile
        here = other.get("host") == self.record["host"]
        if other and not here:
            raise UserError(f"--out {self.path.parent}: a batch on host {other.get('host')} (process "
                            f"{other.get('pid')}) is writing there; wait for it, or if it is gone remove {self.path}")
        if here and other.get("boot_id") == self.record["boot_id"]:
            pid = other.get("pid")
            if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
                raise UserError(f"--out {self.path.parent}: another batch (process {pid}) is writing there; wait "
                                "for it to finish, or choose another --out")
            workers = [w for w in other.get("workers", []) if isinstance(w, int) and w != os.getpid()]
            deadline = time.monotonic() + WORKERS_GONE_WAIT
            while any(_pid_alive(w) for w in workers) and time.monotonic() < deadline:
                time.sleep(0.05)  # its workers got SIGKILL with it: their end is a matter of moments
            alive = [w for w in workers if _pid_alive(w)]
            if alive:
                raise UserError(f"--out {self.path.parent}: the worker processes {alive} of a stopped batch "
                                "are still running; wait for them, or choose another --out")
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)

    def add_worker(self, pid):
        self.record["workers"].append(pid)
        write_text(self.path, json.dumps(self.record))

    def release(self):
        if self.held:
            self.held = False
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


def _name_max(directory):
    """NAME_MAX of the file system `directory` is (or will be) on: asked of its nearest existing ancestor."""
    directory = Path(directory).absolute()
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _longest_name(job):
    """The longest file name a job's outputs can have (its numbered files at their largest numbers)."""
    paths = OutputPaths(job.output.path)
    levels = job.levels(_recipe_of(job))
    largest = max([level.iterations for level in levels] + [level.size or 0 for level in levels])
    names = [paths.result, paths.log, paths.plot, paths.settings, paths.grid, paths.checkpoint, paths.partial,
             paths.lock, paths.snapshot(largest), paths.restart(largest), paths.scale(largest)]
    return max(map(os.path.basename, names), key=lambda name: len(name.encode()))


def _check_names(jobs, out_dir):
    """Every job's outputs can be written: unique names, none the batch's own files, none too long."""
    seen, limits = set(), {}
    reserved = {name.casefold() for name in BATCH_FILES}
    for job in jobs:
        shown = job.name if len(job.name) <= 60 else f"{job.name[:40]}... ({len(job.name)} characters)"
        if job.name in seen:
            raise UserError(f"two jobs are named {job.name!r}; job names must be unique (they name the outputs)")
        seen.add(job.name)
        if job.name.casefold() in reserved:
            raise UserError(f"job {job.name!r}: the name is one of the batch's own files in --out "
                            f"({', '.join(BATCH_FILES)}); rename the job")
        longest = _longest_name(job)
        folder = os.path.dirname(os.path.abspath(job.output.path))
        limit = limits[folder] if folder in limits else limits.setdefault(folder, _name_max(folder))
        if len(longest.encode()) > limit:
            excess = len(longest.encode()) - limit
            raise UserError(f"job {shown}: the name is too long: its file {longest[:40]}... would be "
                            f"{len(longest.encode())} bytes, the most this file system allows is {limit}; "
                            f"shorten the name by at least {excess} characters")


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
    _write_batch_file(out_dir / "summary.json", json.dumps({"jobs": records}, indent=1, default=str))
    terms = list(dict.fromkeys(k for o in outcomes for k in o.final if k != "total"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS[:5] + tuple(f"final_{t}" for t in terms) + SUMMARY_COLUMNS[5:])
    for o in outcomes:
        writer.writerow([o.name, o.status, o.reason, o.evaluations, o.final.get("total", "")]
                        + [o.final.get(t, "") for t in terms]
                        + [f"{o.seconds:.2f}", o.where, o.attempts, o.resumed_from, o.output])
    _write_batch_file(out_dir / "summary.csv", buffer.getvalue())


def _write_batch_file(path, text):
    try:
        write_text(path, text)
    except OSError as exc:  # disk full, a quota: one line naming the file (exit 1), not a traceback
        raise WriteError(f"could not write {path}: {exc.strerror or exc}") from None


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
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UserError(f"--retries {retries}: must be 0 (never retry) or more")
    if cpus_per_job is not None and (isinstance(cpus_per_job, bool) or not isinstance(cpus_per_job, int)
                                     or cpus_per_job < 1):
        raise UserError(f"--cpus-per-job {cpus_per_job}: must be at least 1")
    out_dir = Path(out_dir).absolute()  # the driver's: a Ray task never resolves a path of its own
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is not a directory")
    threads = max(1, int(cpus_per_job or 1))
    jobs = [_with_output(job if job.threads else dataclasses.replace(job, threads=threads), i, out_dir)
            for i, job in enumerate(jobs)]
    _check_names(jobs, out_dir)  # before anything is made: a refused batch leaves nothing behind
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = _BatchLock(out_dir)
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
            tasks.append(_Task(i, job))
    counts = collections.Counter(o.status for o in outcomes)
    report = on_progress or (lambda progress: None)

    def progress(running, **what):
        report(Progress(len(jobs), counts["done"], counts["failed"], running, **what))

    progress(0)
    write_summary(out_dir, outcomes)  # disk full before the start: WriteError naming summary.json
    for task in tasks:
        os.makedirs(os.path.dirname(os.path.abspath(task.job.output.path)), exist_ok=True)
    if not tasks:
        return outcomes
    pool = _pool(workers, ray_address, cpus_per_job, len(tasks), lock.add_worker, retries)
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
    except (KeyboardInterrupt, loop.Terminated):
        stopping = True
        try:
            for task, outcome in pool.interrupt():
                finish(task, outcome)
        except (KeyboardInterrupt, loop.Terminated):
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
    try:
        engine.fix_threads(max(1, int(cpus_per_job or 1)))
    except ThreadsFixed:
        return False
    return True


def _pool(workers, ray_address, cpus_per_job, count, on_worker, retries):
    if ray_address is not None:
        return _Ray(ray_address, cpus_per_job, retries, slots=workers if workers > 1 else None)
    if workers == 1:
        return _Inline() if _inline_can_run(cpus_per_job) else _Processes(1, max(1, int(cpus_per_job or 1)),
                                                                          on_worker)
    return _Processes(min(workers, count), max(1, int(cpus_per_job or 1)), on_worker)
